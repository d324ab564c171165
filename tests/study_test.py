"""`python -m pga_tf.study --quick`: each method trains, is evaluated and lands in the table."""
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
    # Two methods: a PGA method and a baseline go through the same code as the other three.
    methods = ['lpga', 'vae']
    result = subprocess.run([sys.executable, '-m', 'pga_tf.study', '--quick',
                             f'--methods={",".join(methods)}', f'--out_dir={tmp_path / "study"}',
                             f'--stats_dir={stats_dir}'],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(tmp_path / 'study' / 'results.json'))
    assert sorted(results['table']) == methods
    for method in methods:
        row = results['table'][method]
        assert row['seeds'] == 1 and row['mean'] > 0 and row['std_within_seed'] >= 0
        assert Image.open(tmp_path / 'study' / f'{method}_samples.png').size == (224, 224)
    table = open(tmp_path / 'study' / 'results.md').read()
    assert all(f'| {m} |' in table for m in methods) and 'Not comparable to Inception' in table


def test_a_diverged_seed_is_reported_not_hidden():
    from pga_tf import study

    run = lambda mean, rec: {'fid': {'mean': mean, 'std': 0.5, 'values': [mean]}, 'rec_fid': rec,
                             'skipped_steps': 1}
    table = study.summarise({'vae': [run(90.0, 5.0), run(92.0, 6.0)],
                             'lpga': [run(40.0, 3.0), {'diverged': 'step 211: non-finite nll_dec'}],
                             'lvpga': [{'diverged': 'step 300'}]})
    assert table['vae']['mean'] == 91.0 and table['vae']['std_over_seeds'] == 1.0
    assert (table['lpga']['seeds'], table['lpga']['diverged'], table['lpga']['mean']) == (1, 1, 40.0)
    assert table['lvpga'] == {'seeds': 0, 'diverged': 1}
    text = study.markdown(table, {'samples': 10, 'repeats': 1, 'seeds': 2, 'steps': 5, 'width': 1,
                                  'machine': 'm', 'date': 'd', 'minutes': 1, 'command': 'c'})
    rows = [l for l in text.splitlines() if l.startswith('| ') and 'method' not in l]
    assert [r.split('|')[1].strip() for r in rows] == ['lpga', 'vae', 'lvpga']
    assert '| 1 of 2 |' in rows[0] and 'diverged' in rows[2]
