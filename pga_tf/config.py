"""`Config`: the resolved settings of a run, the one bridge from absl flags to the libraries.

Field names are the flag names (the original code's), so a Config writes itself back as a
flag file that reproduces the run.
"""
import dataclasses

from pga_tf import data, losses, models


class ConfigError(ValueError):
    """Settings that cannot work together; the message names the flags."""


@dataclasses.dataclass(frozen=True)
class Config:
    # Data.
    dataset: str = 'mnist_5k'
    data_dir: str = ''
    crop: int = 0  # folder: central square crop before resizing (0: the largest square)
    channels: int = 3  # folder: image channels
    # Model.
    model: str = 'vpga'
    arch: str = 'conv_mnist'
    z_dim: int = 32
    bn: bool = False
    width: float = 1.0
    precision: str = 'float32'  # or mixed_bfloat16 / mixed_float16
    # Loss coefficients (the original code's flags) and their warm-up.
    zn_rec: float = 0.0
    zh_rec: float = 0.0
    nll: float = 0.0
    vrec: float = 0.0
    vkld: float = 0.0
    init_steps: int = 0
    # Optimisation.
    optimizer: str = 'sgd'
    lr: float = 0.1
    batch_size: int = 64
    epochs: int = 1
    train_steps: int = 0  # > 0 overrides epochs
    # Run.
    seed: int = 0
    jit_compile: str = 'auto'  # auto: XLA only on a GPU
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    max_to_keep: int = 3
    deterministic: bool = False
    strategy: str = 'default'  # tf.distribute: default, mirrored, multi_worker, tpu
    cpu_replicas: int = 0  # > 1: mirror over that many logical CPU devices (testing)
    on_nonfinite: str = 'stop'  # or 'skip' the step
    max_skips: int = 10
    # In-loop evaluation (pga_tf.evaluation).
    eval_every: int = 0  # 0: off
    eval_samples: int = 1000
    features: str = 'auto'  # classifier for labelled datasets, else inception
    inception_path: str = ''  # a local Inception SavedModel or TF Hub handle ('' : TF Hub)
    stats_dir: str = ''  # '' : ~/.cache/pga_tf

    @classmethod
    def from_flags(cls, flag_values):
        """A Config from parsed absl FlagValues holding a flag for every field."""
        return cls(**{f.name: flag_values[f.name].value for f in dataclasses.fields(cls)})

    @classmethod
    def from_flagfiles(cls, *paths, **overrides):
        """A Config from absl flag files read in order (later values win), then `overrides`.

        Reads what `to_flagfile` and the presets in flags/ hold: `--name=value`, `--name` and
        `--noname` for booleans, blank lines and `#` comments. Fields not given keep the
        defaults, which are the flags' defaults.
        """
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {}
        for path in paths:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith('#'):
                        continue
                    name, sep, value = line.removeprefix('--').partition('=')
                    if not sep and name.startswith('no') and types.get(name[2:]) is bool:
                        name, value = name[2:], 'false'
                    elif not sep and types.get(name) is bool:
                        value = 'true'
                    if name not in types:
                        raise ConfigError(f'{path}: unexpected line {line!r}')
                    kind = types[name]
                    values[name] = value.lower() == 'true' if kind is bool else kind(value)
        return dataclasses.replace(cls(**values), **overrides)

    @classmethod
    def from_flagfile(cls, path):
        """The Config written by `to_flagfile` (the flags.cfg of a run)."""
        return cls.from_flagfiles(path)

    def image_shape(self):
        """(size, channels) of the images; checks that the architecture reads the dataset's."""
        spec = data.DATASETS[self.dataset]
        size = models.IMAGE_SIZE[self.arch]
        if spec.size is not None and spec.size != size:
            raise ConfigError(f'--arch={self.arch} reads {size}x{size} images but '
                              f'--dataset={self.dataset} has {spec.size}x{spec.size}')
        return size, spec.channels or self.channels

    def build_models(self, precision=None, sync_bn=False):
        """(encoder, decoder) of this Config (`precision` overrides its own)."""
        _, channels = self.image_shape()
        return models.build_models(self.arch, self.z_dim, channels,
                                   self.model in losses.VARIATIONAL, self.bn, self.width,
                                   precision or self.precision, sync_bn)

    def loss_weights(self):
        return losses.LossWeights(zn_rec=self.zn_rec, zh_rec=self.zh_rec, nll=self.nll,
                                  vrec=self.vrec, vkld=self.vkld)

    def to_flagfile(self):
        """`--name=value` lines that reproduce this Config."""
        def fmt(value):
            return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
        return ''.join(f'--{f.name}={fmt(getattr(self, f.name))}\n' for f in dataclasses.fields(self))
