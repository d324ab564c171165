"""Feature extractors for Fréchet distances: Inception (the paper's FID) and an offline classifier.

A feature extractor maps float32 images [N, H, W, C] in [-1, 1] to activations [N, d], and has
a `key` naming it in statistics caches.
"""
import hashlib
import os
import socket

import tensorflow as tf

# tensorflow-gan's Inception on TF Hub (tfgan.eval.INCEPTION_TFHUB), its pool_3 output.
INCEPTION_TFHUB = 'https://tfhub.dev/tensorflow/tfgan/eval/inception/1'
INCEPTION_POOL = 'pool_3'
INCEPTION_SIZE = 299


class FeaturesUnavailable(Exception):
    """The feature network cannot be loaded; the message says what to do."""


def _hub_cache_path(handle):
    """Where tensorflow-hub caches a downloaded handle."""
    cache = os.environ.get('TFHUB_CACHE_DIR') or os.path.join(
        os.environ.get('TMPDIR', '/tmp'), 'tfhub_modules')
    return os.path.join(cache, hashlib.sha1(handle.encode('utf8')).hexdigest())


def _reachable(url, timeout=3.0):
    host = url.split('://', 1)[-1].split('/', 1)[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_inception(path=None):
    """Loads the Inception network once: a local SavedModel folder, or a TF Hub handle.

    Raises:
      FeaturesUnavailable: the folder is missing, or the handle is neither cached nor reachable.
    """
    path = path or INCEPTION_TFHUB
    remote = '://' in path
    if remote and os.path.isdir(_hub_cache_path(path)):
        path, remote = _hub_cache_path(path), False
    if remote and not _reachable(path):
        raise FeaturesUnavailable(
            f'Inception: {path} is not reachable and not cached. Pass --inception_path=<a local '
            'copy of the TF-GAN Inception SavedModel folder>, or use --features=classifier.')
    if not remote and not os.path.isdir(path):
        raise FeaturesUnavailable(f'Inception: no SavedModel folder at {path}')
    try:
        import tensorflow_hub as hub  # resolves handles and loads local folders alike
    except ImportError as err:  # e.g. no pkg_resources: setuptools >= 82 or none installed
        raise FeaturesUnavailable(f"Inception: tensorflow_hub cannot be imported ({err}); "
                                  "pip install 'setuptools<82'") from err

    try:
        return hub.load(path)
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise FeaturesUnavailable(f'Inception: cannot load {path}: {err}') from err


class InceptionFeatures:
    """pool_3 activations of tensorflow-gan's Inception, its images prepared as TF-GAN's
    `preprocess_image` (and TTUR's graph, the original's FID) prepare uint8 images: values
    in [0, 255], TF1's bilinear resize to 299x299 (legacy pixel grid), (v - 128) / 128; grey
    copied to RGB."""

    def __init__(self, path=None, batch_size=100):
        self.path = path or INCEPTION_TFHUB
        self.model = load_inception(path)
        self.key = self.stats_key = 'inception'
        self.batch_size = batch_size
        probe = self.model(tf.zeros([1, INCEPTION_SIZE, INCEPTION_SIZE, 3]))[INCEPTION_POOL]
        self.dim = int(tf.size(probe))

    @tf.function(reduce_retracing=True)
    def _run(self, images):
        values = (images + 1.0) * 127.5  # [-1, 1] -> [0, 255]
        images = (tf.compat.v1.image.resize(values, [INCEPTION_SIZE, INCEPTION_SIZE],
                                            method=tf.compat.v1.image.ResizeMethod.BILINEAR)
                  - 128.0) / 128.0
        if images.shape[-1] == 1:
            images = tf.image.grayscale_to_rgb(images)
        activations = self.model(images)[INCEPTION_POOL]
        return tf.reshape(activations, [tf.shape(activations)[0], -1])

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        return tf.concat([self._run(images[i:i + self.batch_size])
                          for i in range(0, images.shape[0], self.batch_size)], 0).numpy()
