"""An offline feature extractor: a small classifier trained once on a labelled dataset.

Its penultimate-layer activations give a Fréchet distance that needs no network (CI, laptops).
The numbers are NOT comparable to Inception FIDs or to the paper; they compare methods trained
here on the same data. The trained classifier is cached under a version key with its accuracy.
"""
import hashlib
import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf import data
from pga_tf.paths import write_atomic

# Bump when the network or its training changes: cached classifiers and statistics of an
# older version are then not reused.
VERSION = 1
FEATURES_LAYER = 'features'
_EPOCHS = {'mnist_5k': 15, 'mnist': 2, 'cifar10': 15}
_BATCH = 128


def build_classifier(size, channels, num_classes=10):
    """Two strided convolutions, a 128-unit feature layer, the class logits."""
    x = keras.Input((size, size, channels))
    y = keras.layers.Conv2D(32, 3, strides=2, padding='same', activation='relu')(x)
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


def _load(path, meta):
    """(model, accuracy) of a cached classifier, or (None, None) when there is none whole."""
    if not (os.path.exists(path) and os.path.exists(meta)):
        return None, None
    try:
        with open(meta) as f:
            accuracy = float(json.load(f)['test_accuracy'])
        model = keras.models.load_model(path)
        model.get_layer(FEATURES_LAYER)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        logging.warning('%s cannot be read (%s); training the classifier again', path,
                        str(err).splitlines()[0][:200] if str(err) else type(err).__name__)
        return None, None
    return model, accuracy


class ClassifierFeatures:
    """Feature activations of the cached classifier of `dataset` (trained on first use, and
    again when the cached one cannot be read).

    Attributes:
      key: names the features in results (includes the version).
      stats_key: names them in statistics caches: the key and a digest of the classifier file,
        so statistics of a replaced classifier are never reused.
      dim: the number of features.
      accuracy: the classifier's accuracy on the test split.
      trained: whether this call trained it (False: loaded from the cache).
    """

    def __init__(self, dataset, cache_dir, data_dir=None, epochs=None, batch_size=500):
        self.key = f'classifier_v{VERSION}'
        path = os.path.join(cache_dir, f'{dataset}_{self.key}.keras')
        meta = path[:-len('.keras')] + '.json'
        model, self.accuracy = _load(path, meta)
        self.trained = model is None
        if self.trained:
            model, self.accuracy = train_classifier(dataset, data_dir, epochs)
            os.makedirs(cache_dir, exist_ok=True)
            model.save(f'{path}.tmp-{os.getpid()}.keras')
            os.replace(f'{path}.tmp-{os.getpid()}.keras', path)
            write_atomic(meta, json.dumps({'dataset': dataset, 'version': VERSION,
                                           'test_accuracy': self.accuracy}))
        with open(path, 'rb') as f:
            self.stats_key = f'{self.key}-{hashlib.sha1(f.read()).hexdigest()[:10]}'
        self.model = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
        self.dim = self.model.output_shape[-1]
        self.batch_size = batch_size

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        return np.concatenate([self.model(images[i:i + self.batch_size], training=False).numpy()
                               for i in range(0, images.shape[0], self.batch_size)])
