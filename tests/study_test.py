"""`python -m pga_tf.study --quick`: each method trains, is evaluated and lands in the table."""
import json
import os
import subprocess
import sys

from PIL import Image



def test_quick_study(tmp_path):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    # One method: every method goes through the same code (the table's rows and order are
    # tested on their own below).
    methods = ['lpga']
    result = subprocess.run([sys.executable, '-m', 'pga_tf.study', '--quick',
                             f'--methods={",".join(methods)}', f'--out_dir={tmp_path / "study"}',
                             f'--stats_dir={tmp_path / "stats"}'],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(tmp_path / 'study' / 'results.json'))
    assert sorted(results['table']) == [f'{m}/{s}' for m in methods for s in ('gmm', 'prior')]
    for method in methods:
        for sampler in ('prior', 'gmm'):
            row = results['table'][f'{method}/{sampler}']
            assert row['seeds'] == 1 and row['fid']['mean'] > 0 and row['std_within_seed'] >= 0
            assert 0 <= row['coverage']['mean'] <= 1 and row['data_fd']['mean'] >= 0
        assert Image.open(tmp_path / 'study' / f'{method}_samples.png').size == (224, 224)
        assert os.path.exists(tmp_path / 'study' / 'runs' / f'{method}_seed0' / 'gmm_4.npz')
    table = open(tmp_path / 'study' / 'results.md').read()
    assert all(f'| {m} | {s} |' in table for m in methods for s in ('prior', 'gmm'))
    assert 'Not comparable to Inception' in table


def _run(fid, rec):
    metrics = {'kid': 1.0, 'precision': 0.5, 'recall': 0.5, 'density': 1.0, 'coverage': 0.5}
    latent = {'data_fd': 0.1, 'generated_fd': 0.2, 'zn_rec': 0.01}
    return {'fid': {'mean': fid, 'std': 0.5, 'values': [fid]}, 'rec_fid': rec,
            'samples': metrics, 'latent': latent}


def test_a_diverged_seed_is_reported_not_hidden():
    from pga_tf import study

    run = lambda prior, gmm: {'prior': _run(prior, 5.0), 'gmm': _run(gmm, 5.0), 'skipped_steps': 1}
    table = study.summarise({'vae': [run(90.0, 60.0), run(92.0, 62.0)],
                             'lpga': [run(40.0, 45.0), {'diverged': 'step 211: non-finite nll_dec'}],
                             'lvpga': [{'diverged': 'step 300'}]})
    assert table['vae/prior']['fid'] == {'mean': 91.0, 'std': 1.0}
    assert table['vae/gmm']['fid'] == {'mean': 61.0, 'std': 1.0}
    assert (table['lpga/prior']['seeds'], table['lpga/prior']['diverged']) == (1, 1)
    assert table['lpga/prior']['fid']['mean'] == 40.0
    assert table['lvpga/gmm'] == {'seeds': 0, 'diverged': 1}
    text = study.markdown(table, {'samples': 10, 'repeats': 1, 'seeds': 2, 'steps': 5, 'width': 1,
                                  'machine': 'm', 'date': 'd', 'minutes': 1, 'command': 'c'})
    rows = [l for l in text.splitlines() if l.startswith('| ') and 'method' not in l]
    assert [tuple(c.strip() for c in r.split('|')[1:3]) for r in rows] == [
        ('lpga', 'prior'), ('lpga', 'gmm'), ('vae', 'gmm'), ('vae', 'prior'),
        ('lvpga', 'prior'), ('lvpga', 'gmm')]
    assert '| 1 of 2 |' in rows[0] and 'diverged' in rows[-1]


def test_a_variant_is_its_methods_preset_with_its_flags():
    from pga_tf import study
    from pga_tf.training import cli_flags

    tuned = study.study_config('vae', 1, 100, 0.5)
    untuned = study.study_config('vae_untuned', 1, 100, 0.5)
    preset = cli_flags.read_preset('mnist_5k', 'vae')
    assert (untuned.model, untuned.optimizer, untuned.lr, untuned.vkld) == ('vae', 'sgd', 0.1, 0.02)
    assert (tuned.optimizer, tuned.lr, tuned.vkld) == (preset.optimizer, preset.lr, preset.vkld)
    for config in (tuned, untuned):  # the study's budget, seed and width on both
        assert (config.seed, config.train_steps, config.width) == (1, 100, 0.5)
