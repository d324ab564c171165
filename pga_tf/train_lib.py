"""The training loop: data, models and Trainer, resume, TensorBoard, grids, checkpoints."""
import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf import data, losses, models, summaries, trainer
from pga_tf.config import Config, ConfigError

# Images in the fixed grids: 32 reconstructions (4 rows of 8 pairs), 8 interpolation rows.
_FIXED_BATCH = 48
_NUM_SAMPLES = 64


def image_shape(config):
    """(size, channels) of the images of `config`, and the check that the arch reads them."""
    spec = data.DATASETS[config.dataset]
    size = models.IMAGE_SIZE[config.arch]
    if spec.size is not None and spec.size != size:
        raise ConfigError(f'--arch={config.arch} reads {size}x{size} images but '
                         f'--dataset={config.dataset} has {spec.size}x{spec.size}')
    return size, spec.channels or config.channels


def total_steps(config, num_train):
    """Training length in steps: --train_steps, else --epochs full epochs."""
    if config.train_steps:
        return config.train_steps
    return config.epochs * max(1, num_train // config.batch_size)


def _dataset(config, split, batch_size, size, channels, **kw):
    return data.load_dataset(config.dataset, split, batch_size, data_dir=config.data_dir or None,
                             seed=config.seed, size=size, channels=channels, crop=config.crop, **kw)


def _fixed_inputs(config, run_dir, size, channels, z_dim):
    """A fixed batch of held-out images and a fixed z, the same in every grid of the run."""
    fixed_x = next(iter(_dataset(config, data.DATASETS[config.dataset].eval_split, _FIXED_BATCH,
                                 size, channels, shuffle=False)[0]))
    z_path = os.path.join(run_dir, 'fixed_z.npy')
    if os.path.exists(z_path):
        fixed_z = np.load(z_path, allow_pickle=False)
    else:
        fixed_z = tf.random.Generator.from_seed(config.seed + 1).normal([_NUM_SAMPLES, z_dim]).numpy()
        np.save(z_path, fixed_z)
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


def train(config: Config, run_dir):
    """Trains `config` in `run_dir`, resuming from its latest checkpoint if it has one.

    Returns:
      the Trainer, at the final step.
    """
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    size, channels = image_shape(config)
    # Data first: a dataset that cannot be read fails before anything is written.
    data.image_source(config.dataset, 'train', config.data_dir or None, size, channels, config.crop)

    variational = config.model in losses.VARIATIONAL
    encoder, decoder = models.build_models(config.arch, config.z_dim, channels, variational,
                                           config.bn, config.width)
    jit = {'auto': None, 'on': True, 'off': False}[config.jit_compile]
    tr = trainer.Trainer(config.model, encoder, decoder, config.loss_weights(), config.lr,
                         config.optimizer, config.init_steps, config.seed, jit,
                         os.path.join(run_dir, 'checkpoints'), config.max_to_keep)
    os.makedirs(run_dir, exist_ok=True)
    resumed = tr.restore()
    start = int(tr.step)

    train_ds, num_train = _dataset(config, 'train', config.batch_size, size, channels,
                                   skip_batches=start)
    steps_per_epoch = max(1, num_train // config.batch_size)
    last = total_steps(config, num_train)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, 'train'))
    _write_config(config, run_dir, writer)
    fixed_x, fixed_z = _fixed_inputs(config, run_dir, size, channels, config.z_dim)
    logging.info('%s %s in %s: steps %d -> %d (%d per epoch)', 'Resuming' if resumed else 'Training',
                 config.model, run_dir, start, last, steps_per_epoch)

    sample_dir = os.path.join(run_dir, 'samples')
    sums, count, t0, t_start = None, 0, time.perf_counter(), time.perf_counter()
    batches = iter(train_ds)
    with writer.as_default():
        for step in range(start + 1, last + 1):  # `step` counts the updates done
            out = tr.train_step(next(batches))
            # Sums stay tensors: no host sync on steps that do not log.
            sums = out if sums is None else {k: sums[k] + out[k] for k in out}
            count += 1
            if step % config.log_every == 0 or step == last:
                elapsed = time.perf_counter() - t0
                means = {k: float(v) / count for k, v in sums.items()}
                steps_per_sec = count / elapsed
                for k, v in means.items():
                    tf.summary.scalar(k if k.endswith('_loss') else f'losses/{k}', v, step=step)
                tf.summary.scalar('lr', config.lr, step=step)
                tf.summary.scalar('perf/steps_per_sec', steps_per_sec, step=step)
                tf.summary.scalar('perf/images_per_sec', steps_per_sec * config.batch_size, step=step)
                logging.info('step %d/%d (epoch %.1f) %s | %.0f img/s | ETA %s', step, last,
                             step / steps_per_epoch,
                             ' '.join(f'{k} {v:.4g}' for k, v in means.items()),
                             steps_per_sec * config.batch_size,
                             _format_eta((last - step) / steps_per_sec))
                sums, count, t0 = None, 0, time.perf_counter()
            if step % config.sample_every == 0 or step == last:
                summaries.write_grids(_grids(tr, fixed_x, fixed_z), sample_dir, step)
            if step % config.checkpoint_every == 0 or step == last:
                tr.save()
                writer.flush()
    logging.info('Done: step %d in %s (%s); checkpoints in %s', int(tr.step), run_dir,
                 _format_eta(time.perf_counter() - t_start), os.path.join(run_dir, 'checkpoints'))
    return tr
