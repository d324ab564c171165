"""The loss terms of PGA and its baselines, as pure functions of models, data and noise.

Every random number comes in through `noise` (see `draw_noise`), so a loss is a
deterministic function of its arguments. Names follow the original code's flags:
`img_rec`, `zn_rec`, `zh_rec`, `nll_enc`, `nll_dec`, `vrec`, `vkld`. MSE terms are means over
all elements, as `tf.losses.mean_squared_error` is in the original.

Notation: f is the encoder (φ), g the decoder (θ), h = f∘g, sg the stop-gradient.
"""
import dataclasses
import math

import keras
import tensorflow as tf

# Radius of the LPGA perturbation, relative to sqrt(z_dim) (original: 1e-2 * z_dim ** 0.5).
LPGA_EPSILON = 1e-2
# float32's machine epsilon: the relative resolution of h(z) in the log-determinant estimates.
FLOAT32_EPS = 2.0 ** -23
# Floor added to sigma for the LVPGA perturbation (original: exp(0.5 log σ²) + 1e-2).
LVPGA_SIGMA_FLOOR = 1e-2


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Coefficients by the original code's flag names (paper symbols in brackets)."""
    zn_rec: float = 0.0  # [α] latent reconstruction for z ~ N(0, I)
    zh_rec: float = 0.0  # [β] latent reconstruction for z ~ H, the encoded data
    nll: float = 0.0  # [γ] maximum-likelihood terms (LPGA, LVPGA)
    vrec: float = 0.0  # VPGA's latent "reconstruction" term
    vkld: float = 0.0  # KL(q(z|x) || N(0, I)); the VAE's KL weight too
    # Not a coefficient: the log-determinant estimates' float32 floor (`log_det_estimate`).
    logdet_floor: bool = True

    def scaled(self, factor):
        """All coefficients times `factor` (a float or a scalar tensor); a coefficient of 0
        stays the number 0, so its term is still known not to be needed."""
        coefficients = {k: v for k, v in dataclasses.asdict(self).items() if k != 'logdet_floor'}
        return LossWeights(**{k: v * factor if active(v) else 0.0 for k, v in coefficients.items()},
                           logdet_floor=self.logdet_floor)


def active(coefficient):
    """False for a coefficient that is the number 0: its term is not computed at all."""
    return not (isinstance(coefficient, (int, float)) and coefficient == 0)


def draw_noise(seed, batch_size, z_dim):
    """Draws every random tensor a loss needs, as a function of `seed` alone.

    Args:
      seed: int32/int64 [2] (the trainer uses (seed, step)).

    Returns:
      dict of float32 [batch_size, z_dim] standard normal tensors: `z_prior` (samples of the
      prior), `eps` (reparameterisation noise) and `delta` (log-determinant direction).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shape = [batch_size, z_dim]
    return {name: tf.random.stateless_normal(shape, seeds[i])
            for i, name in enumerate(('z_prior', 'eps', 'delta'))}


def mse(a, b):
    """Mean over all elements of (a - b)², the original's `mean_squared_error`."""
    return tf.reduce_mean(tf.square(a - b))


def nll_enc(z):
    """-mean log N(z; 0, I) / z_dim, with the normaliser constant (LPGA eq. 5)."""
    z_dim = z.shape[-1]
    log_prob = -0.5 * tf.reduce_sum(tf.square(z), -1) - 0.5 * z_dim * math.log(2 * math.pi)
    return -tf.reduce_mean(log_prob) / z_dim


