"""Every command-line flag of pga_tf, and the parser that loads a paper preset first.

`parse_with_preset` reads `--dataset` and `--model`, then parses
`--flagfile=<presets>/<dataset>.cfg --flagfile=<presets>/<dataset>_<model>.cfg` followed by
the user's own arguments, so anything given on the command line wins over the preset.
"""
import os
import pathlib
import sys

from absl import flags

from pga_tf import data, distribute, losses, models, trainer
from pga_tf.config import Config

FLAGS = flags.FLAGS
_DEFAULT = Config()

# Data.
flags.DEFINE_enum('dataset', _DEFAULT.dataset, sorted(data.DATASETS), 'Dataset; picks the preset with --model.')
flags.DEFINE_string('data_dir', _DEFAULT.data_dir, 'tfds data_dir, or the image folder of --dataset=folder.')
flags.DEFINE_integer('crop', _DEFAULT.crop, 'folder: central square crop before resizing (0: largest).', lower_bound=0)
flags.DEFINE_integer('channels', _DEFAULT.channels, 'folder: image channels (1 or 3).', lower_bound=1, upper_bound=3)
# Model.
flags.DEFINE_enum('model', _DEFAULT.model, sorted(losses.METHODS), 'Method: lpga, vpga, lvpga, vae or ae.')
flags.DEFINE_enum('arch', _DEFAULT.arch, sorted(models.ARCHITECTURES), 'Encoder/decoder architecture.')
flags.DEFINE_integer('z_dim', _DEFAULT.z_dim, 'Latent dimension.', lower_bound=1)
flags.DEFINE_boolean('bn', _DEFAULT.bn, 'Batch normalisation where the original uses it.')
flags.DEFINE_float('width', _DEFAULT.width, 'Multiplier of the original layer widths.', lower_bound=1e-3)
flags.DEFINE_enum('precision', _DEFAULT.precision, models.PRECISIONS,
                  'Compute dtype policy; the losses stay float32.')
# Loss coefficients: the original code's names.
flags.DEFINE_float('zn_rec', _DEFAULT.zn_rec, 'alpha: latent reconstruction of z ~ N(0, I).', lower_bound=0)
flags.DEFINE_float('zh_rec', _DEFAULT.zh_rec, 'beta: latent reconstruction of encoded data.', lower_bound=0)
flags.DEFINE_float('nll', _DEFAULT.nll, 'gamma: maximum-likelihood terms (lpga, lvpga).', lower_bound=0)
flags.DEFINE_float('vrec', _DEFAULT.vrec, 'VPGA latent term (vpga, lvpga).', lower_bound=0)
flags.DEFINE_float('vkld', _DEFAULT.vkld, 'KL weight (vpga, lvpga, and the vae baseline).', lower_bound=0)
flags.DEFINE_integer('init_steps', _DEFAULT.init_steps, 'Steps with every coefficient at 0.', lower_bound=0)
# Optimisation.
flags.DEFINE_enum('optimizer', _DEFAULT.optimizer, trainer.OPTIMIZERS, 'sgd (momentum 0.9, the paper) or adam.')
flags.DEFINE_float('lr', _DEFAULT.lr, 'Learning rate.', lower_bound=0)
flags.DEFINE_integer('batch_size', _DEFAULT.batch_size, 'Images per step.', lower_bound=1)
flags.DEFINE_integer('epochs', _DEFAULT.epochs, 'Training length in epochs.', lower_bound=1)
flags.DEFINE_integer('train_steps', _DEFAULT.train_steps, 'Training length in steps; > 0 overrides --epochs.', lower_bound=0)
# Run.
flags.DEFINE_string('run_dir', None, 'Run folder (default runs/<dataset>_<model>_<time>); an existing one resumes.')
flags.DEFINE_integer('seed', _DEFAULT.seed, 'Seed of weights, noise and data order.')
flags.DEFINE_enum('jit_compile', _DEFAULT.jit_compile, ['auto', 'on', 'off'], 'XLA for the step; auto: on with a GPU.')
flags.DEFINE_integer('log_every', _DEFAULT.log_every, 'Steps between scalars and console lines.', lower_bound=1)
flags.DEFINE_integer('sample_every', _DEFAULT.sample_every, 'Steps between sample grids.', lower_bound=1)
flags.DEFINE_integer('checkpoint_every', _DEFAULT.checkpoint_every, 'Steps between checkpoints.', lower_bound=1)
flags.DEFINE_integer('max_to_keep', _DEFAULT.max_to_keep, 'Checkpoints kept.', lower_bound=1)
flags.DEFINE_boolean('deterministic', _DEFAULT.deterministic, 'TensorFlow op determinism (slower).')
flags.DEFINE_enum('strategy', _DEFAULT.strategy, distribute.STRATEGIES,
                  'tf.distribute strategy; --batch_size is per replica. multi_worker reads TF_CONFIG.')
