"""Fréchet distances of a trained model: samples from N(0, I) and reconstructions, vs real data.

Used by `python -m pga_tf.evaluate` after training and by the training loop every
`--eval_every` steps.
"""
import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf.core import generator, losses
from pga_tf.evaluation import gmm
from pga_tf.training import data
from pga_tf.evaluation import fid, latent, metrics
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


def real_stats(features, config, stats_dir, num_images=0, batch_size=500):
    """Statistics of `num_images` training images (0: the whole training split, as the
    original's precomputed statistics), computed once and cached.

    The images are a fixed shuffle (seed 0) of the split: mnist_5k, for one, is sorted by class.
    """
    size, channels = config.image_shape()
    split_size = data.image_source(config.dataset, 'train', config.data_dir or None,
                                   **config.image_args())[1]
    num_images = min(num_images or split_size, split_size)
    name = config.dataset
    if config.dataset in data.RESIZED:  # one cache entry per folder, crop, resize and channels
        folder = os.path.abspath(config.data_dir) if config.dataset == 'folder' else ''
        source = f'{folder}|{config.crop}|{config.resize}|{channels}'
        name += '-' + hashlib.sha1(source.encode()).hexdigest()[:10]
    path = os.path.join(stats_dir, f'{name}_train_{size}_{features.stats_key}_{num_images}.npz')

    def compute():
        return fid.activation_statistics(features, images(config, 'train', num_images, batch_size))

    return fid.cached_stats(path, compute, features.dim)


def images(config, split, limit, batch_size):
    """The first `limit` images of a split in a fixed shuffle (seed 0), batch by batch."""
    return data.load_dataset(config.dataset, split, batch_size, config.data_dir or None, seed=0,
                             repeat=False, **config.image_args(), drop_remainder=False,
                             limit=limit)[0]


def real_features(features, config, num_images, batch_size=500):
    """Features [num_images, d] of training images, the reference of the k-NN and kernel metrics."""
    return feature_array(features, images(config, 'train', num_images, batch_size))


def sample_batches(decoder, z_dim, num, batch_size, seed, mixture=None):
    """g(z) for `num` z ~ N(0, I) drawn from a generator seeded `seed` (or from `mixture`, a
    `gmm.GaussianMixture`, as the export's `sample_gmm` draws them), batch by batch, from a
    `generator.prepare`d decoder; quantised to uint8's levels, as real images and the exported
    generator's are (the original's FID truncates them to uint8)."""
    if mixture is None:
        latents = prior_samples(z_dim, num, batch_size, seed)
    else:
        codes = gmm.draw(*gmm.constants(mixture), num, seed)
        latents = (codes[i:i + batch_size] for i in range(0, num, batch_size))
    for z in latents:
        yield data.quantise(generator.generate(decoder, z))


def prior_samples(z_dim, num, batch_size, seed):
    """`num` z ~ N(0, I) [<= batch_size, z_dim] batch by batch, a function of `seed`."""
    rng = tf.random.Generator.from_seed(seed)
    for start in range(0, num, batch_size):
        yield rng.normal([min(batch_size, num - start), z_dim])


# Training images whose codes the ex-post mixture is fitted on.
GMM_CODES = 10_000


def fitted_mixture(folder, run, batch_size=500):
    """The Gaussian mixture (pga_tf.evaluation.gmm) of the codes f(x) of up to `GMM_CODES` training images
    at the run's checkpoint: the run folder's gmm_<step>.npz, fitted and saved when missing or
    damaged.

    Args:
      folder: a `run_folder.RunFolder`; run: what its `load` returned.
    """
    path = folder.gmm_path(run.step)
    if os.path.exists(path):
        try:
            return gmm.load(path, run.config.z_dim)
        except gmm.GMMError as err:
            logging.warning('%s; fitting the mixture again', err)
    codes = np.concatenate([losses.encode(run.encoder, x, False)[0].numpy()
                            for x in images(run.config, 'train', GMM_CODES, batch_size)])
    mixture = gmm.fit(codes)
    try:
        mixture.save(path)
    except OSError as err:  # a read-only run folder: the mixture serves this command only
        logging.warning('The mixture is not kept in the run folder (%s)', err)
    logging.info('Fitted a %d-component mixture to %d codes (mean log-likelihood %.3f): %s',
                 len(mixture.weights), mixture.num_codes, mixture.log_likelihood, path)
    return mixture


def reconstruction_batches(encoder, decoder, image_batches):
    """g(f(x)) (with f's mean) for each batch of held-out images, quantised as `sample_batches`."""
    for x in image_batches:
        yield data.quantise(decoder(losses.encode(encoder, x, False)[0], training=False))


def feature_array(features, image_batches):
    """The features of every image, [N, d] float32, for the k-NN and kernel metrics."""
    return np.concatenate([np.asarray(features(images), np.float32) for images in image_batches])


def distance_to(reference, activations):
    """Fréchet distance between the statistics of `activations` [N, d] and `reference`."""
    stats = fid.RunningStats()
    stats.update(activations)
    return fid.frechet_distance(*stats.result(), reference[0], reference[1])


def evaluate_models(encoder, decoder, config, features, stats_dir, num_samples=5000, repeats=3,
                    batch_size=500, real_images=0, seed=0, mixture=None):
    """Sample distance (mean ± std over `repeats` sample sets), reconstruction distance, and the
    k-NN and kernel metrics (`metrics.all_metrics`) of the first sample set and of the
    reconstructions, against the features of `num_samples` training images. Samples come
    from N(0, I), or from `mixture` (a `gmm.GaussianMixture` of the codes) when given.

    Returns:
      dict with `fid` {mean, std, values}, `rec_fid` (held-out images through f and g; one
      value, it is deterministic), `samples` and `reconstructions` (KID ± std, precision,
      recall, density, coverage), `latent` (`latent.diagnostics` of the held-out images and of
      fresh prior samples), `num_samples`, `num_reconstructions`, `num_real`.
    """
    reference = real_stats(features, config, stats_dir, real_images, batch_size)
    sample_sets = [feature_array(features, sample_batches(decoder, config.z_dim, num_samples,
                                                          batch_size, seed + r, mixture))
                   for r in range(repeats)]
    values = [distance_to(reference, a) for a in sample_sets]

    held_out = images(config, data.DATASETS[config.dataset].eval_split, num_samples, batch_size)
    reconstructions = feature_array(features, reconstruction_batches(encoder, decoder, held_out))
    real = real_features(features, config, num_samples, batch_size)
    codes = latent.diagnostics(encoder, decoder, held_out,
                               prior_samples(config.z_dim, num_samples, batch_size, seed + repeats))
    return {
        'fid': {'mean': float(np.mean(values)), 'std': float(np.std(values)), 'values': values},
        'rec_fid': distance_to(reference, reconstructions),
        'samples': metrics.all_metrics(real, sample_sets[0]),
        'reconstructions': metrics.all_metrics(real, reconstructions),
        'latent': codes,
        'num_samples': num_samples, 'num_reconstructions': len(reconstructions),
        'num_real': int(reference[2]),
    }
