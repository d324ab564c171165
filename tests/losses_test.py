"""Each loss term against an independent NumPy computation of the formula."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from pga_tf.core import losses, models
import tiny_models as tm

WEIGHTS = losses.LossWeights(zn_rec=0.3, zh_rec=0.2, nll=0.05, vrec=0.7, vkld=0.11)


def np_mse(a, b):
    return np.mean((a - b) ** 2)


def np_log_det(w, z, d, eps):
    """Mean over rows of (n/2) log(||h(z + d) - h(z)||² / ε²) / n."""
    n = z.shape[1]
    sq = np.sum(((tm.np_h(w, z + d) - tm.np_h(w, z)) / eps) ** 2, 1)
    return np.mean(n / 2 * np.log(sq)) / n


def np_nll_enc(z):
    n = z.shape[1]
    log_prob = -0.5 * np.sum(z ** 2, 1) - n / 2 * np.log(2 * np.pi)
    return -np.mean(log_prob) / n


def np_vkld(mu, ls):
    return -np.mean(0.5 * (1 + ls - mu ** 2 - np.exp(ls)))


def expected(method, w, x, noise, a=WEIGHTS):
    """(enc_loss, dec_loss, terms) written out from the paper/original formulas, with the
    coefficients `a`; the terms whose coefficient is 0 are not listed."""
    x, noise = x.astype(np.float64), {k: v.astype(np.float64) for k, v in noise.items()}
    w = {k: v.astype(np.float64) for k, v in w.items()}
    mu, ls = tm.np_encode(w, x)
    sigma, n = np.exp(0.5 * ls), mu.shape[1]
    t = {}
    if method in ('vae',):
        t['img_rec'] = np_mse(x, tm.np_decode(w, mu + sigma * noise['eps']))
    else:
        t['img_rec'] = np_mse(x, tm.np_decode(w, mu))
    if method in ('lpga', 'vpga', 'lvpga'):
        t['zn_rec'] = np_mse(noise['z_prior'], tm.np_h(w, noise['z_prior']))
        t['zh_rec'] = np_mse(mu, tm.np_h(w, mu))
    if method in ('vpga', 'lvpga', 'vae'):
        t['vkld'] = np_vkld(mu, ls)
    if method in ('lpga', 'lvpga'):
        t['nll_enc'] = np_nll_enc(mu)
    if method == 'lpga':
        eps = 1e-2 * np.sqrt(n)
        d = noise['delta'] / np.linalg.norm(noise['delta'], axis=1, keepdims=True) * eps
        t['nll_dec'] = np_log_det(w, mu, d, eps)
        enc = t['img_rec'] + a.zn_rec * t['zn_rec'] + a.zh_rec * t['zh_rec'] + a.nll * t['nll_enc']
        dec = t['img_rec'] + a.nll * t['nll_dec']
    elif method == 'vpga':
        norm = np.sqrt(np.mean(mu ** 2, 0))
        t['vrec'] = np_mse(tm.np_h(w, mu) / norm, tm.np_h(w, mu + sigma * noise['eps']) / norm)
        enc = (t['img_rec'] + a.zn_rec * t['zn_rec'] + a.zh_rec * t['zh_rec']
               + a.vrec * t['vrec'] + a.vkld * t['vkld'])
        dec = t['img_rec'] + a.vrec * t['vrec']
    elif method == 'lvpga':
        d = noise['delta'] * (sigma + 1e-2)
        t['vrec'] = np_log_det(w, mu, d, np.linalg.norm(d, axis=1, keepdims=True))
        enc = (t['img_rec'] + a.zn_rec * t['zn_rec'] + a.zh_rec * t['zh_rec']
               + a.vrec * t['vrec'] + a.vkld * t['vkld'] + a.nll * t['nll_enc'])
        dec = t['img_rec'] + a.vrec * t['vrec']
    elif method == 'vae':
        enc = dec = t['img_rec'] + a.vkld * t['vkld']
    else:
        enc = dec = t['img_rec']
    coefficient = {'nll_enc': a.nll, 'nll_dec': a.nll, 'img_rec': 1}
    return enc, dec, {k: v for k, v in t.items() if coefficient.get(k, getattr(a, k, 1)) != 0}


# The presets' zeros: zh_rec on MNIST, nll in LVPGA on MNIST; and a zero of every other term.
ZEROS = {'zh_rec': 0.0, 'nll': 0.0}


@pytest.mark.parametrize('zeros', [{}, ZEROS, {'zn_rec': 0.0, 'vrec': 0.0, 'vkld': 0.0}],
                         ids=['all', 'presets_zeros', 'other_zeros'])
@pytest.mark.parametrize('method', sorted(losses.METHODS))
def test_terms_match_numpy(method, zeros):
    encoder, decoder, w = tm.build(method in losses.VARIATIONAL)
    x, noise = tm.data()
    weights = dataclasses.replace(WEIGHTS, **zeros)
    enc, dec, terms = losses.compute_losses(method, encoder, decoder, x, noise, weights)
    enc_np, dec_np, terms_np = expected(method, w, x, noise, weights)
    assert sorted(terms) == sorted(terms_np)
    for name, value in terms.items():
        assert value.dtype == tf.float32 and value.shape == ()
        np.testing.assert_allclose(value.numpy(), terms_np[name], rtol=2e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(enc.numpy(), enc_np, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(dec.numpy(), dec_np, rtol=2e-4, atol=1e-6)


def test_weights_by_mapping_and_zero_weight_removes_term():
    encoder, decoder, _ = tm.build(False)
    x, noise = tm.data()
    enc, dec, t = losses.compute_losses('lpga', encoder, decoder, x, noise, {'zn_rec': 0.0})
    np.testing.assert_allclose(enc.numpy(), t['img_rec'].numpy())
    np.testing.assert_allclose(dec.numpy(), t['img_rec'].numpy())
    scaled = WEIGHTS.scaled(0.5)
    assert scaled.vrec == pytest.approx(0.35) and scaled.zn_rec == pytest.approx(0.15)


@pytest.mark.parametrize('method, zeros, h, h_prime', [
    ('lpga', {'zh_rec': 0.0}, ('prior', 'data', 'perturbed'), ()),
    ('lpga', {'zh_rec': 0.0, 'nll': 0.0}, ('prior',), ()),
    ('vpga', {'zh_rec': 0.0}, ('prior',), ('data', 'offset')),
    ('vpga', {'zn_rec': 0.0, 'zh_rec': 0.0, 'vrec': 0.0}, (), ()),
    ('lvpga', {'nll': 0.0, 'zh_rec': 0.0}, ('prior',), ('data', 'offset'))])
def test_terms_with_coefficient_zero_cost_no_pass(method, zeros, h, h_prime, monkeypatch):
    """The latent batches sent through g and f are those of the terms that count."""
    asked = []
    real = losses.latent_maps

    def recording(encoder, decoder, zs, h=(), h_prime=(), **kwargs):
        asked.append((tuple(h), tuple(h_prime)))
        return real(encoder, decoder, zs, h, h_prime, **kwargs)

    monkeypatch.setattr(losses, 'latent_maps', recording)
    encoder, decoder, _ = tm.build(method in losses.VARIATIONAL)
    x, noise = tm.data()
    losses.compute_losses(method, encoder, decoder, x, noise, dataclasses.replace(WEIGHTS, **zeros))
    assert asked == [(h, h_prime)]
    # Scaled by a tensor (the warm-up's gate), a zero stays a known zero.
    assert not losses.active(dataclasses.replace(WEIGHTS, **zeros).scaled(tf.constant(1.0)).zh_rec)


def test_img_rec_zero_when_decoder_inverts_encoder():
    x = tf.random.uniform([4, 4, 4, 1], -1, 1)
    assert float(losses.mse(x, tf.identity(x))) == 0.0


@pytest.mark.parametrize('bn', [False, True])
def test_h_prime_gives_encoder_weights_no_gradient(bn):
    """h' has h's value; its gradient reaches g and f's input, never f's weights."""
    tf.keras.utils.set_random_seed(0)
    if bn:  # separate calls per batch; without batch norm, one batched call
        encoder, decoder = models.build_models('conv_mnist', 3, 1, use_bn=True, width=1 / 16)
    else:
        encoder, decoder, _ = tm.build(True)
    assert losses.has_batch_norm(encoder, decoder) == bn
    _, noise = tm.data()
    z, z2 = tf.constant(noise['z_prior']), tf.constant(noise['eps'])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z, z2])
        h, h_prime = losses.latent_maps(encoder, decoder, {'a': z, 'b': z2}, h=('a', 'b'),
                                        h_prime=('a',))
        out_h, out_hp = tf.reduce_sum(h['a'] ** 2), tf.reduce_sum(h_prime['a'] ** 2)
    # Batched differently (a with b, or a alone): equal up to float32 round-off.
    np.testing.assert_allclose(out_h.numpy(), out_hp.numpy(), rtol=1e-5)
    for g in tape.gradient(out_hp, encoder.trainable_variables):
        assert g is None or not np.any(g.numpy())  # exactly zero, on every CPU
    # The input and the decoder still get h's gradient.
    np.testing.assert_allclose(tape.gradient(out_hp, z), tape.gradient(out_h, z), rtol=1e-4, atol=1e-7)
    for g_hp, g_h in zip(tape.gradient(out_hp, decoder.trainable_variables),
                         tape.gradient(out_h, decoder.trainable_variables)):
        np.testing.assert_allclose(g_hp, g_h, rtol=1e-4, atol=1e-6)
    assert any(np.any(g.numpy()) for g in tape.gradient(out_h, encoder.trainable_variables))
    # The second batch is independent of the first.
    assert tape.gradient(out_h, z2) is None or not np.any(tape.gradient(out_h, z2).numpy())


def test_groups_change_the_calls_not_the_values_or_gradients():
    encoder, decoder, _ = tm.build(True)
    _, noise = tm.data()
    zs = {k: tf.constant(v) for k, v in noise.items()}
    results = []
    for groups in (None, (('z_prior',), ('eps', 'delta'))):
        with tf.GradientTape() as tape:
            h, h_prime = losses.latent_maps(encoder, decoder, zs, h=('z_prior', 'eps'),
                                            h_prime=('eps', 'delta'), groups=groups)
            total = sum(tf.reduce_sum(v ** 2) for v in [*h.values(), *h_prime.values()])
        grads = tape.gradient(total, encoder.trainable_variables + decoder.trainable_variables)
        results.append(([v.numpy() for v in [*h.values(), *h_prime.values()]], grads))
    (values, grads), (values_grouped, grads_grouped) = results
    for a, b in zip(values + grads, values_grouped + grads_grouped):
        assert (a is None) == (b is None)  # sigma's head: no gradient either way
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='once'):
        losses.latent_maps(encoder, decoder, zs, h=('z_prior', 'eps'), groups=(('z_prior',),))


def float64_models(variational, bn):
    """A dense encoder and decoder in float64, with batch norm after their hidden layer."""
    def hidden(y):
        y = keras.layers.Dense(6, dtype='float64')(y)
        y = keras.layers.BatchNormalization(dtype='float64')(y) if bn else y
        return keras.layers.Activation('tanh', dtype='float64')(y)

    keras.utils.set_random_seed(1)
    x = keras.Input((tm.SIZE, tm.SIZE, 1), dtype='float64')
    y = hidden(keras.layers.Flatten(dtype='float64')(x))
    heads = [keras.layers.Dense(tm.Z_DIM, dtype='float64')(y) for _ in range(1 + variational)]
    z = keras.Input((tm.Z_DIM,), dtype='float64')
    y = keras.layers.Dense(tm.SIZE * tm.SIZE, activation='tanh', dtype='float64')(hidden(z))
    return (keras.Model(x, heads if variational else heads[0]),
            keras.Model(z, keras.layers.Reshape((tm.SIZE, tm.SIZE, 1), dtype='float64')(y)))


class CountingRows:
    """A network that counts the rows it is called on."""

    def __init__(self, model):
        self.model, self.rows = model, 0

    @property
    def layers(self):
        return self.model.layers

    def __call__(self, inputs, **kwargs):
        self.rows += int(inputs.shape[0])
        return self.model(inputs, **kwargs)


@pytest.mark.parametrize('bn', [False, True], ids=['plain', 'bn'])
@pytest.mark.parametrize('zeros', [{}, {'zh_rec': 0.0}], ids=['all', 'mnist_zeros'])
@pytest.mark.parametrize('method', ['lpga', 'vpga', 'lvpga'])
def test_a_tape_per_loss_shares_passes_not_losses_or_gradients(method, zeros, bn):
    """With `enc_tape` the data's codes skip a decoder pass, and the losses and each network's
    gradient are those of one tape and the stop-gradient's own passes, in float64."""
    encoder, decoder = float64_models(method in losses.VARIATIONAL, bn)
    x, noise = tm.data()
    x, noise = tf.constant(x, tf.float64), {k: tf.constant(v, tf.float64) for k, v in noise.items()}
    weights = dataclasses.replace(WEIGHTS, **zeros)
    statistics = encoder.non_trainable_variables + decoder.non_trainable_variables
    start = [v.numpy() for v in statistics]
    runs = []
    for shared in (False, True):
        for v, value in zip(statistics, start):
            v.assign(value)
        counting = CountingRows(decoder)
        with tf.GradientTape(persistent=True) as dec_tape, tf.GradientTape() as enc_tape:
            enc, dec, terms = losses.compute_losses(method, encoder, counting, x, noise, weights,
                                                    enc_tape=enc_tape if shared else None)
        # One tape without enc_tape: dec_tape differentiates both losses.
        zero = tf.UnconnectedGradients.ZERO
        grads = ((enc_tape if shared else dec_tape).gradient(enc, encoder.trainable_variables,
                                                             unconnected_gradients=zero)
                 + dec_tape.gradient(dec, decoder.trainable_variables, unconnected_gradients=zero))
        runs.append(([enc, dec, *terms.values()], grads,
                     [v.numpy() for v in encoder.non_trainable_variables], counting.rows))
    (values, grads, moved, rows), (values_shared, grads_shared, moved_shared, rows_shared) = runs
    assert rows_shared == rows - x.shape[0]
    for a, b in zip(values + grads, values_shared + grads_shared, strict=True):
        assert a.dtype == tf.float64
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-14)
    assert all(np.any(g.numpy()) for g in grads_shared)
    # The encoder's batch statistics move as before (the decoder's once less for the data).
    for a, b in zip(moved, moved_shared, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('method', ['vpga', 'lvpga'])
def test_vrec_reaches_encoder_only_through_sigma(method):
    encoder, decoder, _ = tm.build(True)
    x, noise = tm.data()
    with tf.GradientTape() as tape:
        _, _, terms = losses.compute_losses(method, encoder, decoder, x, noise, WEIGHTS)
    grads = dict(zip([v.path for v in encoder.trainable_variables],
                     tape.gradient(terms['vrec'], encoder.trainable_variables)))
    mu_grads = [g for p, g in grads.items() if p.startswith(encoder.layers[-2].name + '/')]
    ls_grads = [g for p, g in grads.items() if p.startswith(encoder.layers[-1].name + '/')]
    # z_mu enters vrec only under stop_gradient, and h' holds the encoder's weights constant;
    # sigma's head gets a real gradient.
    assert len(mu_grads) == len(ls_grads) == 2
    assert max(np.abs(g.numpy()).max() for g in ls_grads) > 1e-3
    assert all(g is None or not np.any(g.numpy()) for g in mu_grads)


def test_draw_noise_shapes_and_determinism():
    a = losses.draw_noise([3, 1], 7, 5)
    b = losses.draw_noise(tf.constant([3, 1], tf.int64), 7, 5)
    c = losses.draw_noise([3, 2], 7, 5)
    assert sorted(a) == ['delta', 'eps', 'z_prior']
    for k in a:
        assert a[k].shape == (7, 5)
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a['eps'], a['delta']) and not np.allclose(a['eps'], c['eps'])
    for k in a:  # standard normal
        assert abs(float(tf.reduce_mean(losses.draw_noise([0, 0], 4000, 5)[k]))) < 0.05


