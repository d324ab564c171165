"""Command-line plumbing shared by the pga_tf commands: their common flags, presets, parsers.

Each command defines only the flags it reads (`define`, and `config.define_flags` for
training settings), so `--helpfull` lists those and a flag means one thing everywhere.

`parse_train` gives `python -m pga_tf.train` its layers: a new run starts from the preset of
--dataset/--model (flags/<dataset>_<model>.cfg, which includes its parents); an existing
--run_dir starts from the run's own flags.cfg. The command line comes last and wins.
"""
import os
import pathlib
import sys

from absl import flags

from pga_tf.training import config as config_lib
from pga_tf.training import run_folder

FLAGS = flags.FLAGS

# The flags that several commands share, each declared once: (definer, default, help, bounds).
_COMMON = {
    'run_dir': (flags.DEFINE_string, None,
                'Run folder (train: default runs/<dataset>_<model>_<time>; an existing one resumes).', {}),
    'checkpoint': (flags.DEFINE_string, None,
                   'Checkpoint path (default: the newest of the run that restores).', {}),
    'export_dir': (flags.DEFINE_string, None,
                   'Model folder of versioned SavedModels (exports/<model_name>), or one version.', {}),
    'version': (flags.DEFINE_integer, 0,
                'SavedModel version folder (export: default the next free one; sample: the latest).',
                dict(lower_bound=0)),
    'sample_seed': (flags.DEFINE_integer, 0, 'Seed of the latent samples drawn from N(0, I).', {}),
    'preset_dir': (flags.DEFINE_string, None,
                   'Folder of the preset flag files (default: the installed flags/).', {}),
}

# The preset whose shape each architecture is measured with (pga_tf.bench, benchmarks/).
PRESET_DATASET = {'conv_mnist': 'mnist', 'conv_32': 'cifar10', 'resnet_32': 'cifar10',
                  'conv_64': 'celeba'}


def define(*names):
    """Defines the shared flags `names` (once per process)."""
    for name in names:
        if name not in FLAGS:
            definer, default, help_text, bounds = _COMMON[name]
            definer(name, default, help_text, **bounds)


def preset_dir():
    """The flags/ folder: next to the package in a checkout, or where setup.py installed it."""
    for candidate in (pathlib.Path(__file__).resolve().parents[2] / 'flags',
                      pathlib.Path(sys.prefix) / 'pga_tf_flags'):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError('cannot find the preset flag files; pass --preset_dir')


def preset_file(dataset, model, directory=None):
    """The preset of a dataset/model pair: flags/<dataset>_<model>.cfg."""
    return pathlib.Path(directory or preset_dir()) / f'{dataset}_{model}.cfg'


def read_preset(dataset, model, directory=None):
    """The Config of a preset (its nested --flagfile= lines are relative to its folder)."""
    path = preset_file(dataset, model, directory)
    if not path.is_file():
        raise config_lib.ConfigError(f'no preset {path}')
    return config_lib.read_flagfiles(path, args=[f'--dataset={dataset}', f'--model={model}'],
                                     directory=path.parent)


def parse_train(argv):
    """absl `flags_parser` of training: the base layer (a preset, or the run's own flags.cfg),
    then the command line. Bad flags end the program with one line and exit status 2."""
    try:
        FLAGS(argv, known_only=True)
        run = run_folder.RunFolder(FLAGS.run_dir) if FLAGS.run_dir else None
        if run is not None and run.has_config():
            base = run.read_config()
            for name in ('dataset', 'model'):
                if FLAGS[name].present and FLAGS[name].value != getattr(base, name):
                    raise config_lib.ConfigError(
                        f'--{name}={FLAGS[name].value} but {run.path} is a '
                        f'{base.dataset}/{base.model} run; omit --{name} to resume it')
        else:
            base = read_preset(FLAGS.dataset, FLAGS.model, FLAGS.preset_dir)
        FLAGS.unparse_flags()
        return FLAGS([argv[0], *base.to_args(), *argv[1:]])
    except (flags.Error, config_lib.ConfigError, run_folder.RunError, FileNotFoundError) as err:
        fail(argv, err)


def parse(argv):
    """absl `flags_parser` with no preset (evaluate, export, sample); bad flags exit 2."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        fail(argv, err)


def fail(argv, err):
    """One line on stderr naming the program, and exit status 2."""
    print(f'{os.path.basename(argv[0])}: error: {err}', file=sys.stderr)
    sys.exit(2)
