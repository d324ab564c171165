"""The training step: separate gradients of the encoder's loss (φ) and the decoder's loss (θ).

`Trainer` owns the two networks, one optimiser for each, the step counter, the seed of the
training noise, the tf.distribute strategy they live in, and their checkpoint.
"""
import tensorflow as tf
import keras

from pga_tf.core import losses
from pga_tf.utils import tf_startup

OPTIMIZERS = ('sgd', 'adam')
# The gradient norms an update reports (`apply_update`): the encoder's, the decoder's.
GRAD_NORMS = ('enc_grad_norm', 'dec_grad_norm')


class SGD(keras.optimizers.SGD):
    """Keras's SGD, its momentum update (m ← μm − ηg, then w ← w + m) in one fused kernel per
    variable (`ResourceApplyKerasMomentum`) where Keras 3 makes five passes over each variable
    and its gradient: the same variables, checkpoints and formula."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0 or self.nesterov or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        handle = lambda v: (v.value if isinstance(v, keras.Variable) else v).handle
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=handle(variable), accum=handle(momentum), lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.cast(self.momentum, dtype))


def make_optimizer(name, learning_rate, momentum=0.9, clip_norm=0.0, adam_beta1=0.9):
    """SGD with momentum (the paper's optimiser; `SGD`) or Adam (β₁ `adam_beta1`); with
    `clip_norm` > 0 the gradient is scaled down to that global norm when above it."""
    clip = dict(global_clipnorm=clip_norm) if clip_norm else {}
    if name == 'sgd':
        return SGD(learning_rate=learning_rate, momentum=momentum, **clip)
    if name == 'adam':
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=adam_beta1, **clip)
    raise ValueError(f'unknown optimizer {name!r}; choose one of {OPTIMIZERS}')


def network_optimizer(optimizer, network):
    """`optimizer` made ready for `network`: built on its trainable variables, and wrapped in
    a LossScaleOptimizer when the network computes in mixed_float16 (float16 gradients
    underflow without loss scaling; bfloat16 has float32's range)."""
    if network.dtype_policy.name == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Built up front: a checkpoint restores into existing slots, and a distributed step
    # cannot create them (NOTES.md §4).
    optimizer.build(network.trainable_variables)
    return optimizer


def warmup_gate(step, init_steps, ramp_steps=0):
    """The factor of every coefficient in the update after `step` updates: 0 before
    `init_steps`, then rising linearly to 1 over `ramp_steps` (at once when 0, the original)."""
    progress = tf.cast(step - init_steps + 1, tf.float32) / float(max(ramp_steps, 1))
    return tf.clip_by_value(progress, 0.0, 1.0)


def default_jit_compile():
    """XLA where a GPU is present. On a CPU off, until a run measures otherwise (`autotune`):
    it was slower on both AVX-512 CPUs measured (0.77x on conv_mnist, 0.07x on conv_64)."""
    return bool(tf.config.list_physical_devices('GPU'))


def is_distributed(strategy):
    """Whether `strategy` is other than the default (even of one replica): its optimiser
    updates meet across replicas, which neither a tf.cond, a nested tf.function nor XLA holds."""
    with strategy.scope():
        return tf.distribute.has_strategy()


# The errors of a step under a tf.distribute strategy (nothing was updated).
NONFINITE_REPLICAS = 'a non-finite loss or gradient under a tf.distribute strategy: no update applied'
EMPTY_SHARE = ('a batch with fewer rows than replicas: give every replica rows (batch a '
               'tf.data.Dataset with drop_remainder=True)')


def replica_inputs(x, seed, step, z_dim, replicas=1):
    """This replica's batch `x`, its rows of the global batch's noise drawn from (seed, step)
    by `losses.draw_noise`, and its share of the global batch (the weight of its losses):
    the same noise and losses whatever the number of replicas and however a batch is split.

    The replicas' shares may differ (a last batch split unevenly); each must hold a row, or
    every replica raises `tf.errors.InvalidArgumentError` carrying `EMPTY_SHARE`.
    """
    local = tf.shape(x)[0]
    if replicas == 1:
        return x, losses.draw_noise(tf.stack([seed, step]), local, z_dim), 1.0
    ctx = tf.distribute.get_replica_context()
    sizes = ctx.all_gather(tf.reshape(local, [1]), axis=0)
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_min(sizes) > 0, [EMPTY_SHARE])]):
        x = tf.identity(x)
        # Static shapes (XLA on a TPU): the replicas' rows before this one.
        start = tf.math.cumsum(sizes, exclusive=True)[ctx.replica_id_in_sync_group]
        total = tf.reduce_sum(sizes)
    noise = losses.draw_noise(tf.stack([seed, step]), total, z_dim)
    share = tf.cast(local, tf.float32) / tf.cast(total, tf.float32)
    return x, {k: v[start:start + local] for k, v in noise.items()}, share