def log_det_estimate(h_perturbed, h_z, epsilon, floor=True):
    """Stochastic estimate of log|det J_h(z)| / z_dim, mean over the batch (LPGA eq. 6-7).

    (z_dim / 2) log(||h(z + d) - h(z)||² / ε²) / z_dim for each row, given h(z + d) and h(z)
    for a perturbation d of norm ε. `epsilon` is a scalar or a [B, 1] column.

    With `floor`, a difference below float32's resolution of h(z), eps·max(||h(z)||, 1), counts
    as that resolution, without gradient: below it the difference is round-off, and 0 once h
    has contracted that far, where the original's estimate is log 0 = -inf (README, Stability).
    Above it the estimate is the original's.
    """
    z_dim = h_z.shape[-1]
    sq = tf.reduce_sum(tf.square((h_perturbed - h_z) / epsilon), -1)
    if floor:
        resolution = FLOAT32_EPS * tf.maximum(tf.norm(h_z, axis=-1, keepdims=True), 1.0) / epsilon
        sq = tf.maximum(sq, tf.stop_gradient(tf.square(tf.reshape(resolution, [-1]))))
    return tf.reduce_mean(z_dim / 2 * tf.math.log(sq)) / z_dim


def vkld(z_mu, z_log_sigma_sq):
    """KL(N(μ, σ²) || N(0, I)) as -mean(0.5(1 + log σ² - μ² - σ²)), mean over elements."""
    return -tf.reduce_mean(0.5 * (1 + z_log_sigma_sq - tf.square(z_mu) - tf.exp(z_log_sigma_sq)))


def encode(encoder, x, training):
    """f(x) as (z_mu, z_log_sigma_sq), with None for a non-variational encoder."""
    out = encoder(x, training=training)
    return (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)


def has_batch_norm(*models):
    return any(isinstance(layer, keras.layers.BatchNormalization)
               for model in models for layer in model.layers)


def frozen_encode(encoder, v, training=True):
    """f(v) with f's weights held constant: the gradient reaches v, never f's weights.

    One pass through `encoder.stateless_call` with stop-gradient weights, so the weight
    gradient is exactly zero (the original's f(u) - (f(sg u) - sg f(u)) costs a second pass
    and cancels only up to round-off). Batch-norm statistics are used but not updated.
    """
    weights = [tf.stop_gradient(w.value) for w in encoder.trainable_variables]
    state = [w.value for w in encoder.non_trainable_variables]
    out, _ = encoder.stateless_call(weights, state, v, training=training)
    return out[0] if isinstance(out, (list, tuple)) else out


def held(tape, t):
    """t as a constant on `tape` alone: through `tape` no gradient reaches what t came from;
    every other tape sees t itself."""
    with tape.stop_recording():
        return tf.identity(t)


