"""An offline feature extractor: a small classifier trained once on a labelled dataset.

Its penultimate-layer activations give a Fréchet distance that needs no network (CI, laptops).
The numbers are NOT comparable to Inception FIDs or to the paper; they compare methods trained
here on the same data. The trained classifier is cached under a version key with its accuracy.
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf

from pga_tf import data

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


class ClassifierFeatures:
    """Feature activations of the cached classifier of `dataset` (trained on first use).

    Attributes:
      key: names the features in statistics caches (includes the version).
      accuracy: the classifier's accuracy on the test split.
      trained: whether this call trained it (False: loaded from the cache).
    """

    def __init__(self, dataset, cache_dir, data_dir=None, epochs=None, batch_size=500):
        self.key = f'classifier_v{VERSION}'
        path = os.path.join(cache_dir, f'{dataset}_{self.key}.keras')
        meta = path[:-len('.keras')] + '.json'
        self.trained = not (os.path.exists(path) and os.path.exists(meta))
        if self.trained:
            model, accuracy = train_classifier(dataset, data_dir, epochs)
            os.makedirs(cache_dir, exist_ok=True)
            model.save(path + '.tmp.keras')
            os.replace(path + '.tmp.keras', path)
            with open(meta, 'w') as f:
                json.dump({'dataset': dataset, 'version': VERSION, 'test_accuracy': accuracy}, f)
        else:
            model = keras.models.load_model(path)
        with open(meta) as f:
            self.accuracy = json.load(f)['test_accuracy']
        self.model = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
        self.batch_size = batch_size

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        return np.concatenate([self.model(images[i:i + self.batch_size], training=False).numpy()
                               for i in range(0, images.shape[0], self.batch_size)])
