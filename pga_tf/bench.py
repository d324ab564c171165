"""Times the real training step (Trainer.train_step) on synthetic data.

  python -m pga_tf.bench --arch=conv_mnist --model=vpga              # one configuration
  python -m pga_tf.bench --arch=conv_mnist --model=vpga --width=0.5  # at half the layer widths
  python -m pga_tf.bench --arch=conv_64 --model=lpga --compare       # XLA on/off x precisions, ratios
  python -m pga_tf.bench --archs=conv_mnist,conv_64 --models=ae,vae,lpga,vpga,lvpga --json

Each configuration builds the architecture with its paper preset (conv_mnist: MNIST, conv_32 and
resnet_32: CIFAR-10, conv_64: CelebA), runs --warmup steps, then times --steps steps (each
synchronised by reading its loss) and reports the median and p90. --compare also measures the
machine's float32 matmul peak, the step's FLOPs (TensorFlow's profiler on the step's graph) and
the input pipeline's images/s, to tell compute-bound from input-bound. A benchmark, not a test.
"""
import dataclasses
import json
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from pga_tf.core import losses, models
from pga_tf.training import autotune, cli_flags, config, data, trainer
from pga_tf.utils import device_info

config.define_flags(flags.FLAGS, ('arch', 'model', 'batch_size', 'width', 'precision', 'stats_dir'))
flags.DEFINE_integer('steps', 20, 'Timed steps per configuration.', lower_bound=1)
flags.DEFINE_integer('warmup', 3, 'Untimed steps first (tracing, compilation).', lower_bound=1)
flags.DEFINE_enum('xla', 'off', ['on', 'off'], 'jit_compile the step.')
flags.DEFINE_bool('json', False, 'Print one JSON object per configuration.')
flags.DEFINE_bool('compare', False, 'XLA on/off and every precision in one process, with ratios.')
flags.DEFINE_list('archs', [], 'Time every (arch, model) of --archs x --models (default: --arch).')
flags.DEFINE_list('models', [], 'Methods for --archs (default: --model).')
FLAGS = cli_flags.FLAGS
flags.register_validator('archs', lambda archs: set(archs) <= set(models.ARCHITECTURES),
                         f'--archs: a list of {", ".join(sorted(models.ARCHITECTURES))}')
flags.register_validator('models', lambda methods: set(methods) <= set(losses.METHODS),
                         f'--models: a list of {", ".join(sorted(losses.METHODS))}')



def preset(arch, model, batch_size):
    base = cli_flags.read_preset(cli_flags.PRESET_DATASET[arch], model)
    return dataclasses.replace(base, arch=arch, batch_size=batch_size, width=FLAGS.width)


def make_trainer(config, xla, precision):
    # init_steps 0: time the full step, every term switched on.
    return dataclasses.replace(config, precision=precision, init_steps=0).build_trainer(jit_compile=xla)


def step_flops(tr, x):
    """FLOPs of one step, counted by TensorFlow's profiler on the step's graph."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    noise = {k: tf.TensorSpec([x.shape[0], tr.z_dim], tf.float32) for k in ('z_prior', 'eps', 'delta')}
    graph = tr.update.get_concrete_function(tf.TensorSpec(x.shape, tf.float32), noise).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    return model_analyzer.profile(graph, options=options).total_float_ops


def time_step(arch, model, batch_size, steps, warmup, xla, precision):
    """Times `steps` training steps; returns the benchmark's JSON record."""
    config = preset(arch, model, batch_size)
    tr = make_trainer(config, xla, precision)
    size, channels = config.image_shape()
    x = tf.random.stateless_uniform([batch_size, size, size, channels], [0, 1], -1, 1)
    for _ in range(warmup):
        float(tr.train_step(x)['enc_loss'])
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = tr.train_step(x)
        float(out['enc_loss'])  # wait for the step
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {'arch': arch, 'model': model, 'batch_size': batch_size, 'width': config.width, 'xla': bool(xla),
            'precision': precision, 'images_per_sec': batch_size / median,
            'sec_per_step_median': median, 'sec_per_step_p90': float(np.percentile(times, 90)),
            'losses': {k: float(v) for k, v in out.items() if k != 'finite'},
            'device': device_info.describe(), 'tf_version': tf.__version__, '_trainer': tr, '_x': x}


def matmul_peak(n=2048, repeats=20):
    """float32 FLOP/s of a square matmul on this device (the best of `repeats`)."""
    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    float(matmul())
    best = min(_timed(matmul) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn):
    start = time.perf_counter()
    float(fn())
    return time.perf_counter() - start


def input_images_per_sec(arch, batch_size, batches=30):
    """images/s of the input pipeline alone: mnist_5k (28x28), or a folder of CelebA-sized JPEGs."""
    if arch == 'conv_mnist':
        ds, _ = data.load_dataset('mnist_5k', 'train', batch_size)
    else:
        from PIL import Image

        folder = tempfile.mkdtemp()
        rng = np.random.RandomState(0)
        for i in range(256):
            Image.fromarray(rng.randint(0, 256, (218, 178, 3)).astype(np.uint8)).save(f'{folder}/{i}.jpg')
        size = models.IMAGE_SIZE[arch]
        # conv_64 reads CelebA-sized images as its preset does; the 32x32 ones, the whole image.
        celeba = cli_flags.read_preset('celeba', 'vpga')
        crop, resize = (celeba.crop, celeba.resize) if size == 64 else (0, data.DEFAULT_RESIZE)
        ds, _ = data.load_dataset('folder', 'train', batch_size, data_dir=folder, size=size,
                                  channels=3, crop=crop, resize=resize)
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def _public(record):
    return {k: v for k, v in record.items() if not k.startswith('_')}


