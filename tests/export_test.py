"""`python -m pga_tf.export` and `python -m pga_tf.sample` as a user runs them."""
import os
import subprocess
import sys

from PIL import Image



def run(module, *args):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    return subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_export_then_sample(exported, tmp_path):
    root = exported[0]
    export_dir = tmp_path / 'exports' / 'digits'
    result = run('pga_tf.export', f'--run_dir={root / "run"}', f'--export_dir={export_dir}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert (export_dir / '1' / 'saved_model.pb').exists() and (export_dir / 'models.config').exists()

    result = run('pga_tf.sample', f'--export_dir={export_dir}', '--num=16', '--sample_seed=3',
                 f'--out={tmp_path / "grid.png"}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / 'grid.png').size == (4 * 28, 4 * 28)
    result = run('pga_tf.sample', f'--export_dir={export_dir / "1"}', '--mode=interpolate',
                 '--num=3', '--interp_steps=7', f'--out={tmp_path / "line.png"}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / 'line.png').size == (7 * 28, 3 * 28)


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    export_dir = tmp_path / 'exports' / 'x'
    result = run('pga_tf.export', f'--run_dir={tmp_path}', f'--export_dir={export_dir}')
    assert result.returncode == 2 and 'not a run folder' in result.stderr.splitlines()[-1]
    assert not (tmp_path / 'exports').exists()
    result = run('pga_tf.sample', f'--export_dir={export_dir}')
    assert result.returncode == 2 and 'no SavedModel' in result.stderr.splitlines()[-1]
    result = run('pga_tf.sample', '--export_dir=x', '--num=0')
    assert result.returncode == 2
