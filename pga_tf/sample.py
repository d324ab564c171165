"""Draws a grid from an exported generator, with nothing but the SavedModel.

  python -m pga_tf.sample --export_dir=exports/pga_mnist --num=64 --sample_seed=0 --out=grid.png
  python -m pga_tf.sample --export_dir=exports/pga_mnist --sampler=gmm
  python -m pga_tf.sample --export_dir=exports/pga_mnist --card
  python -m pga_tf.sample --export_dir=exports/pga_mnist --mode=interpolate --num=8 --interp_steps=10
  python -m pga_tf.sample --export_dir=exports/pga_mnist --mode=traverse --num=8 --interp_steps=9

--export_dir is a model folder (the latest version is used, or --version) or a version folder.
"""
import math
import os
import sys

import tensorflow as tf
from absl import app, flags

from pga_tf.core import generator
from pga_tf.evaluation import gmm
from pga_tf.serving import export_lib, model_card
from pga_tf.training import cli_flags, summaries
from pga_tf.utils import paths
from pga_tf.training.config import ConfigError

FLAGS = cli_flags.FLAGS
cli_flags.define('export_dir', 'version', 'sample_seed')
flags.DEFINE_integer('num', 64, 'Images (or interpolation rows, or traversed dimensions).',
                     lower_bound=1, upper_bound=4096)
flags.DEFINE_enum('mode', 'sample', ['sample', 'interpolate', 'traverse'], 'What to draw: '
                  'samples, interpolation rows, or latent traversals (a row per dimension, the '
                  'most used first, around a prior sample).')
flags.DEFINE_integer('interp_steps', 10, 'Images per interpolation or traversal row.', lower_bound=2,
                     upper_bound=256)
flags.DEFINE_string('out', 'grid.png', 'PNG file of the grid.')
flags.DEFINE_bool('card', False, "Print the export's model card instead of drawing.")
flags.DEFINE_bool('spherical', False, '--mode=interpolate along great circles (slerp), not lines.')
flags.DEFINE_enum('sampler', 'prior', gmm.SAMPLERS, 'Codes of --mode=sample: prior N(0, I) '
                  '(signature sample), or the mixture of training codes (sample_gmm).')


def version_dir(export_dir, version=0):
    """The SavedModel folder: `export_dir` itself, or its version `version` (0: the latest)."""
    if os.path.exists(os.path.join(export_dir, 'saved_model.pb')):
        return export_dir
    versions = export_lib.versions(export_dir)
    if not versions or (version and version not in versions):
        raise export_lib.ExportError(
            f'no SavedModel version {version or ""} in {export_dir}'.replace('  ', ' '))
    return os.path.join(export_dir, str(version or versions[-1]))


def load(path):
    """The exported generator at `path`, with the signatures `draw` uses."""
    try:
        model = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise export_lib.ExportError(f'{path} cannot be loaded: {reason}') from None
    missing = [n for n in ('sample', 'interpolate', 'serving_default') if n not in model.signatures]
    if missing:
        raise export_lib.ExportError(f'{path} has no {missing[0]!r} signature: not a pga_tf export')
    return model


def draw(model, mode, num, seed, steps, sampler='prior', spherical=False):
    """uint8 grid of `num` samples (codes from the prior or the export's mixture), or `num`
    interpolation rows of `steps` images (along lines, or `spherical`ly), or traversal rows of
    the `num` most used dimensions.

    Raises:
      ExportError: the export lacks the signature (`sample_gmm`, `traverse`) that this needs.
    """
    if mode == 'sample':
        name = 'sample' if sampler == 'prior' else 'sample_gmm'
        if name not in model.signatures:
            raise export_lib.ExportError(f'this export has no {name!r} signature (exported by an '
                                         'earlier pga_tf, or without training data to fit the '
                                         'mixture to)')
        images = model.signatures[name](num_samples=tf.constant(num, tf.int32),
                                        seed=tf.constant(seed, tf.int64))['images'].numpy()
        return summaries.uint8_grid(images, int(math.ceil(math.sqrt(num))))
    z_dim = model.signatures['serving_default'].structured_input_signature[1]['z'].shape[-1]
    if mode == 'traverse':
        if 'traverse' not in model.signatures:
            raise export_lib.ExportError("this export has no 'traverse' signature (exported by an "
                                         'earlier pga_tf)')
        z = tf.random.stateless_normal([z_dim], seed=[seed, 2])
        rows = model.signatures['traverse'](z=z, dims=tf.constant(num, tf.int32),
                                            steps=tf.constant(steps, tf.int32))['images'].numpy()
        return summaries.uint8_grid(rows.reshape(-1, *rows.shape[2:]), steps)
    z = tf.random.stateless_normal([2, num, z_dim], seed=[seed, 1])
    if spherical:  # the export interpolates along lines; the circle's codes go through g(z)
        codes = generator.interpolation_codes(z[0], z[1], steps, spherical=True)
        images = model.signatures['serving_default'](z=tf.reshape(codes, [-1, z_dim]))['images']
        return summaries.uint8_grid(images.numpy(), steps)
    rows = model.signatures['interpolate'](z_start=z[0], z_end=z[1],
                                           steps=tf.constant(steps, tf.int32))['images'].numpy()
    return summaries.uint8_grid(rows.reshape(-1, *rows.shape[2:]), steps)


def card(path):
    """The model card (Markdown) of the version folder `path`.

    Raises:
      ExportError: the version has none (exported by an earlier pga_tf).
    """
    try:
        with open(os.path.join(path, model_card.MARKDOWN_NAME)) as f:
            return f.read()
    except OSError:
        raise export_lib.ExportError(f'{path} has no {model_card.MARKDOWN_NAME} (exported by an '
                                     'earlier pga_tf)') from None


def main(argv):
    if len(argv) > 1 or not FLAGS.export_dir:
        print('pga_tf.sample: error: give --export_dir and no other arguments', file=sys.stderr)
        sys.exit(2)
    try:
        if not FLAGS.card:
            paths.output_file('out', FLAGS.out, '.png')
        path = version_dir(FLAGS.export_dir, FLAGS.version)
        if FLAGS.card:
            print(card(path))
            return
        model = load(path)
        grid = draw(model, FLAGS.mode, FLAGS.num, FLAGS.sample_seed, FLAGS.interp_steps,
                    FLAGS.sampler, FLAGS.spherical)
    except (ConfigError, export_lib.ExportError) as err:
        print(f'pga_tf.sample: error: {err}', file=sys.stderr)
        sys.exit(2)
    summaries.write_png(grid, FLAGS.out)
    print(f'{FLAGS.out}: {grid.shape[1]}x{grid.shape[0]} from {path}')


if __name__ == '__main__':
    app.run(main, flags_parser=cli_flags.parse)
