"""Exports the generator of a run as a versioned SavedModel for TF Serving.

  python -m pga_tf.export --run_dir=runs/mnist_5k_vpga_20261125-101500 --export_dir=exports/pga_mnist

writes exports/pga_mnist/<next version>/ (atomically) and exports/pga_mnist/models.config.
The decoder is the generator at inference (pga_tf.core.generator), as in the run's grids and
evaluations; with batch norm, the encoder's statistics are recomputed on training images. When
the training images can be read, the Gaussian mixture of their codes (the run folder's
gmm_<step>.npz, fitted with the checkpoint's encoder as `pga_tf.evaluate --sampler=gmm` fits it)
is exported as the `sample_gmm` signature. Each version holds a model card (model_card.md and
model_card.json: method, data, settings, step, the run's evaluations at that step, intended use
and limits); `pga_tf.sample --card` prints it. With --tflite, the version also holds
decoder.tflite (z -> uint8 images) and encoder.tflite (uint8 images -> z), LiteRT models
converted from the serving_default and encode signatures.
"""
import sys

from absl import app, flags, logging

from pga_tf.core import generator, losses
from pga_tf.evaluation import gmm
from pga_tf.serving import export_lib, model_card
from pga_tf.training import cli_flags, data, run_folder
from pga_tf.training.config import ConfigError

FLAGS = cli_flags.FLAGS
cli_flags.define('run_dir', 'checkpoint', 'export_dir', 'version')
flags.DEFINE_bool('tflite', False, 'Also write the generator and the encoder as LiteRT models '
                  '(decoder.tflite, encoder.tflite) in the version folder.')
flags.DEFINE_integer('bn_batches', 50, 'Batches of 256 training images behind the encoder\'s '
                     'batch-norm statistics.', lower_bound=1)


def _recompute_encoder_batch_norm(config, encoder):
    if not losses.has_batch_norm(encoder):
        return
    try:
        images, _ = data.load_dataset(config.dataset, 'train', 256, config.data_dir or None,
                                      **config.image_args())
        generator.recompute_batch_norm(encoder, images.take(FLAGS.bn_batches))
        logging.info('Batch-norm statistics recomputed over %d batches', FLAGS.bn_batches)
    except data.DataError as err:
        logging.warning('Encoder batch-norm statistics kept (no training data: %s)', err)


def _mixture(folder, run):
    from pga_tf.evaluation import evaluator

    try:
        return evaluator.fitted_mixture(folder, run)
    except (data.DataError, gmm.GMMError) as err:
        logging.warning('No sample_gmm signature: the codes\' mixture cannot be fitted (%s)', err)
        return None


def main(argv):
    if len(argv) > 1 or not FLAGS.run_dir or not FLAGS.export_dir:
        print('pga_tf.export: error: give --run_dir and --export_dir, and no other arguments',
              file=sys.stderr)
        sys.exit(2)
    try:
        export_lib.check_model_folder(FLAGS.export_dir)
        if FLAGS.version:  # refused before any work (the mixture's fit writes into the run)
            export_lib.check_new_version(FLAGS.export_dir, FLAGS.version)
        folder = run_folder.RunFolder(FLAGS.run_dir)
        run = folder.load(FLAGS.checkpoint)
        config, encoder, decoder, step = run.config, run.encoder, run.decoder, run.step
        mixture = _mixture(folder, run)  # before the encoder's statistics change
        _recompute_encoder_batch_norm(config, encoder)
        card = model_card.build(config, step, folder.path, signatures=())
        path = export_lib.export(encoder, decoder, FLAGS.export_dir, FLAGS.version or None,
                                 mixture, card, FLAGS.tflite)
    except (ConfigError, export_lib.ExportError) as err:
        print(f'pga_tf.export: error: {err}', file=sys.stderr)
        sys.exit(2)
    print(f'Exported {config.model} ({config.dataset}, step {step}) to {path}')


if __name__ == '__main__':
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=cli_flags.parse)
