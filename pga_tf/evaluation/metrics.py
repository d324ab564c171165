"""Sample-quality metrics from feature sets, beside the Fréchet distance: KID, precision and
recall, density and coverage.

  KID                 Bińkowski et al. 2018: unbiased MMD² with the kernel (xᵀy / d + 1)³,
                      mean ± std over blocks, as tensorflow-gan's
                      `kernel_classifier_distance_and_std_from_activations` (computed by it).
  precision, recall   Kynkäänniemi et al. 2019: the share of generated features inside the
                      real manifold (balls around each real feature with the radius of its k-th
                      nearest real neighbour, k = 3), and of real features inside the generated
                      manifold.
  density, coverage   Naeem et al. 2020 (k = 5): the mean number of real balls holding a
                      generated feature, over k; the share of real balls holding at least one.

Features are arrays [N, d]; distances are Euclidean, computed in float64 in row blocks, so
memory stays O(block x N). A point is inside a ball when its distance is strictly smaller than
the radius (as the authors' `prdc` package).
"""
import numpy as np
import tensorflow as tf

from pga_tf.evaluation import tfgan

PR_K = 3
DC_K = 5
_BLOCK = 1024


def kid(real, fake, max_block_size=1024):
    """(KID, its standard error) between two feature sets, by tensorflow-gan.

    Blocks hold at most `max_block_size` rows, and there are at least two, so that the
    standard error exists (tensorflow-gan gives NaN for a single block).
    """
    max_block_size = min(max_block_size, -(-max(len(real), len(fake)) // 2))
    metrics, _ = tfgan.classifier_metrics()
    # Its map_fn(back_prop=False) logs a deprecation warning of 9 lines, twice, at every call.
    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel('ERROR')
    try:
        value, std = metrics.kernel_classifier_distance_and_std_from_activations(
            tf.constant(real, tf.float64), tf.constant(fake, tf.float64), max_block_size)
    finally:
        tf_logger.setLevel(level)
    return float(value), float(std)


def _distances(a, b):
    """Euclidean distances [len(a), len(b)] of one block of rows, in float64."""
    sq = (np.sum(a ** 2, 1)[:, None] + np.sum(b ** 2, 1)[None, :] - 2 * a @ b.T)
    return np.sqrt(np.maximum(sq, 0))


def _blocks(a, b):
    """(start, distances of a[start:start + _BLOCK] to b) for every row block of `a`."""
    for start in range(0, len(a), _BLOCK):
        yield start, _distances(a[start:start + _BLOCK], b)


def knn_radii(x, k):
    """Distance of each row of `x` to its k-th nearest other row."""
    x = np.asarray(x, np.float64)
    radii = np.empty(len(x))
    for start, d in _blocks(x, x):
        # Column 0 of the sorted row is the row itself (distance 0).
        radii[start:start + len(d)] = np.partition(d, k, axis=1)[:, k]
    return radii


def _inside(points, centres, radii):
    """[len(points), ] counts of the balls (centres, radii) holding each point."""
    points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
    counts = np.empty(len(points), np.int64)
    for start, d in _blocks(points, centres):
        counts[start:start + len(d)] = np.sum(d < radii[None, :], 1)
    return counts


def precision_recall(real, fake, k=PR_K):
    """(precision, recall) with k-NN manifolds."""
    precision = np.mean(_inside(fake, real, knn_radii(real, k)) > 0)
    recall = np.mean(_inside(real, fake, knn_radii(fake, k)) > 0)
    return float(precision), float(recall)


def density_coverage(real, fake, k=DC_K):
    """(density, coverage) around the real features' k-NN balls."""
    radii = knn_radii(real, k)
    density = np.sum(_inside(fake, real, radii)) / (k * len(fake))
    # Coverage counts real balls, so the distances are taken from the real side.
    nearest_fake = np.empty(len(real))
    real64, fake64 = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    for start, d in _blocks(real64, fake64):
        nearest_fake[start:start + len(d)] = d.min(1)
    coverage = np.mean(nearest_fake < radii)
    return float(density), float(coverage)


def all_metrics(real, fake):
    """Every metric of this module as a dict (the evaluate JSON's names).

    Raises:
      ValueError: a set has no more rows than the largest k (no k-th neighbour).
    """
    if min(len(real), len(fake)) <= max(PR_K, DC_K):
        raise ValueError(f'the k-NN metrics need more than {max(PR_K, DC_K)} images in each set, '
                         f'not {len(real)} real and {len(fake)} generated')
    kid_value, kid_std = kid(real, fake)
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    return {'kid': kid_value, 'kid_std': kid_std, 'precision': precision, 'recall': recall,
            'density': density, 'coverage': coverage}