def apply_update(method, encoder, decoder, opt_enc, opt_dec, x, noise, weights, share=1.0):
    """One two-gradient update: ∂enc_loss/∂φ by `opt_enc`, ∂dec_loss/∂θ by `opt_dec`.

    The step of `Trainer` and of `keras_model.PGA` alike. A step whose loss or gradient is not
    finite (or whose gradient's norm overflows float32) changes nothing (weights, optimiser
    slots, batch-norm statistics); under a tf.distribute strategy, whose optimiser updates a
    `tf.cond` cannot hold, such a step raises `tf.errors.InvalidArgumentError` carrying
    `NONFINITE_REPLICAS` before the optimisers update (batch-norm statistics may have moved).

    Args:
      method, encoder, decoder, x, noise: as `losses.compute_losses` takes them.
      opt_enc, opt_dec: Keras optimisers built on each network's trainable variables
        (`LossScaleOptimizer`s for mixed_float16).
      weights: `losses.LossWeights`, already gated by any warm-up.
      share: this replica's share of the global batch (`replica_inputs`), the weight of its
        losses (means over its rows) in the global mean: 1 with one replica.

    Returns:
      dict: `enc_loss`, `dec_loss`, every term of `compute_losses`, `enc_grad_norm` and
      `dec_grad_norm` (global norms of the two gradients), and `finite` (bool).
    """
    loss_scaling = isinstance(opt_enc, keras.optimizers.LossScaleOptimizer)
    # Batch norm updates its statistics in the forward pass: keep them to undo a bad step
    # (without a strategy: under one, a bad step raises instead).
    distributed = tf.distribute.has_strategy()
    state = encoder.non_trainable_variables + decoder.non_trainable_variables
    saved = [] if distributed else [tf.identity(v) for v in state]
    # A tape per loss: the losses then share the decoder's pass on the data's codes
    # (`losses.latent_maps`).
    with tf.GradientTape() as dec_tape, tf.GradientTape() as enc_tape:
        enc_loss, dec_loss, terms = losses.compute_losses(method, encoder, decoder, x, noise,
                                                          weights, enc_tape=enc_tape)
        # Keras optimisers sum the replicas' gradients: each replica's losses (means over
        # its rows) count by its share of the global batch.
        enc_scaled, dec_scaled = enc_loss * share, dec_loss * share
        if loss_scaling:
            enc_scaled, dec_scaled = opt_enc.scale_loss(enc_scaled), opt_dec.scale_loss(dec_scaled)
    # ∂enc_loss/∂φ and ∂dec_loss/∂θ only: neither loss moves the other network.
    enc_vars, dec_vars = encoder.trainable_variables, decoder.trainable_variables
    # Zero, not None, for a variable that no counted term reaches (σ's head of a VPGA
    # with --vrec=0 --vkld=0).
    zero = tf.UnconnectedGradients.ZERO
    enc_grads = enc_tape.gradient(enc_scaled, enc_vars, unconnected_gradients=zero)
    dec_grads = dec_tape.gradient(dec_scaled, dec_vars, unconnected_gradients=zero)
    # Global norms of ∂enc_loss/∂φ and ∂dec_loss/∂θ, unscaled. With several replicas, of each
    # replica's own loss (its rows): their share-weighted mean exceeds the global gradient's norm.
    def norm(grads, opt):
        scale = tf.cast(opt.dynamic_scale, tf.float32) if loss_scaling else 1.0
        return tf.linalg.global_norm(grads) / share / scale

    norms = dict(zip(GRAD_NORMS, (norm(enc_grads, opt_enc), norm(dec_grads, opt_dec))))
    checks = [tf.math.is_finite(enc_loss), tf.math.is_finite(dec_loss)]
    if not loss_scaling:  # a loss-scale optimiser skips overflowing gradients itself
        # A gradient holds a NaN or an infinity exactly when its norm is not finite (or its
        # norm overflows float32, above 1.8e19): one check instead of a pass over each gradient.
        checks += [tf.math.is_finite(n) for n in norms.values()]
    # One decision for all replicas: their optimiser updates meet in an all-reduce.
    bad = tf.cast(tf.logical_not(tf.reduce_all(tf.stack(checks))), tf.float32)
    finite = tf.distribute.get_replica_context().all_reduce('SUM', bad) == 0

    def apply():
        opt_enc.apply(enc_grads, enc_vars)
        opt_dec.apply(dec_grads, dec_vars)
        return tf.constant(True)

    def undo():
        for v, value in zip(state, saved):
            v.assign(value)
        return tf.constant(False)

    if not distributed:
        tf.cond(finite, apply, undo)
    else:
        # A cond cannot hold the optimisers' cross-replica sums: a non-finite step ends the
        # step with an error before any update, on every replica alike (`finite` is theirs
        # all). So --on_nonfinite=skip needs the default strategy.
        with tf.control_dependencies([tf.debugging.Assert(finite, [NONFINITE_REPLICAS])]):
            apply()
    return {'enc_loss': enc_loss, 'dec_loss': dec_loss, **terms, **norms, 'finite': finite}


