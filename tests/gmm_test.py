"""The ex-post Gaussian mixture: EM against a known mixture, densities against SciPy, draws
against the mixture's moments, files checked."""
import numpy as np
import pytest
from scipy import stats

from pga_tf.evaluation import gmm

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
COVARIANCES = np.array([[[1.0, 0.5], [0.5, 1.0]], [[2.0, 0.0], [0.0, 0.5]], [[0.3, 0.1], [0.1, 0.3]]])
TRUE = gmm.GaussianMixture(WEIGHTS, MEANS, COVARIANCES)


def _codes(n=6000, seed=0):
    rng = np.random.RandomState(seed)
    component = rng.choice(3, n, p=WEIGHTS)
    return np.array([rng.multivariate_normal(MEANS[k], COVARIANCES[k]) for k in component])


def test_log_density_is_the_weighted_sum_of_gaussians():
    x = _codes(50, seed=1)
    expected = np.log(sum(w * stats.multivariate_normal(m, c).pdf(x)
                          for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES))).mean()
    np.testing.assert_allclose(TRUE.mean_log_likelihood(x), expected, rtol=1e-10)


def test_em_recovers_a_known_mixture():
    x = _codes()
    fitted = gmm.fit(x, components=3, seed=0)
    order = np.argsort(fitted.means[:, 0])  # the true components sorted by their first coordinate
    truth = np.argsort(MEANS[:, 0])
    np.testing.assert_allclose(fitted.weights[order], WEIGHTS[truth], atol=0.02)
    np.testing.assert_allclose(fitted.means[order], MEANS[truth], atol=0.1)
    np.testing.assert_allclose(fitted.covariances[order], COVARIANCES[truth], atol=0.15)
    # EM maximises the likelihood: at least that of the true parameters on these codes.
    assert fitted.log_likelihood >= TRUE.mean_log_likelihood(x) - 1e-6
    assert fitted.num_codes == len(x)
    same = gmm.fit(x, components=3, seed=0)
    np.testing.assert_array_equal(same.means, fitted.means)  # a function of the seed


def test_draws_follow_the_mixture_and_the_seed():
    z = gmm.draw(*gmm.constants(TRUE), 40_000, 3).numpy().astype(np.float64)
    mean = WEIGHTS @ MEANS
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(z.T, bias=True), second - np.outer(mean, mean), atol=0.15)
    np.testing.assert_allclose(gmm.code_std(TRUE) ** 2, np.diag(second - np.outer(mean, mean)))
    np.testing.assert_array_equal(gmm.draw(*gmm.constants(TRUE), 5, 3), gmm.draw(*gmm.constants(TRUE), 5, 3))
    assert not np.array_equal(gmm.draw(*gmm.constants(TRUE), 5, 3), gmm.draw(*gmm.constants(TRUE), 5, 4))


def test_files_round_trip_and_damaged_ones_are_refused(tmp_path):
    path = str(tmp_path / 'gmm.npz')
    TRUE.save(path)
    loaded = gmm.load(path, dim=2)
    np.testing.assert_array_equal(loaded.covariances, COVARIANCES)
    with pytest.raises(gmm.GMMError, match='dimension 2, not 8'):
        gmm.load(path, dim=8)
    damaged = {
        'truncated': None,
        'NaN': dict(means=np.full_like(MEANS, np.nan)),
        'weights': dict(weights=np.array([0.5, 0.5, 0.5])),
        'not positive definite': dict(covariances=-COVARIANCES),
    }
    for name, change in damaged.items():
        bad = str(tmp_path / f'{name}.npz')
        if change is None:
            open(bad, 'wb').write(open(path, 'rb').read()[:200])
        else:
            gmm.GaussianMixture(**{'weights': WEIGHTS, 'means': MEANS, 'covariances': COVARIANCES,
                                   **change}).save(bad)
        with pytest.raises(gmm.GMMError):
            gmm.load(bad)


def test_too_few_codes_are_refused():
    with pytest.raises(gmm.GMMError, match='at least 10'):
        gmm.fit(np.zeros((5, 2)))
