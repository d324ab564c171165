"""A smoke test of `python -m pga_tf.bench` (a benchmark: nothing here is timed)."""
import json
import os
import subprocess
import sys


def test_bench_prints_the_documented_json():
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    result = subprocess.run([sys.executable, '-m', 'pga_tf.bench', '--arch=conv_mnist', '--model=lpga',
                             '--batch_size=4', '--width=0.25', '--steps=2', '--warmup=1', '--json'],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ('arch', 'model', 'batch_size', 'width', 'xla', 'precision', 'images_per_sec',
                'sec_per_step_median', 'sec_per_step_p90', 'device', 'tf_version'):
        assert key in record
    assert (record['arch'], record['model'], record['batch_size'], record['width']) == ('conv_mnist', 'lpga', 4, 0.25)
    assert record['sec_per_step_p90'] >= record['sec_per_step_median'] > 0
    assert abs(record['images_per_sec'] * record['sec_per_step_median'] - 4) < 1e-6
