"""`Config`: the settings of a training run, each declared once with its help and bounds.

The fields generate the absl flags of every command that uses them (`define_flags`), and absl
reads every flag file (`read_flagfiles`): presets, a run's `flags.cfg`, a user's own. Field
names are the flag names (the original code's), so a Config writes itself back as a flag file
that reproduces the run.

Each field also says what may happen to it when a run resumes (`on_resume`):
  fixed      it fixes the networks' variables or the run's noise: a resume cannot change it;
  recorded   it changes the optimisation (lr, coefficients, optimiser, data): allowed, logged
             and kept in the run's history;
  free       length, cadence of logs/grids/checkpoints/evaluation, the guard: allowed.
"""
import contextlib
import dataclasses
import math
import os

from absl import flags

from pga_tf.core import losses, models
from pga_tf.training import data, distribute, trainer


class ConfigError(ValueError):
    """Settings that cannot work together; the message names the flags."""


FIXED, RECORDED, FREE = 'fixed', 'recorded', 'free'


def _setting(default, help_text, on_resume, *, lower=None, upper=None, choices=None):
    return dataclasses.field(default=default, metadata={
        'help': help_text, 'on_resume': on_resume, 'lower': lower, 'upper': upper,
        'choices': choices})


@dataclasses.dataclass(frozen=True)
class Config:
    # Data.
    dataset: str = _setting('mnist_5k', 'Dataset; picks the preset with --model.', FIXED,
                            choices=sorted(data.DATASETS))
    data_dir: str = _setting('', 'tfds data_dir, or the image folder of --dataset=folder.', RECORDED)
    crop: int = _setting(0, 'celeba, folder: central square crop before resizing (0: the '
                         'largest).', RECORDED, lower=0)
    resize: str = _setting(data.DEFAULT_RESIZE, "celeba, folder: resize to the architecture's side: "
                           "tf1_bicubic (the original's) or bicubic (TF2's).", RECORDED,
                           choices=data.RESIZES)
    channels: int = _setting(3, 'folder: image channels (1: grey, 3: RGB).', FIXED,
                             choices=(1, 3))
    # Model.
    model: str = _setting('vpga', 'Method: lpga, vpga, lvpga, vae or ae.', FIXED,
                          choices=sorted(losses.METHODS))
    arch: str = _setting('conv_mnist', 'Encoder/decoder architecture.', FIXED,
                         choices=sorted(models.ARCHITECTURES))
    z_dim: int = _setting(32, 'Latent dimension.', FIXED, lower=1)
    bn: bool = _setting(False, 'Batch normalisation where the original uses it.', FIXED)
    width: float = _setting(1.0, 'Multiplier of the original layer widths.', FIXED, lower=1e-3)
    precision: str = _setting('float32', 'Compute dtype policy; the losses stay float32.', FIXED,
                              choices=models.PRECISIONS)
    # The original code's versions (README, Faithfulness): the latest by default.
    dense_lrelu: bool = _setting(True, "conv_mnist: leaky ReLU after the encoder's 1024-unit "
                                 'layer (the original since 2020-02; off: the paper-time code).',
                                 FIXED)
    sigma_init: float = _setting(0.1, 'Variational encoders: sigma of q(z|x) at initialisation '
                                 '(0.1: the original since 2019-05; 1: the paper-time code).',
                                 FIXED, lower=1e-6)
    # Loss coefficients (the original code's flags) and their warm-up.
    zn_rec: float = _setting(0.0, 'alpha: latent reconstruction of z ~ N(0, I).', RECORDED, lower=0)
    zh_rec: float = _setting(0.0, 'beta: latent reconstruction of encoded data.', RECORDED, lower=0)
    nll: float = _setting(0.0, 'gamma: maximum-likelihood terms (lpga, lvpga).', RECORDED, lower=0)
    vrec: float = _setting(0.0, 'VPGA latent term (vpga, lvpga).', RECORDED, lower=0)
    vkld: float = _setting(0.0, 'KL weight (vpga, lvpga, and the vae baseline).', RECORDED, lower=0)
    init_steps: int = _setting(0, 'Steps with every coefficient at 0.', RECORDED, lower=0)
    logdet_floor: bool = _setting(True, 'Log-determinant estimates (lpga, lvpga) count a '
                                  'difference h(z + d) - h(z) below float32 resolution of h(z) as '
                                  'that resolution, not log 0 (off: the original).', RECORDED)
    ramp_steps: int = _setting(0, 'Steps over which the coefficients rise linearly from 0 to '
                               'their values after init_steps (0: switched on at once, the '
                               'original).', RECORDED, lower=0)
    # Optimisation.
    optimizer: str = _setting('sgd', 'sgd (momentum 0.9, the paper) or adam.', RECORDED,
                              choices=trainer.OPTIMIZERS)
    lr: float = _setting(0.1, 'Learning rate (> 0).', RECORDED, lower=1e-9)
    adam_beta1: float = _setting(0.9, "Adam's beta1 (--optimizer=adam; the VAE base code of the "
                                 'original used 0.5).', RECORDED, lower=0, upper=0.999)
    clip_norm: float = _setting(0.0, "Each network's gradient is scaled down to this global "
                                'norm when above it (0: never, the original).', RECORDED, lower=0)
    batch_size: int = _setting(64, 'Images per step (per replica).', RECORDED, lower=1)
    epochs: int = _setting(1, 'Training length in epochs.', FREE, lower=1)
    train_steps: int = _setting(0, 'Training length in steps; > 0 overrides --epochs.', FREE, lower=0)
    # Run.
    seed: int = _setting(0, 'Seed of weights, noise and data order.', FIXED)
    jit_compile: str = _setting('auto', 'XLA for the step; auto: on with a GPU, and on a CPU '
                                'where the run measures it faster (cached per machine).', FREE,
                                choices=('auto', 'on', 'off'))
    log_every: int = _setting(100, 'Steps between scalars and console lines.', FREE, lower=1)
    sample_every: int = _setting(1000, 'Steps between sample grids.', FREE, lower=1)
    checkpoint_every: int = _setting(1000, 'Steps between checkpoints.', FREE, lower=1)
    max_to_keep: int = _setting(3, 'Checkpoints kept.', FREE, lower=1)
    deterministic: bool = _setting(False, 'TensorFlow op determinism (slower).', FREE)
    strategy: str = _setting('default', 'tf.distribute strategy; --batch_size is per replica. '
                             'multi_worker reads TF_CONFIG.', RECORDED, choices=distribute.STRATEGIES)
    cpu_replicas: int = _setting(0, 'With --strategy=mirrored: split the CPU into this many '
                                 'devices (a multi-device run without GPUs).', RECORDED, lower=0)
    on_nonfinite: str = _setting('stop', 'A non-finite loss or gradient: stop (the last '
                                 'checkpoint is kept), or skip the step.', FREE,
                                 choices=('stop', 'skip'))
    max_skips: int = _setting(10, 'With --on_nonfinite=skip: stop after this many skipped steps.',
                              FREE, lower=0)
    # In-loop evaluation (pga_tf.evaluation).
    eval_every: int = _setting(0, 'Steps between in-loop Fréchet distances (0: off).', FREE, lower=0)
    eval_samples: int = _setting(1000, 'Samples of an in-loop evaluation.', FREE, lower=10)
    features: str = _setting('auto', 'Features of the distance; auto: the offline classifier for '
                             'labelled datasets, else Inception.', FREE,
                             choices=('auto', 'classifier', 'inception'))
    inception_path: str = _setting('', 'Local Inception SavedModel folder or TF Hub handle '
                                   '(default: TF Hub).', FREE)
    stats_dir: str = _setting('', 'Cache of real-data statistics, classifiers and XLA choices '
                              '(default ~/.cache/pga_tf).', FREE)

    @classmethod
    def from_flags(cls, flag_values):
        """A Config from parsed absl FlagValues holding a flag for every field."""
        return cls(**{f.name: flag_values[f.name].value for f in dataclasses.fields(cls)})

    def image_shape(self):
        """(size, channels) of the images; checks that the architecture reads the dataset's."""
        spec = data.DATASETS[self.dataset]
        size = models.IMAGE_SIZE[self.arch]
        if spec.size is not None and spec.size != size:
            raise ConfigError(f'--arch={self.arch} reads {size}x{size} images but '
                              f'--dataset={self.dataset} has {spec.size}x{spec.size}')
        return size, spec.channels or self.channels

    def image_args(self):
        """Keyword arguments of `data.load_dataset` that shape this Config's images."""
        size, channels = self.image_shape()
        return dict(size=size, channels=channels, crop=self.crop, resize=self.resize)

    def build_models(self, precision=None, sync_bn=False):
        """(encoder, decoder) of this Config (`precision` overrides its own)."""
        _, channels = self.image_shape()
        return models.build_models(self.arch, self.z_dim, channels,
                                   self.model in losses.VARIATIONAL, self.bn, self.width,
                                   precision or self.precision, sync_bn,
                                   dense_lrelu=self.dense_lrelu, sigma_init=self.sigma_init)

    def build_trainer(self, checkpoint_dir=None, strategy=None, jit_compile=None):
        """The Trainer of this Config, its models built in `strategy`'s scope."""
        strategy = strategy or distribute.make_strategy('default')
        with strategy.scope():
            # Batch statistics over the global batch, as on one device.
            encoder, decoder = self.build_models(sync_bn=strategy.num_replicas_in_sync > 1)
        return trainer.Trainer(self.model, encoder, decoder, self.loss_weights(), self.lr,
                               self.optimizer, self.init_steps, self.seed, jit_compile,
                               checkpoint_dir, self.max_to_keep, strategy,
                               ramp_steps=self.ramp_steps, clip_norm=self.clip_norm,
                               adam_beta1=self.adam_beta1)

    def loss_weights(self):
        return losses.LossWeights(zn_rec=self.zn_rec, zh_rec=self.zh_rec, nll=self.nll,
                                  logdet_floor=self.logdet_floor,
                                  vrec=self.vrec, vkld=self.vkld)

    def to_args(self):
        """`--name=value` arguments that reproduce this Config."""
        def fmt(value):
            return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
        return [f'--{f.name}={fmt(getattr(self, f.name))}' for f in dataclasses.fields(self)]

    def with_flags(self, args):
        """This Config with the command-line flags `args` on top (parsed and checked by absl).

        Raises:
          ConfigError: an unknown flag or a bad value.
        """
        return read_flagfiles(args=[*self.to_args(), *args])

    def to_flagfile(self):
        """The flag file of `to_args`, one flag a line."""
        return ''.join(arg + '\n' for arg in self.to_args())


