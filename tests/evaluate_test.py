"""`python -m pga_tf.evaluate` on a short run, and evaluation inside the training loop."""
import json
import os
import subprocess
import sys

import pytest

from pga_tf import train_lib
from pga_tf.evaluation import classifier, features
from features_test import save_stand_in
from train_lib_test import _events, small_config


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """A short mnist_5k run, and a stats dir holding a (quickly trained) classifier."""
    root = tmp_path_factory.mktemp('evaluate')
    stats_dir = str(root / 'stats')
    classifier.ClassifierFeatures('mnist_5k', stats_dir, epochs=1)
    run_dir = str(root / 'run')
    train_lib.train(small_config('mnist_5k', 'vpga', train_steps=6, width=0.25, z_dim=8), run_dir)
    return run_dir, stats_dir, root


def evaluate(*args):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    return subprocess.run([sys.executable, '-m', 'pga_tf.evaluate', *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_offline_distance_mean_and_std_over_repeats(prepared):
    run_dir, stats_dir, _ = prepared
    result = evaluate(f'--run_dir={run_dir}', f'--stats_dir={stats_dir}', '--num_samples=300',
                      '--repeats=2', '--real_samples=1000')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'FID' in result.stdout and '±' in result.stdout
    report = json.load(open(os.path.join(run_dir, 'eval_classifier_v1_6_300x2.json')))
    assert len(report['fid']['values']) == 2 and report['fid']['values'][0] != report['fid']['values'][1]
    assert report['fid']['std'] > 0 and report['rec_fid'] > 0
    assert report['num_real'] == 1000 and report['num_reconstructions'] == 300
    assert report['step'] == 6 and report['classifier_accuracy'] > 0.7
    # The real statistics were cached for the next evaluation.
    assert any(name.endswith('_1000.npz') for name in os.listdir(stats_dir))


def test_inception_end_to_end_with_a_stand_in(prepared):
    run_dir, stats_dir, root = prepared
    model_dir = save_stand_in(root / 'inception')
    result = evaluate(f'--run_dir={run_dir}', f'--stats_dir={stats_dir}', '--features=inception',
                      f'--inception_path={model_dir}', '--num_samples=200', '--repeats=1',
                      '--real_samples=400')
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(os.path.join(run_dir, 'eval_inception_6_200x1.json')))
    assert report['features'] == 'inception' and report['fid']['mean'] > 0


def test_errors_exit_2_with_one_line(prepared, tmp_path):
    run_dir, stats_dir, _ = prepared
    result = evaluate(f'--run_dir={tmp_path}')
    assert result.returncode == 2 and 'not a run folder' in result.stderr.splitlines()[-1]
    result = evaluate(f'--run_dir={run_dir}', '--features=inception', f'--stats_dir={stats_dir}')
    if features._reachable(features.INCEPTION_TFHUB):
        pytest.skip('TF Hub answers here')
    assert result.returncode == 2 and '--inception_path' in result.stderr.splitlines()[-1]


def test_in_loop_evaluation_is_logged(prepared, tmp_path):
    _, stats_dir, _ = prepared
    config = small_config('mnist_5k', 'ae', train_steps=4, eval_every=2, eval_samples=100,
                          stats_dir=stats_dir)
    train_lib.train(config, str(tmp_path / 'run'))
    tags, _ = _events(str(tmp_path / 'run'))
    assert tags['eval/fid_classifier_v1'] == [2, 4]
