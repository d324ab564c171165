"""Throughput and latency of an exported generator (`serving_default`), in this process.

  python benchmarks/export_bench.py [--archs=conv_mnist,conv_64] [--calls=200]

Exports freshly initialised generators (speed does not depend on the weights) with
pga_tf.export_lib, loads them back with tf.saved_model.load, and times the signature a TF
Serving client calls: images/s at batch 1, 16 and 256, and p50/p99 latency at batch 1.
It is a benchmark, not a test.
"""
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from pga_tf import device_info, export_lib, models

flags.DEFINE_list('archs', ['conv_mnist', 'conv_64'], 'Architectures to time.')
flags.DEFINE_integer('calls', 200, 'Calls at batch 1 (latency); larger batches use fewer.')
flags.DEFINE_bool('json', False, 'One JSON object per architecture instead of the table.')
FLAGS = flags.FLAGS

# Paper settings: (z_dim, channels, batch norm).
SETTINGS = {'conv_mnist': (32, 1, False), 'conv_32': (128, 3, True), 'conv_64': (128, 3, True),
            'resnet_32': (128, 3, True)}


def time_calls(fn, z, calls):
    fn(z=z)  # warm-up (first call traces)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(z=z)['images'].numpy()
        times.append(time.perf_counter() - start)
    return np.array(times)


def bench(arch, calls):
    z_dim, channels, bn = SETTINGS[arch]
    encoder, decoder = models.build_models(arch, z_dim, channels, use_bn=bn)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_lib.export(encoder, decoder, os.path.join(tmp, arch))
        fn = tf.saved_model.load(path).signatures['serving_default']
        result = {'arch': arch}
        for batch in (1, 16, 256):
            z = tf.random.normal([batch, z_dim])
            times = time_calls(fn, z, max(5, calls // batch) if batch > 1 else calls)
            result[f'images_per_sec_b{batch}'] = batch / float(np.median(times))
            if batch == 1:
                result['p50_ms_b1'] = 1e3 * float(np.percentile(times, 50))
                result['p99_ms_b1'] = 1e3 * float(np.percentile(times, 99))
        result['batch256_vs_batch1'] = result['images_per_sec_b256'] / result['images_per_sec_b1']
    return result


def main(argv):
    del argv
    print(f'machine: {device_info.describe()}, TF {tf.__version__}')
    for arch in FLAGS.archs:
        r = bench(arch, FLAGS.calls)
        if FLAGS.json:
            print(json.dumps(r))
        else:
            print(f"{arch:11s} images/s: b1 {r['images_per_sec_b1']:8.1f}  b16 {r['images_per_sec_b16']:8.1f}  "
                  f"b256 {r['images_per_sec_b256']:8.1f}  (b256/b1 {r['batch256_vs_batch1']:.1f}x) | "
                  f"latency b1 p50 {r['p50_ms_b1']:.2f} ms  p99 {r['p99_ms_b1']:.2f} ms")


if __name__ == '__main__':
    app.run(main)