def on_resume(name):
    """FIXED, RECORDED or FREE: what a resume may do with the setting `name`."""
    return _FIELDS[name].metadata['on_resume']


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def define_flags(flag_values=flags.FLAGS, names=None):
    """Defines the absl flag of each Config field in `names` (None: every field).

    A flag `flag_values` holds already is left alone (it came from here too). Floats must be
    finite: `--lr=nan` is refused like `--lr=-1`.
    """
    for name in names or _FIELDS:
        if name in flag_values:
            continue
        field = _FIELDS[name]
        meta, default = field.metadata, field.default
        kw = dict(flag_values=flag_values)
        if meta['choices'] is not None and field.type is str:
            flags.DEFINE_enum(name, default, meta['choices'], meta['help'], **kw)
        elif field.type is bool:
            flags.DEFINE_boolean(name, default, meta['help'], **kw)
        else:
            define = {int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      str: flags.DEFINE_string}[field.type]
            bounds = {} if field.type is str else dict(lower_bound=meta['lower'],
                                                       upper_bound=meta['upper'])
            define(name, default, meta['help'], **bounds, **kw)
        if field.type is float:
            flags.register_validator(name, math.isfinite, f'--{name} must be a finite number',
                                     flag_values=flag_values)
        if meta['choices'] is not None and field.type is int:
            choices = meta['choices']
            flags.register_validator(name, lambda v, c=choices: v in c,
                                     f'--{name} must be one of {", ".join(map(str, choices))}',
                                     flag_values=flag_values)


@contextlib.contextmanager
def _working_dir(path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def read_flagfiles(*paths, args=(), directory=None):
    """The Config of absl flag files read in order (later values win), then `args`.

    absl reads them, as it reads a command line: nested `--flagfile=` lines work, relative to
    `directory` (default: the current folder). Fields not given keep their defaults.

    Raises:
      ConfigError: a file cannot be read, or holds an unknown flag or a bad value.
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    argv = ['pga_tf', *(f'--flagfile={os.path.abspath(p)}' for p in paths), *args]
    try:
        with _working_dir(directory or os.getcwd()):
            flag_values(argv)
    except flags.Error as err:
        raise ConfigError(f'{", ".join(map(str, paths))}: {err}') from None
    return Config.from_flags(flag_values)
