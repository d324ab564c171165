"""An ex-post sampler: a Gaussian mixture fitted to the codes of training images.

Any autoencoder can generate by sampling its latent space from a density fitted after training
(Ghosh et al., "From variational to deterministic autoencoders", ICLR 2020). PGA trains its
codes to follow N(0, I) instead; the mixture is the baseline that tells whether that matching
beats fitting the codes afterwards. `fit` is EM with full covariances in float64; `draw` is
stateless TensorFlow, so the export's `sample_gmm` signature and evaluation draw alike.
"""
import dataclasses
import math
import os
import zipfile

import numpy as np
import tensorflow as tf
from scipy import linalg, special

COMPONENTS = 10
# Where latent samples come from: N(0, I), or this mixture.
SAMPLERS = ('prior', 'gmm')
# Added to each covariance's diagonal, as scikit-learn's reg_covar: keeps them invertible.
REG_COVAR = 1e-6


class GMMError(ValueError):
    """A mixture that cannot be fitted or a file that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """weights [K], means [K, d] and covariances [K, d, d] (float64), and what it was fitted on."""
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    num_codes: int = 0
    log_likelihood: float = float('nan')  # mean log p of the codes it was fitted on

    def cholesky(self):
        """Lower Cholesky factors [K, d, d] of the covariances."""
        return np.linalg.cholesky(self.covariances)

    def mean_log_likelihood(self, x):
        """Mean log density of the rows of x [N, d]."""
        return float(special.logsumexp(_weighted_log_prob(x, self), axis=1).mean())

    def save(self, path):
        """Writes the mixture as an .npz (whole or not at all)."""
        tmp = f'{path}.tmp-{os.getpid()}.npz'
        np.savez(tmp, weights=self.weights, means=self.means, covariances=self.covariances,
                 num_codes=self.num_codes, log_likelihood=self.log_likelihood)
        os.replace(tmp, path)


def load(path, dim=None):
    """The mixture saved at `path`, checked (shapes, finite values, a distribution of weights,
    positive definite covariances).

    Raises:
      GMMError: the file is missing, damaged or not such a mixture.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            mixture = GaussianMixture(f['weights'].astype(np.float64), f['means'].astype(np.float64),
                                      f['covariances'].astype(np.float64), int(f['num_codes']),
                                      float(f['log_likelihood']))
        k, d = mixture.means.shape
        if mixture.weights.shape != (k,) or mixture.covariances.shape != (k, d, d):
            raise ValueError(f'shapes {mixture.weights.shape}, {mixture.means.shape}, '
                             f'{mixture.covariances.shape} do not fit together')
        if dim is not None and d != dim:
            raise ValueError(f'codes of dimension {d}, not {dim}')
        if not all(np.isfinite(a).all() for a in (mixture.weights, mixture.means, mixture.covariances)):
            raise ValueError('non-finite values')
        if (mixture.weights < 0).any() or not math.isclose(mixture.weights.sum(), 1, abs_tol=1e-6):
            raise ValueError('the weights are not a distribution')
        mixture.cholesky()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, np.linalg.LinAlgError) as err:
        raise GMMError(f'{path}: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}') from None
    return mixture