class Trainer:
    """Trains one PGA method with a custom two-gradient step.

    Args:
      method: a key of `losses.METHODS`.
      encoder, decoder: ours (`models.build_models`) or any Keras models that meet
        `keras_model.PGA`'s contract (images in [-1, 1]; a variational method's encoder
        returns (z_mu, z_log_sigma_sq)).
      weights: `losses.LossWeights` (or a mapping of its fields).
      learning_rate: of both optimisers.
      optimizer: 'sgd' (momentum 0.9) or 'adam'.
      init_steps: every coefficient in `weights` is 0 for the first `init_steps` steps, as in
        the original LPGA/LVPGA code; only the reconstruction terms train meanwhile.
      ramp_steps: after `init_steps`, the coefficients rise linearly over this many steps
        (`warmup_gate`; 0: at once, as in the original).
      clip_norm: > 0 scales each network's gradient down to this global norm when above it.
      adam_beta1: Adam's β₁ (with optimizer 'adam').
      seed: seed of the training noise; step s draws its noise from (seed, s), so the noise
        does not depend on the strategy, the number of replicas or a resume.
      jit_compile: compile the step with XLA; None picks `default_jit_compile()`. Off with
        a strategy other than the default (XLA cannot reach other devices' variables).
      checkpoint_dir: where `save` and `restore` keep checkpoints (None: no checkpoints).
      max_to_keep: checkpoints kept in `checkpoint_dir`.
      strategy: the tf.distribute strategy whose scope holds the models (None: the default).
        `train_step` then takes the per-replica batches of a distributed dataset.
    """

    def __init__(self, method, encoder, decoder, weights, learning_rate, optimizer='sgd',
                 init_steps=0, seed=0, jit_compile=None, checkpoint_dir=None, max_to_keep=3,
                 strategy=None, ramp_steps=0, clip_norm=0.0, adam_beta1=0.9):
        if method not in losses.METHODS:
            raise ValueError(f'unknown method {method!r}; choose one of {sorted(losses.METHODS)}')
        self.method = method
        self.encoder, self.decoder = encoder, decoder
        self.weights = weights if isinstance(weights, losses.LossWeights) else losses.LossWeights(**weights)
        self.init_steps, self.ramp_steps = init_steps, ramp_steps
        self.z_dim = decoder.input_shape[-1]
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.distributed = is_distributed(self.strategy)
        with self.strategy.scope():
            # One optimiser per network: a Keras 3 optimiser is bound to one variable list.
            made = lambda network: network_optimizer(make_optimizer(
                optimizer, learning_rate, clip_norm=clip_norm, adam_beta1=adam_beta1), network)
            self.opt_enc, self.opt_dec = made(encoder), made(decoder)
            # Replicas update these counters alike; the first replica's update is kept.
            counter = dict(dtype=tf.int64, trainable=False,
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.step = tf.Variable(0, name='step', **counter)
            # Steps whose loss or gradient was not finite, and so were not applied.
            self.skipped = tf.Variable(0, name='skipped', **counter)
            self.seed = tf.Variable(seed, name='seed', **counter)
        self._step_fns = {}  # (update, step function) by XLA on or off, each traced once
        self._traced = set()  # the XLA settings whose step has run
        self.set_jit_compile(default_jit_compile() if jit_compile is None else jit_compile)

        # The checkpoint's keys, here and nowhere else.
        self.checkpoint = tf.train.Checkpoint(**self._checkpointed())
        self.manager = (tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep)
                        if checkpoint_dir else None)

    def set_jit_compile(self, on):
        """XLA for the steps from now on (always off under a strategy other than the default:
        XLA cannot reach other devices' variables). Switching back is free: each
        setting's step is traced once."""
        self.jit_compile = bool(on) and not self.distributed
        if self.jit_compile not in self._step_fns:
            # Noise is drawn outside the XLA cluster: XLA's random numbers differ from TF's,
            # and drawing them here keeps XLA on and off on the same noise for the same seed.
            # Under a strategy the update must not be a nested tf.function (its
            # optimiser sums cross replicas), so it is traced as part of train_step.
            update = (self._update if self.distributed
                      else tf.function(self._update, jit_compile=self.jit_compile))
            self._step_fns[self.jit_compile] = (update, tf.function(self._train_step))
        self.update, self._step_fn = self._step_fns[self.jit_compile]

    def train_step(self, x):
        """One update of φ and θ on a batch x [B, H, W, C] (see `_train_step`)."""
        if self.jit_compile in self._traced:
            return self._step_fn(x)
        # The first call traces and optimises the graph: grappler's harmless remapper line
        # (tf_startup.GRAPPLER_NOISE) is kept off stderr.
        with tf_startup.native_stderr_filtered(tf_startup.GRAPPLER_NOISE):
            out = self._step_fn(x)
        self._traced.add(self.jit_compile)
        return out

    def _train_step(self, x):
        """One update of φ and θ on a batch x [B, H, W, C] (per replica with a strategy).

        Returns:
          the scalar losses by name (means over the global batch), and `finite`: False when a
          loss or a gradient was not finite, in which case nothing was changed (weights,
          optimiser slots, batch-norm statistics) but `step` and `skipped`. Under a strategy
          such a step raises instead (`apply_update`).
        """
        out = self.strategy.run(self._replica_step, args=(x,))
        return {k: self.strategy.reduce('SUM', v, axis=None) for k, v in out.items()}

    def _replica_step(self, x):
        x, noise, share = replica_inputs(x, self.seed, self.step, self.z_dim, self.replicas)
        out = self.update(x, noise, share)
        # Summed over the replicas, each weighted by its share: means over the global batch.
        return {k: v * share for k, v in {**out, 'finite': tf.cast(out['finite'], tf.float32)}.items()}

    def _update(self, x, noise, share=1.0):
        """The update of `_train_step` for given noise (a `losses.draw_noise` dict) and share
        of the global batch."""
        # The original's warm-up: auxiliary coefficients are 0 before init_steps.
        gate = warmup_gate(self.step, self.init_steps, self.ramp_steps)
        out = apply_update(self.method, self.encoder, self.decoder, self.opt_enc, self.opt_dec,
                           x, noise, self.weights.scaled(gate), share)
        self.skipped.assign_add(tf.cast(tf.logical_not(out['finite']), tf.int64))
        self.step.assign_add(1)
        return out

    def save(self):
        """Writes a checkpoint numbered by the step; returns its path."""
        return self.manager.save(checkpoint_number=self.step)

    def _checkpointed(self, optimizers=True):
        objects = dict(encoder=self.encoder, decoder=self.decoder, step=self.step,
                       skipped=self.skipped, seed=self.seed)
        return {**objects, 'opt_enc': self.opt_enc, 'opt_dec': self.opt_dec} if optimizers else objects

    def restore(self, path=None, optimizers=True):
        """Restores `path`, or the latest checkpoint; returns the path, or None for a fresh start.

        Every variable of the networks (and, with `optimizers`, of both optimisers) must be in
        the checkpoint: one left unmatched raises AssertionError, never untrained weights.
        Without `optimizers` the optimisers keep their fresh state (a changed --optimizer).
        """
        path = path or (self.manager.latest_checkpoint if self.manager else None)
        if path:
            checkpoint = self.checkpoint if optimizers else tf.train.Checkpoint(**self._checkpointed(False))
            status = checkpoint.restore(path).assert_existing_objects_matched()
            if not optimizers:
                status.expect_partial()  # the optimiser slots are left, knowingly, unread
        return path

    def set_learning_rate(self, learning_rate):
        """The learning rate of both optimisers from now on (a checkpoint restores its own)."""
        for opt in (self.opt_enc, self.opt_dec):
            opt.learning_rate = learning_rate
