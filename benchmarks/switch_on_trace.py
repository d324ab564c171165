"""Per-step trace of a run around the warm-up's end: where and why a PGA run diverges.

  python benchmarks/switch_on_trace.py --method=lpga --seed=1 --flags=--ramp_steps=0,--nologdet_floor  # the original
  python benchmarks/switch_on_trace.py --method=lpga --seed=1 --steps=400   # the preset: ramp and floor

Trains the study's run of a method (pga_tf.study: the mnist_5k preset at --width, the seed), as
`pga_tf.train` would, with `--flags` applied on top, and records per step: the codes' norms on
the batch (mean and max of |f(x)|, against sqrt(z_dim) for N(0, I)), every loss term, and the
global gradient norms of both networks. Prints every --every-th step, every step from
init_steps - 2 to init_steps + 10, and the last 15 steps before the first non-finite one, with
the machine. It is a benchmark, not a test.
"""
import json
import math

import numpy as np
import tensorflow as tf
from absl import app, flags

from pga_tf import study
from pga_tf.core import losses
from pga_tf.training import train_lib
from pga_tf.utils import device_info

flags.DEFINE_string('method', 'lpga', 'Method (its mnist_5k preset).')
flags.DEFINE_integer('seed', 1, 'Seed of the run.')
flags.DEFINE_float('width', 0.5, 'Width multiplier (the study\'s 0.5).')
flags.DEFINE_integer('steps', 400, 'Steps to trace (fewer if the run diverges).')
flags.DEFINE_integer('every', 25, 'Print every this many steps (besides the switch and the end).')
flags.DEFINE_list('flags', [], 'Training flags on top of the preset, e.g. --flags=--lr=0.05.')
flags.DEFINE_string('json', '', 'Also write the whole trace here.')
FLAGS = flags.FLAGS


def study_run(method, seed, width, extra):
    """The study's Config of `method` and `seed`, with the training flags `extra` on top."""
    return study.study_config(method, seed, 2000, width).with_flags(extra)


def trace(config, steps):
    tf.keras.utils.set_random_seed(config.seed)  # as train_lib.train: the same initial weights
    tr = config.build_trainer()
    dataset, _ = train_lib._dataset(config, 'train', config.batch_size, skip_batches=0)
    rows = []
    for step, x in zip(range(1, steps + 1), dataset):
        z = losses.encode(tr.encoder, x, False)[0].numpy()
        norms = np.linalg.norm(z, axis=-1)
        out = {k: float(v) for k, v in tr.train_step(x).items()}
        rows.append({'step': step, 'z_norm_mean': float(norms.mean()),
                     'z_norm_max': float(norms.max()), **out})
        if not out.pop('finite'):
            break
    return rows


def main(argv):
    del argv
    config = study_run(FLAGS.method, FLAGS.seed, FLAGS.width, FLAGS.flags)
    print(f'machine: {device_info.describe()}, TF {tf.__version__}')
    print(f'{FLAGS.method} seed {FLAGS.seed} width {FLAGS.width}, init_steps {config.init_steps}, '
          f'lr {config.lr}, z_dim {config.z_dim} (N(0, I) codes: |z| ~ {math.sqrt(config.z_dim):.2f})'
          + (f", flags {' '.join(FLAGS.flags)}" if FLAGS.flags else ''))
    rows = trace(config, FLAGS.steps)
    last = rows[-1]['step']
    diverged = rows[-1]['finite'] == 0
    shown = [r for r in rows if r['step'] % FLAGS.every == 0
             or config.init_steps - 2 <= r['step'] <= config.init_steps + 10
             or (diverged and r['step'] > last - 15) or r['step'] == last]
    names = [k for k in rows[-1] if k not in ('step', 'finite')]
    print('step ' + ' '.join(f'{n:>13s}' for n in names))
    for r in shown:
        print(f"{r['step']:4d} " + ' '.join(f'{r.get(n, float("nan")):13.5g}' for n in names))
    print(f'diverged at step {last}: non-finite ' + ', '.join(
        k for k in names if not math.isfinite(rows[-1].get(k, 0.0))) if diverged
          else f'finished {last} steps, every one finite')
    if FLAGS.json:
        with open(FLAGS.json, 'w') as f:
            json.dump({'config': config.to_args(), 'rows': rows}, f)


if __name__ == '__main__':
    app.run(main)
