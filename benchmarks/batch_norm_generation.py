"""Batch norm and generation, measured on mnist_5k runs with and without --bn.

  python benchmarks/batch_norm_generation.py --model=vpga --train_steps=600 --width=0.5 --seeds=0,1,2
  python benchmarks/batch_norm_generation.py --lr=0.02 --seeds=0,1

For each seed, trains the mnist_5k preset without batch norm and with it, then draws the same 1,000 z ~ N(0, I) three ways and reports each one's mean pixel and
offline Fréchet distance (classifier features, against the 4,500 training digits; lower is
better; real digits have a mean pixel of about 33):

  moving      inference mode with the moving averages that training left
  batch-100   training-mode batch statistics over batches of 100 prior samples (the original
              code draws every sample this way)
  prior       inference mode after the statistics are recomputed on prior samples
              (pga_tf.core.generator: what the grids, evaluate, export and sample use)

with the run's last img_rec (mean of its last 100 steps), the mean pixel of its
reconstructions, and how far an image moves when its z is put in another batch of 100
(batch-100 only; max |Δ| in 0-255 levels). A measurement, not a test; it names the machine.
"""
import dataclasses
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from pga_tf.core import generator, losses
from pga_tf.training import cli_flags, config as config_lib, data
from pga_tf.utils import device_info
from pga_tf.evaluation import evaluator, fid

config_lib.define_flags(flags.FLAGS, ('model', 'train_steps', 'width', 'lr'))
flags.DEFINE_list('seeds', ['0'], 'Seeds of the runs.')
flags.DEFINE_integer('num', 1000, 'Samples per generation mode.')
flags.DEFINE_string('stats_dir', '', 'Cache of the classifier and statistics (default: a temporary folder).')
FLAGS = flags.FLAGS


def _batch_statistics(decoder, z, batch):
    """g(z) with each batch's own statistics, leaving the moving averages as they are."""
    weights = [v.value for v in decoder.trainable_variables]
    state = [v.value for v in decoder.non_trainable_variables]
    return tf.concat([decoder.stateless_call(weights, state, z[i:i + batch], training=True)[0]
                      for i in range(0, len(z), batch)], 0)


def train(config):
    """The training step alone (grids would prepare the decoder); returns the Trainer and the
    mean img_rec of the last 100 steps."""
    keras.utils.set_random_seed(config.seed)
    tr = config.build_trainer()
    batches, _ = data.load_dataset(config.dataset, 'train', config.batch_size, seed=config.seed,
                                   size=28, channels=1)
    img_rec = []
    for _, x in zip(range(config.train_steps), batches):
        img_rec = (img_rec + [tr.train_step(x)['img_rec']])[-100:]
    return tr, float(np.mean(img_rec))


def measure(config, features, reference):
    start = time.time()
    tr, img_rec = train(config)
    minutes = (time.time() - start) / 60
    held_out = data.to_float(data.mnist_5k_arrays('test')[:200])
    recs = tr.decoder(losses.encode(tr.encoder, held_out, False)[0], training=False)
    z = tf.random.stateless_normal([FLAGS.num, config.z_dim], seed=[config.seed, 7])
    images = {'moving': tr.decoder(z, training=False)}
    if config.bn:
        images['batch-100'] = _batch_statistics(tr.decoder, z, 100)
    generator.prepare(tr.decoder)
    images['prior'] = generator.generate(tr.decoder, z)
    rows = {}
    for mode, x in images.items():
        mu, sigma, _ = fid.activation_statistics(features, [x])
        rows[mode] = [float(tf.reduce_mean(data.to_uint8(x))),
                      fid.frechet_distance(mu, sigma, reference[0], reference[1]), '']
    if config.bn:  # the same z in another batch
        other = tf.reverse(_batch_statistics(tr.decoder, tf.reverse(z, [0]), 100), [0])
        moved = tf.abs(tf.cast(data.to_uint8(other), tf.int32)
                       - tf.cast(data.to_uint8(images['batch-100']), tf.int32))
        rows['batch-100'][2] = f'{int(tf.reduce_max(moved))}'
    return rows, minutes, img_rec, float(tf.reduce_mean(data.to_uint8(recs)))


def main(argv):
    del argv
    stats_dir = FLAGS.stats_dir or tempfile.mkdtemp()
    features = evaluator.make_features('classifier', 'mnist_5k', stats_dir)
    preset = cli_flags.read_preset('mnist_5k', FLAGS.model)
    # The preset's value of each of these flags unless it is given.
    base = dataclasses.replace(preset, **{name: FLAGS[name].value for name in ('train_steps', 'width', 'lr')
                                          if FLAGS[name].present})
    reference = evaluator.real_stats(features, base, stats_dir, 4500)
    print(f'{device_info.describe()}; {FLAGS.model}, {base.train_steps} steps, width {base.width}, '
          f'lr {base.lr}, {FLAGS.num} samples', flush=True)
    print('| seed | run | img_rec | reconstructions: mean pixel | generation | samples: mean pixel '
          '| offline distance | batch dependence |\n|---|---|---|---|---|---|---|---|', flush=True)
    for seed in map(int, FLAGS.seeds):
        for bn in (False, True):
            config = dataclasses.replace(base, seed=seed, bn=bn)
            rows, minutes, img_rec, rec_pixel = measure(config, features, reference)
            name = '--bn' if bn else 'no bn'
            for mode, (pixel, distance, moved) in rows.items():
                print(f'| {seed} | {name} ({minutes:.1f} min) | {img_rec:.3f} | {rec_pixel:.1f} | '
                      f'{mode} | {pixel:.1f} | {distance:.1f} | {moved} |', flush=True)


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)
    app.run(main)
