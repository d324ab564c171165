"""The training loop: data, models and Trainer, resume, TensorBoard, grids, checkpoints."""
import dataclasses
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf.core import generator
from pga_tf.training import autotune, data, distribute, run_folder, summaries, trainer
from pga_tf.utils import device_info, paths
from pga_tf.training.config import Config, ConfigError
from pga_tf.evaluation import evaluator, latent, metrics

# Images in the fixed grids: 32 reconstructions (4 rows of 8 pairs), 8 interpolation rows.
_FIXED_BATCH = 48
_NUM_SAMPLES = 64
# In-loop evaluation: feature batch and real images behind the reference statistics.
_EVAL_BATCH = 500


def total_steps(config, num_train, global_batch):
    """Training length in steps: --train_steps, else --epochs full epochs of the global batch."""
    if config.train_steps:
        return config.train_steps
    return config.epochs * max(1, num_train // global_batch)


def _dataset(config, split, batch_size, **kw):
    return data.load_dataset(config.dataset, split, batch_size, data_dir=config.data_dir or None,
                             seed=config.seed, **config.image_args(), **kw)


def _fixed_inputs(config, run, z_dim):
    """A fixed batch of held-out images and a fixed z, the same in every grid of the run."""
    # Shuffled (with the run's seed): held-out splits may be sorted by class.
    fixed_x = next(iter(_dataset(config, data.DATASETS[config.dataset].eval_split,
                                 _FIXED_BATCH)[0]))
    if os.path.exists(run.fixed_z_path):
        fixed_z = np.load(run.fixed_z_path, allow_pickle=False)
    else:
        fixed_z = tf.random.Generator.from_seed(config.seed + 1).normal([_NUM_SAMPLES, z_dim]).numpy()
        tmp = f'{run.fixed_z_path}.tmp-{os.getpid()}.npy'
        np.save(tmp, fixed_z)
        os.replace(tmp, run.fixed_z_path)  # a kill never leaves half a file to resume from
    return fixed_x, fixed_z


def _grids(tr, fixed_x, fixed_z):
    return {
        'samples': summaries.sample_grid(tr.decoder, fixed_z),
        'reconstructions': summaries.reconstruction_grid(tr.encoder, tr.decoder, fixed_x[:32]),
        'interpolations': summaries.interpolation_grid(tr.encoder, tr.decoder, fixed_x[32:40],
                                                       fixed_x[40:48]),
        'traversals': summaries.traversal_grid(tr.encoder, tr.decoder, fixed_x),
    }


def _write_config(config, writer, step):
    """The settings of the segment starting at `step` in TensorBoard."""
    from tensorboard.plugins.hparams import api as hparams_api

    with writer.as_default():
        tf.summary.text('flags', '    ' + config.to_flagfile().replace('\n', '\n    '), step=step)
        hparams_api.hparams(dataclasses.asdict(config))


def _format_eta(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


class _InLoopEvaluation:
    """The Fréchet distance and the k-NN and kernel metrics of `eval_samples` samples, against
    cached real statistics and the features of as many training images; and the latent
    diagnostics of as many held-out images and fresh prior samples."""

    def __init__(self, config, features, reference, real, held_out):
        self.config, self.features, self.reference, self.real = config, features, reference, real
        self.held_out = held_out
        self.key = features.key

    def __call__(self, encoder, decoder, step):
        """({'fid': ..., 'kid': ..., 'precision': ..., ...} of the decoder's samples,
        `latent.diagnostics`)."""
        fake = evaluator.feature_array(self.features, evaluator.sample_batches(
            decoder, self.config.z_dim, self.config.eval_samples, _EVAL_BATCH, self.config.seed))
        result = {'fid': evaluator.distance_to(self.reference, fake),
                  **metrics.all_metrics(self.real, fake)}
        codes = latent.diagnostics(encoder, decoder, self.held_out, evaluator.prior_samples(
            self.config.z_dim, self.config.eval_samples, _EVAL_BATCH, self.config.seed + 2))
        logging.info('step %d: %s features, %d samples: %s', step, self.key,
                     self.config.eval_samples, ', '.join(f'{k} {v:.4g}' for k, v in result.items()))
        if latent.scale_warning(codes):
            logging.warning('step %d: %s', step, latent.scale_warning(codes))
        return result, codes


def _in_loop_evaluation(config):
    """Features, real statistics and real features, prepared once before training starts."""
    stats_dir = config.stats_dir or evaluator.default_stats_dir()
    features = evaluator.make_features(config.features, config.dataset, stats_dir,
                                       config.inception_path, config.data_dir or None)
    reference = evaluator.real_stats(features, config, stats_dir, batch_size=_EVAL_BATCH)
    real = evaluator.real_features(features, config, config.eval_samples, _EVAL_BATCH)
    held_out = list(evaluator.images(config, data.DATASETS[config.dataset].eval_split,
                                      config.eval_samples, _EVAL_BATCH))
    return _InLoopEvaluation(config, features, reference, real, held_out)


class DivergenceError(Exception):
    """Training stopped on a non-finite loss or gradient; the last checkpoint is untouched."""


def _untouched(tr):
    return f'The last checkpoint ({tr.manager.latest_checkpoint or "none yet"}) is untouched'


def _guard(config, tr, step, out):
    """A step whose loss or gradient was not finite, and so was not applied."""
    bad = [k for k, v in out.items() if not np.isfinite(float(v))] or ['a gradient']
    where = f'step {step}: non-finite {", ".join(bad)}. {_untouched(tr)}'
    if config.on_nonfinite == 'stop':
        raise DivergenceError(f'{where}. Lower --lr, or pass --on_nonfinite=skip.')
    skipped = int(tr.skipped.numpy())
    tf.summary.scalar('guard/skipped_steps', skipped, step=step)
    logging.warning('%s; step skipped (%d so far, at most --max_skips=%d)', where, skipped,
                    config.max_skips)
    if skipped > config.max_skips:
        raise DivergenceError(f'{where}; {skipped} steps skipped, more than --max_skips={config.max_skips}.')


def _log(config, sums, count, elapsed, step, last, steps_per_epoch, global_batch):
    """Scalars and the console line for the steps since the last log."""
    means = {k: float(v) / count for k, v in sums.items()}
    steps_per_sec = count / elapsed
    for k, v in means.items():
        group = '' if k.endswith('_loss') else 'grad_norms/' if k.endswith('_grad_norm') else 'losses/'
        tf.summary.scalar(group + k, v, step=step)
    tf.summary.scalar('lr', config.lr, step=step)
    tf.summary.scalar('perf/steps_per_sec', steps_per_sec, step=step)
    tf.summary.scalar('perf/images_per_sec', steps_per_sec * global_batch, step=step)
    logging.info('step %d/%d (epoch %.1f) %s | %.0f img/s | ETA %s', step, last,
                 step / steps_per_epoch, ' '.join(f'{k} {v:.4g}' for k, v in means.items()),
                 steps_per_sec * global_batch, _format_eta((last - step) / steps_per_sec))


class _StopSignals:
    """Records SIGTERM/SIGINT instead of dying, so the loop can finish the step and save."""

    def __init__(self):
        self.signal, self._previous = None, {}

    def _handle(self, signum, frame):
        del frame
        self.signal = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _resume(config, run, tr, path, changes):
    """Restores `path` (the chief's newest readable checkpoint) or the worker's own latest into
    `tr`; returns the path, or None for a fresh start. The settings in force are `config`'s."""
    path = path or (tr.manager.latest_checkpoint if tr.manager else None)
    if path:
        try:
            run_folder.restore(tr, path, optimizers='optimizer' not in changes)
        except run_folder.RunError:
            # Optimiser slots of another --optimizer (a segment that changed it and was killed
            # before saving): the networks and counters resume, the optimisers start afresh.
            run_folder.restore(tr, path, optimizers=False)
            logging.warning('%s: its optimiser state does not match --optimizer=%s; the '
                            'optimisers start afresh', path, config.optimizer)
    tr.set_learning_rate(config.lr)  # a checkpoint restores the learning rate it was saved with
    for name, (old, new) in changes.items():
        logging.warning('%s: --%s changed from %s to %s (recorded in %s)', run.path, name, old,
                        new, run_folder.HISTORY_FILE)
    return path


def train(config: Config, run_dir, strategy=None):
    """Trains `config` in `run_dir`, resuming from its newest readable checkpoint if it has one.

    A resumed run keeps the settings that fix its networks and noise (config.FIXED; others
    are refused with RunError); every other change is applied, logged and recorded in the
    run's history. `strategy` is the tf.distribute strategy (None: made from config.strategy);
    a multi-worker strategy must be made before TensorFlow runs anything, so a program makes
    it first and passes it here.

    Returns:
      the Trainer, at the final step.

    Raises:
      RunError: the folder cannot hold or resume this run (nothing in it was changed).
    """
    run = run_folder.RunFolder(run_dir)
    changes = run.changes(config)
    if config.dataset == 'folder' and config.data_dir and paths.inside(run_dir, config.data_dir):
        raise ConfigError(f'--run_dir={run_dir} is inside --data_dir={config.data_dir}: its grids '
                          'would become training images; put the run elsewhere')
    if config.eval_every:
        paths.output_dir('stats_dir', config.stats_dir or evaluator.default_stats_dir())
    if config.precision == 'mixed_bfloat16' and not device_info.native_bfloat16():
        logging.warning('--precision=mixed_bfloat16 on a CPU without AVX512-BF16 or AMX: bfloat16 '
                        'is emulated here, about 7x slower than float32 (the default)')
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Data first: a dataset that cannot be read fails before anything is written.
    data.image_source(config.dataset, 'train', config.data_dir or None, **config.image_args())

    strategy = strategy or distribute.make_strategy(config.strategy, config.cpu_replicas)
    chief, task = distribute.worker(strategy)
    if trainer.is_distributed(strategy) and config.on_nonfinite == 'skip':
        raise ConfigError('--on_nonfinite=skip needs one device (the default strategy); use stop')
    # The chief evaluates; features and real statistics are ready before anything is written.
    evaluate = _in_loop_evaluation(config) if config.eval_every and chief else None
    run.prepare()
    lock = run.lock() if chief else None
    try:
        return _train(config, run, strategy, chief, task, changes, evaluate)
    finally:
        if lock is not None:
            run.unlock(lock)


def _jit_choice(config, tr, steps_left):
    """`autotune.JitChoice` for --jit_compile=auto on one CPU device (a GPU's auto is XLA on)."""
    if config.jit_compile != 'auto' or tr.distributed or trainer.default_jit_compile():
        return None
    return autotune.JitChoice(tr, autotune.choice_key(config), autotune.cache_path(config.stats_dir),
                              steps_left)


def _train(config, run, strategy, chief, task, changes, evaluate):
    replicas = strategy.num_replicas_in_sync
    jit = {'auto': None, 'on': True, 'off': False}[config.jit_compile]
    # Every worker saves (a collective operation); only the chief's checkpoints are the run's.
    checkpoint_dir = run.checkpoint_dir if chief else os.path.join(run.path, f'.worker{task}_checkpoints')
    # Before the Trainer's CheckpointManager reads the pointer file that this may rewrite.
    newest = run.recover_checkpoints() if chief else None
    tr = config.build_trainer(checkpoint_dir, strategy, jit)
    resumed = _resume(config, run, tr, newest, changes)
    start = int(tr.step.numpy())

    global_batch = config.batch_size * replicas
    train_ds, num_train = _dataset(config, 'train', global_batch, skip_batches=start)
    train_ds = strategy.experimental_distribute_dataset(train_ds)
    steps_per_epoch = max(1, num_train // global_batch)
    last = total_steps(config, num_train, global_batch)
    jit_choice = _jit_choice(config, tr, last - start)
    if chief:
        run.record_segment(config, start, changes)
        writer = tf.summary.create_file_writer(run.log_dir)
        _write_config(config, writer, start)
        fixed_x, fixed_z = _fixed_inputs(config, run, config.z_dim)
    else:
        writer = tf.summary.create_noop_writer()
    logging.info('%s %s in %s: steps %d -> %d (%d per epoch), %d replica(s) of batch %d',
                 'Resuming' if resumed else 'Training', config.model, run.path, start, last,
                 steps_per_epoch, replicas, config.batch_size)

    sums, count, t0, t_start = None, 0, time.perf_counter(), time.perf_counter()
    batches = iter(train_ds)
    with writer.as_default(), _StopSignals() as stop:
        for step in range(start + 1, last + 1):  # `step` counts the updates done
            x = next(batches)
            started = time.perf_counter()
            try:
                out = tr.train_step(x)
                # One host sync per step: the guard must see a bad step before the next one.
                finite = bool(out.pop('finite'))
            except tf.errors.InvalidArgumentError as err:
                if trainer.NONFINITE_REPLICAS not in str(err):
                    raise
                raise DivergenceError(f'step {step}: {trainer.NONFINITE_REPLICAS}. {_untouched(tr)}. '
                                      'Lower --lr.') from None
            if jit_choice:
                jit_choice.observe(time.perf_counter() - started)
            if finite:
                # Sums stay tensors: no further sync on steps that do not log.
                sums = out if sums is None else {k: sums[k] + out[k] for k in out}
                count += 1
            else:
                _guard(config, tr, step, out)
            if (step % config.log_every == 0 or step == last) and count:
                _log(config, sums, count, time.perf_counter() - t0, step, last, steps_per_epoch,
                     global_batch)
                sums, count, t0 = None, 0, time.perf_counter()
            grids = chief and (step % config.sample_every == 0 or step == last)
            evaluating = evaluate and (step % config.eval_every == 0 or step == last)
            if grids or evaluating:
                # The generator at inference, as evaluate, export and sample draw it.
                generator.prepare(tr.decoder)
            if grids:
                summaries.write_grids(_grids(tr, fixed_x, fixed_z), run.sample_dir, step)
            if evaluating:
                result, codes = evaluate(tr.encoder, tr.decoder, step)
                for name, value in result.items():
                    tf.summary.scalar(f'eval/{name}_{evaluate.key}', value, step=step)
                for name, value in codes.items():
                    tf.summary.scalar(f'latent/{name}', value, step=step)
            if step % config.checkpoint_every == 0 or step == last or stop.signal:
                tr.save()
                writer.flush()
            if stop.signal:
                logging.info('Stopped by %s at step %d; checkpoint saved. Resume with: '
                             'python -m pga_tf.train --run_dir=%s', stop.signal, step, run.path)
                return tr
    if start >= last:  # no step left to do, so no final grid prepared the generator
        generator.prepare(tr.decoder)
    logging.info('Done: step %d in %s (%s); checkpoints in %s', int(tr.step.numpy()), run.path,
                 _format_eta(time.perf_counter() - t_start), run.checkpoint_dir)
    return tr
