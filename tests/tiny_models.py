"""Tiny dense encoder/decoder with fixed weights, and the same maths in NumPy."""
import keras
import numpy as np

SIZE, Z_DIM, HIDDEN = 4, 3, 6


def _weights(seed):
    rng = np.random.RandomState(seed)
    shapes = {'e1': (SIZE * SIZE, HIDDEN), 'mu': (HIDDEN, Z_DIM), 'ls': (HIDDEN, Z_DIM),
              'd1': (Z_DIM, HIDDEN), 'd2': (HIDDEN, SIZE * SIZE)}
    w = {k: rng.normal(0, 0.6, s).astype(np.float32) for k, s in shapes.items()}
    w.update({k + '_b': rng.normal(0, 0.1, s[1]).astype(np.float32) for k, s in shapes.items()})
    return w


def build(variational, seed=0):
    """Returns (encoder, decoder, w): Keras models and their weights as a dict of arrays."""
    w = _weights(seed)
    x = keras.Input((SIZE, SIZE, 1))
    h = keras.layers.Dense(HIDDEN, activation='tanh')(keras.layers.Flatten()(x))
    mu_layer = keras.layers.Dense(Z_DIM)
    outputs = mu_layer(h)
    ls_layer = keras.layers.Dense(Z_DIM)
    if variational:
        outputs = [outputs, ls_layer(h)]
    encoder = keras.Model(x, outputs)
    encoder.layers[2].set_weights([w['e1'], w['e1_b']])
    mu_layer.set_weights([w['mu'], w['mu_b']])
    if variational:
        ls_layer.set_weights([w['ls'], w['ls_b']])
    z = keras.Input((Z_DIM,))
    d1 = keras.layers.Dense(HIDDEN, activation='tanh')
    d2 = keras.layers.Dense(SIZE * SIZE, activation='tanh')
    decoder = keras.Model(z, keras.layers.Reshape((SIZE, SIZE, 1))(d2(d1(z))))
    d1.set_weights([w['d1'], w['d1_b']])
    d2.set_weights([w['d2'], w['d2_b']])
    return encoder, decoder, w


def np_encode(w, x):
    """(z_mu, z_log_sigma_sq) in float64."""
    h = np.tanh(x.reshape(len(x), -1) @ w['e1'] + w['e1_b'])
    return h @ w['mu'] + w['mu_b'], h @ w['ls'] + w['ls_b']


def np_decode(w, z):
    h = np.tanh(z @ w['d1'] + w['d1_b'])
    return np.tanh(h @ w['d2'] + w['d2_b']).reshape(len(z), SIZE, SIZE, 1)


def np_h(w, z):
    return np_encode(w, np_decode(w, z))[0]


def data(batch=5, seed=1):
    """Fixed images in [-1, 1] and fixed noise, float32."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, (batch, SIZE, SIZE, 1)).astype(np.float32)
    noise = {k: rng.normal(size=(batch, Z_DIM)).astype(np.float32)
             for k in ('z_prior', 'eps', 'delta')}
    return x, noise
