"""Encoder f (φ) and decoder g (θ) of the original PGA code, as Keras functional models.

Images are channels-last float32 in [-1, 1]; decoders end in tanh. The encoder returns
`z_mu`, or `[z_mu, z_log_sigma_sq]` when variational. Layers marked (+BN) in the original
use batch normalisation only when `use_bn` is set.
"""
import functools
import math

import keras
import tensorflow as tf
from keras import layers

# Side of the square images each architecture reads and writes.
IMAGE_SIZE = {'conv_mnist': 28, 'conv_32': 32, 'resnet_32': 32, 'conv_64': 64}

# slim.batch_norm's defaults in the original code (decay 0.999, epsilon 1e-3, scale=True).
_BN_MOMENTUM = 0.999
_BN_EPSILON = 1e-3


def _norm_act(y, use_bn, activation):
    """Optional batch norm, then the activation ('lrelu', 'relu' or None)."""
    if use_bn:
        y = layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON)(y)
    if activation == 'lrelu':
        return layers.LeakyReLU(negative_slope=0.2)(y)
    if activation == 'relu':
        return layers.ReLU()(y)
    return y


def _conv(y, filters, use_bn=False, activation='lrelu'):
    # slim drops the bias when a normaliser follows; so do we.
    y = layers.Conv2D(filters, 5, strides=2, padding='same', use_bias=not use_bn)(y)
    return _norm_act(y, use_bn, activation)


def _deconv(y, filters, use_bn=False, activation='relu'):
    y = layers.Conv2DTranspose(filters, 5, strides=2, padding='same', use_bias=not use_bn)(y)
    return _norm_act(y, use_bn, activation)


@tf.custom_gradient
def matmul(x, kernel):
    """x·W for x [B, m] and W [m, n]; its input gradient g·Wᵀ as a batch of one (BatchMatMulV2
    with adj_y), the same product. A CPU's matmul kernel is slow on a large transposed operand:
    for conv_mnist's 6272x1024 layer at batch 64, g·Wᵀ took 14.4 ms, the batch of one 6.0 ms,
    and the conv_mnist step ran 1.1-1.2x faster (AMD EPYC with AVX-512, 2026-11-27)."""
    def grad(g):
        return (tf.raw_ops.BatchMatMulV2(x=g[None], y=kernel[None], adj_y=True)[0],
                tf.matmul(x, g, transpose_a=True))

    return tf.matmul(x, kernel), grad


@keras.saving.register_keras_serializable(package='pga_tf')
class Dense(layers.Dense):
    """`keras.layers.Dense` on [B, m] inputs, by `matmul`: the same layer and weights."""

    def call(self, inputs, training=None):
        y = matmul(inputs, keras.ops.cast(self.kernel, self.compute_dtype))
        if self.bias is not None:
            y = tf.nn.bias_add(y, keras.ops.cast(self.bias, self.compute_dtype))
        return self.activation(y) if self.activation is not None else y


def _dense(y, units, use_bn=False, activation=None):
    y = Dense(units, use_bias=not use_bn)(layers.Flatten()(y) if len(y.shape) > 2 else y)
    return _norm_act(y, use_bn, activation)


def _to_image(y):
    # float32 output so that losses stay float32 under a mixed-precision policy.
    return layers.Activation('tanh', dtype='float32', name='image')(y)


def _conv_mnist(x, z, dim, channels, use_bn, dense_lrelu=True):
    """28x28: the original `conv_mnist` (dim 64); `dense_lrelu=False` is its encoder before
    2020-02 (a linear 1024-unit layer)."""
    y = _conv(x, dim)
    y = _conv(y, dim * 2, use_bn)
    h = _dense(y, 1024, use_bn, 'lrelu' if dense_lrelu else None)
    y = _dense(z, 1024, activation='relu')
    y = _dense(y, 7 * 7 * dim * 2, use_bn, 'relu')
    y = layers.Reshape((7, 7, dim * 2))(y)
    y = _deconv(y, dim)
    return h, _to_image(_deconv(y, channels, activation=None))


def _conv_32(x, z, dim, channels, use_bn):
    """32x32: the original `conv_32` (dim 64)."""
    y = _conv(x, dim)
    y = _conv(y, dim * 2, use_bn)
    h = _conv(y, dim * 4, use_bn)
    y = _dense(z, 4 * 4 * dim * 4, activation='relu')
    y = layers.Reshape((4, 4, dim * 4))(y)
    y = _deconv(y, dim * 2, use_bn)
    y = _deconv(y, dim)
    return h, _to_image(_deconv(y, channels, activation=None))


def _conv_64(x, z, dim, channels, use_bn):
    """64x64: the original `conv_64`, a DCGAN at half width (dim 64)."""
    y = _conv(x, dim)
    y = _conv(y, dim * 2)
    y = _conv(y, dim * 4, use_bn)
    h = _conv(y, dim * 8, use_bn)
    y = _dense(z, 4 * 4 * dim * 8, activation='relu')
    y = layers.Reshape((4, 4, dim * 8))(y)
    y = _deconv(y, dim * 4, use_bn)
    y = _deconv(y, dim * 2, use_bn)
    y = _deconv(y, dim)
    return h, _to_image(_deconv(y, channels, activation=None))