def _weighted_log_prob(x, mixture):
    """log w_k + log N(x_n; mu_k, Sigma_k), [N, K]."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    out = np.empty((len(x), len(mixture.weights)))
    for k, chol in enumerate(mixture.cholesky()):
        solved = linalg.solve_triangular(chol, (x - mixture.means[k]).T, lower=True)
        log_det = 2 * np.log(np.diag(chol)).sum()
        out[:, k] = (math.log(mixture.weights[k])
                     - 0.5 * (d * math.log(2 * math.pi) + log_det + (solved ** 2).sum(0)))
    return out


def _kmeans_pp(x, k, rng):
    """k-means++ seeding: k rows of x, each drawn with probability ~ squared distance.

    Raises:
      GMMError: fewer than k distinct codes.
    """
    centres = [x[rng.randint(len(x))]]
    for _ in range(1, k):
        dist = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        if not dist.sum() > 0:
            raise GMMError(f'the codes hold fewer than {k} distinct points: a {k}-component '
                           'mixture cannot be fitted (has the encoder collapsed?)')
        centres.append(x[rng.choice(len(x), p=dist / dist.sum())])
    return np.array(centres)


def fit(codes, components=COMPONENTS, seed=0, max_iter=100, tol=1e-3):
    """EM for a full-covariance Gaussian mixture of `codes` [N, d] (float64), started from a
    hard assignment to k-means++ seeds drawn with `seed`; stops when the mean log-likelihood
    gains less than `tol`, or after `max_iter` iterations (scikit-learn's values of both).

    Raises:
      GMMError: fewer codes than components (or distinct codes), or non-finite codes.
    """
    x = np.asarray(codes, np.float64)
    if len(x) < components:
        raise GMMError(f'a {components}-component mixture needs at least {components} codes; '
                       f'got {len(x)}')
    if not np.isfinite(x).all():
        raise GMMError(f'{int((~np.isfinite(x).all(1)).sum())} of {len(x)} codes are not finite')
    n = len(x)
    centres = _kmeans_pp(x, components, np.random.RandomState(seed))
    resp = np.eye(components)[np.argmin(((x[:, None] - centres[None]) ** 2).sum(2), axis=1)]
    previous = -np.inf
    for _ in range(max_iter):
        mixture = _m_step(x, resp)
        log_prob = _weighted_log_prob(x, mixture)
        per_code = special.logsumexp(log_prob, axis=1)
        resp = np.exp(log_prob - per_code[:, None])
        current = float(per_code.mean())
        if current - previous < tol:
            break
        previous = current
    mixture = _m_step(x, resp)
    return dataclasses.replace(mixture, num_codes=n, log_likelihood=mixture.mean_log_likelihood(x))


def _m_step(x, resp):
    """Weights, means and regularised covariances from responsibilities [N, K]."""
    counts = resp.sum(0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ x / counts[:, None]
    covariances = np.stack([
        (resp[:, k, None] * (x - means[k])).T @ (x - means[k]) / counts[k] + REG_COVAR * np.eye(x.shape[1])
        for k in range(len(counts))])
    return GaussianMixture(counts / counts.sum(), means, covariances)


def code_std(mixture):
    """The standard deviation of each latent dimension under the mixture [d]: how much the
    training codes use it."""
    mean = mixture.weights @ mixture.means
    second = np.einsum('k,kd->d', mixture.weights,
                       np.diagonal(mixture.covariances, axis1=1, axis2=2) + mixture.means ** 2)
    return np.sqrt(np.maximum(second - mean ** 2, 0))


def prefix(sampler):
    """'' for the prior, '<sampler>_' otherwise: how results of a sampler are named."""
    return '' if sampler == 'prior' else f'{sampler}_'


def constants(mixture):
    """(log weights [K], means [K, d], Cholesky factors [K, d, d]) as float32 tensors: what
    `draw` needs, and what the export holds as graph constants."""
    return (tf.constant(np.log(mixture.weights), tf.float32), tf.constant(mixture.means, tf.float32),
            tf.constant(mixture.cholesky(), tf.float32))


def draw(log_weights, means, cholesky, num, seed):
    """`num` codes [num, d] from the mixture, a function of the int64 `seed` alone: a component
    per code (stateless categorical, seed [seed, 1]), then mu_k + L_k eps (seed [seed, 2])."""
    seed = tf.cast(seed, tf.int64)
    component = tf.random.stateless_categorical(log_weights[None], num, seed=tf.stack([seed, 1]))[0]
    eps = tf.random.stateless_normal([num, tf.shape(means)[1]], seed=tf.stack([seed, 2]))
    return (tf.gather(means, component)
            + tf.einsum('nij,nj->ni', tf.gather(cholesky, component), eps))