def latent_maps(encoder, decoder, zs, h=(), h_prime=(), groups=None, training=True,
                decoded=None, enc_tape=None):
    """h = f∘g on the latent batches named in `h`, and h' on those named in `h_prime`.

    h' is h with f's weights held constant (`frozen_encode`, or h held on `enc_tape`, below):
    f's input, and so g and σ, keep their gradient. g runs once per latent batch, whichever of
    h and h' need it. Without batch norm the batches of one group go through each network in
    one call (the same maths, per example); with it each batch keeps its own calls and batch
    statistics, as in the original. A group should hold batches whose gradients go the same
    way: the backward pass of a call runs over all its rows, also those whose gradient is zero
    there (the prior's rows in the decoder's gradient, which only zn_rec, an encoder term,
    reaches). Grouped so (the prior alone, the data's codes with their offset), conv_mnist
    vpga, lpga and lvpga ran 1.19x, 1.26x and 1.19x faster than with one call for all, and
    1.03-1.04x faster than with one call per batch (AMD EPYC with AVX-512, batch 64,
    2026-11-27).

    With `enc_tape` (the tape of the encoder's loss, the decoder's loss on another), a batch
    in `decoded` skips its pass through g, and its h' shares its h's pass through f when both
    are wanted. Its codes are sg(z) for codes z that g has already decoded (img_rec's g(z)):
    g(z) held constant on `enc_tape` (`held`) is g(sg z) for both gradients, ∂/∂φ (no path to
    φ) and ∂/∂θ (z does not depend on θ); and f of it, held on `enc_tape`, is h' for both, as
    f's weights have no part in ∂/∂θ. Under batch norm the decoder updates its moving
    statistics once per step for these equal batches, not twice. So shared, conv_64 lpga and
    vpga (batch norm) ran 1.10x and 1.13x faster, conv_mnist lpga and vpga 1.13x and 1.10x
    (medians of 3 alternating processes, AMD EPYC with AVX-512, batch 64, 2026-11-27).

    Args:
      zs: dict name -> [B, z_dim] latent batch.
      h, h_prime: names of the batches whose h, and whose h', are wanted.
      groups: sequences of names that may share a call; None: all of them.
      decoded: dict name -> g(z) with z's gradient, where zs[name] is sg(z); used with
        `enc_tape` only (one tape needs the stop-gradient's own pass).
      enc_tape: the `tf.GradientTape` that differentiates the encoder's loss alone.

    Returns:
      (h, h_prime): dicts name -> [B, z_dim].
    """
    h, h_prime = list(h), list(h_prime)
    names = list(dict.fromkeys(h + h_prime))
    decoded = ({n: held(enc_tape, u) for n, u in (decoded or {}).items() if n in names}
               if enc_tape is not None else {})
    # h' of a decoded batch whose h is wanted is that h, held: f runs once on it (none
    # without enc_tape).
    shared_prime = [n for n in h_prime if n in decoded and n in h]
    frozen_names = [n for n in h_prime if n not in shared_prime]
    f = lambda v: encode(encoder, v, training)[0]
    f_frozen = lambda v: frozen_encode(encoder, v, training)
    if has_batch_norm(encoder, decoder):
        u = {n: decoded[n] if n in decoded else decoder(zs[n], training=training) for n in names}
        maps = {n: f(u[n]) for n in h}
        maps_prime = {n: f_frozen(u[n]) for n in frozen_names}
    else:
        def batched(fn, inputs):
            if not inputs:
                return []
            return tf.split(fn(tf.concat(inputs, 0)), [tf.shape(t)[0] for t in inputs])

        groups = [names] if groups is None else [[n for n in g if n in names] for g in groups]
        if sorted(sum(groups, [])) != sorted(names):
            raise ValueError(f'groups {groups} must hold each of {names} once')
        maps, maps_prime = {}, {}
        for group in groups:
            todo = [n for n in group if n not in decoded]
            u = {**{n: decoded[n] for n in group if n in decoded},
                 **dict(zip(todo, batched(lambda z: decoder(z, training=training),
                                          [zs[n] for n in todo])))}
            wanted = [n for n in group if n in h]
            wanted_prime = [n for n in group if n in frozen_names]
            maps.update(zip(wanted, batched(f, [u[n] for n in wanted])))
            maps_prime.update(zip(wanted_prime, batched(f_frozen, [u[n] for n in wanted_prime])))
    maps_prime.update({n: held(enc_tape, maps[n]) for n in shared_prime})
    return {n: maps[n] for n in h}, {n: maps_prime[n] for n in h_prime}


def _pga_batches(w):
    """The latent batches whose h the latent reconstructions need: only where they count."""
    return (('prior',) if active(w.zn_rec) else ()) + (('data',) if active(w.zh_rec) else ())


def _pga_terms(z_prior, z_data, h, w):
    """zn_rec (eq. 2) and zh_rec (eq. 3), shared by every PGA method; a term whose
    coefficient is 0 is left out."""
    terms = {'zn_rec': lambda: mse(z_prior, h['prior']), 'zh_rec': lambda: mse(z_data, h['data'])}
    return {name: term() for name, term in terms.items() if active(getattr(w, name))}


def _weighted(terms, coefficients):
    """sum of coefficient * term over `coefficients` (name -> coefficient), terms present."""
    return sum(c * terms[name] for name, c in coefficients.items() if active(c))


