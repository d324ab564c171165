"""PGA as a keras.Model: `fit` runs Trainer's step, its callbacks keep and resume the whole state."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pga_tf.core import losses, models
from pga_tf.training import keras_model, trainer

WEIGHTS = losses.LossWeights(zn_rec=0.3, zh_rec=0.2, nll=0.05, vrec=0.7, vkld=0.11)
LR = 0.02
BATCH = 8
IMAGES = np.random.default_rng(0).uniform(-1, 1, (4 * BATCH, 28, 28, 1)).astype(np.float32)


def _networks(method, bn=False):
    keras.utils.set_random_seed(7)
    return models.build_models('conv_mnist', 4, 1, method in losses.VARIATIONAL, use_bn=bn,
                               width=1 / 8)


def _sgd():
    return keras.optimizers.SGD(LR, momentum=0.9)


def _pga(method, bn=False, seed=3):
    model = keras_model.PGA(*_networks(method, bn), method, WEIGHTS, init_steps=1, seed=seed)
    model.compile(enc_optimizer=_sgd(), dec_optimizer=_sgd(), jit_compile=False)
    return model


def _weights(model):
    return [v.numpy() for v in model.encoder.weights + model.decoder.weights]


class _Losses(keras.callbacks.Callback):
    """The epoch's running means (float32) after each batch, as fit reports them."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


@pytest.mark.parametrize('method,bn', [('lvpga', True), ('vae', False)])
def test_fit_takes_trainers_steps(method, bn):
    """Same networks, data and seed: fit's losses and final weights are Trainer's, step by step."""
    tr = trainer.Trainer(method, *_networks(method, bn), WEIGHTS, LR, init_steps=1, seed=3,
                         jit_compile=False)
    steps = [tr.train_step(tf.constant(IMAGES[i:i + BATCH])) for i in range(0, len(IMAGES), BATCH)]
    model, seen = _pga(method, bn), _Losses()
    model.fit(IMAGES, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[seen])

    assert set(seen.logs[0]) == {*steps[0]} - {'finite'} | {'skipped'}
    for name in ('enc_loss', 'dec_loss', 'img_rec'):
        running = np.cumsum([float(s[name]) for s in steps]) / np.arange(1, len(steps) + 1)
        np.testing.assert_allclose([log[name] for log in seen.logs], running, rtol=1e-5, err_msg=name)
    for a, b in zip(_weights(model), [v.numpy() for v in tr.encoder.weights + tr.decoder.weights]):
        np.testing.assert_array_equal(a, b)
    assert int(model.step.numpy()) == int(tr.step.numpy()) == len(steps)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError('interrupted')


def test_backup_and_restore_resumes_an_interrupted_fit(tmp_path):
    """Interrupted after epoch 1 and fitted again: the networks, both optimisers' momenta and
    the noise's step continue, so the result is the uninterrupted run's exactly."""
    whole = _pga('vpga')
    whole.fit(IMAGES, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / 'backup'))
    first = _pga('vpga')
    with pytest.raises(RuntimeError, match='interrupted'):
        first.fit(IMAGES, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                  callbacks=[backup, _Interrupt()])
    resumed = _pga('vpga', seed=99)  # a fresh process's model: the seed comes from the backup
    resumed.fit(IMAGES, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[backup])

    assert int(resumed.seed.numpy()) == 3
    assert int(resumed.step.numpy()) == int(whole.step.numpy()) == 3 * len(IMAGES) // BATCH
    for a, b in zip(_weights(resumed), _weights(whole)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed.enc_optimizer.variables, whole.enc_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_evaluate_reports_the_losses_without_training():
    model = _pga('lpga')
    before = _weights(model)
    result = model.evaluate(IMAGES[:BATCH], batch_size=BATCH, verbose=0, return_dict=True)
    noise = losses.draw_noise(tf.constant([3, -1], tf.int64), BATCH, 4)
    enc, dec, terms = losses.compute_losses('lpga', model.encoder, model.decoder,
                                            IMAGES[:BATCH], noise, WEIGHTS, training=False)
    for name, value in {'enc_loss': enc, 'dec_loss': dec, **terms}.items():
        # A graph and eager execution round differently (1.2e-5 of dec_loss with oneDNN's
        # kernels capped at AVX2).
        np.testing.assert_allclose(result[name], float(value), rtol=1e-4, err_msg=name)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_step_is_skipped_and_counted():
    model = _pga('ae')
    before = _weights(model)
    bad = IMAGES[:BATCH].copy()
    bad[0, 0, 0, 0] = np.nan
    history = model.fit(bad, batch_size=BATCH, epochs=1, verbose=0)
    assert history.history['skipped'] == [1]
    assert int(model.skipped.numpy()) == 1 and int(model.step.numpy()) == 1
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_call_reconstructs_through_the_mean_code():
    model = _pga('vpga')
    z_mu = model.encoder(IMAGES[:2], training=False)[0]
    np.testing.assert_allclose(model.predict(IMAGES[:2], verbose=0),
                               model.decoder(z_mu, training=False).numpy(), rtol=1e-5, atol=1e-6)


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match='unknown method'):
        keras_model.PGA(*_networks('ae'), 'gan')
