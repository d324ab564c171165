"""The run folder: its layout, settings and history, checkpoints and lock, and loading a run.

  flags.cfg        the settings in force (`--flagfile=` it to reproduce the run)
  history.jsonl    one line per training segment: its first step, time, command and the
                   settings it changed (the first line holds them all)
  checkpoints/     tf.train checkpoints ckpt-<step> (Trainer's keys); damaged/ holds any that
                   could not be read, set aside at a resume
  train/           TensorBoard events
  samples/         PNG grids named by step
  fixed_z.npy      the latent batch of the sample grids
  eval_*.json      results of pga_tf.evaluate, one file per features, sampler, step and sample count
  gmm_<step>.npz   the Gaussian mixture of the codes at a checkpoint (pga_tf.evaluation.gmm), fitted once
  .lock            held by the trainer that writes the folder
"""
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import re
import shutil
import sys

import numpy as np
import tensorflow as tf
from absl import logging

from pga_tf.training import config as config_lib
from pga_tf.core import generator
from pga_tf.evaluation import gmm
from pga_tf.utils import paths
from pga_tf.utils.paths import write_atomic

FLAGS_FILE = 'flags.cfg'
HISTORY_FILE = 'history.jsonl'
CHECKPOINTS = 'checkpoints'
DAMAGED = 'damaged'
SAMPLES = 'samples'
TRAIN_LOGS = 'train'
FIXED_Z = 'fixed_z.npy'
LOCK = '.lock'
_CHECKPOINT_INDEX = re.compile(r'ckpt-(\d+)\.index')


class RunError(config_lib.ConfigError):
    """A run folder that cannot be used as asked; the message names the folder or file."""


@dataclasses.dataclass
class LoadedRun:
    """A run's settings and trained networks at one checkpoint, ready for inference."""
    config: config_lib.Config
    encoder: object
    decoder: object
    step: int
    checkpoint: str


