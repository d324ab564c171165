"""`python -m pga_tf.evaluate` on a short run, and evaluation inside the training loop."""
import json
import os
import subprocess
import sys

import pytest

from pga_tf.training import run_folder, train_lib
from pga_tf.evaluation import classifier, evaluator, features
from features_test import save_stand_in
from train_lib_test import _events, small_config


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """A short mnist_5k run, and a stats dir."""
    root = tmp_path_factory.mktemp('evaluate')
    stats_dir = str(root / 'stats')
    run_dir = str(root / 'run')
    train_lib.train(small_config('mnist_5k', 'vpga', train_steps=6, width=0.25, z_dim=8), run_dir)
    return run_dir, stats_dir, root


def evaluate(*args):
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    return subprocess.run([sys.executable, '-m', 'pga_tf.evaluate', *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_offline_distance_mean_and_std_over_repeats(prepared):
    run_dir, stats_dir, _ = prepared
    result = evaluate(f'--run_dir={run_dir}', f'--stats_dir={stats_dir}', '--num_samples=300',
                      '--repeats=2', '--real_samples=1000')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'FID' in result.stdout and '±' in result.stdout
    report = json.load(open(os.path.join(run_dir, 'eval_classifier_v2_6_300x2.json')))
    assert len(report['fid']['values']) == 2 and report['fid']['values'][0] != report['fid']['values'][1]
    assert report['fid']['std'] > 0 and report['rec_fid'] > 0
    assert report['num_real'] == 1000 and report['num_reconstructions'] == 300
    assert report['step'] == 6 and report['classifier_accuracy'] > 0.95
    assert report['features_id'].startswith('classifier_v2-')  # the shipped file's digest
    # KID, precision/recall, density/coverage of samples and of reconstructions (their values
    # are checked against NumPy in metrics_test).
    for name in ('samples', 'reconstructions'):
        m = report[name]
        assert 0 <= m['precision'] <= 1 and 0 <= m['recall'] <= 1 and 0 <= m['coverage'] <= 1
        assert m['density'] >= 0 and m['kid_std'] > 0
    assert 'precision' in result.stdout and 'coverage' in result.stdout
    # Latent diagnostics (checked against NumPy in latent_test): the prior's median norm is
    # about sqrt(z_dim) = sqrt(8).
    assert report['latent']['data_fd'] > 0 and 2.4 < report['latent']['prior_norm_p50'] < 3.2
    assert 'latent: Fréchet distance to N(0, I)' in result.stdout
    # The results are the run's metrics in TensorBoard (HParams lists scalars of the run).
    tags, _ = _events(run_dir)
    for tag in ('evaluate/fid_classifier_v2', 'evaluate/rec_fid_classifier_v2',
                'evaluate/kid_classifier_v2', 'evaluate/rec_precision_classifier_v2',
                'evaluate/latent_data_fd'):
        assert tags[tag] == [6], tag
    # The real statistics were cached for the next evaluation.
    assert any(name.endswith('_1000.npz') for name in os.listdir(stats_dir))


def test_inception_features_through_evaluation_with_a_stand_in(prepared):
    run_dir, stats_dir, root = prepared
    run = run_folder.RunFolder(run_dir).load()
    inception = features.InceptionFeatures(save_stand_in(root / 'inception'))
    result = evaluator.evaluate_models(run.encoder, run.decoder, run.config, inception, stats_dir,
                                       num_samples=200, repeats=1, real_images=400)
    assert result['fid']['mean'] > 0 and result['num_real'] == 400
    assert any('_inception_400.npz' in name for name in os.listdir(stats_dir))


def test_errors_exit_2_with_one_line(tmp_path):
    result = evaluate(f'--run_dir={tmp_path}')
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f'pga_tf.evaluate: error: {tmp_path} is not a run folder (no flags.cfg)']


def test_in_loop_evaluation_is_logged(prepared, tmp_path):
    _, stats_dir, _ = prepared
    config = small_config('mnist_5k', 'ae', train_steps=4, eval_every=2, eval_samples=100,
                          stats_dir=stats_dir)
    train_lib.train(config, str(tmp_path / 'run'))
    tags, _ = _events(str(tmp_path / 'run'))
    for metric in ('fid', 'kid', 'kid_std', 'precision', 'recall', 'density', 'coverage'):
        assert tags[f'eval/{metric}_classifier_v2'] == [2, 4], metric
    for name in ('data_fd', 'generated_fd', 'zn_rec', 'data_norm_p50', 'prior_norm_p99'):
        assert tags[f'latent/{name}'] == [2, 4], name


class _PooledFeatures:
    """A stand-in feature map: 7x7 average pooling of digits."""
    key = stats_key = 'pooled'
    dim = 49

    def __call__(self, images):
        import tensorflow as tf
        return tf.reshape(tf.nn.avg_pool2d(images, 4, 4, 'VALID'), [-1, 49]).numpy()


def test_real_statistics_cover_the_whole_training_split_by_default(tmp_path):
    import numpy as np
    from pga_tf.training import data

    config = small_config('mnist_5k', 'vpga')
    mean, _, count = evaluator.real_stats(_PooledFeatures(), config, str(tmp_path))
    train = data.mnist_5k_arrays('train').astype(np.float64) / 127.5 - 1
    assert count == len(train) == 4500
    np.testing.assert_allclose(mean, train.reshape(-1, 7, 4, 7, 4).mean((0, 2, 4)).ravel(), atol=1e-5)
    assert os.listdir(tmp_path) == ['mnist_5k_train_28_pooled_4500.npz']
    assert evaluator.real_stats(_PooledFeatures(), config, str(tmp_path), 1000)[2] == 1000


def test_mixture_is_fitted_once_per_checkpoint_and_again_when_damaged(prepared, tmp_path, caplog):
    import shutil

    import numpy as np
    from pga_tf.core import losses
    from pga_tf.training import data

    shutil.copytree(prepared[0], tmp_path / 'run')
    folder = run_folder.RunFolder(tmp_path / 'run')
    run = folder.load()
    first = evaluator.fitted_mixture(folder, run, batch_size=1000)
    path = folder.gmm_path(6)
    assert first.num_codes == 4500 and len(first.weights) == 10
    # EM's last M-step: the mixture's mean is the mean of the codes it was fitted to.
    codes = losses.encode(run.encoder, data.to_float(data.mnist_5k_arrays('train')), False)[0]
    np.testing.assert_allclose(first.weights @ first.means, codes.numpy().mean(0), atol=1e-4)
    written = os.path.getmtime(path)
    again = evaluator.fitted_mixture(folder, run)
    assert os.path.getmtime(path) == written
    np.testing.assert_array_equal(again.covariances, first.covariances)
    with open(path, 'r+b') as f:
        f.truncate(100)
    refitted = evaluator.fitted_mixture(folder, run, batch_size=1000)
    assert 'fitting the mixture again' in caplog.text
    np.testing.assert_allclose(refitted.means, first.means, rtol=1e-6)
    result = evaluator.evaluate_models(run.encoder, run.decoder, run.config, _PooledFeatures(),
                                       str(tmp_path / 'stats'), num_samples=100, repeats=1,
                                       mixture=first)
    assert np.isfinite(result['fid']['mean'])
    assert folder.eval_path('k', 6, 100, 1, 'gmm').endswith('eval_k_gmm_6_100x1.json')
