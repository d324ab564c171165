"""Fréchet distances of a trained run: samples from N(0, I), and reconstructions.

  python -m pga_tf.evaluate --run_dir=runs/mnist_5k_vpga_20261125-101500
  python -m pga_tf.evaluate --run_dir=runs/celeba_vpga_... --features=inception \\
      --inception_path=/data/tfgan_inception --num_samples=5000 --repeats=3

Prints mean ± std over --repeats sample sets (the paper's Table 1 protocol with Inception and
5,000 samples) and writes eval_<features>_<step>.json into the run folder. The offline
`classifier` features need no network; their numbers are not comparable to Inception FIDs.
"""
import json
import os
import sys

from absl import app, logging

from pga_tf import cli_flags, train_lib
from pga_tf.config import ConfigError
from pga_tf.evaluation import evaluator, fid
from pga_tf.evaluation.features import FeaturesUnavailable

FLAGS = cli_flags.FLAGS


def main(argv):
    if len(argv) > 1 or not FLAGS.run_dir:
        print('pga_tf.evaluate: error: give --run_dir=<a run folder> and no other arguments', file=sys.stderr)
        sys.exit(2)
    try:
        config, encoder, decoder, step, path = train_lib.load_run(FLAGS.run_dir, FLAGS.checkpoint)
        stats_dir = FLAGS.stats_dir or evaluator.default_stats_dir()
        features = evaluator.make_features(FLAGS.features, config.dataset, stats_dir,
                                           FLAGS.inception_path, config.data_dir or None)
        result = evaluator.evaluate_models(
            encoder, decoder, config, features, stats_dir, FLAGS.num_samples, FLAGS.repeats,
            FLAGS.eval_batch_size, FLAGS.real_samples, FLAGS.seed)
    except (ConfigError, FeaturesUnavailable, fid.StatsError) as err:
        print(f'pga_tf.evaluate: error: {err}', file=sys.stderr)
        sys.exit(2)
    result.update(run_dir=FLAGS.run_dir, checkpoint=path, step=step, features=features.key,
                  dataset=config.dataset, model=config.model,
                  classifier_accuracy=getattr(features, 'accuracy', None))
    out = os.path.join(FLAGS.run_dir, f'eval_{features.key}_{step}.json')
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    f_mean, f_std = result['fid']['mean'], result['fid']['std']
    print(f'{config.model} on {config.dataset} at step {step}, {features.key} features: '
          f'FID {f_mean:.2f} ± {f_std:.2f} ({FLAGS.repeats} x {FLAGS.num_samples} samples), '
          f'reconstruction FID {result["rec_fid"]:.2f} ({result["num_reconstructions"]} images). '
          f'Written to {out}')


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)
    app.run(main, flags_parser=cli_flags.parse)
