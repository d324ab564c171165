"""What the benchmarks ran on, in words."""
import os
import platform

import tensorflow as tf


def describe():
    """The GPU's name, else the CPU's model and core count."""
    gpus = tf.config.list_physical_devices('GPU')
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{cpu} ({os.cpu_count()} CPUs)'
