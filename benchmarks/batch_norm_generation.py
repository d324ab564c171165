"""How a batch-norm decoder should generate: measured on mnist_5k runs with and without --bn.

  python benchmarks/batch_norm_generation.py --model=vpga --train_steps=600 --width=0.5

Trains the mnist_5k preset with --bn (and, for reference, without), then draws the same 1,000
z ~ N(0, I) four ways and reports each one's mean pixel and offline Fréchet distance (classifier
features, against 4,500 training digits; lower is better):

  moving      inference mode with the moving averages the training left
  batch-100   training-mode batch statistics over batches of 100 prior samples (the original
              code draws every sample this way)
  batch-10    the same over batches of 10 (a small serving batch)
  prior       inference mode after the statistics are recomputed on prior samples
              (pga_tf.generator: what the grids, evaluate, export and sample use)

and how far each z's image moves when its batch changes (max |Δ| over pixels, /255). A
measurement, not a test; it names the machine.
"""
import dataclasses
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from pga_tf import cli_flags, config as config_lib, data, device_info, generator, train_lib
from pga_tf.evaluation import evaluator, fid

config_lib.define_flags(flags.FLAGS, ('model', 'train_steps', 'width', 'seed'))
flags.DEFINE_integer('num', 1000, 'Samples per generation mode.')
flags.DEFINE_string('out_dir', '', 'Where the runs go (default: a temporary folder).')
FLAGS = flags.FLAGS


def _batch_statistics(decoder, z, batch):
    """g(z) with each batch's own statistics, leaving the moving averages as they are."""
    weights = [v.value for v in decoder.trainable_variables]
    state = [v.value for v in decoder.non_trainable_variables]
    return tf.concat([decoder.stateless_call(weights, state, z[i:i + batch], training=True)[0]
                      for i in range(0, len(z), batch)], 0)


def measure(config, run_dir, features, reference):
    start = time.time()
    tr = train_lib.train(config, run_dir)
    minutes = (time.time() - start) / 60
    z = tf.random.stateless_normal([FLAGS.num, config.z_dim], seed=[FLAGS.seed, 7])
    images = {'moving': tr.decoder(z, training=False)}
    if config.bn:
        images['batch-100'] = _batch_statistics(tr.decoder, z, 100)
        images['batch-10'] = _batch_statistics(tr.decoder, z, 10)
    generator.prepare(tr.decoder)
    images['prior'] = generator.generate(tr.decoder, z)
    rows = {}
    for mode, x in images.items():
        mu, sigma, _ = fid.activation_statistics(features, [x])
        rows[mode] = (float(tf.reduce_mean(data.to_uint8(x))),
                      fid.frechet_distance(mu, sigma, reference[0], reference[1]))
    if config.bn:  # the same z in another batch
        shuffled = _batch_statistics(tr.decoder, tf.reverse(z, [0]), 100)
        rows['batch-100'] += (float(tf.reduce_max(tf.abs(data.to_uint8(tf.reverse(shuffled, [0]))
                                                         - data.to_uint8(images['batch-100'])))),)
    return rows, minutes


def main(argv):
    del argv
    root = FLAGS.out_dir or tempfile.mkdtemp()
    stats_dir = os.path.join(root, 'stats')
    features = evaluator.make_features('classifier', 'mnist_5k', stats_dir)
    base = dataclasses.replace(cli_flags.read_preset('mnist_5k', FLAGS.model),
                               train_steps=FLAGS.train_steps, width=FLAGS.width, seed=FLAGS.seed,
                               sample_every=FLAGS.train_steps, checkpoint_every=FLAGS.train_steps,
                               log_every=100)
    reference = evaluator.real_stats(features, base, stats_dir, 4500)
    print(f'{device_info.describe()}; {FLAGS.model}, {FLAGS.train_steps} steps, width {FLAGS.width}, '
          f'seed {FLAGS.seed}, {FLAGS.num} samples')
    print('| run | generation | mean pixel (0-255) | offline distance | batch dependence (max |Δ|) |')
    print('|---|---|---|---|---|')
    for bn in (False, True):
        config = dataclasses.replace(base, bn=bn)
        run_dir = os.path.join(root, f'{FLAGS.model}_{"bn" if bn else "nobn"}_{FLAGS.seed}')
        rows, minutes = measure(config, run_dir, features, reference)
        for mode, values in rows.items():
            extra = f'{values[2]:.0f}' if len(values) > 2 else ''
            print(f'| {"--bn" if bn else "no bn"} ({minutes:.1f} min) | {mode} | {values[0]:.1f} | '
                  f'{values[1]:.2f} | {extra} |')


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)
    app.run(main)
