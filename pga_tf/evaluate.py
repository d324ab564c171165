"""Fréchet distances of a trained run: samples from N(0, I), and reconstructions.

  python -m pga_tf.evaluate --run_dir=runs/mnist_5k_vpga_20261125-101500
  python -m pga_tf.evaluate --run_dir=runs/mnist_5k_vpga_20261125-101500 --sampler=gmm
  python -m pga_tf.evaluate --run_dir=runs/celeba_vpga_... --features=inception \\
      --inception_path=/data/tfgan_inception --num_samples=5000 --repeats=3

Prints mean ± std over --repeats sample sets (the paper's Table 1 protocol with Inception and
5,000 samples) and writes eval_<features>[_gmm]_<step>_<num_samples>x<repeats>.json into the run
folder. --sampler=gmm draws the codes from a Gaussian mixture fitted to training codes (the
ex-post baseline; gmm_<step>.npz in the run folder). The offline `classifier` features need no
network; their numbers are not comparable to Inception FIDs.
"""
import json
import sys

import numpy as np
from absl import app, flags, logging

from pga_tf.evaluation import gmm
from pga_tf.training import cli_flags, config, data, run_folder, summaries
from pga_tf.utils import paths
from pga_tf.training.config import ConfigError
from pga_tf.evaluation import evaluator, fid, latent
from pga_tf.evaluation.features import FeaturesUnavailable

FLAGS = cli_flags.FLAGS
cli_flags.define('run_dir', 'checkpoint', 'sample_seed')
config.define_flags(FLAGS, ('features', 'inception_path', 'stats_dir'))
flags.DEFINE_integer('num_samples', 5000, 'Samples per distance (the paper: 5,000).', lower_bound=10)
flags.DEFINE_integer('repeats', 3, 'Independent sample sets, for mean ± std.', lower_bound=1)
flags.DEFINE_integer('real_samples', 0, 'Training images behind the real statistics (0: the whole '
                     'training split, as the original).', lower_bound=0)
flags.register_validator('real_samples', lambda v: v != 1, '--real_samples must be 0 (all) or at least 2')
flags.DEFINE_integer('eval_batch_size', 500, 'Images per feature batch.', lower_bound=1)
flags.DEFINE_enum('sampler', 'prior', gmm.SAMPLERS, 'Latent samples: prior N(0, I), or gmm (a '
                  f'{gmm.COMPONENTS}-component mixture fitted to training codes, saved as '
                  'gmm_<step>.npz).')


def _scalars(result, key, sampler):
    """The results as TensorBoard tags evaluate/<metric>_<features> (latent ones without the
    features; gmm_ before the metrics of mixture samples), so that a sweep's runs sort by them
    in the HParams dashboard."""
    kind = gmm.prefix(sampler)
    scalars = {f'evaluate/{kind}fid_{key}': result['fid']['mean'],
               f'evaluate/{kind}fid_std_{key}': result['fid']['std'],
               f'evaluate/rec_fid_{key}': result['rec_fid']}
    for group in ('samples', 'reconstructions'):
        prefix = 'rec_' if group == 'reconstructions' else kind
        scalars.update({f'evaluate/{prefix}{name}_{key}': v for name, v in result[group].items()})
    scalars.update({f'evaluate/latent_{name}': v for name, v in result['latent'].items()})
    return scalars


def main(argv):
    if len(argv) > 1 or not FLAGS.run_dir:
        print('pga_tf.evaluate: error: give --run_dir=<a run folder> and no other arguments', file=sys.stderr)
        sys.exit(2)
    try:
        folder = run_folder.RunFolder(FLAGS.run_dir)
        config = folder.read_config()
        paths.output_dir('run_dir', FLAGS.run_dir)  # the result is written there
        stats_dir = paths.output_dir('stats_dir', FLAGS.stats_dir or evaluator.default_stats_dir())
        run = folder.load(FLAGS.checkpoint)
        encoder, decoder, step, path = run.encoder, run.decoder, run.step, run.checkpoint
        features = evaluator.make_features(FLAGS.features, config.dataset, stats_dir,
                                           FLAGS.inception_path, config.data_dir or None)
        mixture = (evaluator.fitted_mixture(folder, run, FLAGS.eval_batch_size)
                   if FLAGS.sampler == 'gmm' else None)
        result = evaluator.evaluate_models(
            encoder, decoder, config, features, stats_dir, FLAGS.num_samples, FLAGS.repeats,
            FLAGS.eval_batch_size, FLAGS.real_samples, FLAGS.sample_seed, mixture)
    except (ConfigError, data.DataError, FeaturesUnavailable, fid.StatsError, gmm.GMMError) as err:
        print(f'pga_tf.evaluate: error: {err}', file=sys.stderr)
        sys.exit(2)
    if not np.isfinite([*result['fid']['values'], result['rec_fid']]).all():
        print(f'pga_tf.evaluate: error: {path} gives distances that are not finite '
              f'({result["fid"]["values"]}, reconstructions {result["rec_fid"]}); nothing written',
              file=sys.stderr)
        sys.exit(1)
    result.update(run_dir=FLAGS.run_dir, checkpoint=path, step=step, features=features.key,
                  features_id=features.stats_key,
                  dataset=config.dataset, model=config.model,
                  classifier_accuracy=getattr(features, 'accuracy', None), sampler=FLAGS.sampler)
    if mixture is not None:
        result['gmm'] = {'components': len(mixture.weights), 'num_codes': mixture.num_codes,
                         'log_likelihood': mixture.log_likelihood, 'path': folder.gmm_path(step)}
    out = folder.eval_path(features.key, step, FLAGS.num_samples, FLAGS.repeats, FLAGS.sampler)
    paths.write_atomic(out, json.dumps(result, indent=2))
    summaries.write_scalars(folder.log_dir, step, _scalars(result, features.key, FLAGS.sampler))
    f_mean, f_std = result['fid']['mean'], result['fid']['std']
    print(f'{config.model} on {config.dataset} at step {step}, {FLAGS.sampler} samples, {features.key} features: '
          f'FID {f_mean:.2f} ± {f_std:.2f} ({FLAGS.repeats} x {FLAGS.num_samples} samples), '
          f'reconstruction FID {result["rec_fid"]:.2f} ({result["num_reconstructions"]} images).')
    for name in ('samples', 'reconstructions'):
        m = result[name]
        print(f'  {name}: KID {m["kid"]:.4f} ± {m["kid_std"]:.4f}, precision {m["precision"]:.3f}, '
              f'recall {m["recall"]:.3f}, density {m["density"]:.3f}, coverage {m["coverage"]:.3f}')
    codes = result['latent']
    print(f'  latent: Fréchet distance to N(0, I) of data codes {codes["data_fd"]:.3f}, of the codes '
          f'of images from the prior {codes["generated_fd"]:.3f}; zn_rec {codes["zn_rec"]:.4f}; median code norm '
          f'{codes["data_norm_p50"]:.2f} (prior {codes["prior_norm_p50"]:.2f})')
    if latent.scale_warning(codes):
        logging.warning(latent.scale_warning(codes))
    print(f'Written to {out}')


if __name__ == '__main__':
    logging.set_verbosity(logging.WARNING)
    app.run(main, flags_parser=cli_flags.parse)
