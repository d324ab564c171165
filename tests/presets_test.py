"""Every flags/ preset parses, reaches the Config, and yields buildable models."""
import dataclasses
import pathlib

import keras
import pytest
from absl import flags

from pga_tf.core import losses, models
from pga_tf.training import cli_flags, data
from pga_tf.training import config as config_lib
from pga_tf.training.config import Config

FLAGS = flags.FLAGS
config_lib.define_flags(FLAGS)
cli_flags.define('run_dir', 'preset_dir')
PAIRS = [(d, m) for d in sorted(data.DATASETS) for m in sorted(losses.METHODS)]
PRESETS = pathlib.Path(__file__).resolve().parent.parent / 'flags'


@pytest.fixture(autouse=True)
def _reset_flags():
    yield
    FLAGS.unparse_flags()


def parse(*args):
    cli_flags.parse_train(['train', *args])
    return Config.from_flags(FLAGS)


@pytest.mark.parametrize('dataset, model', PAIRS)
def test_every_pair_parses_and_builds(dataset, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nested --flagfile= lines resolve next to the preset
    config = parse(f'--dataset={dataset}', f'--model={model}')
    assert config == cli_flags.read_preset(dataset, model)
    assert (config.dataset, config.model) == (dataset, model)
    size, channels = config.image_shape()
    encoder, decoder = models.build_models(config.arch, config.z_dim, channels,
                                           model in losses.VARIATIONAL, config.bn, width=1 / 16)
    assert decoder.output_shape == (None, size, size, channels)


@pytest.mark.parametrize('model', sorted(losses.METHODS))
def test_presets_nest(model):
    """mnist_5k is MNIST's preset with its own length; folder is CelebA's preset."""
    small, full = cli_flags.read_preset('mnist_5k', model), cli_flags.read_preset('mnist', model)
    assert (small.train_steps, small.checkpoint_every, small.width) == (2000, 500, 0.5)
    assert full.width == 1.0
    warm = model in ('lpga', 'lvpga')
    assert (small.init_steps, small.ramp_steps) == ((200, 200) if warm else (0, 0))
    assert full.ramp_steps == 0  # MNIST's own preset switches on at once, as the original
    keep = ('dataset', 'train_steps', 'sample_every', 'checkpoint_every', 'width', 'init_steps',
            'ramp_steps')
    # The mnist_5k VAE's optimiser and KL weight come from its sweep; MNIST's are PGA's.
    tuned = ('optimizer', 'lr', 'vkld') if model == 'vae' else ()
    assert (small.optimizer, small.lr, small.vkld) == (('adam', 1e-3, 5e-2) if tuned else
                                                       (full.optimizer, full.lr, full.vkld))
    assert dataclasses.replace(small, **{k: getattr(full, k) for k in keep + tuned}) == full
    folder, celeba = cli_flags.read_preset('folder', model), cli_flags.read_preset('celeba', model)
    assert dataclasses.replace(folder, dataset='celeba') == celeba
    for name in (f'mnist_5k_{model}.cfg', f'folder_{model}.cfg'):
        assert '--flagfile=' in (PRESETS / name).read_text()


def test_paper_values_reach_the_config():
    c = parse('--dataset=celeba', '--model=vpga')
    assert (c.arch, c.bn, c.lr, c.z_dim, c.epochs) == ('conv_64', True, 0.4, 128, 60)
    assert (c.zn_rec, c.zh_rec, c.vrec, c.vkld) == (3e-2, 1e-2, 1e-2, 2e-3)
    assert (c.crop, c.resize, c.dense_lrelu, c.sigma_init) == (108, 'tf1_bicubic', True, 0.1)
    c = parse('--dataset=mnist', '--model=lpga')
    assert (c.arch, c.bn, c.lr, c.z_dim, c.init_steps, c.nll) == ('conv_mnist', False, 0.1, 12, 3000, 1.5e-2)
    c = parse('--dataset=cifar10', '--model=lvpga')
    assert (c.lr, c.epochs, c.vrec, c.vkld, c.nll) == (0.2, 400, 1.5e-2, 5e-2, 2e-2)


def test_paper_time_flags_build_the_paper_time_networks():
    """MNIST VPGA as the original code of March 2019 (README, Faithfulness)."""
    c = parse('--dataset=mnist', '--model=vpga', '--nodense_lrelu', '--sigma_init=1', '--vkld=3e-2')
    encoder, _ = c.build_models()
    assert sum(isinstance(l, keras.layers.LeakyReLU) for l in encoder.layers) == 2
    assert not encoder.get_layer('z_log_sigma_sq').bias.numpy().any()
    assert c.vkld == 3e-2


def test_command_line_wins_over_the_preset(tmp_path):
    c = parse('--dataset=mnist', '--model=lpga', '--lr=0.03', '--nll=0', '--z_dim=5')
    assert (c.lr, c.nll, c.z_dim, c.zn_rec) == (0.03, 0.0, 5, 6e-2)
    FLAGS.unparse_flags()
    user = tmp_path / 'mine.cfg'
    user.write_text('--lr=0.5\n--batch_size=16\n')
    c = parse('--dataset=cifar10', '--model=vpga', f'--flagfile={user}', '--batch_size=8')
    assert (c.lr, c.batch_size, c.vrec) == (0.5, 8, 5e-3)


def test_a_run_flagfile_reproduces_the_config(tmp_path):
    c = parse('--dataset=celeba', '--model=lvpga', '--lr=0.25', '--seed=9')
    FLAGS.unparse_flags()
    (tmp_path / 'flags.cfg').write_text(c.to_flagfile())
    assert parse(f'--flagfile={tmp_path / "flags.cfg"}') == c


@pytest.mark.parametrize('arg, message', [
    ('--lrr=0.1', 'lrr'),
    ('--lr=-1', '--lr'),
    ('--lr=nan', '--lr must be a finite number'),
    ('--zn_rec=inf', '--zn_rec must be a finite number'),
    ('--channels=2', '--channels must be one of 1, 3'),
    ('--model=gan', 'model'),
])
def test_bad_flags_exit_2_with_one_line(arg, message, capsys):
    with pytest.raises(SystemExit) as exit:
        parse(arg)
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert ': error: ' in line and message in line


def test_resume_with_another_dataset_or_model_exits_2(tmp_path, capsys):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'flags.cfg').write_text(cli_flags.read_preset('mnist_5k', 'lpga').to_flagfile())
    assert parse(f'--run_dir={run_dir}').model == 'lpga'  # the run's own settings
    FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit:
        parse(f'--run_dir={run_dir}', '--model=vpga')
    assert exit.value.code == 2
    assert 'is a mnist_5k/lpga run' in capsys.readouterr().err


def test_every_preset_names_its_source():
    for path in PRESETS.glob('*.cfg'):
        first = path.read_text().splitlines()[0]
        assert first.startswith('# '), path
    for name in ('mnist_5k.cfg', 'mnist_vae.cfg', 'folder.cfg'):
        assert 'Judgement' in (PRESETS / name).read_text()


def test_with_flags_puts_checked_flags_on_top():
    c = cli_flags.read_preset('mnist_5k', 'lpga')
    changed = c.with_flags(['--lr=0.05', '--ramp_steps=0'])
    assert (changed.lr, changed.ramp_steps) == (0.05, 0)
    assert dataclasses.replace(changed, lr=c.lr, ramp_steps=c.ramp_steps) == c
    with pytest.raises(config_lib.ConfigError, match='ramp_steps'):
        c.with_flags(['--ramp_steps=-1'])
