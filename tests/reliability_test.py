"""Training that survives kills, divergence and bad input, with nothing lost."""
import concurrent.futures
import dataclasses
import glob
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pga_tf.training import data, run_folder, train_lib
from train_lib_test import _events, small_config

SMALL = ['--dataset=mnist_5k', '--width=0.0625', '--batch_size=8', '--z_dim=4', '--log_every=1',
         '--sample_every=1000']
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}


def train(*args):
    return subprocess.run([sys.executable, '-m', 'pga_tf.train', *args], capture_output=True,
                          text=True, env=ENV, timeout=300)


def train_until(args, step, sig):
    """Starts training and sends `sig` once the console shows `step`; returns (rc, stderr)."""
    proc = subprocess.Popen([sys.executable, '-m', 'pga_tf.train', *args], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=ENV)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if f' step {step}/' in line:
            proc.send_signal(sig)
            break
    lines += proc.stderr.readlines()
    return proc.wait(timeout=120), ''.join(lines)


def checkpoint_step(run_dir):
    """The step of the latest checkpoint, restored the way evaluate/export restore it."""
    return run_folder.RunFolder(run_dir).load().step


def _variables(run_dir):
    reader = tf.train.load_checkpoint(str(run_dir / 'checkpoints'))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if 'save_counter' not in k and '_CHECKPOINTABLE_OBJECT_GRAPH' not in k}


def test_killed_at_random_points_resumes_to_the_uninterrupted_weights(tmp_path):
    args = [*SMALL, '--model=lvpga', '--init_steps=5', '--deterministic', '--train_steps=40',
            '--checkpoint_every=7']
    killed = tmp_path / 'killed'
    # The uninterrupted run, beside the killed one (its time is mostly TensorFlow's start-up).
    straight_log = open(tmp_path / 'straight.log', 'w')
    straight = subprocess.Popen([sys.executable, '-m', 'pga_tf.train', *args,
                                 f'--run_dir={tmp_path / "straight"}'], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=straight_log)
    rng = random.Random(0)
    saved = 0
    for target in sorted(rng.sample(range(10, 35), 1)):
        rc, _ = train_until([*args, f'--run_dir={killed}'], target, signal.SIGKILL)
        assert rc == -signal.SIGKILL
        step = checkpoint_step(killed)  # restores, whatever moment the kill hit
        assert step % 7 == 0 and saved <= step <= target + 7
        saved = step
    result = train(*args, f'--run_dir={killed}')
    assert result.returncode == 0, result.stderr[-2000:]
    assert checkpoint_step(killed) == 40
    # With op determinism, the same weights as a run that was never interrupted.
    assert straight.wait(timeout=300) == 0, (tmp_path / 'straight.log').read_text()[-2000:]
    straight_log.close()
    a, b = _variables(tmp_path / 'straight'), _variables(killed)
    assert sorted(a) == sorted(b) and len(a) > 20
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.fixture(scope='module')
def rgb_digits(tmp_path_factory):
    """A 32x32 RGB image folder made from mnist_5k digits: CIFAR-10's path (conv_32, batch
    norm) offline."""
    folder = tmp_path_factory.mktemp('rgb_digits')
    for i, digit in enumerate(data.mnist_5k_arrays('train')[::45]):
        rgb = np.pad(digit, ((2, 2), (2, 2), (0, 0))) * np.array([1.0, 0.6, 0.3])
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f'{i:03d}.png')
    return folder


