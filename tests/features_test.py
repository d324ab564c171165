"""Feature extractors: Inception through a stand-in SavedModel, the offline classifier, errors."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from pga_tf.training import data
from pga_tf.evaluation import classifier, features


class StandInInception(tf.Module):
    """TF-GAN Inception's interface: images [N, H, W, 3] in [-1, 1] -> {'pool_3', 'logits'}.

    pool_3 holds per-channel means and standard deviations, and the image side it was given.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        mean = tf.reduce_mean(images, [1, 2])
        std = tf.math.reduce_std(images, [1, 2])
        side = tf.fill([tf.shape(images)[0], 1], tf.cast(tf.shape(images)[1], tf.float32))
        pool = tf.concat([mean, std, side], 1)
        return {'pool_3': tf.reshape(pool, [-1, 1, 1, 7]), 'logits': pool[:, :3]}


def save_stand_in(path):
    tf.saved_model.save(StandInInception(), str(path))
    return str(path)


def test_inception_path_with_a_stand_in(tmp_path):
    model_dir = save_stand_in(tmp_path / 'inception')
    extractor = features.InceptionFeatures(model_dir, batch_size=3)
    grey = np.random.RandomState(0).uniform(-1, 1, (5, 28, 28, 1)).astype(np.float32)
    out = extractor(grey)
    assert out.shape == (5, 7)
    # TF-GAN's preprocess_image: [0, 255], TF1 bilinear to 299, (v - 128) / 128; grey to RGB.
    np.testing.assert_array_equal(out[:, 6], 299)
    np.testing.assert_allclose(out[:, 0], out[:, 1])
    m = _tf1_bilinear_matrix(28, 299)
    values = (grey[..., 0].astype(np.float64) + 1) * 127.5
    resized = (np.einsum('ih,nhw,jw->nij', m, values, m) - 128) / 128
    np.testing.assert_allclose(out[:, 0], resized.mean((1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 3], resized.std((1, 2)), rtol=1e-4, atol=1e-6)


def _tf1_bilinear_matrix(n_in, n_out):
    """TF1's resize_bilinear along one axis: output i samples input i * n_in / n_out (the
    legacy grid), between floor and the next pixel (the last repeated)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = i * n_in / n_out
        x0 = int(np.floor(src))
        m[i, x0] += 1 - (src - x0)
        m[i, min(x0 + 1, n_in - 1)] += src - x0
    return m


def test_unreachable_inception_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv('TFHUB_CACHE_DIR', str(tmp_path / 'hub'))
    monkeypatch.setattr(features, '_reachable', lambda url: False)
    with pytest.raises(features.FeaturesUnavailable, match='--inception_path'):
        features.load_inception()
    with pytest.raises(features.FeaturesUnavailable, match='no SavedModel folder'):
        features.load_inception(str(tmp_path / 'missing'))


def test_an_unimportable_hub_says_what_to_do(tmp_path, monkeypatch):
    # As where setuptools >= 82 (or none) leaves tensorflow_hub without pkg_resources.
    monkeypatch.setitem(sys.modules, 'tensorflow_hub', None)
    with pytest.raises(features.FeaturesUnavailable, match="setuptools<82"):
        features.load_inception(str(tmp_path))


def test_a_cached_hub_download_is_used_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('TFHUB_CACHE_DIR', str(tmp_path))
    monkeypatch.setattr(features, '_reachable', lambda url: False)
    save_stand_in(features._hub_cache_path(features.INCEPTION_TFHUB))
    model = features.load_inception()
    assert 'pool_3' in model(tf.zeros([1, 8, 8, 3]))


def test_shipped_digits_classifier_gives_its_recorded_features_here(tmp_path):
    """Every machine loads the same classifier for digits and computes the features recorded
    where it was trained (to float round-off), so offline distances agree across machines."""
    with open(classifier.SHIPPED[:-len('.keras')] + '.json') as f:
        record = json.load(f)
    assert os.path.getsize(classifier.SHIPPED) < 1_000_000
    for dataset in classifier.DIGITS:
        shipped = classifier.ClassifierFeatures(dataset, str(tmp_path))
        assert not shipped.trained and shipped.accuracy == record['test_accuracy'] > 0.95
        assert shipped.key == f'classifier_v{record["version"]}' and shipped.dim == 128
    assert os.listdir(tmp_path) == []  # nothing trained, nothing cached
    x = data.to_float(data.mnist_5k_arrays('test')[:len(record['check_features'])])
    np.testing.assert_allclose(shipped(x), record['check_features'], rtol=1e-4, atol=1e-4)


def test_classifier_trains_caches_and_is_reused(tmp_path):
    first = classifier.ClassifierFeatures('mnist_5k', str(tmp_path), epochs=1, use_shipped=False)
    assert first.trained and first.accuracy > 0.7
    assert (tmp_path / f'mnist_5k_{first.key}.keras').exists()
    again = classifier.ClassifierFeatures('mnist_5k', str(tmp_path), use_shipped=False)
    assert not again.trained and again.accuracy == first.accuracy
    x = data.to_float(data.mnist_5k_arrays('test')[:20])
    a, b = first(x), again(x)
    assert a.shape == (20, 128)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # A damaged cached classifier is trained again; statistics of the old one are not reused.
    path = tmp_path / f'mnist_5k_{first.key}.keras'
    path.write_bytes(path.read_bytes()[:1000])
    third = classifier.ClassifierFeatures('mnist_5k', str(tmp_path), epochs=1, use_shipped=False)
    assert third.trained and third.dim == 128 and third.accuracy > 0.7
    assert third.stats_key != first.stats_key == again.stats_key


def test_classifier_needs_labels(tmp_path):
    from pga_tf.evaluation import evaluator

    with pytest.raises(features.FeaturesUnavailable, match='needs class labels'):
        evaluator.make_features('classifier', 'celeba', str(tmp_path))
    assert evaluator.feature_kind('auto', 'celeba') == 'inception'
    assert evaluator.feature_kind('auto', 'mnist_5k') == 'classifier'
