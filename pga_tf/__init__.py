"""pga_tf: Perceptual Generative Autoencoders (Zhang et al.) in TensorFlow 2 / Keras 3."""
from pga_tf.utils import tf_startup

tf_startup.import_quietly()

__version__ = '0.1.0'

# The Python API by name, imported on first use (the commands do not need Keras's model class).
_API = {'PGA': 'training.keras_model', 'Trainer': 'training.trainer', 'LossWeights': 'core.losses'}


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib
    return getattr(importlib.import_module(f'{__name__}.{_API[name]}'), name)
