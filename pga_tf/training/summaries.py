"""Image grids of a model (samples, reconstructions, interpolations) as PNG and TensorBoard.

Grids are uint8 numpy arrays [rows * H, cols * W, C]; the models run in inference mode, so
drawing a grid never changes batch-norm statistics.
"""
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from pga_tf.core import generator, losses
from pga_tf.training import data

INTERPOLATION_STEPS = 9


def image_grid(images, cols):
    """float images [N, H, W, C] in [-1, 1] -> uint8 grid [ceil(N/cols) * H, cols * W, C]."""
    return uint8_grid(data.to_uint8(images).numpy(), cols)


def uint8_grid(images, cols):
    """uint8 images [N, H, W, C] -> uint8 grid [ceil(N/cols) * H, cols * W, C], row by row."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return grid


def sample_grid(decoder, z, cols=8):
    """g(z) for a fixed z [N, z_dim], from a `generator.prepare`d decoder."""
    return image_grid(generator.generate(decoder, z), cols)


def reconstruction_grid(encoder, decoder, x, cols=8):
    """Pairs of columns: x, then g(f(x)) to its right."""
    z_mu = losses.encode(encoder, x, False)[0]
    x_rec = decoder(z_mu, training=False)
    pairs = tf.reshape(tf.stack([x, x_rec], 1), [-1, *x.shape[1:]])
    return image_grid(pairs, cols * 2)


def interpolation_grid(encoder, decoder, x_a, x_b):
    """One row per pair (the paper's Fig. 2): x_a, 9 images along f(x_a) -> f(x_b), x_b."""
    z_a, z_b = losses.encode(encoder, x_a, False)[0], losses.encode(encoder, x_b, False)[0]
    codes = generator.interpolation_codes(z_a, z_b, INTERPOLATION_STEPS)
    path = tf.reshape(decoder(tf.reshape(codes, [-1, z_a.shape[-1]]), training=False),
                      [len(x_a), INTERPOLATION_STEPS, *x_a.shape[1:]])
    row_major = tf.reshape(tf.concat([x_a[:, None], path, x_b[:, None]], 1), [-1, *x_a.shape[1:]])
    return image_grid(row_major, INTERPOLATION_STEPS + 2)


def traversal_grid(encoder, decoder, x, rows=8, steps=INTERPOLATION_STEPS):
    """Latent traversals around the code of x[0]: a row for each of the `rows` dimensions whose
    codes vary most over x (most first), moving it over ±2 code std in `steps` images."""
    codes = losses.encode(encoder, x, False)[0]
    code_std = tf.math.reduce_std(codes, 0)
    dims = generator.most_used_dimensions(code_std, rows)
    z = generator.traversal_codes(codes[0], dims, code_std, steps)
    return image_grid(generator.generate(decoder, z), steps)


def write_png(grid, path):
    """Writes a uint8 grid [H, W, C] (C = 1 or 3) as a PNG file, whole or not at all."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp-{os.getpid()}'
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp, format='PNG')
    os.replace(tmp, path)


def write_grids(grids, sample_dir, step):
    """PNG files `<sample_dir>/<name>_<step>.png` and image summaries `samples/<name>`."""
    for name, grid in grids.items():
        write_png(grid, os.path.join(sample_dir, f'{name}_{step:07d}.png'))
        tf.summary.image(f'samples/{name}', grid[None], step=step)


def write_scalars(log_dir, step, scalars):
    """Scalar summaries {tag: value} at `step` into a run's TensorBoard folder (a new events
    file beside the trainer's): TensorBoard's HParams dashboard lists them as the run's metrics."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
