"""How many seeds of a preset train to their last step: finished, diverged (where), distance.

  python benchmarks/seeds.py --methods=lpga,lvpga --seeds=10 --widths=1,0.5
  python benchmarks/seeds.py --methods=lpga --seeds=5 --widths=0.5 --flags=--ramp_steps=200
  python benchmarks/seeds.py --methods=lpga --seeds=10 --first_seed=5 --widths=1   # seeds 5-9

Trains each method's mnist_5k preset (with --flags on top) for each width and seed, with the
divergence guard at its default (`--on_nonfinite=stop`: a run with one non-finite step stops and
counts as diverged), then measures the finished runs' offline distance (the shipped digits
classifier's features, samples from the prior; pga_tf.evaluate's protocol). Runs are kept in
--seeds_dir: an interrupted benchmark reuses the finished ones. Prints one line per run and a
summary per method and width, naming the machine. It is a benchmark, not a test.
"""
import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from pga_tf import study
from pga_tf.training import train_lib
from pga_tf.utils import device_info, paths
from pga_tf.evaluation import evaluator

# --methods and --seeds (0, 1, ...) are pga_tf.study's flags.
flags.DEFINE_list('widths', ['1', '0.5'], 'Width multipliers.')
flags.DEFINE_integer('first_seed', 0, 'Seeds from this one to --seeds - 1: split them between '
                     'processes or machines that share --seeds_dir.', lower_bound=0)
flags.DEFINE_integer('steps', 2000, 'Steps per run (the preset\'s 2,000).', lower_bound=1)
flags.DEFINE_list('flags', [], 'Training flags on top of the preset, e.g. --flags=--ramp_steps=200.')
flags.DEFINE_integer('samples', 2000, 'Generated images per distance.', lower_bound=10)
flags.DEFINE_string('seeds_dir', '/tmp/pga_seeds', 'Folder of the runs.')
FLAGS = flags.FLAGS


def seed_config(method, seed, width, steps, extra):
    """The preset of `method` at `width` and `seed`, `extra` flags on top, the guard at stop."""
    return study.study_config(method, seed, steps, width).with_flags(['--on_nonfinite=stop', *extra])


def run_one(config, run_dir, stats_dir):
    result_path = os.path.join(run_dir, 'seeds.json')
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    try:
        tr = train_lib.train(config, run_dir)
        features = evaluator.make_features('classifier', 'mnist_5k', stats_dir)
        evaluation = evaluator.evaluate_models(tr.encoder, tr.decoder, config, features, stats_dir,
                                               FLAGS.samples, 1, seed=1000 * config.seed)
        result = {'finished': True, 'fid': evaluation['fid']['mean']}
    except train_lib.DivergenceError as err:
        result = {'finished': False, 'diverged': str(err).split(':')[0]}
    paths.write_atomic(result_path, json.dumps(result))
    return result


def main(argv):
    del argv
    stats_dir = evaluator.default_stats_dir()
    print(f'machine: {device_info.describe()}, TF {tf.__version__}; {FLAGS.steps} steps; '
          f"flags: {' '.join(FLAGS.flags) or 'the presets'}")
    summary = []
    for method in FLAGS.methods:
        for width in map(float, FLAGS.widths):
            results = []
            for seed in range(FLAGS.first_seed, FLAGS.seeds):
                config = seed_config(method, seed, width, FLAGS.steps, FLAGS.flags)
                tag = '_'.join([method, f'w{width:g}', f'seed{seed}',
                                *(f.strip('-').replace('=', '') for f in FLAGS.flags)])
                result = run_one(config, os.path.join(FLAGS.seeds_dir, tag), stats_dir)
                results.append(result)
                print(f'{method} width {width:g} seed {seed}: ' + (
                    f"finished, distance {result['fid']:.2f}" if result['finished']
                    else f"diverged at {result['diverged']}"), flush=True)
            fids = [r['fid'] for r in results if r['finished']]
            summary.append(f'{method} width {width:g}: {len(fids)} of {len(results)} finished'
                           + (f', distance {np.mean(fids):.2f} ± {np.std(fids):.2f}' if fids else '')
                           + ''.join(f"; seed {s} diverged at {r['diverged']}"
                                     for s, r in enumerate(results, FLAGS.first_seed)
                                     if not r['finished']))
    print('\n'.join(summary))


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)
    app.run(main)
