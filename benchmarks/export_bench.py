"""Throughput and latency of an exported generator, SavedModel and LiteRT, in this process.

  python benchmarks/export_bench.py [--archs=conv_mnist,conv_64] [--calls=200]

Exports freshly initialised generators (speed does not depend on the weights) with
pga_tf.serving.export_lib (`tflite=True`), and times z -> uint8 images two ways: the SavedModel's
`serving_default` loaded with tf.saved_model.load (what TF Serving runs), and decoder.tflite in
the LiteRT interpreter (XNNPACK, one thread per core): images/s at batch 1, 16 and 256, and
p50/p99 latency at batch 1. It is a benchmark, not a test.
"""
import json
import os
import tempfile
import time
import warnings

import numpy as np
import tensorflow as tf
from absl import app, flags

from pga_tf.core import models
from pga_tf.serving import export_lib
from pga_tf.utils import device_info

flags.DEFINE_list('archs', ['conv_mnist', 'conv_64'], 'Architectures to time.')
flags.DEFINE_integer('calls', 200, 'Calls at batch 1 (latency); larger batches use fewer.')
flags.DEFINE_bool('json', False, 'One JSON object per architecture instead of the table.')
FLAGS = flags.FLAGS

# Paper settings: (z_dim, channels, batch norm).
SETTINGS = {'conv_mnist': (32, 1, False), 'conv_32': (128, 3, True), 'conv_64': (128, 3, True),
            'resnet_32': (128, 3, True)}


def time_calls(fn, z, calls):
    np.asarray(fn(z=z)['images'])  # warm-up (first call traces, or allocates the tensors)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        np.asarray(fn(z=z)['images'])
        times.append(time.perf_counter() - start)
    return np.array(times)


def runtimes(path):
    """name -> the generator, z (NumPy float32) -> {'images': uint8}."""
    saved = tf.saved_model.load(path).signatures['serving_default']
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice about ai_edge_litert
        warnings.simplefilter('ignore')
        lite = tf.lite.Interpreter(model_path=os.path.join(path, 'decoder.tflite'),
                                   num_threads=device_info.usable_cpus())
    return {'SavedModel': lambda z: saved(z=tf.constant(z)),
            'LiteRT': lite.get_signature_runner('serving_default')}


def bench(arch, calls):
    z_dim, channels, bn = SETTINGS[arch]
    encoder, decoder = models.build_models(arch, z_dim, channels, use_bn=bn)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_lib.export(encoder, decoder, os.path.join(tmp, arch), tflite=True)
        for runtime, fn in runtimes(path).items():
            result = {'arch': arch, 'runtime': runtime}
            for batch in (1, 16, 256):
                z = np.random.default_rng(0).normal(size=(batch, z_dim)).astype(np.float32)
                times = time_calls(fn, z, max(5, calls // batch) if batch > 1 else calls)
                result[f'images_per_sec_b{batch}'] = batch / float(np.median(times))
                if batch == 1:
                    result['p50_ms_b1'] = 1e3 * float(np.percentile(times, 50))
                    result['p99_ms_b1'] = 1e3 * float(np.percentile(times, 99))
            result['batch256_vs_batch1'] = result['images_per_sec_b256'] / result['images_per_sec_b1']
            results.append(result)
    # Measured in this run: LiteRT's batch-1 latency against the SavedModel's.
    results[1]['p50_b1_vs_saved_model'] = results[0]['p50_ms_b1'] / results[1]['p50_ms_b1']
    return results


def main(argv):
    del argv
    print(f'machine: {device_info.describe()}, TF {tf.__version__}')
    for arch in FLAGS.archs:
        for r in bench(arch, FLAGS.calls):
            if FLAGS.json:
                print(json.dumps(r))
                continue
            ratio = (f"  (LiteRT b1 p50 speed-up over SavedModel: {r['p50_b1_vs_saved_model']:.2f}x)"
                     if 'p50_b1_vs_saved_model' in r else '')
            print(f"{arch:11s} {r['runtime']:10s} images/s: b1 {r['images_per_sec_b1']:8.1f}  "
                  f"b16 {r['images_per_sec_b16']:8.1f}  b256 {r['images_per_sec_b256']:8.1f}  "
                  f"(b256/b1 {r['batch256_vs_batch1']:.1f}x) | latency b1 p50 {r['p50_ms_b1']:.2f} ms  "
                  f"p99 {r['p99_ms_b1']:.2f} ms{ratio}")


if __name__ == '__main__':
    app.run(main)