@keras.saving.register_keras_serializable(package='pga_tf')
class Unpooling2D(layers.Layer):
    """The original's `unpool` (after Dosovitskiy et al.): each value goes to the top-left of a
    2x2 block of zeros, [B, H, W, C] -> [B, 2H, 2W, C]."""

    def call(self, x):
        shape = keras.ops.shape(x)
        zeros = keras.ops.zeros_like(x)
        # Interleave zeros after each column, then after each row.
        y = keras.ops.reshape(keras.ops.stack([x, zeros], axis=3),
                              (shape[0], shape[1], 2 * shape[2], shape[3]))
        return keras.ops.reshape(keras.ops.stack([y, keras.ops.zeros_like(y)], axis=2),
                                 (shape[0], 2 * shape[1], 2 * shape[2], shape[3]))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return batch, height and 2 * height, width and 2 * width, channels


def _res_block(x, channels, scale=None, use_bn=False, first=False):
    """Pre-activation residual block: 3x3 convs, 1x1 skip projection, 2x pooling/unpooling."""
    skip, res = x, x
    if not first:
        res = _norm_act(res, use_bn, 'relu')
    if scale == 'up':
        skip, res = Unpooling2D()(skip), Unpooling2D()(res)
    if scale or x.shape[-1] != channels:
        skip = layers.Conv2D(channels, 1)(skip)
    res = layers.Conv2D(channels, 3, padding='same', use_bias=not use_bn)(res)
    res = _norm_act(res, use_bn, 'relu')
    res = layers.Conv2D(channels, 3, padding='same')(res)
    y = layers.Add()([skip, res])
    return layers.AveragePooling2D(2)(y) if scale == 'down' else y


def _resnet_32(x, z, dim, channels, use_bn):
    """32x32: the original `resnet_32` (dim 512)."""
    y = _res_block(x, dim, 'down', use_bn, first=True)
    y = _res_block(y, dim, 'down', use_bn)
    y = _res_block(y, dim, None, use_bn)
    h = layers.ReLU()(_res_block(y, dim, None, use_bn))
    y = _dense(z, 4 * 4 * dim * 4)
    y = layers.Reshape((4, 4, dim * 4))(y)
    for _ in range(3):
        y = _res_block(y, dim, 'up', use_bn)
    y = layers.Conv2D(channels, 3, padding='same')(layers.ReLU()(y))
    return h, _to_image(y)


# name -> (builder, base width of the original code)
ARCHITECTURES = {
    'conv_mnist': (_conv_mnist, 64),
    'conv_32': (_conv_32, 64),
    'resnet_32': (_resnet_32, 512),
    'conv_64': (_conv_64, 64),
}


PRECISIONS = ('float32', 'mixed_bfloat16', 'mixed_float16')


def build_models(arch, z_dim, channels, variational=False, use_bn=False, width=1.0,
                 precision='float32', sync_bn=False, *, dense_lrelu=True, sigma_init=0.1):
    """Builds the encoder f and the decoder g of one architecture.

    Args:
      arch: a key of `ARCHITECTURES`.
      z_dim: latent dimension.
      channels: image channels (1 or 3).
      variational: if True the encoder also returns `z_log_sigma_sq`, whose bias starts at
        2 log `sigma_init`.
      use_bn: batch normalisation in the layers the original marks (+BN).
      width: multiplier of the original base width (64, or 512 for resnet_32).
      precision: a Keras dtype policy of `PRECISIONS`. With a mixed policy the layers compute
        in 16 bits and keep float32 variables; the latent heads and the image output stay
        float32, so every loss and its reductions (the log-determinant too) are float32.
      sync_bn: batch statistics over all replicas of a tf.distribute strategy (as on one
        device) instead of each replica's share of the batch.
      dense_lrelu: conv_mnist only: leaky ReLU after the encoder's 1024-unit layer (the
        original since 2020-02; False: the code of the paper's time).
      sigma_init: sigma of q(z|x) at initialisation (0.1: the original since 2019-05; 1
        before).

    Returns:
      (encoder, decoder): `keras.Model`s named "encoder" ([B, S, S, C] -> [B, z_dim], or a
      list of two such tensors) and "decoder" ([B, z_dim] -> [B, S, S, C] in [-1, 1]),
      where S = IMAGE_SIZE[arch].

    Raises:
      ValueError: for an unknown architecture or non-positive sizes.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f'unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}')
    if z_dim < 1 or channels < 1 or width <= 0 or sigma_init <= 0:
        raise ValueError('z_dim, channels, width and sigma_init must be positive')
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; choose one of {PRECISIONS}')
    builder, base = ARCHITECTURES[arch]
    if arch == 'conv_mnist':
        builder = functools.partial(builder, dense_lrelu=dense_lrelu)
    dim = max(1, int(round(base * width)))
    size = IMAGE_SIZE[arch]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)  # only while these layers are made
    try:
        encoder, decoder = _build(builder, size, z_dim, channels, variational, use_bn, dim,
                                  2.0 * math.log(sigma_init))
    finally:
        keras.config.set_dtype_policy(previous)
    for layer in encoder.layers + decoder.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.synchronized = sync_bn  # read when the layer runs
    return encoder, decoder


def _build(builder, size, z_dim, channels, variational, use_bn, dim, log_sigma_sq_init):
    x = keras.Input((size, size, channels), name='x')
    z = keras.Input((z_dim,), name='z')
    h, image = builder(x, z, dim, channels, use_bn)

    h = layers.Flatten()(h) if len(h.shape) > 2 else h
    z_mu = Dense(z_dim, dtype='float32', name='z_mu')(h)
    outputs = z_mu
    if variational:
        z_log_sigma_sq = Dense(
            z_dim, dtype='float32', name='z_log_sigma_sq',
            bias_initializer=keras.initializers.Constant(log_sigma_sq_init))(h)
        outputs = [z_mu, z_log_sigma_sq]
    encoder = keras.Model(x, outputs, name='encoder')
    decoder = keras.Model(z, image, name='decoder')
    return encoder, decoder
