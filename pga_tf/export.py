"""Exports the generator of a run as a versioned SavedModel for TF Serving.

  python -m pga_tf.export --run_dir=runs/mnist_5k_vpga_20261125-101500 --export_dir=exports/pga_mnist

writes exports/pga_mnist/<next version>/ (atomically) and exports/pga_mnist/models.config.
With batch norm, the moving statistics are first recomputed on the export's own inputs
(--recompute_bn): prior samples for the decoder, training images for the encoder.
"""
import sys

from absl import app, logging

from pga_tf import cli_flags, data, export_lib, train_lib
from pga_tf.config import ConfigError

FLAGS = cli_flags.FLAGS


def _recompute_batch_norm(config, encoder, decoder):
    used = export_lib.recompute_batch_norm(
        decoder, export_lib.prior_batches(config.z_dim, FLAGS.bn_batches))
    if not used:
        return
    try:
        size, channels = config.image_shape()
        images, _ = data.load_dataset(config.dataset, 'train', 256, config.data_dir or None,
                                      size=size, channels=channels, crop=config.crop)
        export_lib.recompute_batch_norm(encoder, images.take(FLAGS.bn_batches))
        logging.info('Batch-norm statistics recomputed over %d batches', FLAGS.bn_batches)
    except data.DataError as err:
        logging.warning('Encoder batch-norm statistics kept (no training data: %s)', err)


def main(argv):
    if len(argv) > 1 or not FLAGS.run_dir or not FLAGS.export_dir:
        print('pga_tf.export: error: give --run_dir and --export_dir, and no other arguments',
              file=sys.stderr)
        sys.exit(2)
    try:
        config, encoder, decoder, step, _ = train_lib.load_run(FLAGS.run_dir, FLAGS.checkpoint)
        if FLAGS.recompute_bn:
            _recompute_batch_norm(config, encoder, decoder)
        path = export_lib.export(encoder, decoder, FLAGS.export_dir, FLAGS.version or None)
    except (ConfigError, export_lib.ExportError) as err:
        print(f'pga_tf.export: error: {err}', file=sys.stderr)
        sys.exit(2)
    print(f'Exported {config.model} ({config.dataset}, step {step}) to {path}')


if __name__ == '__main__':
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=cli_flags.parse)
