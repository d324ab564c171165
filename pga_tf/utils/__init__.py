"""Small utilities: path checks and atomic writes, quiet TensorFlow start-up, device names."""
