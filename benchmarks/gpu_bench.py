"""The GPU benchmark: the figures our users train with. Run it whenever a GPU is at hand.

  python benchmarks/gpu_bench.py                       # everything, ~15 min on one GPU
  python benchmarks/gpu_bench.py --archs=conv_mnist --models=vpga --train_steps=50   # a smoke run

Runs the commands users run, each in its own process, and prints the README's tables:
  1. the step (`python -m pga_tf.bench --json`) of every architecture x method at its preset's
     batch, with XLA off and on, in float32, mixed_bfloat16 and (GPU only) mixed_float16, with
     each setting's ratio to float32 without XLA, measured on this machine in this run;
  2. a short training (`python -m pga_tf.train`) of each architecture's preset, on offline
     data (mnist_5k for conv_mnist, a folder of generated RGB images for the others), with
     the whole loop's images/s (input pipeline, guard, logging) against the step's alone;
  3. the exported generator's speed (`benchmarks/export_bench.py --json`).
Every record is also written as JSON lines to --out. It is a benchmark, not a test.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

flags.DEFINE_list('archs', ['conv_mnist', 'conv_32', 'resnet_32', 'conv_64'], 'Architectures.')
flags.DEFINE_list('models', ['ae', 'vae', 'lpga', 'vpga', 'lvpga'], 'Methods.')
flags.DEFINE_integer('steps', 20, 'Timed steps per step configuration.', lower_bound=1)
flags.DEFINE_integer('train_steps', 300, 'Steps of each short training run.', lower_bound=20)
flags.DEFINE_string('out', 'gpu_bench.jsonl', 'JSON lines of every record.')
FLAGS = flags.FLAGS

_IMAGES_PER_SEC = re.compile(r'\| (\d+) img/s \|')
_ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}


def _json_lines(args):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_ENV)
    if result.returncode:
        raise RuntimeError(f'{" ".join(args)} failed:\n{result.stderr[-2000:]}')
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]


def step_records(on_gpu):
    """One record per (arch, model, xla, precision), from pga_tf.bench."""
    precisions = ['float32', 'mixed_bfloat16'] + (['mixed_float16'] if on_gpu else [])
    records = []
    for arch in FLAGS.archs:
        for xla in ('off', 'on'):
            for precision in precisions:
                records += _json_lines(['-m', 'pga_tf.bench', f'--archs={arch}',
                                        f'--models={",".join(FLAGS.models)}', f'--xla={xla}',
                                        f'--precision={precision}', f'--steps={FLAGS.steps}',
                                        f'--batch_size={_preset_batch(arch)}', '--json'])
    return records


def _preset_batch(arch):
    from pga_tf.training import cli_flags

    return cli_flags.read_preset(cli_flags.PRESET_DATASET[arch], 'vpga').batch_size


def _image_folder(root, size):
    from PIL import Image

    folder = os.path.join(root, f'images_{size}')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    for i in range(512):
        Image.fromarray(rng.randint(0, 256, (size, size, 3)).astype(np.uint8)).save(
            os.path.join(folder, f'{i}.png'))
    return folder


def training_records(root):
    """images/s of a short `pga_tf.train` run of each architecture's VPGA preset."""
    from pga_tf.core import models
    from pga_tf.training import cli_flags

    records = []
    for arch in FLAGS.archs:
        config = cli_flags.read_preset(cli_flags.PRESET_DATASET[arch], 'vpga')
        # The preset's settings, on data that needs no download.
        settings = [f'--{k}={v}' for k, v in (('arch', arch), ('bn', config.bn), ('z_dim', config.z_dim),
                                               ('lr', config.lr), ('batch_size', config.batch_size),
                                               ('width', config.width))]
        if arch == 'conv_mnist':
            data = ['--dataset=mnist_5k']
        else:
            data = ['--dataset=folder', f'--data_dir={_image_folder(root, models.IMAGE_SIZE[arch])}',
                    '--channels=3', '--crop=0']
        run_dir = os.path.join(root, f'run_{arch}')
        result = subprocess.run(
            [sys.executable, '-m', 'pga_tf.train', *data, '--model=vpga', *settings,
             f'--train_steps={FLAGS.train_steps}', f'--log_every={FLAGS.train_steps // 10}',
             f'--sample_every={FLAGS.train_steps}', f'--checkpoint_every={FLAGS.train_steps}',
             f'--run_dir={run_dir}'], capture_output=True, text=True, env=_ENV)
        if result.returncode:
            raise RuntimeError(f'training {arch} failed:\n{result.stderr[-2000:]}')
        rates = [int(m) for m in _IMAGES_PER_SEC.findall(result.stderr)][1:]  # the first holds tracing
        records.append({'arch': arch, 'model': 'vpga', 'batch_size': config.batch_size,
                        'loop_images_per_sec': statistics.median(rates)})
    return records


