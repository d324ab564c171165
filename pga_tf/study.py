"""The offline reproduction study: VAE vs AE vs LPGA vs VPGA vs LVPGA on real digits.

  python -m pga_tf.study                 # the reference study (runs/reference), 66 min (AMD EPYC with AVX-512, 2 vCPUs)
  python -m pga_tf.study --quick --out_dir=/tmp/study   # a smoke version

Trains every method on mnist_5k with its preset, one architecture and one step budget, for each
seed; evaluates each run's samples from the prior N(0, I) and from the Gaussian mixture of its
training codes (the ex-post sampler, pga_tf.evaluation.gmm) with the offline features (the shipped
classifier: not comparable to Inception FIDs): Fréchet distance, KID, precision, recall,
density, coverage, and the latent diagnostics; writes results.json, results.md and one sample
grid per method. Runs already in --out_dir resume (or are reused when finished), so an
interrupted study can be restarted.
"""
import dataclasses
import datetime
import json
import os
import shutil
import sys
import time

import numpy as np
from absl import app, flags, logging

from pga_tf.core import losses
from pga_tf.evaluation import gmm
from pga_tf.training import cli_flags, config as config_lib, run_folder, train_lib
from pga_tf.utils import device_info, paths
from pga_tf.evaluation import evaluator

config_lib.define_flags(flags.FLAGS, ('stats_dir',))

flags.DEFINE_string('out_dir', os.path.join('runs', 'reference'), 'Folder of the runs and results.')
# Rows that train a method with flags on top of its preset. The VAE as it was before its
# sweep (README, Fair baselines): PGA's optimiser and learning rate, VPGA's KL weight.
VARIANTS = {'vae_untuned': ('vae', ('--optimizer=sgd', '--lr=0.1', '--vkld=2e-2'))}
ROWS = sorted(losses.METHODS) + sorted(VARIANTS)

flags.DEFINE_list('methods', ['vae', 'vae_untuned', 'ae', 'lpga', 'vpga', 'lvpga'],
                  'Methods (and variants) to compare.')
flags.register_validator('methods', lambda methods: methods and set(methods) <= set(ROWS),
                         f'--methods: a list of {", ".join(ROWS)}')
flags.DEFINE_integer('seeds', 3, 'Seeds per method.', lower_bound=1)
flags.DEFINE_integer('study_steps', 2000, 'Training steps of every run.', lower_bound=1)
flags.DEFINE_float('study_width', 0.5, 'Width multiplier of every run.', lower_bound=1e-3)
flags.DEFINE_integer('study_samples', 2000, 'Samples per distance.', lower_bound=2)
flags.DEFINE_integer('study_repeats', 3, 'Sample sets per run.', lower_bound=1)
flags.DEFINE_bool('quick', False, 'Smoke version: 4 steps, a tiny width, 1 seed, few samples.')
FLAGS = flags.FLAGS

DATASET = 'mnist_5k'
# Columns of the table: the sample metrics of metrics.all_metrics, and latent diagnostics.
METRICS = ('kid', 'precision', 'recall', 'density', 'coverage')
LATENT = ('data_fd', 'generated_fd', 'zn_rec')


