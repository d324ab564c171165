"""`python -m pga_tf.export` and `python -m pga_tf.sample` as a user runs them."""
import os
import subprocess
import shutil
import sys

import pytest
from PIL import Image


def run(module, *args):
    # TensorFlow's own log level left alone: its start-up lines must not reach stderr.
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    return subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_export_then_sample(exported, tmp_path):
    root = exported[0]
    export_dir = tmp_path / 'exports' / 'digits'
    result = run('pga_tf.export', f'--run_dir={root / "run"}', f'--export_dir={export_dir}',
                 '--tflite')
    assert result.returncode == 0, result.stderr[-3000:]
    assert (export_dir / '1' / 'saved_model.pb').exists() and (export_dir / 'models.config').exists()
    assert (export_dir / '1' / 'decoder.tflite').exists() and (export_dir / '1' / 'encoder.tflite').exists()
    assert 'Ignored output_format' not in result.stderr  # the converter's notes are dropped
    import json

    from pga_tf import sample
    card = json.loads((export_dir / '1' / 'model_card.json').read_text())
    assert (card['method'], card['training_step'], card['settings']['z_dim']) == ('vpga', 3, 8)
    assert 'sample_gmm' in card['signatures']  # the run's training digits fit the mixture
    assert sample.card(str(export_dir / '1')).startswith('# VPGA on mnist_5k')

    result = run('pga_tf.sample', f'--export_dir={export_dir}', '--num=16', '--sample_seed=3',
                 f'--out={tmp_path / "grid.png"}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / 'grid.png').size == (4 * 28, 4 * 28)


def test_sample_draws_interpolation_rows(exported):
    import numpy as np

    from pga_tf import sample

    rows = sample.draw(sample.load(exported[3]), 'interpolate', 3, 0, 7)
    assert rows.shape == (3 * 28, 7 * 28, 1)
    rows = sample.draw(sample.load(exported[3]), 'traverse', 4, 0, 9)
    assert rows.shape == (4 * 28, 9 * 28, 1)
    arcs = sample.draw(sample.load(exported[3]), 'interpolate', 3, 0, 7, spherical=True)
    lines = sample.draw(sample.load(exported[3]), 'interpolate', 3, 0, 7)
    assert arcs.shape == lines.shape  # the same ends, other paths between them
    np.testing.assert_array_equal(arcs[:, :28], lines[:, :28])
    assert not np.array_equal(arcs, lines)


def test_sample_draws_from_the_exported_mixture(exported, tmp_path):
    import numpy as np

    from pga_tf import sample
    from pga_tf.evaluation import gmm
    from pga_tf.serving import export_lib
    from pga_tf.training import data, summaries

    root, encoder, decoder, path = exported
    grid = sample.draw(sample.load(path), 'sample', 4, 5, 0, sampler='gmm')
    codes = gmm.draw(*gmm.constants(gmm.load(str(root / 'run' / 'gmm_3.npz'))), 4, 5)
    expected = summaries.uint8_grid(data.to_uint8(decoder(codes, training=False)).numpy(), 2)
    np.testing.assert_array_equal(grid, expected)
    plain = export_lib.export(encoder, decoder, str(tmp_path / 'plain'))  # no mixture given
    with pytest.raises(export_lib.ExportError, match="no 'sample_gmm' signature"):
        sample.draw(sample.load(plain), 'sample', 4, 5, 0, sampler='gmm')


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    export_dir = tmp_path / 'exports' / 'x'
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    # Both commands at once: their time is TensorFlow's start-up.
    export, sample = (subprocess.Popen([sys.executable, '-m', module, *args], env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                      for module, args in [
                          ('pga_tf.export', [f'--run_dir={tmp_path}', f'--export_dir={export_dir}']),
                          ('pga_tf.sample', [f'--export_dir={export_dir}', '--out=grid'])])
    stderr = export.communicate(timeout=300)[1]
    assert export.returncode == 2 and stderr.splitlines() == [
        f'pga_tf.export: error: {tmp_path} is not a run folder (no flags.cfg)']
    stderr = sample.communicate(timeout=300)[1]
    assert sample.returncode == 2 and len(stderr.splitlines()) == 1
    assert '--out' in stderr
    assert not (tmp_path / 'exports').exists()


def test_sample_refuses_a_bad_out_or_a_damaged_export(exported, tmp_path):
    from pga_tf import sample
    from pga_tf.serving.export_lib import ExportError

    version = exported[3]
    damaged = tmp_path / 'damaged'
    shutil.copytree(version, damaged)
    (damaged / 'saved_model.pb').write_bytes(b'not a protobuf')
    with pytest.raises(ExportError, match='cannot be loaded'):
        sample.load(str(damaged))
    with pytest.raises(ExportError, match='no SavedModel version 7'):
        sample.version_dir(os.path.dirname(version), 7)