def markdown(device, on_gpu, steps, loops, exports):
    lines = [f'Step images/s on {device} (preset batch; ratio to float32 without XLA, same run):', '',
             '| arch | model | ' + ' | '.join(_settings(steps)) + ' |',
             '|---|---|' + '---|' * len(_settings(steps))]
    for arch in FLAGS.archs:
        for model in FLAGS.models:
            row = {(r['xla'], r['precision']): r['images_per_sec'] for r in steps
                   if r['arch'] == arch and r['model'] == model}
            base = row[(False, 'float32')]
            cells = [f'{row[s]:.0f} ({row[s] / base:.2f}x)' for s in _keys(steps)]
            lines.append(f'| {arch} | {model} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Training loop (VPGA preset, offline data) against the step alone (float32, XLA '
              f'{"on" if on_gpu else "off"} as the default runs it here):', '',
              '| arch | loop images/s | step images/s | loop / step |', '|---|---|---|---|']
    for loop in loops:
        step = next(r['images_per_sec'] for r in steps if r['arch'] == loop['arch']
                    and r['model'] == 'vpga' and r['xla'] == on_gpu and r['precision'] == 'float32')
        lines.append(f"| {loop['arch']} | {loop['loop_images_per_sec']:.0f} | {step:.0f} | "
                     f"{loop['loop_images_per_sec'] / step:.2f} |")
    lines += ['', 'Exported generator (`serving_default`):', '',
              '| arch | b1 images/s | b256 images/s | p50 latency b1 | p99 latency b1 |',
              '|---|---|---|---|---|']
    for e in exports:
        lines.append(f"| {e['arch']} | {e['images_per_sec_b1']:.0f} | {e['images_per_sec_b256']:.0f} | "
                     f"{e['p50_ms_b1']:.2f} ms | {e['p99_ms_b1']:.2f} ms |")
    return '\n'.join(lines)


def _keys(steps):
    return sorted({(r['xla'], r['precision']) for r in steps}, key=lambda k: (k[1] != 'float32', k))


def _settings(steps):
    return [f"{precision}{', XLA' if xla else ''}" for xla, precision in _keys(steps)]


def main(argv):
    del argv
    import tensorflow as tf

    from pga_tf.utils import device_info

    device = device_info.describe()
    on_gpu = bool(tf.config.list_physical_devices('GPU'))
    print(f'{device}, TensorFlow {tf.__version__}', flush=True)
    steps = step_records(on_gpu)
    with tempfile.TemporaryDirectory() as root:
        loops = training_records(root)
    here = os.path.dirname(os.path.abspath(__file__))
    exports = _json_lines([os.path.join(here, 'export_bench.py'), '--json',
                           f'--archs={",".join(FLAGS.archs)}'])
    with open(FLAGS.out, 'w') as f:
        for record in [{'device': device, 'tf_version': tf.__version__}, *steps, *loops, *exports]:
            f.write(json.dumps(record) + '\n')
    print(markdown(device, on_gpu, steps, loops, exports))


if __name__ == '__main__':
    app.run(main)
