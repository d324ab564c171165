"""Fréchet distance against NumPy/SciPy and tensorflow-gan; streaming statistics; the cache."""
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from pga_tf.evaluation import fid, tfgan


def expected_fid(a, b):
    """The FID formula in NumPy/SciPy (Heusel et al.), unbiased covariances."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)


def activations(seed, n=500, d=16, shift=0.0):
    rng = np.random.RandomState(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix + shift).astype(np.float32)


def stats(a):
    return a.mean(0), np.cov(a.astype(np.float64), rowvar=False)


def test_matches_scipy_and_tensorflow_gan():
    a, b = activations(0), activations(1, shift=0.3)
    got = fid.frechet_distance(*stats(a), *stats(b))
    np.testing.assert_allclose(got, expected_fid(a.astype(np.float64), b.astype(np.float64)), rtol=1e-6)
    metrics, _ = tfgan.classifier_metrics()
    tfgan_value = metrics.frechet_classifier_distance_from_activations(
        tf.constant(a, tf.float64), tf.constant(b, tf.float64))
    np.testing.assert_allclose(got, float(tfgan_value), rtol=1e-6)


def test_identical_sets_near_zero_and_shift_grows_the_distance():
    a = activations(0)
    assert abs(fid.frechet_distance(*stats(a), *stats(a))) < 1e-6
    d = [fid.frechet_distance(*stats(a), *stats(activations(0, shift=s))) for s in (0.1, 0.5, 1.0)]
    np.testing.assert_allclose(d, [16 * s ** 2 for s in (0.1, 0.5, 1.0)], rtol=1e-5)


def test_streaming_statistics_equal_the_whole_set():
    a = activations(2, n=1000)
    mu, sigma, n = fid.activation_statistics(lambda x: x, (a[i:i + 96] for i in range(0, 1000, 96)))
    assert n == 1000
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(a.astype(np.float64), rowvar=False), rtol=1e-5, atol=1e-6)


def test_stats_files_round_trip_and_are_checked(tmp_path):
    a = activations(3)
    path = str(tmp_path / 'real.npz')
    calls = []
    compute = lambda: calls.append(1) or (*stats(a), len(a))
    first = fid.cached_stats(path, compute, dim=16)
    second = fid.cached_stats(path, compute, dim=16)
    assert calls == [1]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(fid.StatsError, match='do not fit 8'):
        fid.load_stats(path, dim=8)
    bad = str(tmp_path / 'bad.npz')
    np.savez(bad, mu=np.zeros(4), sigma=np.zeros((3, 3)), n=5)
    with pytest.raises(fid.StatsError, match='do not fit'):
        fid.load_stats(bad)
    pickled = str(tmp_path / 'pickled.npz')
    np.savez(pickled, mu=np.array([{'x': 1}], dtype=object), sigma=np.zeros((1, 1)), n=1)
    with pytest.raises(fid.StatsError, match='not a statistics file'):
        fid.load_stats(pickled)


@pytest.mark.parametrize('damage', ['truncated', 'nan', 'wrong_dim', 'text'])
def test_a_damaged_cache_is_computed_again(tmp_path, damage):
    a = activations(4)
    path = str(tmp_path / 'real.npz')
    if damage == 'truncated':
        fid.save_stats(path, *stats(a), len(a))
        with open(path, 'rb') as f:
            head = f.read(200)
        with open(path, 'wb') as f:
            f.write(head)
    elif damage == 'text':
        with open(path, 'w') as f:
            f.write('not numpy')
    else:
        mu, sigma = stats(activations(5, d=8)) if damage == 'wrong_dim' else stats(a)
        fid.save_stats(path, np.full_like(mu, np.nan) if damage == 'nan' else mu, sigma, len(a))
    with pytest.raises(fid.StatsError):
        fid.load_stats(path, dim=16)
    mu, sigma, n = fid.cached_stats(path, lambda: (*stats(a), len(a)), dim=16)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fid.load_stats(path, dim=16)[0], mu)  # replaced on disk


def test_needs_two_samples():
    with pytest.raises(fid.StatsError):
        fid.activation_statistics(lambda x: x, [np.zeros((1, 3))])
