"""pga_tf: Perceptual Generative Autoencoders (Zhang et al.) in TensorFlow 2 / Keras 3."""

__version__ = '0.1.0'
