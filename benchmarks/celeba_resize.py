"""How much the CelebA resize changes the images: TF1's bicubic (the original's) against TF2's,
and against the rounding to uint8 that pga_tf's pipeline adds.

No CelebA here: the portrait that matplotlib ships (Grace Hopper) is resized to CelebA's aligned
178x218 first, then goes through `data.center_crop_resize` with the celeba preset's crop.

  python benchmarks/celeba_resize.py
"""
import os

import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from pga_tf.training import cli_flags, data
from pga_tf.utils import device_info


def portrait():
    path = os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data', 'sample_data',
                        'grace_hopper.jpg')
    return np.asarray(Image.open(path).convert('RGB').resize((178, 218), Image.LANCZOS))


def resized_floats(image, crop, resize):
    """The pipeline's resize before the clip-and-round to uint8, in grey levels."""
    side = crop or min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = tf.constant(image[top:top + side, left:left + side], tf.float32)
    if resize == 'tf1_bicubic':
        out = tf.compat.v1.image.resize(square, [64, 64],
                                        method=tf.compat.v1.image.ResizeMethod.BICUBIC)
    else:
        out = tf.image.resize(square, [64, 64], method='bicubic')
    return np.clip(out.numpy().astype(np.float64), 0, 255)


def main():
    config = cli_flags.read_preset('celeba', 'vpga')
    image = portrait()
    tf1 = resized_floats(image, config.crop, 'tf1_bicubic')
    tf2 = resized_floats(image, config.crop, 'bicubic')
    piped = data.center_crop_resize(tf.constant(image), config.crop, 64,
                                    config.resize).numpy().astype(np.float64)
    print(f'# {device_info.describe()}')
    print(f'celeba preset: --crop={config.crop} --resize={config.resize}; grey levels of 255, '
          '64x64x3 pixels of one portrait')
    print('| comparison | mean abs | RMS | max |')
    print('|---|---|---|---|')
    for name, a, b in (('TF2 bicubic vs TF1 bicubic (the original)', tf2, tf1),
                       ('pipeline (TF1, uint8) vs TF1 floats (the original)', piped, tf1)):
        d = a - b
        print(f'| {name} | {np.abs(d).mean():.2f} | {np.sqrt((d ** 2).mean()):.2f} '
              f'| {np.abs(d).max():.2f} |')
    ratio = np.abs(tf2 - tf1).mean() / np.abs(piped - tf1).mean()
    print(f'The resize kernel moves pixels {ratio:.0f}x more than the rounding does.')


if __name__ == '__main__':
    main()
