"""The run folder: settings and history, resume rules, damaged checkpoints, the lock."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from pga_tf.training import train_lib
from pga_tf.training.config import ConfigError
from pga_tf.training.run_folder import RunError, RunFolder
from train_lib_test import small_config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 4-step lpga run with checkpoints at steps 2 and 4."""
    run_dir = str(tmp_path_factory.mktemp('run') / 'run')
    config = small_config('mnist_5k', 'lpga', train_steps=4, init_steps=1)
    train_lib.train(config, run_dir)
    return config, run_dir


def copy_run(trained, tmp_path):
    import shutil
    shutil.copytree(trained[1], tmp_path / 'run')
    return RunFolder(tmp_path / 'run')


def test_layout_settings_and_first_history_line(trained):
    config, run_dir = trained
    run = RunFolder(run_dir)
    assert run.read_config() == config
    assert [os.path.basename(p) for p in run.checkpoints()] == ['ckpt-4', 'ckpt-2']
    (entry,) = run.history()
    assert entry['step'] == 0 and entry['settings'] == dataclasses.asdict(config)
    for name in ('checkpoints', 'samples', 'train', 'fixed_z.npy', 'flags.cfg'):
        assert os.path.exists(os.path.join(run_dir, name)), name
    # An evaluation with fewer samples has a file of its own.
    assert run.eval_path('inception', 4, 2, 1) != run.eval_path('inception', 4, 5000, 3)


def test_changes_refuse_fixed_settings_and_list_the_others(trained):
    config, run_dir = trained
    run = RunFolder(run_dir)
    assert run.changes(config) == {}
    assert run.changes(dataclasses.replace(config, lr=0.01, train_steps=9)) == {
        'lr': (config.lr, 0.01), 'train_steps': (4, 9)}
    for change in (dict(z_dim=5), dict(model='vpga'), dict(bn=True), dict(seed=3), dict(width=1.0)):
        with pytest.raises(RunError, match=f'--{next(iter(change))}='):
            run.changes(dataclasses.replace(config, **change))


def test_resume_applies_and_records_a_new_learning_rate(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    tr = train_lib.train(dataclasses.replace(config, lr=0.0125, train_steps=6), run.path)
    assert int(tr.step) == 6
    # The optimisers run with the new rate, not the one the checkpoint holds.
    assert float(tr.opt_enc.learning_rate.numpy()) == pytest.approx(0.0125)
    assert float(tr.opt_dec.learning_rate.numpy()) == pytest.approx(0.0125)
    reader = tf.train.load_checkpoint(run.checkpoints()[0])
    saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if 'learning_rate' in k]
    assert saved and all(v == pytest.approx(0.0125) for v in saved)
    first, second = run.history()
    assert second['step'] == 4
    assert second['changed'] == {'lr': {'from': config.lr, 'to': 0.0125},
                                 'train_steps': {'from': 4, 'to': 6}}
    assert run.read_config().lr == 0.0125 and first['settings']['lr'] == config.lr


def test_resume_with_another_optimizer_keeps_the_networks(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    before = run.load()
    tr = train_lib.train(dataclasses.replace(config, optimizer='adam', train_steps=4), run.path)
    assert int(tr.step) == 4 and tr.opt_enc.__class__.__name__ == 'Adam'
    for a, b in zip(before.decoder.variables, tr.decoder.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:int(len(data) * keep)])