def _lpga(encoder, decoder, x, noise, w, training, enc_tape):
    """LPGA, paper eqs. 1-3, 5-7."""
    z = encode(encoder, x, training)[0]
    x_rec = decoder(z, training=training)
    z_data = tf.stop_gradient(z)
    # d on the hypersphere of radius ε = 1e-2 sqrt(z_dim) around sg(f(x)).
    epsilon = LPGA_EPSILON * math.sqrt(z.shape[-1])
    d = tf.math.l2_normalize(noise['delta'], -1) * epsilon
    # h(sg f(x)) serves zh_rec and the log-determinant alike: computed once.
    needed = tuple(dict.fromkeys(_pga_batches(w) + (('data', 'perturbed') if active(w.nll) else ())))
    # The data's codes share their perturbation's calls while only the decoder's loss reaches
    # both (zh_rec off); with zh_rec on, apart: conv_mnist lpga at --zh_rec=0.01 ran 1.10x
    # faster so (median of 6 alternating processes, AMD EPYC with AVX-512, 2026-11-27).
    apart = (('data',), ('perturbed',)) if active(w.zh_rec) else (('data', 'perturbed'),)
    groups = (('prior',), *apart)
    h, _ = latent_maps(encoder, decoder, {'prior': noise['z_prior'], 'data': z_data,
                                          'perturbed': z_data + d},
                       h=needed, groups=groups, training=training,
                       decoded={'data': x_rec}, enc_tape=enc_tape)
    t = {'img_rec': mse(x, x_rec),
         **_pga_terms(noise['z_prior'], z_data, h, w)}
    if active(w.nll):
        t['nll_enc'] = nll_enc(z)  # eq. 5
        t['nll_dec'] = log_det_estimate(h['perturbed'], h['data'], epsilon, w.logdet_floor)  # eqs. 6-7
    enc = t['img_rec'] + _weighted(t, {'zn_rec': w.zn_rec, 'zh_rec': w.zh_rec, 'nll_enc': w.nll})
    dec = t['img_rec'] + _weighted(t, {'nll_dec': w.nll})
    return enc, dec, t


def _variational(encoder, decoder, x, noise, w, training, enc_tape, offset):
    """VPGA and LVPGA: img_rec from z_mu, zn_rec, zh_rec, vkld, and vrec's h' (empty when
    vrec's coefficient is 0).

    `offset(sigma)` is the latent offset of vrec's second point (σ·eps, or the LVPGA
    perturbation d); it keeps σ's gradient.
    """
    z_mu, z_log_sigma_sq = encode(encoder, x, training)
    x_rec = decoder(z_mu, training=training)
    z_data = tf.stop_gradient(z_mu)
    offset = offset(tf.exp(0.5 * z_log_sigma_sq))
    # One decoder pass on the data's codes (img_rec's, with enc_tape) serves h (zh_rec) and h'
    # (vrec) alike.
    h, h_prime = latent_maps(encoder, decoder, {'prior': noise['z_prior'], 'data': z_data,
                                                'offset': z_data + offset},
                             h=_pga_batches(w),
                             h_prime=('data', 'offset') if active(w.vrec) else (),
                             groups=(('prior',), ('data', 'offset')), training=training,
                             decoded={'data': x_rec}, enc_tape=enc_tape)
    t = {'img_rec': mse(x, x_rec),
         **_pga_terms(noise['z_prior'], z_data, h, w)}
    if active(w.vkld):
        t['vkld'] = vkld(z_mu, z_log_sigma_sq)
    return z_mu, offset, h_prime, t


def _vpga(encoder, decoder, x, noise, w, training, enc_tape):
    """VPGA, paper eqs. 9-11, as the original code computes them."""
    z_mu, _, h_prime, t = _variational(encoder, decoder, x, noise, w, training, enc_tape,
                                       lambda sigma: sigma * noise['eps'])
    if active(w.vrec):
        # Per-dimension scale of z_mu over the batch, so vrec does not shrink with the latent.
        n = tf.stop_gradient(tf.sqrt(tf.reduce_mean(tf.square(z_mu), 0)))
        t['vrec'] = mse(h_prime['data'] / n, h_prime['offset'] / n)
    enc = t['img_rec'] + _weighted(t, {'zn_rec': w.zn_rec, 'zh_rec': w.zh_rec, 'vrec': w.vrec,
                                       'vkld': w.vkld})
    return enc, t['img_rec'] + _weighted(t, {'vrec': w.vrec}), t


