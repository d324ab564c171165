"""Every flags/ preset parses, reaches the Config, and yields buildable models."""
import pathlib

import pytest
from absl import flags

from pga_tf import cli_flags, data, losses, models
from pga_tf.config import Config

FLAGS = flags.FLAGS
PAIRS = [(d, m) for d in sorted(data.DATASETS) for m in sorted(losses.METHODS)]
PRESETS = pathlib.Path(__file__).resolve().parent.parent / 'flags'


@pytest.fixture(autouse=True)
def _reset_flags():
    yield
    FLAGS.unparse_flags()


def parse(*args):
    cli_flags.parse_with_preset(['train', *args])
    return Config.from_flags(FLAGS)


def read_preset(name):
    """{flag: value string} of one preset file, read independently of absl."""
    lines = (PRESETS / name).read_text().splitlines()
    out = {}
    for line in lines:
        if line.startswith('--'):
            key, _, value = line[2:].partition('=')
            out[key] = value or 'true'
            if key.startswith('no') and not value:
                out = {**out, key[2:]: 'false'}
                del out[key]
    return out


@pytest.mark.parametrize('dataset, model', PAIRS)
def test_every_pair_parses_and_builds(dataset, model):
    config = parse(f'--dataset={dataset}', f'--model={model}')
    expected = {**read_preset(f'{dataset}.cfg'), **read_preset(f'{dataset}_{model}.cfg')}
    for key, value in expected.items():
        got = getattr(config, key)
        if isinstance(got, bool):
            assert got == (value == 'true'), key
        else:
            assert got == type(got)(value), key
    size, channels = config.image_shape()
    encoder, decoder = models.build_models(config.arch, config.z_dim, channels,
                                           model in losses.VARIATIONAL, config.bn, width=1 / 16)
    assert decoder.output_shape == (None, size, size, channels)


@pytest.mark.parametrize('dataset, model', PAIRS)
def test_presets_read_without_absl_give_the_same_config(dataset, model):
    files = cli_flags.preset_files(dataset, model)
    assert Config.from_flagfiles(*files, dataset=dataset, model=model) == \
        parse(f'--dataset={dataset}', f'--model={model}')


def test_paper_values_reach_the_config():
    c = parse('--dataset=celeba', '--model=vpga')
    assert (c.arch, c.bn, c.lr, c.z_dim, c.epochs) == ('conv_64', True, 0.4, 128, 60)
    assert (c.zn_rec, c.zh_rec, c.vrec, c.vkld) == (3e-2, 1e-2, 1e-2, 2e-3)
    c = parse('--dataset=mnist', '--model=lpga')
    assert (c.arch, c.bn, c.lr, c.z_dim, c.init_steps, c.nll) == ('conv_mnist', False, 0.1, 12, 3000, 1.5e-2)
    c = parse('--dataset=cifar10', '--model=lvpga')
    assert (c.lr, c.epochs, c.vrec, c.vkld, c.nll) == (0.2, 400, 1.5e-2, 5e-2, 2e-2)


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


def test_mnist_5k_keeps_mnist_coefficients():
    for model in losses.METHODS:
        small, full = read_preset(f'mnist_5k_{model}.cfg'), read_preset(f'mnist_{model}.cfg')
        small.pop('init_steps'), full.pop('init_steps')
        assert small == full
        folder, celeba = read_preset(f'folder_{model}.cfg'), read_preset(f'celeba_{model}.cfg')
        celeba.pop('epochs')
        assert folder == celeba


def test_every_preset_names_its_source():
    for path in PRESETS.glob('*.cfg'):
        first = path.read_text().splitlines()[0]
        assert first.startswith('# '), path
    for name in ('mnist_5k.cfg', 'mnist_vae.cfg', 'folder.cfg'):
        assert 'Judgement' in (PRESETS / name).read_text()
