"""Input pipelines: shapes, ranges, crops, splits, resume skipping and the offline failure."""
import dataclasses
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from pga_tf.training import data


def _first(ds):
    return next(iter(ds)).numpy()


@pytest.mark.parametrize('name, shape', [
    ('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3)), ('celeba', (64, 64, 3))])
def test_tfds_datasets(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        ds, num = data.load_dataset(name, 'train', 4, data_dir=str(tmp_path))
        batch = _first(ds)
    assert batch.shape == (4, *shape) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1 and batch.std() > 0.1
    assert num == data.DATASETS[name].num_train


def _keys(d, a):
    """The cubic convolution kernel (Keys 1981) with parameter a."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def _bicubic_matrix(n_in, n_out, resize):
    """One axis of a bicubic resize. tf1_bicubic (TF1's resize_images): output i samples input
    i * n_in / n_out (the legacy grid), a = -0.75, edge pixels repeated. bicubic (TF2's): it
    samples (i + 0.5) * n_in / n_out - 0.5 (half-pixel grid), a = -0.5, taps outside the
    image dropped and the weights renormalised."""
    legacy = resize == 'tf1_bicubic'
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = i * n_in / n_out if legacy else (i + 0.5) * n_in / n_out - 0.5
        x0 = int(np.floor(src))
        for j in range(x0 - 1, x0 + 3):
            weight = _keys(src - j, -0.75 if legacy else -0.5)
            if legacy:
                m[i, min(max(j, 0), n_in - 1)] += weight
            elif 0 <= j < n_in:
                m[i, j] += weight
        m[i] /= m[i].sum()  # a no-op for the legacy rows
    return m


def _celeba_reference(image, resize='tf1_bicubic'):
    """The original's CelebA image (utils.py): rows 55:163, columns 35:143, resized to 64x64,
    clipped to [0, 255]; here then rounded to uint8, float64 throughout."""
    crop = image[55:163, 35:143].astype(np.float64)
    m = _bicubic_matrix(108, 64, resize)
    return np.clip(np.round(np.einsum('ih,hwc,jw->ijc', m, crop, m)), 0, 255).astype(np.uint8)


def _assert_equal_but_round_off(out, expected):
    """Equal to the float64 reference but where float32 round-off crosses a .5 (by one level)."""
    diff = np.abs(out.astype(int) - expected)
    assert out.shape == (64, 64, 3) and diff.max() <= 1 and diff.mean() < 5e-3


@pytest.mark.parametrize('resize', data.RESIZES)
def test_centre_crop_then_resize(resize):
    image = np.random.RandomState(0).randint(0, 256, (218, 178, 3)).astype(np.uint8)
    out = data.center_crop_resize(tf.constant(image), 108, 64, resize).numpy()
    _assert_equal_but_round_off(out, _celeba_reference(image, resize))


# Aligned CelebA images per tfds split in the fake below (the real ones: 162,770 / 19,867 / 19,962).
_CELEBA_SPLITS = {'train': 5, 'validation': 2, 'test': 3}


def _fake_celeba(self, split, **kwargs):
    """tfds's reader of celeb_a: distinct random 218x178 images per split, '+' read as tfds does."""
    images = [np.random.RandomState(i).randint(0, 256, (_CELEBA_SPLITS[name], 218, 178, 3))
              for i, name in enumerate(_CELEBA_SPLITS) if name in split.split('+')]
    return tf.data.Dataset.from_tensor_slices({'image': np.concatenate(images).astype(np.uint8)})


def test_celeba_is_every_aligned_image_as_the_original_reads_it(tmp_path):
    """The celeba preset (tfds) and the folder preset on the same files give the original's
    images: all three tfds splits, the central 108x108, TF1 bicubic to 64x64."""
    from pga_tf.training import cli_flags

    raw = [image for split in _CELEBA_SPLITS for image in tfds.as_numpy(
        _fake_celeba(None, split).map(lambda e: e['image']))]
    celeba = cli_flags.read_preset('celeba', 'vpga')
    with tfds.testing.mock_data(as_dataset_fn=_fake_celeba):
        ds, num = data.image_source('celeba', 'train', str(tmp_path), **celeba.image_args())
        from_tfds = list(tfds.as_numpy(ds))
        held_out, _ = data.image_source('celeba', 'test', str(tmp_path), **celeba.image_args())
        assert len(list(held_out)) == _CELEBA_SPLITS['test']
    assert len(from_tfds) == sum(_CELEBA_SPLITS.values()) and num == 202_599
    for image, out in zip(raw, from_tfds):
        _assert_equal_but_round_off(out, _celeba_reference(image))

    folder = tmp_path / 'img_align_celeba'
    folder.mkdir()
    for i, image in enumerate(raw):
        Image.fromarray(image).save(folder / f'{i:06d}.png')
    config = dataclasses.replace(cli_flags.read_preset('folder', 'vpga'), data_dir=str(folder))
    ds, num = data.image_source('folder', 'train', config.data_dir, **config.image_args())
    assert num == len(raw)
    for a, b in zip(tfds.as_numpy(ds), from_tfds):
        np.testing.assert_array_equal(a, b)


def test_mnist_5k_is_real_offline_digits():
    train, test = data.mnist_5k_arrays('train'), data.mnist_5k_arrays('test')
    assert train.shape == (4500, 28, 28, 1) and test.shape == (500, 28, 28, 1)
    assert train.dtype == np.uint8 and train.max() == 255
    # Digits: dark background, bright strokes in the middle.
    assert train[:, :3].mean() < 5 and train[:, 10:18, 10:18].mean() > 60
    ds, num = data.load_dataset('mnist_5k', 'train', 16)
    assert num == 4500 and _first(ds).shape == (16, 28, 28, 1)


def test_float_uint8_round_trip():
    images = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
    floats = data.to_float(images)
    assert floats.numpy().min() == -1 and floats.numpy().max() == 1
    np.testing.assert_array_equal(data.to_uint8(floats), images)


def test_same_seed_same_order_and_skip_resumes_it():
    full = [b.numpy() for b in data.load_dataset('mnist_5k', 'train', 8, seed=3)[0].take(5)]
    again = [b.numpy() for b in data.load_dataset('mnist_5k', 'train', 8, seed=3)[0].take(5)]
    resumed = [b.numpy() for b in data.load_dataset('mnist_5k', 'train', 8, seed=3, skip_batches=3)[0].take(2)]
    other = _first(data.load_dataset('mnist_5k', 'train', 8, seed=4)[0])
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed[0], full[3])
    np.testing.assert_array_equal(resumed[1], full[4])
    assert not np.array_equal(other, full[0])


def _write_images(folder, n=6):
    rng = np.random.RandomState(0)
    (folder / 'sub').mkdir(parents=True)
    for i in range(n):
        image = rng.randint(0, 256, (40 + i, 30 + 2 * i, 3)).astype(np.uint8)
        path = folder / ('sub' if i % 2 else '.') / f'img{i}.{"png" if i % 3 else "jpg"}'
        Image.fromarray(image).save(path)
    (folder / 'notes.txt').write_text('not an image')


def test_folder_reads_every_image_cropped_and_resized(tmp_path):
    _write_images(tmp_path)
    assert len(data.list_images(str(tmp_path))) == 6
    ds, num = data.load_dataset('folder', 'train', 3, data_dir=str(tmp_path), size=32,
                                channels=3, crop=0, shuffle=False)
    assert num == 6
    batch = _first(ds)
    assert batch.shape == (3, 32, 32, 3) and -1 <= batch.min() and batch.max() <= 1
    gray, _ = data.load_dataset('folder', 'train', 2, data_dir=str(tmp_path), size=28, channels=1)
    assert _first(gray).shape == (2, 28, 28, 1)


def test_folder_without_images(tmp_path):
    with pytest.raises(data.DataError, match='no .png.* files under'):
        data.load_dataset('folder', 'train', 2, data_dir=str(tmp_path), size=32, channels=3)
    with pytest.raises(data.DataError, match='not a directory'):
        data.load_dataset('folder', 'train', 2, data_dir=str(tmp_path / 'missing'), size=32, channels=3)


def test_folder_skips_and_counts_files_its_decoder_does_not_read(tmp_path, caplog):
    _write_images(tmp_path)
    good = (tmp_path / 'img0.jpg').read_bytes()
    (tmp_path / 'truncated.jpg').write_bytes(good[:len(good) // 2])
    (tmp_path / 'text.png').write_text('not a picture')
    # PIL reads TIFF; TensorFlow's decoder, the pipeline's, does not.
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / 'tiff.png', format='TIFF')
    with caplog.at_level('WARNING'):
        readable, sides = data.readable_images(str(tmp_path), 3)
    assert sorted(os.path.basename(p) for p in readable) == [f'img{i}.{"png" if i % 3 else "jpg"}'
                                                              for i in range(6)]
    assert sorted(sides) == [min(40 + i, 30 + 2 * i) for i in range(6)]
    assert 'skipping 3 unreadable of 9' in caplog.text
    for name in ('truncated.jpg', 'text.png', 'tiff.png'):
        assert name in caplog.text
    ds, num = data.load_dataset('folder', 'train', 3, data_dir=str(tmp_path), size=32, channels=3,
                                repeat=False)
    assert num == 6 and sum(len(b) for b in ds) == 6
    # A file that goes away during the run is skipped, not fatal.
    ds, _ = data.load_dataset('folder', 'train', 1, data_dir=str(tmp_path), size=32, channels=3,
                              repeat=False, shuffle=False)
    (tmp_path / 'img0.jpg').unlink()
    assert sum(len(b) for b in ds) == 5


def test_folder_refuses_a_crop_larger_than_an_image(tmp_path):
    _write_images(tmp_path)  # shorter sides 30 to 40
    with pytest.raises(data.DataError, match=r'6 of 6 images are smaller than --crop=108 '
                                             r'\(img0.jpg: shorter side 30\); pass --crop=30'):
        data.load_dataset('folder', 'train', 2, data_dir=str(tmp_path), size=32, channels=3, crop=108)
    ds, _ = data.load_dataset('folder', 'train', 2, data_dir=str(tmp_path), size=32, channels=3, crop=30)
    assert _first(ds).shape == (2, 32, 32, 3)


def test_folder_of_only_broken_files(tmp_path):
    (tmp_path / 'a.jpg').write_text('no')
    with pytest.raises(data.DataError, match=r'no readable .* \(1 unreadable: a.jpg\)'):
        data.readable_images(str(tmp_path))


def test_missing_tfds_data_offline_fails_fast_with_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(data, '_network_reachable', lambda: False)
    start = time.monotonic()
    with pytest.raises(data.DataError) as err:
        data.load_dataset('mnist', 'train', 4, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    for way_out in ('--data_dir', '--dataset=folder', '--dataset=mnist_5k'):
        assert way_out in message
    assert not list(tmp_path.glob('downloads'))


def test_celeba_crop_wider_than_its_images_is_refused():
    with pytest.raises(data.DataError, match=r'--crop=200 is larger than the aligned images \(178x218\)'):
        data.image_source('celeba', 'train', crop=200, resize='tf1_bicubic')
