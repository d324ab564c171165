"""Kills a training run N times at random moments (SIGKILL) and resumes it; counts lost steps.

  python benchmarks/fault_injection.py [--kills=10] [--train_steps=300] [--checkpoint_every=20]

A step is lost when it was done before a kill but not saved, so it is done again after the
resume. The run must finish with the right step count and a restorable checkpoint every time.
"""
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer('kills', 10, 'How many times to kill the run.')
flags.DEFINE_integer('train_steps', 300, 'Length of the run.')
flags.DEFINE_integer('checkpoint_every', 20, 'Checkpoint interval of the run.')
flags.DEFINE_integer('seed', 0, 'Seed of the kill moments.')
FLAGS = flags.FLAGS

_STEP = re.compile(r' step (\d+)/')


def main(argv):
    del argv
    from pga_tf.training import run_folder
    from pga_tf.utils import device_info

    rng = random.Random(FLAGS.seed)
    run_dir = os.path.join(tempfile.mkdtemp(), 'run')
    args = [sys.executable, '-m', 'pga_tf.train', '--dataset=mnist_5k', '--model=vpga',
            '--width=0.25', '--batch_size=32', f'--train_steps={FLAGS.train_steps}',
            f'--checkpoint_every={FLAGS.checkpoint_every}', '--log_every=1',
            '--sample_every=100000', f'--run_dir={run_dir}']
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    lost, kills, start = 0, 0, time.time()
    while kills < FLAGS.kills:
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        # Kill a random time after the run shows a step: during steps, saves or summaries.
        done, deadline, tail = 0, None, []
        for line in proc.stderr:
            tail = (tail + [line])[-20:]
            match = _STEP.search(line)
            if match:
                done = int(match.group(1))
                deadline = deadline or time.time() + rng.uniform(0.5, 4.0)
            if deadline and time.time() >= deadline:
                proc.kill()
                break
        proc.wait()
        if proc.returncode == 0:
            break  # finished before the kill landed
        if proc.returncode != -signal.SIGKILL:
            print(f'the run failed by itself (status {proc.returncode}):\n' + ''.join(tail))
            sys.exit(1)
        kills += 1
        saved = run_folder.RunFolder(run_dir).load().step if run_folder.RunFolder(run_dir).checkpoints() else 0
        lost += max(0, done - saved)
        print(f'kill {kills}: at step >= {done}, checkpoint restores step {saved}, lost {done - saved}')
    final = subprocess.run(args, capture_output=True, text=True, env=env)
    step = run_folder.RunFolder(run_dir).load().step
    ok = final.returncode == 0 and step == FLAGS.train_steps
    print(f'{device_info.describe()}: {kills} kills, {lost} steps lost in total (checkpoint every {FLAGS.checkpoint_every}), '
          f'final step {step}/{FLAGS.train_steps}: {"ok" if ok else "FAILED"}; '
          f'{time.time() - start:.0f} s')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    app.run(main)
