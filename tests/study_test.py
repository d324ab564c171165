"""`python -m pga_tf.study --quick`: every method trains, is evaluated and lands in the table."""
import json
import os
import subprocess
import sys

from PIL import Image

from pga_tf.evaluation import classifier


def test_quick_study(tmp_path):
    stats_dir = tmp_path / 'stats'
    classifier.ClassifierFeatures('mnist_5k', str(stats_dir), epochs=1)  # quick features
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    result = subprocess.run([sys.executable, '-m', 'pga_tf.study', '--quick',
                             f'--out_dir={tmp_path / "study"}', f'--stats_dir={stats_dir}'],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    methods = ['ae', 'lpga', 'lvpga', 'vae', 'vpga']
    results = json.load(open(tmp_path / 'study' / 'results.json'))
    assert sorted(results['table']) == methods
    for method in methods:
        row = results['table'][method]
        assert row['seeds'] == 1 and row['mean'] > 0 and row['std_within_seed'] >= 0
        assert Image.open(tmp_path / 'study' / f'{method}_samples.png').size == (224, 224)
    table = open(tmp_path / 'study' / 'results.md').read()
    assert all(f'| {m} |' in table for m in methods) and 'Not comparable to Inception' in table
