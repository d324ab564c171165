"""tensorflow-gan's eval code imports on the installed TensorFlow, by either path."""
import importlib.machinery
import os
import sys
import types

import tensorflow as tf

from pga_tf.evaluation import tfgan


def test_imports_eval_code_on_this_tensorflow():
    metrics, how = tfgan.classifier_metrics()
    assert how in ('package', 'direct')
    if not hasattr(tf, 'estimator'):  # TF >= 2.16: the package __init__ cannot import
        assert how == 'direct'
    assert callable(metrics.frechet_classifier_distance_from_activations)
    assert callable(metrics.trace_sqrt_product)


def test_prefers_the_package_when_it_imports(monkeypatch):
    """A tensorflow-gan whose package import works (a future release) is used as is."""
    root = list(importlib.machinery.PathFinder.find_spec('tensorflow_gan').submodule_search_locations)[0]
    for name in [n for n in sys.modules if n.startswith('tensorflow_gan')]:
        monkeypatch.delitem(sys.modules, name)
    package = types.ModuleType('tensorflow_gan')
    package.__path__ = [root]
    monkeypatch.setitem(sys.modules, 'tensorflow_gan', package)
    for name in ('tensorflow_gan.python', 'tensorflow_gan.python.eval'):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, *name.split('.')[1:])]
        monkeypatch.setitem(sys.modules, name, module)
    metrics, how = tfgan.classifier_metrics.__wrapped__()  # not the cached first load
    assert how == 'package'
    assert callable(metrics.frechet_classifier_distance_from_activations)
