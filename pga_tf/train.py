"""Trains a PGA method with the paper's settings.

  python -m pga_tf.train --dataset=mnist_5k --model=lpga
  python -m pga_tf.train --dataset=celeba --model=vpga --data_dir=~/tensorflow_datasets
  python -m pga_tf.train --dataset=folder --data_dir=img_align_celeba --model=lpga
  python -m pga_tf.train --run_dir=runs/mnist_5k_vpga_20261125-101500   # resume
  python -m pga_tf.train --run_dir=runs/mnist_5k_vpga_20261125-101500 --train_steps=4000

A new run starts from the preset of --dataset/--model (flags/<dataset>_<model>.cfg); an
existing --run_dir resumes with its own settings (its flags.cfg). Flags on the command line win,
except those that fix a run's networks and noise, which a resume refuses. Watch with
`tensorboard --logdir runs`.
"""
import datetime
import os
import sys

from absl import app, logging

from pga_tf.training import cli_flags, data, distribute, train_lib
from pga_tf.training import config as config_lib
from pga_tf.training.config import Config, ConfigError
from pga_tf.evaluation.features import FeaturesUnavailable

FLAGS = cli_flags.FLAGS
config_lib.define_flags(FLAGS)
cli_flags.define('run_dir', 'preset_dir')


def default_run_dir(config):
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('runs', f'{config.dataset}_{config.model}_{stamp}')


def main(argv):
    if len(argv) > 1:
        cli_flags.fail(argv, f'unexpected arguments: {" ".join(argv[1:])} (flags are --name=value)')
    config = Config.from_flags(FLAGS)
    if config.cpu_replicas > 1:
        distribute.split_cpu(config.cpu_replicas)  # before TensorFlow starts its devices
    try:
        # Before anything else runs: collective ops are configured at program start.
        strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
        train_lib.train(config, FLAGS.run_dir or default_run_dir(config), strategy)
    except (data.DataError, ConfigError, FeaturesUnavailable, distribute.StrategyError) as err:
        print(f'pga_tf.train: error: {err}', file=sys.stderr)
        sys.exit(2)
    except train_lib.DivergenceError as err:
        print(f'pga_tf.train: diverged: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=cli_flags.parse_train)