def test_unknown_method():
    with pytest.raises(ValueError, match='unknown method'):
        losses.compute_losses('gan', None, None, None, None, {})


def test_log_det_floor_bounds_a_contracted_h_and_leaves_resolved_differences_alone():
    """Float64 NumPy: (z_dim/2) log(||Δ||²/ε²)/z_dim, with ||Δ|| floored at float32's
    resolution of h(z), eps·max(||h(z)||, 1)."""
    rng = np.random.default_rng(3)
    h_z = rng.normal(size=(4, 6)).astype(np.float32) * 3
    delta = rng.normal(size=(4, 6)).astype(np.float32)
    eps = np.float32(0.05)
    scale = np.array([1e-2, 1e-4, 1e-9, 0.0], np.float32)[:, None]  # the last two are round-off
    h_perturbed = h_z + delta * scale
    diff = (h_perturbed.astype(np.float64) - h_z) / eps
    floor = (2.0 ** -23 * np.maximum(np.linalg.norm(h_z.astype(np.float64), axis=-1), 1) / eps) ** 2
    expected = np.mean(6 / 2 * np.log(np.maximum(np.sum(diff ** 2, -1), floor))) / 6
    got = losses.log_det_estimate(tf.constant(h_perturbed), tf.constant(h_z), eps)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # The resolved rows are the original's estimate; the floor acts on the last two only.
    resolved = float(losses.log_det_estimate(tf.constant(h_perturbed[:2]), tf.constant(h_z[:2]), eps))
    assert resolved == float(losses.log_det_estimate(tf.constant(h_perturbed[:2]), tf.constant(h_z[:2]),
                                                     eps, floor=False))
    # The original's: log 0 where h(z + d) == h(z) in float32.
    assert float(losses.log_det_estimate(tf.constant(h_perturbed), tf.constant(h_z), eps,
                                         floor=False)) == -np.inf
    # No gradient pushes h further below the floor.
    hp = tf.Variable(h_perturbed[3:])
    with tf.GradientTape() as tape:
        value = losses.log_det_estimate(hp, tf.constant(h_z[3:]), eps)
    assert np.all(tape.gradient(value, hp).numpy() == 0)


def test_the_floor_is_a_setting_that_survives_the_warm_ups_scaling():
    w = losses.LossWeights(nll=0.5, logdet_floor=False).scaled(tf.constant(0.5))
    assert w.logdet_floor is False and float(w.nll) == 0.25 and w.zn_rec == 0.0
