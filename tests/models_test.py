"""Every architecture builds with the documented shapes, heads and options."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pga_tf.core import models

# resnet_32 is 512 wide in the original; a narrow copy keeps the test fast.
WIDTH = {'conv_mnist': 0.25, 'conv_32': 0.25, 'resnet_32': 1 / 16, 'conv_64': 0.25}


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('arch', sorted(models.ARCHITECTURES))
def test_shapes(arch, channels):
    size = models.IMAGE_SIZE[arch]
    encoder, decoder = models.build_models(arch, 7, channels, width=WIDTH[arch])
    assert (encoder.name, decoder.name) == ('encoder', 'decoder')
    x = np.random.RandomState(0).uniform(-1, 1, (2, size, size, channels)).astype(np.float32)
    z = encoder(x)
    assert z.shape == (2, 7)
    image = decoder(z).numpy()
    assert image.shape == (2, size, size, channels)
    assert image.dtype == np.float32 and np.all(np.abs(image) <= 1)


@pytest.mark.parametrize('arch', sorted(models.ARCHITECTURES))
def test_variational_head(arch):
    size = models.IMAGE_SIZE[arch]
    encoder, _ = models.build_models(arch, 5, 3, variational=True, width=WIDTH[arch])
    z_mu, z_log_sigma_sq = encoder(np.zeros((1, size, size, 3), np.float32))
    assert z_mu.shape == z_log_sigma_sq.shape == (1, 5)
    bias = encoder.get_layer('z_log_sigma_sq').bias.numpy()
    np.testing.assert_allclose(bias, np.full(5, 2 * math.log(0.1)), rtol=1e-6)
    # The paper-time code: sigma starts at 1.
    encoder, _ = models.build_models(arch, 5, 3, variational=True, width=WIDTH[arch], sigma_init=1.0)
    np.testing.assert_array_equal(encoder.get_layer('z_log_sigma_sq').bias.numpy(), np.zeros(5))


def test_conv_mnist_dense_activation_by_code_version():
    """Since 2020-02 the original's conv_mnist encoder has a leaky ReLU after its 1024 units."""
    for dense_lrelu, slopes in ((True, 3), (False, 2)):
        encoder, _ = models.build_models('conv_mnist', 4, 1, width=0.25, dense_lrelu=dense_lrelu)
        assert _count(encoder, keras.layers.LeakyReLU) == slopes


def _count(model, cls):
    return sum(isinstance(layer, cls) for layer in model.layers)


@pytest.mark.parametrize('arch, enc_bn, dec_bn', [
    ('conv_mnist', 2, 1), ('conv_32', 2, 1), ('conv_64', 2, 2)])
def test_batch_norm_where_the_original_puts_it(arch, enc_bn, dec_bn):
    bn = keras.layers.BatchNormalization
    encoder, decoder = models.build_models(arch, 4, 1, use_bn=True, width=0.25)
    assert (_count(encoder, bn), _count(decoder, bn)) == (enc_bn, dec_bn)
    encoder, decoder = models.build_models(arch, 4, 1, use_bn=False, width=0.25)
    assert _count(encoder, bn) == _count(decoder, bn) == 0


def test_conv_mnist_layers_follow_the_original():
    encoder, decoder = models.build_models('conv_mnist', 12, 1)
    convs = [l for l in encoder.layers if isinstance(l, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (64, (5, 5), (2, 2)), (128, (5, 5), (2, 2))]
    dense = [l.units for l in encoder.layers if isinstance(l, keras.layers.Dense)]
    assert dense == [1024, 12]
    dense = [l.units for l in decoder.layers if isinstance(l, keras.layers.Dense)]
    assert dense == [1024, 7 * 7 * 128]
    deconvs = [l.filters for l in decoder.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert deconvs == [64, 1]


def test_width_multiplies_filters():
    narrow, _ = models.build_models('conv_32', 4, 3, width=0.5)
    wide, _ = models.build_models('conv_32', 4, 3, width=1.0)
    filters = lambda m: [l.filters for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    assert filters(narrow) == [32, 64, 128] and filters(wide) == [64, 128, 256]


def test_unpooling_puts_each_value_top_left_of_a_zero_block():
    x = np.random.RandomState(0).randn(2, 3, 4, 5).astype(np.float32)
    expected = np.zeros((2, 6, 8, 5), np.float32)
    for i in range(3):
        for j in range(4):
            expected[:, 2 * i, 2 * j] = x[:, i, j]
    np.testing.assert_array_equal(models.Unpooling2D()(x).numpy(), expected)


def test_resnet_decoder_unpools_both_paths():
    _, decoder = models.build_models('resnet_32', 4, 3, width=1 / 16)
    assert _count(decoder, models.Unpooling2D) == 6  # skip and residual of three blocks
    assert _count(decoder, keras.layers.UpSampling2D) == 0


def test_resnet_has_skip_projections():
    encoder, decoder = models.build_models('resnet_32', 4, 3, width=1 / 16)
    for m in (encoder, decoder):
        kernels = [l.kernel_size for l in m.layers if isinstance(l, keras.layers.Conv2D)]
        assert (1, 1) in kernels and (3, 3) in kernels
        assert _count(m, keras.layers.Add) == (4 if m is encoder else 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown architecture'):
        models.build_models('vgg', 4, 3)
    with pytest.raises(ValueError, match='positive'):
        models.build_models('conv_32', 0, 3)


def test_dense_and_its_gradients_against_numpy():
    """models.Dense (its own matmul gradient): y = x·W + b, ∂/∂x = c·Wᵀ, ∂/∂W = xᵀ·c, ∂/∂b = Σc."""
    rng = np.random.default_rng(5)
    x, c = rng.normal(size=(5, 7)), rng.normal(size=(5, 3))
    layer = models.Dense(3)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = tf.reduce_sum(y * tf.constant(c, tf.float32))
    gx, gw, gb = tape.gradient(loss, [xt, layer.kernel, layer.bias])
    w, b = (v.numpy().astype(np.float64) for v in (layer.kernel, layer.bias))
    np.testing.assert_allclose(y.numpy(), x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx.numpy(), c @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), x.T @ c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb.numpy(), c.sum(0), rtol=1e-5, atol=1e-5)


def test_a_saved_model_file_loads_with_its_layers(tmp_path):
    encoder, _ = models.build_models('conv_mnist', 4, 1, variational=True, width=1 / 8)
    encoder.save(tmp_path / 'encoder.keras')
    loaded = keras.saving.load_model(tmp_path / 'encoder.keras')
    x = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
    for a, b in zip(encoder(x), loaded(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
