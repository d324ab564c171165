"""Shared fixtures: quiet TensorFlow, and tiny models whose forward pass NumPy can repeat."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
