"""LPGA's switch-on divergence on a small case: the original's path blows up, the ramp and the
log-determinant floor keep it bounded (README, Stability)."""
import keras
import tensorflow as tf

from pga_tf.core import losses, models
from pga_tf.training import data, trainer

STEPS = 60


def _switch_on(ramp_steps, logdet_floor):
    """LPGA with MNIST's coefficients switched on while the codes are ~4x the prior's scale
    (|f(x)| ~ 13 for z_dim 12, as at the end of the study's warm-up): steps until the first
    non-finite one (STEPS if none), and the largest mean code norm seen."""
    keras.utils.set_random_seed(1)
    encoder, decoder = models.build_models('conv_mnist', 12, 1, False, width=1 / 8)
    head = encoder.layers[-1]
    head.kernel.assign(head.kernel * 30.0)
    head.bias.assign(head.bias * 30.0)
    weights = losses.LossWeights(zn_rec=6e-2, nll=1.5e-2, logdet_floor=logdet_floor)
    tr = trainer.Trainer('lpga', encoder, decoder, weights, 0.1, jit_compile=False,
                         ramp_steps=ramp_steps)
    x = tf.constant(data.to_float(data.mnist_5k_arrays('train')[:64]))
    largest = float(tf.reduce_mean(tf.norm(encoder(x), axis=-1)))
    assert 10 < largest < 20
    for step in range(STEPS):
        if not bool(tr.train_step(x)['finite']):
            return step, largest
        largest = max(largest, float(tf.reduce_mean(tf.norm(encoder(x), axis=-1))))
    return STEPS, largest


def test_the_original_switch_blows_the_codes_up():
    steps, largest = _switch_on(ramp_steps=0, logdet_floor=False)
    assert steps < 30 and largest > 1e6


def test_a_ramp_and_the_floor_keep_the_codes_bounded():
    steps, largest = _switch_on(ramp_steps=50, logdet_floor=True)
    assert steps == STEPS and largest < 20
