"""tf.distribute strategies for training: one device, several devices, several machines, TPU.

  default       the current device
  mirrored      every local GPU (or, with --cpu_replicas=N, N logical CPU devices: the code path
                of several devices on a machine without any)
  multi_worker  MultiWorkerMirroredStrategy over the machines that TF_CONFIG lists
  tpu           TPUStrategy on the TPU the cluster resolver finds
"""
import json
import os

import tensorflow as tf
from absl import logging

STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')


class StrategyError(ValueError):
    """A strategy that cannot work on this machine; the message says why."""


def split_cpu(replicas):
    """Splits the CPU into `replicas` logical devices; must run before TensorFlow starts."""
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def make_strategy(name, cpu_replicas=0):
    """The strategy `name`; `cpu_replicas` > 1 mirrors over that many logical CPU devices."""
    if name == 'default':
        return tf.distribute.get_strategy()
    if name == 'mirrored':
        if cpu_replicas > 1:
            return tf.distribute.MirroredStrategy([f'/cpu:{i}' for i in range(cpu_replicas)])
        if len(tf.config.list_physical_devices('GPU')) <= 1:
            logging.warning('--strategy=mirrored on a machine with one device: training as one '
                            'replica (the default strategy)')
            return tf.distribute.get_strategy()
        return tf.distribute.MirroredStrategy()
    if name == 'multi_worker':
        if not os.environ.get('TF_CONFIG'):
            raise StrategyError('--strategy=multi_worker needs the cluster in the TF_CONFIG '
                                'environment variable, and none is set')
        try:
            # {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}
            tf_config = json.loads(os.environ['TF_CONFIG'])
            task = tf_config['task']
            tf_config['cluster'][task['type']][int(task['index'])]
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
            raise StrategyError(f'--strategy=multi_worker: TF_CONFIG does not describe this '
                                f'worker in a cluster ({type(err).__name__}: '
                                f'{(str(err).splitlines() or [""])[0]})') from None
    if name == 'tpu':
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise StrategyError(f'--strategy=tpu: no TPU found ({str(err).splitlines()[0]})') from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f'unknown strategy {name!r}; choose one of {STRATEGIES}')


def worker(strategy):
    """(is_chief, task id): the chief writes checkpoints, summaries, grids and exports."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = 'chief' in json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster', {})
    chief = task_type == 'chief' or (task_type == 'worker' and task_id == 0 and not has_chief)
    return chief, task_id or 0
