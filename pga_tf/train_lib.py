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

from pga_tf import data, distribute, summaries, trainer
from pga_tf.evaluation import evaluator
from pga_tf.config import Config, ConfigError

# Images in the fixed grids: 32 reconstructions (4 rows of 8 pairs), 8 interpolation rows.
_FIXED_BATCH = 48
_NUM_SAMPLES = 64
# In-loop evaluation: feature batch and real images behind the reference statistics.
_EVAL_BATCH = 500
_REAL_IMAGES = 10_000


def total_steps(config, num_train, global_batch):
    """Training length in steps: --train_steps, else --epochs full epochs of the global batch."""
    if config.train_steps:
        return config.train_steps
    return config.epochs * max(1, num_train // global_batch)


def _dataset(config, split, batch_size, size, channels, **kw):
    return data.load_dataset(config.dataset, split, batch_size, data_dir=config.data_dir or None,
                             seed=config.seed, size=size, channels=channels, crop=config.crop, **kw)


def _fixed_inputs(config, run_dir, size, channels, z_dim):
    """A fixed batch of held-out images and a fixed z, the same in every grid of the run."""
    # Shuffled (with the run's seed): held-out splits may be sorted by class.
    fixed_x = next(iter(_dataset(config, data.DATASETS[config.dataset].eval_split, _FIXED_BATCH,
                                 size, channels)[0]))
    z_path = os.path.join(run_dir, 'fixed_z.npy')
    if os.path.exists(z_path):
        fixed_z = np.load(z_path, allow_pickle=False)
    else:
        fixed_z = tf.random.Generator.from_seed(config.seed + 1).normal([_NUM_SAMPLES, z_dim]).numpy()
        np.save(z_path + '.tmp.npy', fixed_z)
        os.replace(z_path + '.tmp.npy', z_path)  # a kill never leaves half a file to resume from
    return fixed_x, fixed_z


def _grids(tr, fixed_x, fixed_z):
    return {
        'samples': summaries.sample_grid(tr.decoder, fixed_z),
        'reconstructions': summaries.reconstruction_grid(tr.encoder, tr.decoder, fixed_x[:32]),
        'interpolations': summaries.interpolation_grid(tr.encoder, tr.decoder, fixed_x[32:40],
                                                       fixed_x[40:48]),
    }


def _write_config(config, run_dir, writer):
    """flags.cfg (reproduces the run with --flagfile) and the flags in TensorBoard."""
    from tensorboard.plugins.hparams import api as hparams_api

    path = os.path.join(run_dir, 'flags.cfg')
    with open(path + '.tmp', 'w') as f:
        f.write(config.to_flagfile())
    os.replace(path + '.tmp', path)
    with writer.as_default():
        tf.summary.text('flags', '    ' + config.to_flagfile().replace('\n', '\n    '), step=0)
        hparams_api.hparams(dataclasses.asdict(config))


def _format_eta(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


class _InLoopEvaluation:
    """The Fréchet distance of `eval_samples` samples, against cached real statistics."""

    def __init__(self, config, features, reference):
        self.config, self.features, self.reference = config, features, reference
        self.key = features.key

    def __call__(self, decoder, step):
        value = evaluator.sample_distance(decoder, self.config.z_dim, self.features, self.reference,
                                          self.config.eval_samples, _EVAL_BATCH, self.config.seed)
        logging.info('step %d: Fréchet distance (%s, %d samples) %.3f', step, self.key,
                     self.config.eval_samples, value)
        return value


def _in_loop_evaluation(config):
    """Features and real statistics, prepared once before training starts."""
    stats_dir = config.stats_dir or evaluator.default_stats_dir()
    features = evaluator.make_features(config.features, config.dataset, stats_dir,
                                       config.inception_path, config.data_dir or None)
    reference = evaluator.real_stats(features, config, stats_dir, _REAL_IMAGES, _EVAL_BATCH)
    return _InLoopEvaluation(config, features, reference)


class DivergenceError(Exception):
    """Training stopped on a non-finite loss or gradient; the last checkpoint is untouched."""


def _guard(config, tr, step, out):
    """A step whose loss or gradient was not finite, and so was not applied."""
    bad = [k for k, v in out.items() if not np.isfinite(float(v))] or ['a gradient']
    where = (f'step {step}: non-finite {", ".join(bad)}. The last checkpoint '
             f'({tr.manager.latest_checkpoint or "none yet"}) is untouched')
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
        tf.summary.scalar(k if k.endswith('_loss') else f'losses/{k}', v, step=step)
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


# Settings that fix the networks' variables: a run folder cannot resume with others.
_SHAPE_FIELDS = ('dataset', 'model', 'arch', 'z_dim', 'bn', 'width', 'channels')


def _check_resumable(config, run_dir):
    flagfile = os.path.join(run_dir, 'flags.cfg')
    if not os.path.isfile(flagfile):
        return
    saved = Config.from_flagfile(flagfile)
    diffs = [f'--{k}={getattr(config, k)} (the run has {getattr(saved, k)})'
             for k in _SHAPE_FIELDS if getattr(config, k) != getattr(saved, k)]
    if diffs:
        raise ConfigError(f'{run_dir} was trained with other model settings: {", ".join(diffs)}; '
                          'use another --run_dir')


def load_run(run_dir, checkpoint=None):
    """The Config and trained models of a run folder.

    Args:
      run_dir: a folder written by `train`.
      checkpoint: a checkpoint path; None: the latest in `run_dir/checkpoints`.

    Returns:
      (config, encoder, decoder, step, checkpoint path).

    Raises:
      ConfigError: `run_dir` holds no flags.cfg or no checkpoint.
    """
    flagfile = os.path.join(run_dir, 'flags.cfg')
    if not os.path.isfile(flagfile):
        raise ConfigError(f'{run_dir} is not a run folder (no flags.cfg)')
    config = Config.from_flagfile(flagfile)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints'))
    if not path or not tf.io.gfile.exists(path + '.index'):
        raise ConfigError(f'no checkpoint {checkpoint or "in " + os.path.join(run_dir, "checkpoints")}')
    encoder, decoder = config.build_models()
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(encoder=encoder, decoder=decoder, step=step).restore(path).expect_partial()
    return config, encoder, decoder, int(step), path


def train(config: Config, run_dir, strategy=None):
    """Trains `config` in `run_dir`, resuming from its latest checkpoint if it has one.

    `strategy` is the tf.distribute strategy (None: made from config.strategy); a
    multi-worker strategy must be made before TensorFlow runs anything, so a program makes it
    first and passes it here.

    Returns:
      the Trainer, at the final step.
    """
    _check_resumable(config, run_dir)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    size, channels = config.image_shape()
    # Data first: a dataset that cannot be read fails before anything is written.
    data.image_source(config.dataset, 'train', config.data_dir or None, size, channels, config.crop)

    strategy = strategy or distribute.make_strategy(config.strategy, config.cpu_replicas)
    chief, task = distribute.worker(strategy)
    replicas = strategy.num_replicas_in_sync
    if replicas > 1 and config.on_nonfinite == 'skip':
        raise ConfigError('--on_nonfinite=skip needs a single replica; use stop')
    # The chief evaluates; features and real statistics are ready before training starts.
    evaluate = _in_loop_evaluation(config) if config.eval_every and chief else None
    with strategy.scope():
        # Batch statistics over the global batch, as on one device.
        encoder, decoder = config.build_models(sync_bn=replicas > 1)
    jit = {'auto': None, 'on': True, 'off': False}[config.jit_compile]
    # Every worker saves (a collective operation); only the chief's checkpoints are the run's.
    checkpoint_dir = os.path.join(run_dir, 'checkpoints' if chief else f'.worker{task}_checkpoints')
    tr = trainer.Trainer(config.model, encoder, decoder, config.loss_weights(), config.lr,
                         config.optimizer, config.init_steps, config.seed, jit, checkpoint_dir,
                         config.max_to_keep, strategy)
    os.makedirs(run_dir, exist_ok=True)
    resumed = tr.restore()
    start = int(tr.step.numpy())

    global_batch = config.batch_size * replicas
    train_ds, num_train = _dataset(config, 'train', global_batch, size, channels,
                                   skip_batches=start)
    train_ds = strategy.experimental_distribute_dataset(train_ds)
    steps_per_epoch = max(1, num_train // global_batch)
    last = total_steps(config, num_train, global_batch)
    if chief:
        writer = tf.summary.create_file_writer(os.path.join(run_dir, 'train'))
        _write_config(config, run_dir, writer)
        fixed_x, fixed_z = _fixed_inputs(config, run_dir, size, channels, config.z_dim)
    else:
        writer = tf.summary.create_noop_writer()
    logging.info('%s %s in %s: steps %d -> %d (%d per epoch), %d replica(s) of batch %d',
                 'Resuming' if resumed else 'Training', config.model, run_dir, start, last,
                 steps_per_epoch, replicas, config.batch_size)

    sample_dir = os.path.join(run_dir, 'samples')
    sums, count, t0, t_start = None, 0, time.perf_counter(), time.perf_counter()
    batches = iter(train_ds)
    with writer.as_default(), _StopSignals() as stop:
        for step in range(start + 1, last + 1):  # `step` counts the updates done
            out = tr.train_step(next(batches))
            # One host sync per step: the guard must see a bad step before the next one.
            if bool(out.pop('finite')):
                # Sums stay tensors: no further sync on steps that do not log.
                sums = out if sums is None else {k: sums[k] + out[k] for k in out}
                count += 1
            else:
                _guard(config, tr, step, out)
            if (step % config.log_every == 0 or step == last) and count:
                _log(config, sums, count, time.perf_counter() - t0, step, last, steps_per_epoch,
                     global_batch)
                sums, count, t0 = None, 0, time.perf_counter()
            if chief and (step % config.sample_every == 0 or step == last):
                summaries.write_grids(_grids(tr, fixed_x, fixed_z), sample_dir, step)
            if evaluate and (step % config.eval_every == 0 or step == last):
                tf.summary.scalar(f'eval/fid_{evaluate.key}', evaluate(tr.decoder, step), step=step)
            if step % config.checkpoint_every == 0 or step == last or stop.signal:
                tr.save()
                writer.flush()
            if stop.signal:
                logging.info('Stopped by %s at step %d; checkpoint saved. Resume with: '
                             'python -m pga_tf.train --run_dir=%s', stop.signal, step, run_dir)
                return tr
    logging.info('Done: step %d in %s (%s); checkpoints in %s', int(tr.step.numpy()), run_dir,
                 _format_eta(time.perf_counter() - t_start), os.path.join(run_dir, 'checkpoints'))
    return tr
