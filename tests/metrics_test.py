"""KID, precision/recall and density/coverage against direct NumPy computations."""
import numpy as np
import pytest
import scipy.spatial

from pga_tf.evaluation import metrics


def features(seed, n=300, d=8, shift=0.0):
    return np.random.RandomState(seed).normal(size=(n, d)) + shift


def np_prdc(real, fake, k_pr, k_dc):
    """The four k-NN metrics from the full distance matrices (the papers' definitions)."""
    d_rr = scipy.spatial.distance.cdist(real, real)
    d_ff = scipy.spatial.distance.cdist(fake, fake)
    d_rf = scipy.spatial.distance.cdist(real, fake)
    radius = lambda d, k: np.sort(d, 1)[:, k]  # column 0 is the point itself
    precision = np.mean((d_rf < radius(d_rr, k_pr)[:, None]).any(0))
    recall = np.mean((d_rf < radius(d_ff, k_pr)[None, :]).any(1))
    inside = d_rf < radius(d_rr, k_dc)[:, None]
    return precision, recall, inside.sum() / (k_dc * len(fake)), np.mean(inside.any(1))


def np_kid_blocks(real, fake, blocks):
    """TF-GAN's block estimator: unbiased MMD² per block, mean, std error (Bessel)."""
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    ests = []
    for r, g in zip(np.array_split(real, blocks), np.array_split(fake, blocks)):
        k_rr, k_gg = kernel(r, r), kernel(g, g)
        m, n = len(r), len(g)
        ests.append((k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
                    + (k_gg.sum() - np.trace(k_gg)) / (n * (n - 1)) - 2 * kernel(r, g).mean())
    return np.mean(ests), np.sqrt(np.var(ests, ddof=1) / blocks)


def test_prdc_match_the_definitions(monkeypatch):
    monkeypatch.setattr(metrics, '_BLOCK', 64)  # several row blocks
    real, fake = features(0), features(1, n=250, shift=0.4)
    got = (*metrics.precision_recall(real, fake), *metrics.density_coverage(real, fake))
    np.testing.assert_allclose(got, np_prdc(real, fake, metrics.PR_K, metrics.DC_K), atol=1e-12)
    assert 0.2 < got[0] < 1 and 0.2 < got[1] < 1


def test_identical_and_disjoint_sets():
    real = features(2)
    p, r = metrics.precision_recall(real, real)
    d, c = metrics.density_coverage(real, real)
    assert p == r == c == 1.0 and d == pytest.approx(1.0, abs=0.2)
    far = features(3, shift=100.0)
    assert metrics.precision_recall(real, far) == (0.0, 0.0)
    assert metrics.density_coverage(real, far) == (0.0, 0.0)


def test_kid_matches_the_block_estimator():
    real, fake = features(4, n=400), features(5, n=400, shift=0.3)
    value, std = metrics.kid(real, fake, max_block_size=100)
    np.testing.assert_allclose((value, std), np_kid_blocks(real, fake, 4), rtol=1e-9)
    # Few samples still give two blocks, so a standard error.
    value, std = metrics.kid(real[:50], fake[:50])
    np.testing.assert_allclose((value, std), np_kid_blocks(real[:50], fake[:50], 2), rtol=1e-9)
    assert abs(metrics.kid(real, features(6, n=400))[0]) < 0.05 < value
