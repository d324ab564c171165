"""One generator at inference: the run's grids, its evaluation and its export draw the same images."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pga_tf.core import generator, models
from pga_tf.serving import export_lib
from pga_tf.training import data, run_folder, train_lib
from pga_tf.evaluation import evaluator, fid
from train_lib_test import small_config


def pooled_features(images):
    """A fixed stand-in feature map: 7x7 average pooling of the first channel."""
    return tf.reshape(tf.nn.avg_pool2d(images[..., :1], 4, 4, 'VALID'), [tf.shape(images)[0], -1])


@pytest.mark.parametrize('bn', [False, True])
def test_grid_evaluation_and_export_agree(bn, tmp_path):
    run_dir = tmp_path / 'run'
    train_lib.train(small_config('mnist_5k', 'vpga', bn=bn, train_steps=3, sample_every=3,
                                 z_dim=8, width=0.25), str(run_dir))
    run = run_folder.RunFolder(run_dir).load()
    path = export_lib.export(run.encoder, run.decoder, str(tmp_path / 'exports'))
    exported = tf.saved_model.load(path)
    # The final grid of the run equals the export's images of fixed_z.npy.
    fixed_z = np.load(run_dir / 'fixed_z.npy')
    served = exported.signatures['serving_default'](z=tf.constant(fixed_z))['images'].numpy()
    grid = np.array(Image.open(run_dir / 'samples' / 'samples_0000003.png'))
    tiles = grid.reshape(8, 28, 8, 28).transpose(0, 2, 1, 3).reshape(64, 28, 28)
    assert np.abs(tiles.astype(int) - served[..., 0].astype(int)).max() <= 1
    # The distance that evaluation computes equals the one from the export's uint8 images.
    reference = fid.activation_statistics(
        pooled_features, [data.to_float(data.mnist_5k_arrays('test')[:300])])
    ours = evaluator.distance_to(reference, evaluator.feature_array(
        pooled_features, evaluator.sample_batches(run.decoder, 8, 300, 100, seed=5)))
    theirs = fid.activation_statistics(pooled_features, [
        data.to_float(exported.signatures['serving_default'](z=z)['images'])
        for z in evaluator.prior_samples(8, 300, 100, 5)])
    np.testing.assert_allclose(fid.frechet_distance(theirs[0], theirs[1], *reference[:2]), ours,
                               rtol=1e-4)


def test_prepare_gives_each_z_one_image_at_any_batch_size():
    tf.keras.utils.set_random_seed(1)
    _, decoder = models.build_models('conv_32', 8, 3, False, use_bn=True, width=1 / 16)
    decoder(tf.random.normal([64, 8]) * 3 + 1, training=True)  # moving statistics off the prior
    assert generator.prepare(decoder) == generator.PRIOR_BATCHES
    z = tf.random.stateless_normal([16, 8], [2, 3])
    alone = tf.concat([generator.generate(decoder, z[i:i + 1]) for i in range(16)], 0)
    np.testing.assert_allclose(alone, generator.generate(decoder, z), atol=1e-5)
    # They depend on the weights alone.
    before = [v.numpy() for v in decoder.non_trainable_variables]
    generator.prepare(decoder)
    for a, b in zip(before, decoder.non_trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())
    # They are those of prior batches: inference mode matches a large prior batch's own
    # statistics.
    big = tf.random.stateless_normal([2048, 8], [4, 4])
    assert np.abs(generator.generate(decoder, big) - decoder(big, training=True)).mean() < 0.01


def test_prepare_leaves_a_decoder_without_batch_norm_alone():
    _, decoder = models.build_models('conv_mnist', 4, 1, False, width=1 / 16)
    assert generator.prepare(decoder) == 0


def test_traversals_move_one_dimension_at_a_time():
    z = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    scale = np.array([1.0, 0.1, 3.0, 0.5], np.float32)
    dims = generator.most_used_dimensions(scale, 2).numpy()
    assert dims.tolist() == [2, 0]
    codes = generator.traversal_codes(z, dims, scale, 5, span=2.0).numpy()
    expected = [z + t * scale[d] * np.eye(4)[d] for d in (2, 0) for t in (-2, -1, 0, 1, 2)]
    np.testing.assert_allclose(codes, np.array(expected), rtol=1e-6)


def test_traversal_grid_rows_meet_at_the_code_of_the_first_image():
    from pga_tf.training import summaries

    encoder, decoder = models.build_models('conv_mnist', 4, 1, width=1 / 16)
    x = data.to_float(data.mnist_5k_arrays('test')[:16])
    grid = summaries.traversal_grid(encoder, decoder, x, rows=3, steps=5)
    assert grid.shape == (3 * 28, 5 * 28, 1)
    middle = [grid[r * 28:(r + 1) * 28, 2 * 28:3 * 28] for r in range(3)]  # t = 0: f(x[0])
    expected = summaries.image_grid(decoder(encoder(x[:1]), training=False), 1)
    for image in middle:
        np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize('spherical', [False, True])
def test_interpolation_codes(spherical):
    rng = np.random.RandomState(0)
    a, b = rng.randn(3, 6).astype(np.float32), rng.randn(3, 6).astype(np.float32)
    codes = generator.interpolation_codes(a, b, 5, spherical).numpy()
    t = np.linspace(0, 1, 5)[None, :, None]
    if spherical:  # slerp, in float64
        a64, b64 = a.astype(np.float64)[:, None], b.astype(np.float64)[:, None]
        cos = (a64 * b64).sum(-1, keepdims=True) / np.linalg.norm(a64, axis=-1, keepdims=True) / np.linalg.norm(b64, axis=-1, keepdims=True)
        omega = np.arccos(cos)
        expected = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    else:
        expected = (1 - t) * a[:, None] + t * b[:, None]
    np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(codes[:, 0], a, atol=1e-5)
    np.testing.assert_allclose(codes[:, -1], b, atol=1e-5)
