"""Loads tensorflow-gan's evaluation code on any TensorFlow 2.

`import tensorflow_gan` fails on TensorFlow >= 2.16: its package `__init__` imports the
estimator module, which needs `tf.estimator` (removed in 2.16; tensorflow/gan#55, #59). The
evaluation modules themselves need only TF, tensorflow-probability and tensorflow-hub. Where the
plain import fails, this module registers empty package objects for `tensorflow_gan`,
`tensorflow_gan.python` and `tensorflow_gan.python.eval` that point at the installed folders,
so that `tensorflow_gan.python.eval.classifier_metrics` imports without any package `__init__`.
"""
import functools
import importlib
import importlib.machinery
import os
import sys
import types

_PACKAGES = ('tensorflow_gan', 'tensorflow_gan.python', 'tensorflow_gan.python.eval')


def _import_without_package_init():
    # PathFinder looks at the installed files, whatever sys.modules holds.
    spec = importlib.machinery.PathFinder.find_spec('tensorflow_gan')
    if spec is None:
        raise ImportError('tensorflow-gan is not installed: pip install tensorflow-gan')
    root = list(spec.submodule_search_locations)[0]
    for name in _PACKAGES:
        module = sys.modules.get(name)
        if module is None or getattr(module, '__file__', None):  # absent, or a half-imported package
            module = types.ModuleType(name)
            module.__path__ = [os.path.join(root, *name.split('.')[1:])]
            sys.modules[name] = module
    return importlib.import_module('tensorflow_gan.python.eval.classifier_metrics')


@functools.cache
def classifier_metrics():
    """tensorflow-gan's `classifier_metrics` module, and how it was imported.

    Returns:
      (module, how): how is 'package' (plain `import tensorflow_gan` worked) or 'direct'.
    """
    try:
        importlib.import_module('tensorflow_gan')
        return importlib.import_module('tensorflow_gan.python.eval.classifier_metrics'), 'package'
    except (AttributeError, ImportError):
        # Drop what the failed import left half-done before importing the eval code alone.
        for name in [n for n in sys.modules if n == 'tensorflow_gan' or n.startswith('tensorflow_gan.')]:
            if not name.startswith('tensorflow_gan.python.eval'):
                del sys.modules[name]
        return _import_without_package_init(), 'direct'
