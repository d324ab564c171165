"""An offline feature extractor: a small classifier trained once on a labelled dataset.

Its penultimate-layer activations give a Fréchet distance that needs no network (CI, laptops).
The numbers are NOT comparable to Inception FIDs or to the paper; they compare methods trained
here on the same data.

For 28x28 digits (mnist_5k, mnist) the classifier ships with the package (`SHIPPED`, trained on
mnist_5k's training part), so every machine computes the same distances; it is rebuilt with

  python -m pga_tf.evaluation.classifier --out=pga_tf/evaluation

Other labelled datasets (cifar10) train theirs on first use and cache it under a version key
with its accuracy.
"""
import hashlib
import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf.training import data
from pga_tf.utils.paths import write_atomic

# Bump when the network or its training changes: cached classifiers and statistics of an
# older version are then not reused.
VERSION = 2
FEATURES_LAYER = 'features'
_EPOCHS = {'mnist_5k': 15, 'mnist': 2, 'cifar10': 15}
_BATCH = 128
# The shipped classifier of 28x28 digits, and the datasets it serves.
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digits_classifier.keras')
SHIPPED_DATASET = 'mnist_5k'
DIGITS = ('mnist_5k', 'mnist')
# Held-out digits whose features the shipped file records, to check a machine reproduces them.
_CHECK_DIGITS = 8


def build_classifier(size, channels, num_classes=10):
    """Three strided convolutions, a 128-unit feature layer, the class logits."""
    x = keras.Input((size, size, channels))
    y = keras.layers.Conv2D(32, 3, strides=2, padding='same', activation='relu')(x)
    y = keras.layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(y)
    y = keras.layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(y)
    y = keras.layers.Dense(128, activation='relu', name=FEATURES_LAYER)(keras.layers.Flatten()(y))
    return keras.Model(x, keras.layers.Dense(num_classes)(y), name='feature_classifier')


def _batches(dataset, split, data_dir, shuffle, seed=0):
    ds = data.labelled_source(dataset, split, data_dir).cache()
    if shuffle:
        ds = ds.shuffle(data.SHUFFLE_BUFFER, seed=seed)
    return ds.batch(_BATCH).map(lambda x, y: (data.to_float(x), y)).prefetch(data.AUTOTUNE)


def train_classifier(dataset, data_dir=None, epochs=None, seed=0):
    """Trains the classifier on `dataset`'s training split; returns (model, test accuracy)."""
    keras.utils.set_random_seed(seed)
    spec = data.DATASETS[dataset]
    model = build_classifier(spec.size, spec.channels)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    model.fit(_batches(dataset, 'train', data_dir, True, seed), epochs=epochs or _EPOCHS[dataset],
              shuffle=False, verbose=0)  # the dataset shuffles itself
    _, accuracy = model.evaluate(_batches(dataset, 'test', data_dir, False), verbose=0)
    return model, float(accuracy)


def _meta_path(path):
    return path[:-len('.keras')] + '.json'


def _load(path):
    """(model, its json record) of a saved classifier.

    Raises:
      ValueError: the file or its record is missing or cannot be read.
    """
    try:
        with open(_meta_path(path)) as f:
            meta = json.load(f)
        float(meta['test_accuracy'])
        model = keras.models.load_model(path)
        model.get_layer(FEATURES_LAYER)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        raise ValueError(str(err).splitlines()[0][:200] if str(err) else type(err).__name__)
    return model, meta


def _save(model, path, meta):
    """The network and its weights (no optimiser state: a third of the size), and its record."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    weights_only = keras.Model(model.inputs, model.outputs, name=model.name)  # not compiled
    weights_only.save(f'{path}.tmp-{os.getpid()}.keras')
    os.replace(f'{path}.tmp-{os.getpid()}.keras', path)
    write_atomic(_meta_path(path), json.dumps(meta, indent=2))


def _check_features(model):
    """Features of the first held-out digits, the shipped file's record of its outputs."""
    features = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
    x = data.to_float(data.mnist_5k_arrays('test')[:_CHECK_DIGITS])
    return features(x, training=False).numpy()


def ship(out_dir, seed=0):
    """Trains the digits classifier on mnist_5k and writes it (and its record) to `out_dir`."""
    model, accuracy = train_classifier(SHIPPED_DATASET, seed=seed)
    path = os.path.join(out_dir, os.path.basename(SHIPPED))
    _save(model, path, {
        'dataset': SHIPPED_DATASET, 'version': VERSION, 'seed': seed,
        'epochs': _EPOCHS[SHIPPED_DATASET], 'test_accuracy': accuracy,
        'tensorflow': tf.__version__, 'keras': keras.__version__,
        'command': 'python -m pga_tf.evaluation.classifier --out=pga_tf/evaluation',
        'check_features': np.round(_check_features(model), 6).tolist()})
    return path, accuracy


class ClassifierFeatures:
    """Feature activations of the classifier of `dataset`: the shipped one for digits (unless
    `use_shipped` is False), else the cached one (trained on first use, and again when the
    cached one cannot be read).

    Attributes:
      key: names the features in results (includes the version).
      stats_key: names them in statistics caches and results: the key and a digest of the
        classifier file, so statistics of a replaced classifier are never reused.
      dim: the number of features.
      accuracy: the classifier's accuracy on the test split it was measured on.
      trained: whether this call trained it (False: loaded).

    Raises:
      FeaturesUnavailable: the shipped classifier cannot be read (a damaged install).
    """

    def __init__(self, dataset, cache_dir, data_dir=None, epochs=None, batch_size=500,
                 use_shipped=True):
        from pga_tf.evaluation.features import FeaturesUnavailable

        self.key = f'classifier_v{VERSION}'
        self.trained = False
        if use_shipped and dataset in DIGITS:
            path = SHIPPED
            try:
                model, meta = _load(path)
            except ValueError as err:
                raise FeaturesUnavailable(
                    f'the shipped classifier {path} cannot be read ({err}); reinstall pga_tf, or '
                    'rebuild it with python -m pga_tf.evaluation.classifier') from None
        else:
            path = os.path.join(cache_dir, f'{dataset}_{self.key}.keras')
            try:
                model, meta = _load(path) if os.path.exists(path) else (None, None)
            except ValueError as err:
                logging.warning('%s cannot be read (%s); training the classifier again', path, err)
                model = None
            if model is None:
                model, accuracy = train_classifier(dataset, data_dir, epochs)
                meta = {'dataset': dataset, 'version': VERSION, 'test_accuracy': accuracy}
                _save(model, path, meta)
                self.trained = True
        self.accuracy = float(meta['test_accuracy'])
        with open(path, 'rb') as f:
            self.stats_key = f'{self.key}-{hashlib.sha1(f.read()).hexdigest()[:10]}'
        self.model = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
        self.dim = self.model.output_shape[-1]
        self.batch_size = batch_size

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        return np.concatenate([self.model(images[i:i + self.batch_size], training=False).numpy()
                               for i in range(0, images.shape[0], self.batch_size)])


if __name__ == '__main__':
    from absl import app, flags

    flags.DEFINE_string('out', os.path.dirname(SHIPPED), 'Folder to write the classifier to.')
    flags.DEFINE_integer('seed', 0, 'Seed of its weights and data order.')

    def main(argv):
        del argv
        path, accuracy = ship(flags.FLAGS.out, flags.FLAGS.seed)
        print(f'{path}: test accuracy {accuracy:.4f} on mnist_5k\'s 500 held-out digits, '
              f'{os.path.getsize(path) / 1e6:.2f} MB')

    app.run(main)