def study_config(method, seed, steps, width):
    """The mnist_5k preset of `method` (or of a variant's method, its flags on top) with the
    study's budget and seed."""
    base, extra = VARIANTS.get(method, (method, ()))
    preset = cli_flags.read_preset(DATASET, base).with_flags(list(extra))
    # A warm-up longer than half the run (only with --quick) would leave the method untried.
    # A step whose log-determinant is -inf (h(z + d) = h(z) in float32) is skipped and
    # counted; a run with more than 10 such steps ends, and the table reports it as diverged.
    return dataclasses.replace(preset, seed=seed, train_steps=steps, width=width,
                               init_steps=min(preset.init_steps, steps // 2), sample_every=steps,
                               checkpoint_every=steps, log_every=max(1, steps // 10),
                               on_nonfinite='skip', max_skips=10)


def _train_and_evaluate(config, run_dir, stats_dir, samples, repeats):
    """One run's evaluation with each sampler ({'prior': ..., 'gmm': ...}), or the step where it
    diverged (recorded, not hidden)."""
    try:
        tr = train_lib.train(config, run_dir)
    except train_lib.DivergenceError as err:
        logging.warning('%s diverged: %s', run_dir, err)
        return {'diverged': str(err)}
    features = evaluator.make_features('classifier', DATASET, stats_dir)
    run = run_folder.LoadedRun(config, tr.encoder, tr.decoder, int(tr.step.numpy()), None)
    mixtures = {'prior': None, 'gmm': evaluator.fitted_mixture(run_folder.RunFolder(run_dir), run)}
    return {**{sampler: evaluator.evaluate_models(tr.encoder, tr.decoder, config, features,
                                                  stats_dir, samples, repeats,
                                                  seed=1000 * config.seed, mixture=mixture)
               for sampler, mixture in mixtures.items()},
            'skipped_steps': int(tr.skipped.numpy())}


def _finished(result_path):
    """The run's study result, or None when there is none of this version (one per sampler)."""
    if not os.path.exists(result_path):
        return None
    with open(result_path) as f:
        result = json.load(f)
    return result if 'diverged' in result or all(s in result for s in gmm.SAMPLERS) else None


def _mean_std(values):
    return {'mean': float(np.mean(values)), 'std': float(np.std(values))}


def summarise(per_run):
    """Per method and sampler, over the finished seeds: mean ± std of each run's mean distance
    and of its metrics, the mean within-seed std, the reconstruction distance and the latent
    diagnostics; and how many seeds diverged."""
    table = {}
    for method, all_runs in per_run.items():
        runs = [r for r in all_runs if 'diverged' not in r]
        finished = {'seeds': len(runs), 'diverged': len(all_runs) - len(runs)}
        for sampler in gmm.SAMPLERS:
            row = dict(finished)
            if runs:
                results = [r[sampler] for r in runs]
                row.update(
                    fid=_mean_std([r['fid']['mean'] for r in results]),
                    std_within_seed=float(np.mean([r['fid']['std'] for r in results])),
                    rec_fid=float(np.mean([r['rec_fid'] for r in results])),
                    skipped_steps=sum(r['skipped_steps'] for r in runs),
                    per_seed=[r['fid']['mean'] for r in results],
                    **{m: _mean_std([r['samples'][m] for r in results]) for m in METRICS},
                    **{m: _mean_std([r['latent'][m] for r in results]) for m in LATENT})
            table[f'{method}/{sampler}'] = row
    return table


def markdown(table, settings):
    lines = [f"mnist_5k, offline features (the shipped classifier), {settings['samples']} samples "
             f"× {settings['repeats']} sets per run (metrics beside the distance: the first set); "
             f"mean ± std over {settings['seeds']} seeds. Lower is better for the distance "
             '(FD), KID and the latent Fréchet distances to N(0, I) of the codes of data and of '
             'images from the prior (a property of the networks: the same for both samplers); '
             'higher for the others. Not comparable to Inception FIDs.', '',
             '| method | sampler | FD | KID | precision | recall | density | coverage | '
             'reconstruction FD | latent FD data / prior images | seeds finished |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    def cell(row, name, digits):
        return f"{row[name]['mean']:.{digits}f} ± {row[name]['std']:.{digits}f}"

    order = sorted(table.items(), key=lambda kv: kv[1]['fid']['mean'] if 'fid' in kv[1] else float('inf'))
    for key, row in order:
        method, sampler = key.split('/')
        finished = f"{row['seeds']} of {row['seeds'] + row['diverged']}"
        if not row['seeds']:
            lines.append(f'| {method} | {sampler} | diverged | | | | | | | | {finished} |')
            continue
        lines.append(
            f"| {method} | {sampler} | {cell(row, 'fid', 2)} | {cell(row, 'kid', 2)} | "
            f"{cell(row, 'precision', 3)} | {cell(row, 'recall', 3)} | {cell(row, 'density', 3)} | "
            f"{cell(row, 'coverage', 3)} | {row['rec_fid']:.2f} | "
            f"{row['data_fd']['mean']:.2f} / {row['generated_fd']['mean']:.2f} | {finished} |")
    lines += ['', f"{settings['steps']} steps per run, width {settings['width']}, batch 64; "
              f"{settings['machine']}; {settings['date']}; {settings['minutes']:.0f} min in total; "
              f"`{settings['command']}`."]
    return '\n'.join(lines) + '\n'


def main(argv):
    del argv
    quick = FLAGS.quick
    steps, width = (4, 1 / 16) if quick else (FLAGS.study_steps, FLAGS.study_width)
    seeds = 1 if quick else FLAGS.seeds
    samples, repeats = (200, 2) if quick else (FLAGS.study_samples, FLAGS.study_repeats)
    try:
        paths.output_dir('out_dir', FLAGS.out_dir)
        stats_dir = paths.output_dir('stats_dir', FLAGS.stats_dir or evaluator.default_stats_dir())
    except config_lib.ConfigError as err:
        cli_flags.fail(sys.argv, err)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    start = time.time()
    per_run = {}
    for method in FLAGS.methods:
        for seed in range(seeds):
            config = study_config(method, seed, steps, width)
            run_dir = os.path.join(FLAGS.out_dir, 'runs', f'{method}_seed{seed}')
            result_path = os.path.join(run_dir, 'study.json')
            done = _finished(result_path)
            if done is None:  # trains (or resumes, or reuses the finished run) and evaluates
                done = _train_and_evaluate(config, run_dir, stats_dir, samples, repeats)
                paths.write_atomic(result_path, json.dumps(done, indent=2))
            per_run.setdefault(method, []).append(done)
            logging.info('%s seed %d: %s', method, seed, done.get('diverged') or {
                sampler: round(done[sampler]['fid']['mean'], 2) for sampler in gmm.SAMPLERS})
        grid = os.path.join(FLAGS.out_dir, 'runs', f'{method}_seed0', 'samples', f'samples_{steps:07d}.png')
        if os.path.exists(grid):  # seed 0 finished
            shutil.copy(grid, os.path.join(FLAGS.out_dir, f'{method}_samples.png'))
    table = summarise(per_run)
    settings = {'steps': steps, 'width': width, 'seeds': seeds, 'samples': samples,
                'repeats': repeats, 'minutes': (time.time() - start) / 60,
                'date': datetime.date.today().isoformat(),
                'machine': device_info.describe(),
                'command': 'python -m pga_tf.study' + (' --quick' if quick else '')}
    with open(os.path.join(FLAGS.out_dir, 'results.json'), 'w') as f:
        json.dump({'settings': settings, 'table': table}, f, indent=2)
    with open(os.path.join(FLAGS.out_dir, 'results.md'), 'w') as f:
        f.write(markdown(table, settings))
    print(markdown(table, settings))


if __name__ == '__main__':
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=cli_flags.parse)