def _print(record):
    if FLAGS.json:
        print(json.dumps(_public(record)), flush=True)
    else:
        width = f" width {record['width']:g}" if record['width'] != 1 else ''
        print(f"{record['arch']:10s} {record['model']:5s} b{record['batch_size']}{width} "
              f"xla={'on ' if record['xla'] else 'off'} {record['precision']:15s} "
              f"{record['images_per_sec']:8.1f} img/s  median {record['sec_per_step_median']:.3f} s  "
              f"p90 {record['sec_per_step_p90']:.3f} s", flush=True)


def compare(arch, model, batch_size):
    """Every precision with XLA off, and float32 with XLA on, in one process; then ratios."""
    runs = {}
    for xla, precision in [(False, 'float32'), (True, 'float32'), (False, 'mixed_bfloat16'),
                           (False, 'mixed_float16')]:
        if precision == 'mixed_float16' and not tf.config.list_physical_devices('GPU'):
            print('mixed_float16: skipped on CPU (float16 convolutions run ~100x slower there)')
            continue
        runs[(xla, precision)] = record = time_step(arch, model, batch_size, FLAGS.steps,
                                                   FLAGS.warmup, xla, precision)
        _print(record)
    base = runs[(False, 'float32')]
    peak = matmul_peak()
    flops = step_flops(base['_trainer'], base['_x'])
    achieved = flops / base['sec_per_step_median']
    feed = input_images_per_sec(arch, batch_size)
    summary = {
        'arch': arch, 'model': model, 'device': base['device'],
        'xla_on_vs_off': runs[(True, 'float32')]['images_per_sec'] / base['images_per_sec'],
        'bf16_vs_f32': runs[(False, 'mixed_bfloat16')]['images_per_sec'] / base['images_per_sec'],
        # Relative to the term, or to 0.01 for terms near 0 (vrec starts near 0).
        'bf16_max_rel_loss_diff': max(
            abs(runs[(False, 'mixed_bfloat16')]['losses'][k] - v) / max(abs(v), 1e-2)
            for k, v in base['losses'].items()),
        'step_gflop': flops / 1e9, 'gflop_per_image': flops / 1e9 / batch_size,
        'achieved_gflops': achieved / 1e9, 'matmul_peak_gflops': peak / 1e9,
        'fraction_of_peak': achieved / peak,
        'input_images_per_sec': feed, 'input_vs_step': feed / base['images_per_sec'],
    }
    summary['jit_auto'] = jit_auto(preset(arch, model, batch_size), summary['xla_on_vs_off'])
    if FLAGS.json:
        print(json.dumps(summary), flush=True)
    else:
        print(f"ratios: XLA on/off {summary['xla_on_vs_off']:.2f}x, mixed_bfloat16/float32 "
              f"{summary['bf16_vs_f32']:.2f}x (losses within {100 * summary['bf16_max_rel_loss_diff']:.1f} %); "
              f"{summary['gflop_per_image']:.2f} GFLOP per image per step, "
              f"{summary['achieved_gflops']:.0f} GFLOP/s = {100 * summary['fraction_of_peak']:.0f} % of "
              f"the {summary['matmul_peak_gflops']:.0f} GFLOP/s matmul peak; input pipeline "
              f"{summary['input_images_per_sec']:.0f} img/s = {summary['input_vs_step']:.1f}x the step "
              f"({'compute' if summary['input_vs_step'] > 1 else 'input'}-bound)", flush=True)
        print(f"jit_compile=auto: {summary['jit_auto']}", flush=True)


def jit_auto(config, xla_on_vs_off):
    """What `--jit_compile=auto` does for this preset on this machine, and why."""
    if trainer.default_jit_compile():
        return 'XLA on (a GPU)'
    cache = autotune.cache_path(FLAGS.stats_dir)
    return (f'{autotune.describe_choice(cache, autotune.choice_key(config))}; this comparison '
            f'finds XLA {xla_on_vs_off:.2f}x of plain')


def main(argv):
    del argv
    print(f'device: {device_info.describe()}, TensorFlow {tf.__version__}', flush=True)
    if FLAGS.compare:
        compare(FLAGS.arch, FLAGS.model, FLAGS.batch_size)
        return
    for arch in FLAGS.archs or [FLAGS.arch]:
        for model in FLAGS.models or [FLAGS.model]:
            _print(time_step(arch, model, FLAGS.batch_size, FLAGS.steps, FLAGS.warmup,
                             FLAGS.xla == 'on', FLAGS.precision))


if __name__ == '__main__':
    app.run(main, flags_parser=cli_flags.parse)
