"""`python -m pga_tf.train` as a user runs it: from any folder, and bad input exits 2."""
import os
import subprocess
import sys

import pytest

from pga_tf.training import data

SMALL = ['--train_steps=2', '--width=0.0625', '--batch_size=8', '--z_dim=4', '--log_every=1']


def run(args, cwd):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    return subprocess.run([sys.executable, '-m', 'pga_tf.train', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_trains_from_another_folder_with_the_preset(tmp_path):
    result = run(['--dataset=mnist_5k', '--model=lpga', *SMALL], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / 'runs').iterdir()
    assert run_dir.name.startswith('mnist_5k_lpga_')
    assert (run_dir / 'checkpoints' / 'ckpt-2.index').exists()
    flagfile = (run_dir / 'flags.cfg').read_text()
    assert '--nll=0.015' in flagfile and '--train_steps=2' in flagfile
    assert 'step 2/2' in result.stderr


BAD_INPUT = [
    (['--dataset=imagenet'], 'dataset'),
    (['--run_dir=/etc/passwd'], 'is a file'),
    (['--arch=conv_32'], '--arch=conv_32 reads 32x32'),
    (['--dataset=folder', '--data_dir=/nonexistent'], 'not a directory'),
]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    # The cases run at once, each in a folder of its own: their time is TensorFlow's start-up.
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    folders = [tmp_path / str(i) for i in range(len(BAD_INPUT))]
    procs = []
    for folder, (args, _) in zip(folders, BAD_INPUT):
        folder.mkdir()
        procs.append(subprocess.Popen([sys.executable, '-m', 'pga_tf.train', '--model=vpga', *SMALL,
                                       *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc, folder, (args, message) in zip(procs, folders, BAD_INPUT):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, (args, stderr[-2000:])
        lines = [l for l in stderr.splitlines() if ': error: ' in l]
        assert len(lines) == 1 and message in lines[0], stderr[-2000:]
        assert list(folder.iterdir()) == [], args


def test_help_lists_only_training_flags(tmp_path):
    result = run(['--helpfull'], tmp_path)  # absl prints the help and exits 1
    for flag in ('--lr', '--run_dir', '--zn_rec', '--preset_dir'):
        assert flag in result.stdout
    for flag in ('--num:', '--mode:', '--out:', '--export_dir', '--num_samples', '--sample_seed'):
        assert flag not in result.stdout, flag


def test_tfds_without_data_or_network_exits_2_quickly(tmp_path):
    if data._network_reachable():
        pytest.skip('the network answers here: tfds would download')
    result = run(['--dataset=mnist', '--model=ae', f'--data_dir={tmp_path / "tfds"}', *SMALL], tmp_path)
    assert result.returncode == 2
    assert '--dataset=mnist_5k' in result.stderr.splitlines()[-1]
    assert not (tmp_path / 'runs').exists()