class RunFolder:
    """One run folder (it may not exist yet)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.flags_path = os.path.join(self.path, FLAGS_FILE)
        self.history_path = os.path.join(self.path, HISTORY_FILE)
        self.checkpoint_dir = os.path.join(self.path, CHECKPOINTS)
        self.sample_dir = os.path.join(self.path, SAMPLES)
        self.log_dir = os.path.join(self.path, TRAIN_LOGS)
        self.fixed_z_path = os.path.join(self.path, FIXED_Z)

    def eval_path(self, features, step, num_samples, repeats, sampler='prior'):
        """The result file of an evaluation: named by what produced it, so an evaluation with
        fewer samples never replaces a larger one of the same step."""
        name = f'eval_{features}_{gmm.prefix(sampler)}{step}_{num_samples}x{repeats}.json'
        return os.path.join(self.path, name)

    def gmm_path(self, step):
        """The Gaussian mixture of the codes at `step` (pga_tf.evaluation.gmm), fitted once."""
        return os.path.join(self.path, f'gmm_{step}.npz')

    # Settings and history.

    def has_config(self):
        return os.path.isfile(self.flags_path)

    def read_config(self):
        """The settings in force of the run (its flags.cfg)."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunError(f'{self.path} is a file, not a run folder')
        if not self.has_config():
            raise RunError(f'{self.path} is not a run folder (no {FLAGS_FILE})')
        try:
            config = config_lib.read_flagfiles(self.flags_path)
        except config_lib.ConfigError as err:
            raise RunError(f'{self.flags_path} is damaged: {err}') from None
        return self._upgraded(config)

    def _upgraded(self, config):
        """The settings of a run written before --resize existed (pga_tf 2026-11-25 and older):
        its CelebA images were the central 108x108 whatever --crop said (and TF2's bicubic, the
        default); its resnet_32 upsampled by nearest neighbour, which no setting gives now.

        Raises:
          RunError: a resnet_32 run of that time (its checkpoints would load into another network).
        """
        with open(self.flags_path) as f:
            if any(line.startswith('--resize=') for line in f):
                return config
        if config.arch == 'resnet_32':
            raise RunError(f'{self.path} is a resnet_32 run of an earlier pga_tf, whose decoder '
                           'upsampled by nearest neighbour where this one unpools as the original '
                           'does; its checkpoints do not fit: train it anew')
        if config.dataset == 'celeba' and config.crop != 108:
            logging.warning('%s: a celeba run of an earlier pga_tf: its 108x108 crop is kept; it '
                            'trained on tfds\'s train split, a resume reads all three', self.path)
            return dataclasses.replace(config, crop=108)
        return config

    def changes(self, config):
        """{name: (run's value, new value)} of the settings `config` changes in this run.

        Raises:
          RunError: `config` changes a setting that fixes the networks' variables or the run's
            noise (config.FIXED).
        """
        if not self.has_config():
            if self.checkpoints():
                raise RunError(f'{self.path} holds checkpoints but no {FLAGS_FILE}: its settings '
                               'are unknown; restore the file, or start another --run_dir')
            return {}
        saved = self.read_config()
        changed = {f.name: (getattr(saved, f.name), getattr(config, f.name))
                   for f in dataclasses.fields(config)
                   if getattr(saved, f.name) != getattr(config, f.name)}
        fixed = [f'--{k}={new} (the run has {old})' for k, (old, new) in changed.items()
                 if config_lib.on_resume(k) == config_lib.FIXED]
        if fixed:
            raise RunError(f'{self.path} cannot resume with {", ".join(fixed)}: these settings '
                           'fix its networks and noise; omit them, or start another --run_dir')
        return changed

    def record_segment(self, config, step, changes):
        """flags.cfg := `config`, and one history line for the segment starting at `step`."""
        entry = {'step': step, 'time': datetime.datetime.now().isoformat(timespec='seconds'),
                 'command': sys.argv}
        if os.path.exists(self.history_path) or self.has_config():
            entry['changed'] = {k: {'from': old, 'to': new} for k, (old, new) in changes.items()}
        else:
            entry['settings'] = dataclasses.asdict(config)
        write_atomic(self.flags_path, config.to_flagfile())
        with open(self.history_path, 'a') as f:
            f.write(json.dumps(entry) + '\n')

    def history(self):
        """The history lines, oldest first ([] for a run without one)."""
        if not os.path.exists(self.history_path):
            return []
        with open(self.history_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    # The folder itself.

    def prepare(self):
        """Creates the folder if needed; refuses a path that cannot hold a run."""
        paths.output_dir('run_dir', self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as err:
            raise RunError(f'--run_dir={self.path} cannot be created: {err.strerror}') from None

    def _remove_leftovers(self):
        """Temporary files of writes that a kill interrupted."""
        for folder in (self.path, self.checkpoint_dir, self.sample_dir):
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if '.tmp-' in name or name.endswith('_temp'):
                        target = os.path.join(folder, name)
                        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)

    def lock(self):
        """Holds the folder's lock until the process ends or `unlock`; refuses a second trainer.

        An flock dies with its process, so a killed trainer leaves no stale lock.
        """
        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise RunError(f'{self.path} is being trained by another process; wait for it '
                               'or stop it (its checkpoints would be overwritten)') from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._remove_leftovers()  # no other trainer is writing them
        return fd

    @staticmethod
    def unlock(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    # Checkpoints.

    def checkpoints(self):
        """Checkpoint paths present, newest first, from the files themselves (a missing or
        stale `checkpoint` pointer file does not hide any)."""
        if not os.path.isdir(self.checkpoint_dir):
            return []
        steps = sorted((int(m.group(1)) for m in map(_CHECKPOINT_INDEX.fullmatch,
                                                     os.listdir(self.checkpoint_dir)) if m),
                       reverse=True)
        return [os.path.join(self.checkpoint_dir, f'ckpt-{s}') for s in steps]

    def newest_readable(self):
        """(path, damaged): the newest checkpoint whose files read whole (None: there is no
        checkpoint), and (path, reason) of the newer ones that do not (truncated, missing
        shards). Older checkpoints are not read.

        Raises:
          RunError: checkpoints exist but none can be read.
        """
        damaged = []
        for path in self.checkpoints():
            reason = _damage(path)
            if not reason:
                return path, damaged
            damaged.append((path, reason))
        if damaged:
            path, reason = damaged[0]
            raise RunError(f'no checkpoint of {self.path} can be read; the newest, {path}, '
                           f'is damaged ({reason})')
        return None, []

    def recover_checkpoints(self):
        """Before a resume: the newest readable checkpoint (None: there is none yet).

        Damaged checkpoints newer than it are moved to checkpoints/damaged/ (kept, never
        deleted), and the pointer file is rewritten from the files present.

        Raises:
          RunError: checkpoints exist but none can be read.
        """
        newest, damaged = self.newest_readable()
        for path, reason in damaged:
            logging.warning('%s is damaged (%s); moved to %s', path, reason, DAMAGED)
            target = os.path.join(self.checkpoint_dir, DAMAGED)
            os.makedirs(target, exist_ok=True)
            for name in os.listdir(self.checkpoint_dir):
                if name.startswith(os.path.basename(path) + '.'):
                    os.replace(os.path.join(self.checkpoint_dir, name), os.path.join(target, name))
        if newest:
            # Names relative to the folder, as CheckpointManager writes them.
            # The CheckpointState text proto, written here: TF's writer is deprecated and says so
            # on stderr at every resume.
            names = [os.path.basename(p) for p in self.checkpoints()]
            write_atomic(os.path.join(self.checkpoint_dir, 'checkpoint'), ''.join(
                [f'model_checkpoint_path: "{names[0]}"\n']
                + [f'all_model_checkpoint_paths: "{name}"\n' for name in names[::-1]]))
            if damaged:
                logging.warning('Resuming from %s, the newest checkpoint that can be read', newest)
        return newest

    def load(self, checkpoint=None):
        """The run's settings and networks, restored strictly from `checkpoint` (default: the
        newest readable one; a damaged newer one is reported and passed over); the decoder is
        the generator at inference (`generator.prepare`).

        Raises:
          RunError: no run folder, no checkpoint, or one that does not restore (named).
        """
        config = self.read_config()
        if checkpoint:
            path = checkpoint.removesuffix('.index')
            if os.path.isdir(path):
                path = tf.train.latest_checkpoint(path) or path
            reason = _damage(path) if tf.io.gfile.exists(path + '.index') else 'not found'
            if reason:
                raise RunError(f'--checkpoint={checkpoint} cannot be read ({reason})')
        else:
            path, damaged = self.newest_readable()
            if not path:
                raise RunError(f'no checkpoint in {self.checkpoint_dir}')
            for bad, reason in damaged:
                logging.warning('%s is damaged (%s); using %s', bad, reason, path)
        tr = config.build_trainer()
        restore(tr, path, optimizers=False)  # inference needs the networks and the step
        bad = [w.path for w in tr.encoder.weights + tr.decoder.weights
               if not np.isfinite(w.numpy()).all()]
        if bad:
            older = [p for p in self.checkpoints() if _step(p) < int(tr.step.numpy())]
            raise RunError(f'{path} holds non-finite weights ({bad[0]}{" ..." if len(bad) > 1 else ""})'
                           + (f'; pass --checkpoint={older[0]}' if older else ''))
        generator.prepare(tr.decoder)
        return LoadedRun(config, tr.encoder, tr.decoder, int(tr.step.numpy()), path)


def restore(tr, path, optimizers=True):
    """`tr.restore(path)`, with a one-line RunError when it does not match the networks."""
    try:
        tr.restore(path, optimizers)
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f'{path} does not restore into this run\'s networks: {first}') from None


def _step(path):
    return int(path.rsplit('-', 1)[1])


def _damage(path):
    """Why the checkpoint `path` cannot be read whole ('' when it can)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError) as err:
        return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return ''
