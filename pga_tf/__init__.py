"""pga_tf: Perceptual Generative Autoencoders (Zhang et al.) in TensorFlow 2 / Keras 3."""
from pga_tf import tf_startup

tf_startup.import_quietly()

__version__ = '0.1.0'
