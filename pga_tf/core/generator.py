"""The generator at inference: the one definition that grids, in-loop and offline evaluation,
the export and `pga_tf.sample` share.

g(z) runs in inference mode. With batch norm, the decoder's moving statistics are first set to
the statistics of its own input distribution, N(0, I) (`prepare`): a training step feeds the
decoder data codes, prior samples and perturbed codes, each batch normalised by its own
statistics, so the moving averages mix several distributions and describe none of them. The
original code draws every sample with the batch statistics of a batch of prior samples; the
statistics recomputed here are that batch's statistics in the limit of a large batch, with two
differences that matter for serving: an image depends on its z alone (not on the other z of its
batch), and a batch of one works.
"""
import keras
import tensorflow as tf

# Prior samples behind the recomputed statistics: 20 batches of 256 (5,120 codes), seed 0, so
# the statistics depend on the weights alone.
PRIOR_BATCHES = 20
PRIOR_BATCH_SIZE = 256
PRIOR_SEED = 0


def recompute_batch_norm(model, batches):
    """Sets every BatchNormalization's moving statistics to their average over `batches`.

    Returns the number of batches used (0: the model has no batch norm, and is unchanged).
    """
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    count = 0
    for count, batch in enumerate(batches, 1):
        for bn in bns:  # momentum 1 - 1/n: the moving value is the mean of the n batch values
            bn.momentum = 1.0 - 1.0 / count
        model(batch, training=True)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    return count


def prior_batches(z_dim, num_batches=PRIOR_BATCHES, batch_size=PRIOR_BATCH_SIZE, seed=PRIOR_SEED):
    """`num_batches` fixed batches of z ~ N(0, I), [batch_size, z_dim] each."""
    return (tf.random.stateless_normal([batch_size, z_dim], seed=[seed, i])
            for i in range(num_batches))


def prepare(decoder):
    """Makes `decoder` the generator at inference (batch norm on prior statistics); returns the
    number of prior batches used (0 without batch norm: nothing to do)."""
    return recompute_batch_norm(decoder, prior_batches(decoder.input_shape[-1]))


def generate(decoder, z):
    """g(z) [B, H, W, C] in [-1, 1] for z [B, z_dim], from a `prepare`d decoder."""
    return decoder(z, training=False)


def interpolation_codes(z_start, z_end, steps, spherical=False):
    """`steps` codes from each z_start [B, z_dim] to its z_end, [B, steps, z_dim]: along the
    line, or (spherical) along the great circle, the norm interpolated linearly (slerp)."""
    t = tf.reshape(tf.linspace(0.0, 1.0, steps), [1, -1, 1])
    a, b = z_start[:, None], z_end[:, None]
    if not spherical:
        return (1 - t) * a + t * b
    cos = tf.reduce_sum(tf.math.l2_normalize(a, -1) * tf.math.l2_normalize(b, -1), -1, keepdims=True)
    omega = tf.acos(tf.clip_by_value(cos, -1.0, 1.0))
    sin = tf.sin(omega)
    # Nearly parallel codes: the line is the circle.
    safe = sin > 1e-6
    sin = tf.where(safe, sin, 1.0)
    wa = tf.where(safe, tf.sin((1 - t) * omega) / sin, 1 - t)
    wb = tf.where(safe, tf.sin(t * omega) / sin, t)
    return wa * a + wb * b


# Latent traversals move each dimension over [-TRAVERSAL_SPAN, TRAVERSAL_SPAN] x its code std.
TRAVERSAL_SPAN = 2.0


def most_used_dimensions(code_std, count):
    """The `count` latent dimensions whose codes vary most over the data, most first."""
    return tf.argsort(code_std, direction='DESCENDING', stable=True)[:count]


def traversal_codes(z, dims, scale, steps, span=TRAVERSAL_SPAN):
    """Codes that move one latent dimension at a time around z [z_dim]: for each of `dims`
    (int [n]), `steps` codes z + t * scale[d] * e_d with t evenly spread over [-span, span];
    [n * steps, z_dim], one dimension after the other."""
    z = tf.convert_to_tensor(z, tf.float32)
    t = tf.linspace(-span, span, steps)
    moves = tf.gather(scale, dims)[:, None, None] * tf.one_hot(dims, tf.shape(z)[-1])[:, None, :]
    return tf.reshape(z + moves * t[None, :, None], [-1, tf.shape(z)[-1]])