def test_sigterm_saves_and_the_printed_command_resumes_the_run(tmp_path, rgb_digits):
    """An LPGA run on digits and a batch-norm conv_32 run on an image folder, side by side (their
    time is TensorFlow's start-up): stopped by SIGTERM, resumed by the command each prints."""
    args = {'mnist_5k_lpga': [*SMALL, '--model=lpga', '--init_steps=3', '--lr=0.05'],
            'folder_conv_32_bn': ['--dataset=folder', f'--data_dir={rgb_digits}', '--crop=0',
                                  '--arch=conv_32', '--bn', '--model=vpga', '--width=0.0625',
                                  '--batch_size=8', '--z_dim=4', '--log_every=1', '--lr=0.05']}
    run_dirs = {kind: tmp_path / kind / 'run' for kind in args}
    with concurrent.futures.ThreadPoolExecutor(len(args)) as pool:
        stops = {kind: pool.submit(train_until, [*a, '--train_steps=40', '--sample_every=1000',
                                                 '--checkpoint_every=1000',
                                                 f'--run_dir={run_dirs[kind]}'], 12, signal.SIGTERM)
                 for kind, a in args.items()}
        stops = {kind: future.result() for kind, future in stops.items()}
    resumes, stopped, settings = {}, {}, {}
    for kind, (rc, stderr) in stops.items():
        run_dir = run_dirs[kind]
        assert rc == 0, stderr[-2000:]
        command = stderr.split('Resume with: ')[1].splitlines()[0].split()
        assert command == ['python', '-m', 'pga_tf.train', f'--run_dir={run_dir}']
        stopped[kind] = checkpoint_step(run_dir)
        assert 12 <= stopped[kind] < 40
        settings[kind] = (run_dir / 'flags.cfg').read_text()
        # Exactly the printed command, from another folder: the run's own model and settings.
        resumes[kind] = subprocess.Popen([sys.executable, *command[1:]], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    for kind, proc in resumes.items():
        run_dir = run_dirs[kind]
        stderr = proc.communicate(timeout=300)[1]
        assert proc.returncode == 0, stderr[-2000:]
        run = run_folder.RunFolder(run_dir).load()
        assert run.step == 40 and (run.config.z_dim, run.config.lr, run.config.width) == (4, 0.05, 0.0625)
        assert (run.config.model, run.config.bn) == (('lpga', False) if kind == 'mnist_5k_lpga' else ('vpga', True))
        assert (run_dir / 'flags.cfg').read_text() == settings[kind]
        assert [(h['step'], h.get('changed')) for h in run_folder.RunFolder(run_dir).history()] == \
            [(0, None), (stopped[kind], {})]
    # The batch-norm run exports, and the export samples.
    export_dir = tmp_path / 'exports' / 'digits'
    result = subprocess.run([sys.executable, '-m', 'pga_tf.export',
                             f'--run_dir={run_dirs["folder_conv_32_bn"]}', f'--export_dir={export_dir}'],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    images = tf.saved_model.load(str(export_dir / '1')).signatures['sample'](
        num_samples=tf.constant(4), seed=tf.constant(0, tf.int64))['images']
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.uint8


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / 'run'
    result = train(*SMALL, '--model=lpga', '--lr=10', '--init_steps=0', '--train_steps=50',
                   '--checkpoint_every=1', f'--run_dir={run_dir}')
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert 'diverged: step' in last and 'non-finite' in last and 'untouched' in last
    step = int(last.split('step ')[1].split(':')[0])
    run = run_folder.RunFolder(run_dir).load()
    assert run.step == step - 1
    assert all(np.all(np.isfinite(v.numpy())) for v in run.encoder.variables + run.decoder.variables)
    tags, _ = _events(str(run_dir))
    assert all(s < step for s in tags.get('dec_loss', []))


def test_skip_policy_counts_and_stops_after_max_skips(tmp_path):
    run_dir = str(tmp_path / 'run')
    config = small_config('mnist_5k', 'lpga', lr=10.0, init_steps=0, train_steps=50,
                          batch_size=8, sample_every=1000, on_nonfinite='skip', max_skips=2)
    with pytest.raises(train_lib.DivergenceError, match='more than --max_skips=2'):
        train_lib.train(config, run_dir)
    tags, _ = _events(run_dir)
    assert len(tags['guard/skipped_steps']) == 3


def test_resuming_with_another_model_shape_is_refused_and_changes_nothing(tmp_path):
    run_dir = str(tmp_path / 'run')
    config = small_config('mnist_5k', 'ae', train_steps=2)
    train_lib.train(config, run_dir)
    before = {p: os.path.getmtime(p) for p in glob.glob(f'{run_dir}/**', recursive=True)}
    with pytest.raises(run_folder.RunError, match=r'--z_dim=6 \(the run has 4\)'):
        train_lib.train(dataclasses.replace(config, z_dim=6, train_steps=4), run_dir)
    assert {p: os.path.getmtime(p) for p in glob.glob(f'{run_dir}/**', recursive=True)} == before


def test_folder_with_broken_files_trains_and_reports_them(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.RandomState(0)
    for i in range(5):
        Image.fromarray(rng.randint(0, 256, (40, 40, 3)).astype(np.uint8)).save(images / f'{i}.jpg')
    good = (images / '0.jpg').read_bytes()
    (images / 'cut.jpg').write_bytes(good[:len(good) // 3])
    (images / 'readme.jpg').write_text('this is text')
    result = train('--dataset=folder', '--crop=0', '--model=ae', '--width=0.0625', '--batch_size=2',
                   '--z_dim=4', '--train_steps=2', f'--data_dir={images}',
                   f'--run_dir={tmp_path / "run"}')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'skipping 2 unreadable of 7 image files' in result.stderr
    assert 'cut.jpg' in result.stderr and 'readme.jpg' in result.stderr