flags.DEFINE_integer('cpu_replicas', _DEFAULT.cpu_replicas,
                     'With --strategy=mirrored: split the CPU into this many devices (tests a multi-device run without GPUs).', lower_bound=0)
flags.DEFINE_enum('on_nonfinite', _DEFAULT.on_nonfinite, ['stop', 'skip'],
                  'A non-finite loss or gradient: stop (the last checkpoint is kept), or skip the step.')
flags.DEFINE_integer('max_skips', _DEFAULT.max_skips, 'With --on_nonfinite=skip: stop after this many skipped steps.', lower_bound=0)
# Evaluation (in the training loop and in pga_tf.evaluate).
flags.DEFINE_integer('eval_every', _DEFAULT.eval_every, 'Steps between in-loop Fréchet distances (0: off).', lower_bound=0)
flags.DEFINE_integer('eval_samples', _DEFAULT.eval_samples, 'Samples of an in-loop distance.', lower_bound=2)
flags.DEFINE_enum('features', _DEFAULT.features, ['auto', 'classifier', 'inception'],
                  'Features of the distance; auto: the offline classifier for labelled datasets, else Inception.')
flags.DEFINE_string('inception_path', _DEFAULT.inception_path, 'Local Inception SavedModel folder or TF Hub handle (default: TF Hub).')
flags.DEFINE_string('stats_dir', _DEFAULT.stats_dir, 'Cache of real-data statistics and classifiers (default ~/.cache/pga_tf).')
# pga_tf.evaluate only.
flags.DEFINE_string('checkpoint', None, 'Checkpoint path (default: the latest of the run).')
flags.DEFINE_integer('num_samples', 5000, 'Samples per distance (the paper: 5,000).', lower_bound=2)
flags.DEFINE_integer('repeats', 3, 'Independent sample sets, for mean ± std.', lower_bound=1)
flags.DEFINE_integer('real_samples', 10_000, 'Training images behind the real statistics.', lower_bound=2)
flags.DEFINE_integer('eval_batch_size', 500, 'Images per feature batch.', lower_bound=1)
# pga_tf.export and pga_tf.sample.
flags.DEFINE_string('export_dir', None, 'Model folder of versioned SavedModels (exports/<model_name>).')
flags.DEFINE_integer('version', 0, 'export: version number (0: the next free one); sample: 0 = the latest.', lower_bound=0)
flags.DEFINE_boolean('recompute_bn', True, 'export: recompute batch-norm statistics on the export\'s inputs.')
flags.DEFINE_integer('bn_batches', 50, 'export: batches for the batch-norm statistics.', lower_bound=1)
flags.DEFINE_integer('num', 64, 'sample: images (or interpolation rows).', lower_bound=1)
flags.DEFINE_enum('mode', 'sample', ['sample', 'interpolate'], 'sample: what to draw.')
flags.DEFINE_integer('interp_steps', 10, 'sample: images per interpolation row.', lower_bound=2)
flags.DEFINE_string('out', 'grid.png', 'sample: PNG file of the grid.')
flags.DEFINE_string('preset_dir', None, 'Folder of the preset flag files (default: the installed flags/).')


def preset_dir():
    """The flags/ folder: next to the package in a checkout, or where setup.py installed it."""
    for candidate in (pathlib.Path(__file__).resolve().parent.parent / 'flags',
                      pathlib.Path(sys.prefix) / 'pga_tf_flags'):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError('cannot find the preset flag files; pass --preset_dir')


def preset_files(dataset, model, directory=None):
    """The preset flag files of a dataset/model pair, in the order they are read."""
    directory = pathlib.Path(directory) if directory else preset_dir()
    return [directory / f'{dataset}.cfg', directory / f'{dataset}_{model}.cfg']


def parse_with_preset(argv):
    """absl `flags_parser`: the preset of --dataset/--model, then the command line.

    Bad flags end the program with one line on stderr and exit status 2.
    """
    try:
        FLAGS(argv, known_only=True)
        files = preset_files(FLAGS.dataset, FLAGS.model, FLAGS.preset_dir)
        for path in files:
            if not path.is_file():
                raise flags.Error(f'no preset {path}')
        FLAGS.unparse_flags()
        return FLAGS([argv[0], *(f'--flagfile={p}' for p in files), *argv[1:]])
    except (flags.Error, FileNotFoundError) as err:
        _fail(argv, err)


def parse(argv):
    """absl `flags_parser` with no preset (evaluate, export); bad flags exit 2."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _fail(argv, err)


def _fail(argv, err):
    print(f'{os.path.basename(argv[0])}: error: {err}', file=sys.stderr)
    sys.exit(2)