def _lvpga(encoder, decoder, x, noise, w, training, enc_tape):
    """LVPGA, the original code's combination: VPGA with a log-determinant vrec."""
    z_mu, d, h_prime, t = _variational(encoder, decoder, x, noise, w, training, enc_tape,
                                       lambda sigma: noise['delta'] * (sigma + LVPGA_SIGMA_FLOOR))
    if active(w.vrec):
        epsilon = tf.stop_gradient(tf.norm(d, axis=-1, keepdims=True))
        t['vrec'] = log_det_estimate(h_prime['offset'], h_prime['data'], epsilon, w.logdet_floor)
    if active(w.nll):
        t['nll_enc'] = nll_enc(z_mu)
    enc = t['img_rec'] + _weighted(t, {'zn_rec': w.zn_rec, 'zh_rec': w.zh_rec, 'vrec': w.vrec,
                                       'vkld': w.vkld, 'nll_enc': w.nll})
    return enc, t['img_rec'] + _weighted(t, {'vrec': w.vrec}), t


def _vae(encoder, decoder, x, noise, w, training, enc_tape):
    """VAE baseline: mse(x, g(μ + σ·eps)) + vkld · KL; one loss for both networks."""
    del enc_tape  # no pass to share
    z_mu, z_log_sigma_sq = encode(encoder, x, training)
    z = z_mu + tf.exp(0.5 * z_log_sigma_sq) * noise['eps']
    t = {'img_rec': mse(x, decoder(z, training=training))}
    if active(w.vkld):
        t['vkld'] = vkld(z_mu, z_log_sigma_sq)
    loss = t['img_rec'] + _weighted(t, {'vkld': w.vkld})
    return loss, loss, t


def _ae(encoder, decoder, x, noise, w, training, enc_tape):
    """Plain autoencoder: mse(x, g(f(x)))."""
    del noise, w, enc_tape  # the same signature as the other methods
    z = encode(encoder, x, training)[0]
    t = {'img_rec': mse(x, decoder(z, training=training))}
    return t['img_rec'], t['img_rec'], t


METHODS = {'lpga': _lpga, 'vpga': _vpga, 'lvpga': _lvpga, 'vae': _vae, 'ae': _ae}
# Methods whose encoder returns (z_mu, z_log_sigma_sq).
VARIATIONAL = frozenset({'vpga', 'lvpga', 'vae'})


def compute_losses(method, encoder, decoder, x, noise, hparams, training=True, enc_tape=None):
    """Computes the encoder's and the decoder's losses of one method.

    Args:
      method: a key of `METHODS`.
      encoder, decoder: from `models.build_models` (variational for `VARIATIONAL` methods).
      x: float32 [B, H, W, C] images in [-1, 1].
      noise: dict from `draw_noise` (`z_prior`, `eps`, `delta`, each [B, z_dim]).
      hparams: `LossWeights`, or a mapping with some of its field names.
      training: the mode of batch norm in every pass (the original trains in every pass).
      enc_tape: for a step that differentiates the encoder's loss on a tape of its own (the
        decoder's loss on another, recording both), recording while this runs: the PGA methods
        then decode the data's codes once, for img_rec and for their h and h' alike
        (`latent_maps`). The encoder's loss is then ∂/∂φ-right on `enc_tape` only (on another
        tape it gains a path g(z) -> z -> φ); the networks must share no variable, and a random
        layer draws one mask for the shared pass. Without it, one tape may differentiate both
        losses.

    Returns:
      (enc_loss, dec_loss, terms): scalar losses for φ and θ, and a dict of every scalar term
      the method uses, by name. A term whose coefficient is the number 0 is not computed and
      not in `terms` (a coefficient scaled to 0 during the warm-up still is).
    """
    if method not in METHODS:
        raise ValueError(f'unknown method {method!r}; choose one of {sorted(METHODS)}')
    if not isinstance(hparams, LossWeights):
        hparams = LossWeights(**hparams)
    return METHODS[method](encoder, decoder, x, noise, hparams, training, enc_tape)
