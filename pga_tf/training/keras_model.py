"""`PGA`: a keras.Model around any encoder and decoder, trained by `fit` with the two-gradient step.

    model = pga_tf.PGA(encoder, decoder, method='vpga', weights=dict(zn_rec=0.5, vrec=0.3, vkld=0.1))
    model.compile(enc_optimizer=keras.optimizers.SGD(0.03, momentum=0.9),
                  dec_optimizer=keras.optimizers.SGD(0.03, momentum=0.9))
    model.fit(images, epochs=10, callbacks=[keras.callbacks.BackupAndRestore('backup')])

The update is `trainer.apply_update`, the one `Trainer` runs: ∂enc_loss/∂φ applied by
`enc_optimizer`, ∂dec_loss/∂θ by `dec_optimizer`, noise drawn from (seed, step), a non-finite
step skipped (under a tf.distribute strategy it raises instead). The step counter and the
seed are weights of the model, so `save_weights`, `BackupAndRestore` and `ModelCheckpoint` keep
them with the networks and both optimisers' slots.
"""
import keras
import tensorflow as tf

from pga_tf.core import losses
from pga_tf.training import trainer


class PGA(keras.Model):
    """A PGA method (or a baseline) of `losses.METHODS` as a Keras model.

    Args:
      encoder: a Keras model from images [B, H, W, C] in [-1, 1] to codes z [B, z_dim]; for a
        variational method (`losses.VARIATIONAL`: vpga, lvpga, vae) to a pair
        (z_mu, z_log_sigma_sq), each [B, z_dim]. Its batch-norm layers, if any, train in every
        pass, as in the original.
      decoder: a Keras model from codes [B, z_dim] to images of the encoder's input shape, in
        [-1, 1] (a tanh output, as ours).
      method: 'lpga', 'vpga', 'lvpga', 'vae' or 'ae'.
      weights: the coefficients, a `losses.LossWeights` or a mapping of its fields (zn_rec,
        zh_rec, nll, vrec, vkld, and logdet_floor: the log-determinant's float32 floor, on by
        default); `cli_flags.read_preset(dataset, method).loss_weights()` gives a preset's.
      init_steps: steps of plain autoencoder training before the coefficients switch on.
      ramp_steps: steps over which they then rise linearly to their values (0: at once).
      seed: seed of the training noise (step s draws from (seed, s)).

    `call(images)` reconstructs: g(f(x)), through the mean code of a variational encoder.
    """

    def __init__(self, encoder, decoder, method, weights=None, init_steps=0, seed=0,
                 ramp_steps=0, **kwargs):
        super().__init__(**kwargs)
        if method not in losses.METHODS:
            raise ValueError(f'unknown method {method!r}; choose one of {sorted(losses.METHODS)}')
        self.encoder, self.decoder, self.method = encoder, decoder, method
        weights = weights if weights is not None else losses.LossWeights()
        self.loss_weights = (weights if isinstance(weights, losses.LossWeights)
                             else losses.LossWeights(**weights))
        self.init_steps, self.ramp_steps = init_steps, ramp_steps
        self.z_dim = decoder.input_shape[-1]
        counter = dict(shape=(), dtype='int64', trainable=False)
        self.step = self.add_weight(name='step', initializer='zeros', **counter)
        self.seed = self.add_weight(name='seed', initializer=keras.initializers.Constant(seed),
                                    **counter)
        self.skipped = self.add_weight(name='skipped', initializer='zeros', **counter)
        self.enc_optimizer = self.dec_optimizer = None
        self._trackers = {}
        self.built = True  # the networks come built; nothing else has a shape to learn

    def compile(self, enc_optimizer, dec_optimizer, jit_compile=None, **kwargs):
        """One optimiser for each network, as keras-io's GAN examples compile.

        jit_compile: XLA for the whole step; None is `trainer.default_jit_compile()` (on where
        a GPU is). Under XLA the noise comes from XLA's generator: the same for a seed, not
        the same numbers as without XLA. Off under a tf.distribute strategy (as `Trainer`):
        XLA would drop the check that keeps a non-finite step from being applied.
        """
        jit = trainer.default_jit_compile() if jit_compile is None else jit_compile
        if trainer.is_distributed(self.distribute_strategy):
            jit = False
        # No `optimizer` of Keras's own: fit would build one more set of slots for both
        # networks. Callbacks that set `model.optimizer`'s learning rate do not apply; give
        # each optimiser a schedule instead.
        super().compile(optimizer=None, jit_compile=jit, **kwargs)
        self.enc_optimizer = trainer.network_optimizer(enc_optimizer, self.encoder)
        self.dec_optimizer = trainer.network_optimizer(dec_optimizer, self.decoder)
        # One mean per term over each epoch: the names are those of the method's losses,
        # read from a trace of `compute_losses` (nothing runs), and the update's gradient norms
        # (not reported by `evaluate`).
        names = ['enc_loss', 'dec_loss', *self._term_names(), *trainer.GRAD_NORMS]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self._trackers['skipped'] = keras.metrics.Sum(name='skipped')

    def _term_names(self):
        shape = [2, *self.encoder.input_shape[1:]]
        noise = {k: tf.TensorSpec([2, self.z_dim]) for k in ('z_prior', 'eps', 'delta')}
        trace = tf.function(lambda x, n: losses.compute_losses(
            self.method, self.encoder, self.decoder, x, n, self.loss_weights)[2])
        return list(trace.get_concrete_function(tf.TensorSpec(shape), noise).structured_outputs)

    @property
    def metrics(self):
        # Reset by fit at the start of each epoch.
        return list(self._trackers.values())

    def call(self, images, training=False):
        z = losses.encode(self.encoder, images, training)[0]
        return self.decoder(z, training=training)

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        x, noise, share = trainer.replica_inputs(x, self.seed.value, self.step.value, self.z_dim,
                                                 self._replicas())
        gate = trainer.warmup_gate(self.step.value, self.init_steps, self.ramp_steps)
        out = trainer.apply_update(self.method, self.encoder, self.decoder, self.enc_optimizer,
                                   self.dec_optimizer, x, noise, self.loss_weights.scaled(gate),
                                   share)
        skipped = tf.cast(tf.logical_not(out.pop('finite')), tf.int64)
        self.skipped.assign_add(skipped)
        self.step.assign_add(1)
        out['skipped'] = skipped
        return self._track(out, share)

    def test_step(self, data):
        """The losses on a batch, nothing updated; batch norm in inference mode. The noise is
        drawn from (seed, -1): the same for every evaluation."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        x, noise, share = trainer.replica_inputs(x, self.seed.value, tf.constant(-1, tf.int64),
                                                 self.z_dim, self._replicas())
        enc_loss, dec_loss, terms = losses.compute_losses(
            self.method, self.encoder, self.decoder, x, noise, self.loss_weights, training=False)
        return self._track({'enc_loss': enc_loss, 'dec_loss': dec_loss, **terms,
                            'skipped': tf.constant(0, tf.int64)}, share)

    @staticmethod
    def _replicas():
        return tf.distribute.get_strategy().num_replicas_in_sync

    def _track(self, values, share):
        # Each replica's means weigh by its share: an epoch's means are those of one device.
        for name, value in values.items():
            self._trackers[name].update_state(value, sample_weight=share)
        return {name: tracker.result() for name, tracker in self._trackers.items()
                if name in values}