def test_damaged_latest_checkpoint_falls_back_and_is_kept_aside(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    _truncate(run.checkpoints()[0] + '.data-00000-of-00001')
    assert run.load().step == 2  # evaluate/export: the newest that reads, nothing moved
    assert len(run.checkpoints()) == 2
    tr = train_lib.train(config, run.path)  # resumes at 2 and trains to 4 again
    assert int(tr.step) == 4
    assert os.path.exists(os.path.join(run.checkpoint_dir, 'damaged', 'ckpt-4.index'))
    assert run.load().step == 4


def test_every_checkpoint_damaged_is_an_error_naming_the_file(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    for path in run.checkpoints():
        _truncate(path + '.index', 0.3)
    before = sorted(os.listdir(run.checkpoint_dir))
    with pytest.raises(RunError, match='ckpt-4.*damaged'):
        train_lib.train(config, run.path)
    with pytest.raises(RunError, match='ckpt-4.*damaged'):
        run.load()
    assert sorted(os.listdir(run.checkpoint_dir)) == before  # nothing moved or deleted


def test_checkpoints_without_settings_are_refused(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    os.remove(run.flags_path)
    with pytest.raises(RunError, match='no flags.cfg'):
        train_lib.train(config, run.path)


def test_missing_pointer_file_resumes_from_the_files(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    os.remove(os.path.join(run.checkpoint_dir, 'checkpoint'))
    newest = run.recover_checkpoints()
    state = tf.train.get_checkpoint_state(run.checkpoint_dir)  # TensorFlow reads the rebuilt file
    assert state.model_checkpoint_path == newest
    assert list(state.all_model_checkpoint_paths) == run.checkpoints()[::-1]
    tr = train_lib.train(dataclasses.replace(config, train_steps=5), run.path)
    assert int(tr.step) == 5 and run.history()[-1]['step'] == 4


def test_restore_that_leaves_a_variable_unmatched_fails(trained, tmp_path):
    config, run_dir = trained
    encoder, decoder = config.build_models()
    # A checkpoint without the decoder: loading it must not give an untrained decoder.
    partial = tf.train.Checkpoint(encoder=encoder).save(str(tmp_path / 'partial'))
    with pytest.raises(RunError, match='does not restore'):
        RunFolder(run_dir).load(partial)


def test_second_trainer_is_refused_and_a_dead_ones_lock_is_not(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    fd = run.lock()
    with pytest.raises(RunError, match='another process'):
        train_lib.train(dataclasses.replace(config, train_steps=5), run.path)
    run.unlock(fd)
    # A lock file left by a killed process holds no lock.
    assert os.path.exists(os.path.join(run.path, '.lock'))
    assert int(train_lib.train(config, run.path).step) == 4


def test_run_dir_that_is_a_file_or_cannot_be_made(tmp_path):
    config = small_config('mnist_5k', 'ae')
    (tmp_path / 'file').write_text('keep me')
    for path in (tmp_path / 'file', tmp_path / 'file' / 'run', '/proc/pga_run'):
        with pytest.raises(ConfigError, match='file|cannot be created'):
            train_lib.train(config, str(path))
    assert (tmp_path / 'file').read_text() == 'keep me'


def test_a_checkpoint_with_non_finite_weights_is_not_loaded(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    tr = config.build_trainer(run.checkpoint_dir)
    tr.restore(run.checkpoints()[0])
    weight = tr.decoder.weights[0]
    weight.assign(np.full(weight.shape, np.nan, np.float32))
    tr.save()  # over ckpt-4, as a run whose weights went bad would have saved it
    with pytest.raises(RunError, match=r'ckpt-4 holds non-finite weights .*--checkpoint=.*ckpt-2'):
        run.load()
    assert run.load(str(tmp_path / 'run' / 'checkpoints' / 'ckpt-2')).step == 2


def test_run_folder_inside_the_image_folder_is_refused(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    config = small_config('folder', 'ae', data_dir=str(images), channels=3, arch='conv_32')
    with pytest.raises(ConfigError, match='inside --data_dir'):
        train_lib.train(config, str(images / 'runs' / 'x'))
    assert os.listdir(images) == []


def test_leftovers_of_interrupted_writes_are_removed(trained, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    (tmp_path / 'run' / 'flags.cfg.tmp-123').write_text('half')
    (tmp_path / 'run' / 'checkpoints' / 'ckpt-6_temp').mkdir()
    train_lib.train(config, run.path)
    assert not (tmp_path / 'run' / 'flags.cfg.tmp-123').exists()
    assert not (tmp_path / 'run' / 'checkpoints' / 'ckpt-6_temp').exists()


def test_runs_of_an_earlier_version_keep_their_images_or_are_refused(tmp_path, caplog):
    """flags.cfg files written before --resize: CelebA's crop was 108 whatever --crop said, and
    resnet_32 upsampled by nearest neighbour."""
    from pga_tf.training import cli_flags

    def old_run(name, dataset, model, **kw):
        config = dataclasses.replace(cli_flags.read_preset(dataset, model), crop=0, **kw)
        lines = [l for l in config.to_flagfile().splitlines()
                 if not l.startswith(('--resize=', '--dense_lrelu=', '--sigma_init='))]
        (tmp_path / name).mkdir()
        (tmp_path / name / 'flags.cfg').write_text('\n'.join(lines) + '\n')
        return RunFolder(tmp_path / name)

    celeba = old_run('celeba', 'celeba', 'vpga').read_config()
    assert (celeba.crop, celeba.resize) == (108, 'bicubic') and 'crop is kept' in caplog.text
    assert old_run('digits', 'mnist_5k', 'vpga').read_config().crop == 0
    with pytest.raises(RunError, match='resnet_32 run of an earlier pga_tf'):
        old_run('resnet', 'cifar10', 'lpga', arch='resnet_32').read_config()
