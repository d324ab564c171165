"""The SavedModel export: signatures in a fresh process, saved_model_cli, atomic versions, batch norm."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pga_tf.core import generator, models
from pga_tf.evaluation import gmm
from pga_tf.serving import export_lib, model_card
from pga_tf.training import data
from pga_tf.training.config import Config
from conftest import Z_DIM


FRESH = r'''
import json, sys
import numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
z = np.load(sys.argv[2])
out = {}
def run(name, **kw):
    r = m.signatures[name](**kw)
    out[name] = {k: [list(v.shape), v.dtype.name] for k, v in r.items()}
    return r
np.save(sys.argv[3], run('serving_default', z=tf.constant(z))['images'].numpy())
a = run('sample', num_samples=tf.constant(5), seed=tf.constant(7, tf.int64))
b = m.signatures['sample'](num_samples=tf.constant(5), seed=tf.constant(7, tf.int64))
c = m.signatures['sample'](num_samples=tf.constant(5), seed=tf.constant(8, tf.int64))
out['same_seed_equal'] = bool(np.array_equal(a['images'], b['images']))
out['other_seed_differs'] = not np.array_equal(a['z'], c['z'])
g = run('sample_gmm', num_samples=tf.constant(5), seed=tf.constant(7, tf.int64))
np.save(sys.argv[3].replace('images', 'gmm_images'), g['images'].numpy())
t = run('traverse', z=tf.constant(z[0]), dims=tf.constant(3), steps=tf.constant(5))
np.save(sys.argv[3].replace('images', 'traversals'), t['images'].numpy())
run('decode', z=tf.constant(z))
run('encode', images=tf.zeros([3, 28, 28, 1], tf.uint8))
run('reconstruct', images=tf.zeros([3, 28, 28, 1], tf.uint8))
run('interpolate', z_start=tf.constant(z[:2]), z_end=tf.constant(z[2:4]), steps=tf.constant(6))
try:
    m.signatures['serving_default'](z=tf.zeros([2, 3]))
    out['bad_shape'] = 'accepted'
except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
    out['bad_shape'] = type(e).__name__
try:
    m.signatures['serving_default'](z=tf.zeros([2, %d], tf.float64))
    out['bad_dtype'] = 'accepted'
except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
    out['bad_dtype'] = type(e).__name__
print(json.dumps(out))
''' % Z_DIM


def test_fresh_process_loads_every_signature(exported, tmp_path):
    _, _, decoder, path = exported
    z = np.random.RandomState(0).normal(size=(4, Z_DIM)).astype(np.float32)
    np.save(tmp_path / 'z.npy', z)
    result = subprocess.run([sys.executable, '-c', FRESH, path, str(tmp_path / 'z.npy'),
                             str(tmp_path / 'images.npy')], capture_output=True, text=True,
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    image = [28, 28, 1]
    assert out['serving_default'] == {'images': [[4, *image], 'uint8']}
    assert out['sample'] == {'images': [[5, *image], 'uint8'], 'z': [[5, Z_DIM], 'float32']}
    assert out['decode'] == {'images': [[4, *image], 'float32']}
    assert out['encode'] == {'z': [[3, Z_DIM], 'float32']}
    assert out['reconstruct'] == {'images': [[3, *image], 'uint8']}
    assert out['interpolate'] == {'images': [[2, 6, *image], 'uint8']}
    assert out['sample_gmm'] == out['sample']
    assert out['traverse'] == {'images': [[3, 5, *image], 'uint8'], 'dims': [[3], 'int32']}
    assert out['same_seed_equal'] and out['other_seed_differs']
    assert out['bad_shape'] != 'accepted' and out['bad_dtype'] != 'accepted'
    # The export's images are the checkpoint decoder's, after the uint8 conversion.
    expected = data.to_uint8(decoder(z, training=False)).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / 'images.npy'), expected)
    # sample_gmm draws as pga_tf.evaluation.gmm does from the run's mixture, seed for seed.
    mixture = gmm.load(os.path.join(exported[0], 'run', 'gmm_3.npz'))
    codes = gmm.draw(*gmm.constants(mixture), 5, 7)
    np.testing.assert_array_equal(np.load(tmp_path / 'gmm_images.npy'),
                                  data.to_uint8(decoder(codes, training=False)).numpy())
    # traverse moves the dimensions the mixture spreads most, by its code std.
    std = gmm.code_std(mixture).astype(np.float32)
    dims = np.argsort(-std, kind='stable')[:3]
    codes = np.array([z[0] + t * std[d] * np.eye(Z_DIM, dtype=np.float32)[d]
                      for d in dims for t in np.linspace(-2, 2, 5)])
    expected = data.to_uint8(decoder(codes, training=False)).numpy().reshape(3, 5, 28, 28, 1)
    assert np.abs(np.load(tmp_path / 'traversals.npy').astype(int) - expected).max() <= 1


def _cli():
    return str(pathlib.Path(sys.executable).parent / 'saved_model_cli')


def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, _, decoder, path = exported
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    show = subprocess.run([_cli(), 'show', '--dir', path, '--all'], capture_output=True,
                          text=True, env=env, timeout=300)
    assert show.returncode == 0, show.stderr[-2000:]
    for name in (*export_lib.SIGNATURES, 'sample_gmm'):
        assert f"signature_def['{name}']" in show.stdout
    z = np.random.RandomState(1).normal(size=(2, Z_DIM)).astype(np.float32)
    np.save(tmp_path / 'z.npy', z)
    run = subprocess.run([_cli(), 'run', '--dir', path, '--tag_set', 'serve', '--signature_def',
                          'serving_default', '--inputs', f'z={tmp_path / "z.npy"}',
                          '--outdir', str(tmp_path / 'out')], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    images = np.load(tmp_path / 'out' / 'images.npy')
    np.testing.assert_array_equal(images, data.to_uint8(decoder(z, training=False)).numpy())
    # The mixture's constants load through the TF1 session loader too (TF Serving's).
    run = subprocess.run([_cli(), 'run', '--dir', path, '--tag_set', 'serve', '--signature_def',
                          'sample_gmm', '--input_exprs', 'num_samples=3;seed=11', '--outdir',
                          str(tmp_path / 'gmm')], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    mixture = gmm.load(os.path.join(exported[0], 'run', 'gmm_3.npz'))
    np.testing.assert_array_equal(np.load(tmp_path / 'gmm' / 'z.npy'),
                                  gmm.draw(*gmm.constants(mixture), 3, 11).numpy())


def test_versions_are_atomic_and_numbered(exported, monkeypatch):
    root, encoder, decoder, path = exported
    export_dir = os.path.dirname(path)
    assert os.path.basename(path) == '1'
    assert "base_path: '/models/pga_mnist'" in open(os.path.join(export_dir, 'models.config')).read()

    seen = []
    real_rename = os.rename

    def checking_rename(src, dst):  # the version appears only once complete
        seen.append((os.path.exists(dst), os.path.exists(os.path.join(src, 'saved_model.pb')),
                     os.path.isdir(os.path.join(src, 'variables'))))
        real_rename(src, dst)

    monkeypatch.setattr(export_lib.os, 'rename', checking_rename)
    assert export_lib.export(encoder, decoder, export_dir).endswith(os.sep + '2')
    assert seen == [(False, True, True)]
    with pytest.raises(export_lib.ExportError, match='exists'):
        export_lib.export(encoder, decoder, export_dir, version=2)

    def failing_save(*args, **kwargs):
        os.makedirs(os.path.join(args[1], 'variables'))
        raise OSError('disk full')

    monkeypatch.setattr(export_lib.tf.saved_model, 'save', failing_save)
    with pytest.raises(OSError):
        export_lib.export(encoder, decoder, export_dir)
    assert sorted(os.listdir(export_dir)) == ['1', '2', 'models.config']


def test_export_folder_is_checked_and_killed_exports_are_cleaned(exported, tmp_path):
    _, encoder, decoder, path = exported
    (tmp_path / 'file').write_text('keep me')
    (tmp_path / 'mixed').mkdir()
    (tmp_path / 'mixed' / 'notes.txt').write_text('keep me')
    for bad, reason in [(tmp_path / 'file', 'is a file'), (path, 'version folder'),
                        (tmp_path / 'mixed', 'holds notes.txt')]:
        with pytest.raises((export_lib.ExportError, export_lib.paths.PathError), match=reason):
            export_lib.check_model_folder(str(bad))
    assert os.listdir(tmp_path / 'mixed') == ['notes.txt']
    # What a killed export leaves (its process is gone) goes at the next export; a live
    # process's temporary folder stays.
    export_dir = tmp_path / 'model'
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()
    for name in (f'.tmp-1-{dead}', f'.tmp-5-{os.getpid()}'):
        (export_dir / name / 'variables').mkdir(parents=True)
    (export_dir / f'models.config.tmp-{dead}').write_text('half')
    export_lib.export(encoder, decoder, str(export_dir))
    assert sorted(os.listdir(export_dir)) == [f'.tmp-5-{os.getpid()}', '1', 'models.config']


def test_recomputed_batch_norm_matches_training_mode():
    tf.keras.utils.set_random_seed(3)
    _, decoder = models.build_models('conv_64', 16, 3, use_bn=True, width=1 / 16)
    z = tf.random.stateless_normal([512, 16], [4, 5])
    # Fresh moving statistics (0 and 1) are far from the batch statistics.
    before = np.abs(decoder(z, training=False) - decoder(z, training=True)).mean()
    used = generator.recompute_batch_norm(decoder, generator.prior_batches(16, 20, 256))
    after = np.abs(decoder(z, training=False) - decoder(z, training=True)).mean()
    assert used == 20
    assert after < 0.1 * before and after < 0.02
    assert all(bn.momentum == 0.999 for bn in decoder.layers
               if isinstance(bn, tf.keras.layers.BatchNormalization))


def _litert(path, signature):
    import warnings

    with warnings.catch_warnings():  # tf.lite.Interpreter's notice about ai_edge_litert
        warnings.simplefilter('ignore')
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner(signature)


def test_litert_models_agree_with_the_saved_model(tmp_path):
    """With batch norm (folded into the LiteRT graph) and any batch size."""
    tf.keras.utils.set_random_seed(5)
    encoder, decoder = models.build_models('conv_32', 6, 3, variational=True, use_bn=True,
                                           width=1 / 16)
    card = model_card.build(Config(dataset='cifar10', model='vpga', arch='conv_32', z_dim=6),
                            0, str(tmp_path), signatures=())
    path = pathlib.Path(export_lib.export(encoder, decoder, str(tmp_path / 'm'), tflite=True,
                                          card=card))
    saved = tf.saved_model.load(str(path)).signatures
    assert json.loads((path / 'model_card.json').read_text())['litert'] == export_lib.TFLITE
    assert '`decoder.tflite` (serving_default)' in (path / 'model_card.md').read_text()
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        z = rng.normal(size=(batch, 6)).astype(np.float32)
        images = rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.uint8)
        lite = _litert(path / 'decoder.tflite', 'serving_default')(z=z)['images']
        ref = saved['serving_default'](z=tf.constant(z))['images'].numpy()
        assert lite.dtype == np.uint8 and lite.shape == ref.shape
        assert np.abs(lite.astype(int) - ref.astype(int)).max() <= 1  # float32 round-off at .5
        z_lite = _litert(path / 'encoder.tflite', 'encode')(images=images)['z']
        np.testing.assert_allclose(z_lite, saved['encode'](images=tf.constant(images))['z'].numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_a_mixed_precision_generator_converts_through_its_float32_twin(tmp_path):
    """LiteRT has no bfloat16 kernels: the LiteRT model is the float32 network of the same weights."""
    tf.keras.utils.set_random_seed(6)
    encoder, decoder = models.build_models('resnet_32', 6, 3, variational=True, use_bn=True,
                                           width=1 / 16, precision='mixed_bfloat16')
    twin = export_lib.float32_twin(decoder)
    assert twin.dtype_policy.name == 'float32' and export_lib.float32_twin(twin) is twin
    for a, b in zip(twin.weights, decoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    z = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    export_lib.write_tflite(encoder, decoder, str(tmp_path), saved_model_dir=None)  # from the twins
    lite = _litert(tmp_path / 'decoder.tflite', 'serving_default')(z=z)['images']
    expected = data.to_uint8(generator.generate(twin, tf.constant(z))).numpy()
    assert np.abs(lite.astype(int) - expected.astype(int)).max() <= 1
