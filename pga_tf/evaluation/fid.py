"""Fréchet distance between Gaussian fits of feature activations, streamed in batches.

Statistics are (mu [d], sigma [d, d], n) with the unbiased covariance, accumulated in float64
over any number of batches (memory O(d²), whatever the sample count), and cached as .npz
files read with allow_pickle=False.
"""
import os
import zipfile

import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf.evaluation import tfgan


class StatsError(ValueError):
    """A statistics file that does not fit the features it is used with."""


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½), in float64.

    The trace of the matrix square root is tensorflow-gan's `trace_sqrt_product`, the same
    computation as its `frechet_classifier_distance_from_activations`, here applied to
    statistics so that activations need not be kept.
    """
    metrics, _ = tfgan.classifier_metrics()
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = tf.constant(sigma1, tf.float64), tf.constant(sigma2, tf.float64)
    sqrt_trace = float(metrics.trace_sqrt_product(s1, s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * sqrt_trace)


class RunningStats:
    """Mean and unbiased covariance of activations given batch by batch."""

    def __init__(self):
        self.n, self._sum, self._outer = 0, None, None

    def update(self, activations):
        a = np.asarray(activations, np.float64).reshape(len(activations), -1)
        if self._sum is None:
            self._sum, self._outer = np.zeros(a.shape[1]), np.zeros((a.shape[1],) * 2)
        self.n += len(a)
        self._sum += a.sum(0)
        self._outer += a.T @ a

    def result(self):
        """(mu, sigma) of everything seen; needs at least two activations."""
        if self.n < 2:
            raise StatsError('statistics need at least two samples')
        mu = self._sum / self.n
        sigma = (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, sigma


def activation_statistics(features, image_batches):
    """(mu, sigma, n) of `features` over an iterable of image batches in [-1, 1]."""
    stats = RunningStats()
    for images in image_batches:
        stats.update(features(images))
    mu, sigma = stats.result()
    return mu, sigma, stats.n


def save_stats(path, mu, sigma, n):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp-{os.getpid()}.npz'
    np.savez(tmp, mu=mu, sigma=sigma, n=np.int64(n))
    os.replace(tmp, path)


def load_stats(path, dim=None):
    """(mu, sigma, n) from an .npz file; never unpickles.

    Raises:
      StatsError: the file cannot be read (truncated, not an .npz), or its statistics do not
        fit (shapes, `dim`, fewer than two samples, values that are not finite).
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            mu, sigma, n = f['mu'], f['sigma'], int(f['n'])
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise StatsError(f'{path}: not a statistics file ({err})') from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or (dim is not None and len(mu) != dim):
        raise StatsError(f'{path}: shapes mu {mu.shape}, sigma {sigma.shape} do not fit '
                         f'{f"{dim} features" if dim is not None else "each other"}')
    if n < 2 or not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise StatsError(f'{path}: statistics of {n} samples, {"with" if n >= 2 else "or"} '
                         'values that are not finite')
    return mu, sigma, n


def cached_stats(path, compute, dim=None):
    """Statistics from `path`, or `compute()` (-> (mu, sigma, n)) saved there first.

    A cache file that does not load whole and fitting `dim` is computed anew and replaced.
    """
    if os.path.exists(path):
        try:
            return load_stats(path, dim)
        except StatsError as err:
            logging.warning('%s; computing the statistics again', err)
    mu, sigma, n = compute()
    save_stats(path, mu, sigma, n)
    return mu, sigma, n
