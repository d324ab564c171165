"""The training loop on mock and offline data: every pair trains, runs resume, outputs are readable."""
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from pga_tf.training import autotune, cli_flags, data, train_lib
from pga_tf.training.config import Config, ConfigError

# A small, fast configuration: the loop's behaviour without the paper's sizes.
SMALL = dict(width=1 / 16, batch_size=4, z_dim=4, log_every=1, sample_every=2, checkpoint_every=2)


def small_config(dataset, model, **kw):
    return dataclasses.replace(cli_flags.read_preset(dataset, model),
                               **{**SMALL, 'train_steps': 2, **kw})


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(6):  # CelebA's aligned size: the folder presets crop its central 108x108
        Image.fromarray(rng.randint(0, 256, (218, 178, 3)).astype(np.uint8)).save(
            folder / f'{i}.{"png" if i % 2 else "jpg"}')
    return str(folder)


# Every method (lpga, lvpga and vpga train in the run-folder, TensorBoard and generator tests;
# the baselines here), batch norm with and without a variational encoder (conv_64 through the
# image-folder pipeline), and each tfds dataset once (conv_32: cifar10).
TRAINED = [('mnist_5k', 'ae'), ('mnist_5k', 'vae'), ('folder', 'lpga'), ('folder', 'vpga'),
           ('mnist', 'lpga'), ('cifar10', 'lvpga'), ('celeba', 'vpga')]


@pytest.mark.parametrize('dataset, model', TRAINED)
def test_every_method_and_architecture_trains(dataset, model, tmp_path, image_folder):
    config = small_config(dataset, model, data_dir=image_folder if dataset == 'folder' else str(tmp_path))
    with tfds.testing.mock_data(num_examples=8):
        tr = train_lib.train(config, str(tmp_path / 'run'))
    assert int(tr.step) == 2
    assert os.path.exists(tmp_path / 'run' / 'checkpoints' / 'ckpt-2.index')


def _weights(tr):
    return [v.numpy() for v in tr.encoder.variables + tr.decoder.variables
            + tr.opt_enc.variables + tr.opt_dec.variables]


def test_stopped_run_resumes_where_it_stopped(tmp_path):
    config = small_config('mnist_5k', 'lpga', init_steps=1, checkpoint_every=100)
    straight = train_lib.train(dataclasses.replace(config, train_steps=4), str(tmp_path / 'a'))

    first = train_lib.train(config, str(tmp_path / 'b'))
    saved = _weights(first)
    second = train_lib.train(dataclasses.replace(config, train_steps=4), str(tmp_path / 'b'))
    assert int(second.step) == 4
    # The resumed run ends where the uninterrupted one does: same weights, optimiser
    # slots, noise and data position.
    for a, b in zip(_weights(straight), _weights(second)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(saved, _weights(second)))


def _events(run_dir):
    tags, images = {}, {}
    for path in glob.glob(os.path.join(run_dir, 'train', 'events.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
                if value.metadata.plugin_data.plugin_name == 'images':
                    images[value.tag] = value
    return tags, images


def test_jit_auto_follows_the_choice_cached_for_this_machine(tmp_path):
    config = small_config('mnist_5k', 'ae', stats_dir=str(tmp_path), jit_compile='auto',
                          train_steps=1)
    record = dict(xla=True, sec_per_step_off=0.2, sec_per_step_on=0.1, measured='2026-11-27')
    (tmp_path / autotune.CACHE_FILE).write_text(json.dumps({autotune.choice_key(config): record}))
    assert train_lib.train(config, str(tmp_path / 'run')).jit_compile


def test_tensorboard_and_png_outputs(tmp_path):
    run_dir = str(tmp_path / 'run')
    config = small_config('mnist_5k', 'lvpga', train_steps=3)
    train_lib.train(config, run_dir)
    tags, _ = _events(run_dir)
    for tag in ('enc_loss', 'dec_loss', 'lr', 'perf/steps_per_sec', 'perf/images_per_sec',
                'losses/img_rec', 'losses/zn_rec', 'losses/vrec', 'losses/vkld',
                'grad_norms/enc_grad_norm', 'grad_norms/dec_grad_norm',
                'samples/samples', 'samples/reconstructions', 'samples/interpolations',
                'samples/traversals', 'flags'):
        assert tag in tags, tag
    # Terms whose coefficient is 0 in the preset are not computed, so not logged.
    assert config.zh_rec == config.nll == 0
    assert 'losses/zh_rec' not in tags and 'losses/nll_enc' not in tags
    assert tags['enc_loss'] == [1, 2, 3] and tags['samples/samples'] == [2, 3]
    assert any(t.startswith('_hparams_') for t in tags)
    sizes = {'samples': (8 * 28, 8 * 28), 'reconstructions': (4 * 28, 16 * 28),
             'interpolations': (8 * 28, 11 * 28), 'traversals': (min(8, config.z_dim) * 28, 9 * 28)}
    for name, (h, w) in sizes.items():
        for step in (2, 3):
            image = Image.open(os.path.join(run_dir, 'samples', f'{name}_{step:07d}.png'))
            assert image.size == (w, h) and image.mode == 'L'
    flagfile = open(os.path.join(run_dir, 'flags.cfg')).read()
    assert '--model=lvpga' in flagfile and '--width=0.0625' in flagfile


def test_interpolation_rows_start_and_end_with_the_real_images(tmp_path):
    run_dir = str(tmp_path / 'run')
    train_lib.train(small_config('mnist_5k', 'ae', train_steps=1), run_dir)
    grid = np.array(Image.open(os.path.join(run_dir, 'samples', 'interpolations_0000001.png')))
    held_out = {image.tobytes() for image in data.mnist_5k_arrays('test')[..., 0]}
    rows = [grid[r * 28:(r + 1) * 28] for r in range(8)]
    assert all(row[:, :28].tobytes() in held_out and row[:, -28:].tobytes() in held_out for row in rows)
    # The fixed batch is a mix of classes, not the first images of a sorted split.
    assert len({row[:, :28].tobytes() for row in rows}) == 8


def test_arch_that_does_not_read_the_dataset():
    with pytest.raises(ValueError, match='reads 32x32'):
        Config(dataset='mnist_5k', arch='conv_32').image_shape()
    assert Config(dataset='folder', arch='conv_64', channels=1).image_shape() == (64, 1)


def test_skipping_steps_needs_the_default_strategy(tmp_path):
    # A strategy of one replica is still one whose updates a skipped step cannot undo; it is
    # refused before anything is written, also from inside its scope.
    config = small_config('mnist_5k', 'vpga', on_nonfinite='skip')
    strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
    for scope in (tf.distribute.get_strategy().scope(), strategy.scope()):
        with scope, pytest.raises(ConfigError, match='on_nonfinite=skip needs one device'):
            train_lib.train(config, str(tmp_path / 'run'), strategy=strategy)
    assert not os.path.exists(tmp_path / 'run')
