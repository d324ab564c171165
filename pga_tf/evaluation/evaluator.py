"""Fréchet distances of a trained model: samples from N(0, I) and reconstructions, vs real data.

Used by `python -m pga_tf.evaluate` after training and by the training loop every
`--eval_every` steps.
"""
import hashlib
import os

import numpy as np
import tensorflow as tf

from pga_tf import data, generator, losses
from pga_tf.evaluation import fid
from pga_tf.evaluation.features import FeaturesUnavailable, InceptionFeatures


def default_stats_dir():
    return os.path.join(os.path.expanduser('~'), '.cache', 'pga_tf')


def feature_kind(kind, dataset):
    """'auto' -> 'classifier' for labelled datasets, else 'inception'."""
    if kind == 'auto':
        return 'classifier' if dataset in data.LABELLED else 'inception'
    return kind


def make_features(kind, dataset, stats_dir, inception_path='', data_dir=None):
    """A feature extractor ('classifier', 'inception' or 'auto') for `dataset`.

    Raises:
      FeaturesUnavailable: Inception cannot be loaded, or the dataset has no labels to train
        the classifier on.
    """
    kind = feature_kind(kind, dataset)
    if kind == 'inception':
        return InceptionFeatures(inception_path or None)
    if dataset not in data.LABELLED:
        raise FeaturesUnavailable(f'--features=classifier needs class labels; {dataset} has none. '
                                  'Use --features=inception.')
    from pga_tf.evaluation.classifier import ClassifierFeatures

    return ClassifierFeatures(dataset, stats_dir, data_dir)


def real_stats(features, config, stats_dir, num_images, batch_size=500):
    """Statistics of `num_images` training images, computed once and cached.

    The images are a fixed shuffle (seed 0) of the split: mnist_5k, for one, is sorted by class.
    """
    size, channels = config.image_shape()
    name = config.dataset
    if config.dataset == 'folder':  # one cache entry per folder, crop and channel count
        source = f'{os.path.abspath(config.data_dir)}|{config.crop}|{channels}'
        name += '-' + hashlib.sha1(source.encode()).hexdigest()[:10]
    path = os.path.join(stats_dir, f'{name}_train_{size}_{features.stats_key}_{num_images}.npz')

    def compute():
        ds, _ = data.load_dataset(config.dataset, 'train', batch_size, config.data_dir or None,
                                  seed=0, repeat=False, size=size, channels=channels,
                                  crop=config.crop, drop_remainder=False, limit=num_images)
        return fid.activation_statistics(features, ds)

    return fid.cached_stats(path, compute, features.dim)


def sample_batches(decoder, z_dim, num, batch_size, seed):
    """g(z) for `num` z ~ N(0, I) drawn from a generator seeded `seed`, batch by batch, from a
    `generator.prepare`d decoder."""
    for z in prior_samples(z_dim, num, batch_size, seed):
        yield generator.generate(decoder, z)


def prior_samples(z_dim, num, batch_size, seed):
    """`num` z ~ N(0, I) [<= batch_size, z_dim] batch by batch, a function of `seed`."""
    rng = tf.random.Generator.from_seed(seed)
    for start in range(0, num, batch_size):
        yield rng.normal([min(batch_size, num - start), z_dim])


def reconstruction_batches(encoder, decoder, image_batches):
    """g(f(x)) (with f's mean) for each batch of held-out images."""
    for x in image_batches:
        yield decoder(losses.encode(encoder, x, False)[0], training=False)


def sample_distance(decoder, z_dim, features, reference, num, batch_size, seed):
    """Fréchet distance between `num` samples' features and `reference` (mu, sigma, n)."""
    mu, sigma, _ = fid.activation_statistics(features, sample_batches(decoder, z_dim, num, batch_size, seed))
    return fid.frechet_distance(mu, sigma, reference[0], reference[1])


def evaluate_models(encoder, decoder, config, features, stats_dir, num_samples=5000, repeats=3,
                    batch_size=500, real_images=10_000, seed=0):
    """Sample distance (mean ± std over `repeats` sample sets) and reconstruction distance.

    Returns:
      dict with `fid` {mean, std, values}, `rec_fid` (held-out images through f and g; one
      value, it is deterministic), `num_samples`, `num_reconstructions`, `num_real`.
    """
    reference = real_stats(features, config, stats_dir, real_images, batch_size)
    size, channels = config.image_shape()
    values = [sample_distance(decoder, config.z_dim, features, reference, num_samples, batch_size,
                              seed + r) for r in range(repeats)]
    held_out, _ = data.load_dataset(config.dataset, data.DATASETS[config.dataset].eval_split,
                                    batch_size, config.data_dir or None, seed=0, repeat=False,
                                    size=size, channels=channels, crop=config.crop,
                                    drop_remainder=False, limit=num_samples)
    rec_mu, rec_sigma, rec_n = fid.activation_statistics(
        features, reconstruction_batches(encoder, decoder, held_out))
    return {
        'fid': {'mean': float(np.mean(values)), 'std': float(np.std(values)), 'values': values},
        'rec_fid': fid.frechet_distance(rec_mu, rec_sigma, reference[0], reference[1]),
        'num_samples': num_samples, 'num_reconstructions': rec_n, 'num_real': int(reference[2]),
    }
