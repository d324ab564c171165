"""`--jit_compile=auto` on a CPU: XLA where it runs this step faster on this machine.

No CPU feature decides it: XLA's CPU code was 0.2-0.8x of oneDNN's kernels on both AVX-512 CPUs
measured and 1.1x on an AVX2-only one (conv_mnist VPGA). So a run measures it on its own steps:
the first steps run without XLA and are timed; if the rest of the run would take longer than
`PROBE_WORTH_S`, the next steps run compiled and are timed too, and the faster setting trains
the rest of the run. Every timed step is a real training step (XLA changes round-off only), so a
probe costs the compilation alone; a compiled step slower than `GIVE_UP` times the plain one
ends it at once. The choice is cached per machine, TensorFlow version and step shape
(`choice_key`), and a later run on the same machine starts with it.
"""
import json
import os
import statistics
import time

import tensorflow as tf
from absl import logging

from pga_tf.utils import device_info, paths

CACHE_FILE = 'jit_choice.json'
WARMUP, TIMED = 3, 10  # steps of each setting: untimed (tracing, compilation), then timed
PROBE_WORTH_S = 900  # a shorter run keeps XLA off unmeasured: a compilation costs 10 s to minutes
GIVE_UP = 1.5  # a compiled step this many times slower than the plain median ends the probe


def cache_path(stats_dir=''):
    """The choices' file in the cache folder (`--stats_dir`, default ~/.cache/pga_tf)."""
    from pga_tf.evaluation import evaluator

    return os.path.join(stats_dir or evaluator.default_stats_dir(), CACHE_FILE)


def choice_key(config):
    """What the choice depends on: the machine, TensorFlow and the step's shapes and dtype."""
    size, channels = config.image_shape()
    return (f'{device_info.describe()} | TF {tf.__version__} | {config.arch} {config.model} '
            f'{size}x{size}x{channels} batch {config.batch_size} z {config.z_dim} '
            f'width {config.width} bn {config.bn} {config.precision}')


def read_choices(path):
    """The cached choices by key; an absent or damaged file holds none."""
    try:
        with open(path) as f:
            choices = json.load(f)
    except (OSError, ValueError):
        return {}
    return choices if isinstance(choices, dict) else {}


def cached_choice(path, key):
    """The cached record of `key` ({'xla', 'sec_per_step_off', 'sec_per_step_on', ...}) or None."""
    record = read_choices(path).get(key)
    fields = {'xla': bool, 'sec_per_step_off': float, 'sec_per_step_on': float, 'measured': str}
    valid = isinstance(record, dict) and all(isinstance(record.get(k), t) for k, t in fields.items())
    return record if valid else None


def describe_choice(path, key):
    """What auto does for `key`, in words: the cached choice and its times, or how it decides."""
    record = cached_choice(path, key)
    if record is None:
        return (f'not yet measured on this machine ({path}): a run with over '
                f'{PROBE_WORTH_S // 60} min of steps times both and keeps the faster')
    return (f"XLA {_on_off(record['xla'])}, measured by a run on {record['measured']} "
            f"({_times(record)}; {path})")


class JitChoice:
    """Sets `trainer`'s XLA from the cache, or from the times of its first steps.

    Call `observe(seconds)` after every step with its wall time (synchronised).
    """

    def __init__(self, trainer, key, cache_path, steps_left):
        self.trainer, self.key, self.cache_path, self.steps_left = trainer, key, cache_path, steps_left
        self.times = {False: [], True: []}
        record = cached_choice(cache_path, key)
        self.done = record is not None
        trainer.set_jit_compile(bool(record and record['xla']))
        if record:
            logging.info('jit_compile=auto: %s', describe_choice(cache_path, key))

    def observe(self, seconds):
        if self.done:
            return
        self.steps_left -= 1
        xla = self.trainer.jit_compile
        times = self.times[xla]
        times.append(seconds)
        if xla and len(times) > 1 and seconds > GIVE_UP * self._median(False):
            self._decide(False)  # past its compilation and still slower
        elif len(times) < WARMUP + TIMED:
            return
        elif xla:
            self._decide(self._median(True) < self._median(False))
        elif self.steps_left * self._median(False) < PROBE_WORTH_S:
            self.done = True  # nothing cached: XLA was not measured
            logging.info('jit_compile=auto: XLA off (%d steps left at %.3f s: too short a run to '
                         'time XLA)', self.steps_left, self._median(False))
        else:
            logging.info('jit_compile=auto: timing the next steps with XLA (%.3f s a step '
                         'without; compiling first)', self._median(False))
            self.trainer.set_jit_compile(True)

    def _median(self, xla):
        """The median of the timed steps of a setting (those past its warm-up, if any)."""
        times = self.times[xla]
        return statistics.median(times[WARMUP:] if len(times) > WARMUP else times[1:])

    def _decide(self, xla):
        self.done = True
        self.trainer.set_jit_compile(xla)
        record = {'xla': xla, 'sec_per_step_off': self._median(False),
                  'sec_per_step_on': self._median(True), 'measured': time.strftime('%Y-%m-%d')}
        logging.info('jit_compile=auto: XLA %s for the rest of the run (%s); cached in %s',
                     _on_off(xla), _times(record), self.cache_path)
        try:
            os.makedirs(os.path.dirname(self.cache_path) or '.', exist_ok=True)
            choices = read_choices(self.cache_path)
            choices[self.key] = record
            paths.write_atomic(self.cache_path, json.dumps(choices, indent=1, sort_keys=True))
        except OSError as err:  # an unwritable cache costs the next run a probe, nothing else
            logging.warning('jit_compile=auto: could not cache the choice in %s: %s',
                            self.cache_path, err)


def _times(record):
    return (f"{record['sec_per_step_on']:.3f} s a step with XLA, "
            f"{record['sec_per_step_off']:.3f} s without")


def _on_off(xla):
    return 'on' if xla else 'off'
