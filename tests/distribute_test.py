"""tf.distribute: mirrored over 2 logical CPUs equals one device (Trainer and PGA.fit); 2 workers
agree on the weights."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pga_tf.training import trainer

ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}

MIRRORED = r'''
import json, sys
import numpy as np, tensorflow as tf
import keras
from pga_tf.core import losses, models
from pga_tf.training import distribute, keras_model, trainer
distribute.split_cpu(2)

def run(strategy):
    tf.keras.utils.set_random_seed(0)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        e, d = models.build_models('conv_mnist', 4, 1, True, use_bn=True, width=1 / 8,
                                   sync_bn=replicas > 1)
    tr = trainer.Trainer('lvpga', e, d, dict(zn_rec=0.06, vrec=0.02, vkld=0.02, nll=0.01), 0.05,
                         strategy=strategy, jit_compile=False)
    x = tf.random.stateless_uniform([8, 28, 28, 1], [1, 2], -1, 1)
    # The same global batch of 8: one device, or 4 + 4 on two.
    batches = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).repeat()))
    losses = [{k: float(v) for k, v in tr.train_step(next(batches)).items()} for _ in range(3)]
    weights = [np.asarray(v.numpy()) for v in e.variables + d.variables]
    return losses, weights, replicas


def fit(strategy, rows=24, nan_batch=None):
    # keras_model.PGA's fit over batches of 8 (4 + 4 on two replicas), the last one of what
    # is left (Keras builds on the first batch, which must split evenly); one may be NaN.
    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        e, d = models.build_models('conv_mnist', 4, 1, True, width=1 / 8)
        model = keras_model.PGA(e, d, 'vpga', dict(zn_rec=0.06, vrec=0.02, vkld=0.02))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.optimizers.SGD(0.05, momentum=0.9), jit_compile=False)
    x = tf.random.stateless_uniform([rows, 28, 28, 1], [1, 2], -1, 1).numpy()
    if nan_batch is not None:
        x[8 * nan_batch:8 * nan_batch + 8] = np.nan
    error = ''
    try:
        history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0).history
    except tf.errors.InvalidArgumentError as err:
        error, history = str(err), {}
    return ({k: float(v[-1]) for k, v in history.items()}, int(model.step.numpy()),
            [np.asarray(v.numpy()) for v in e.variables + d.variables], error)


def nan_step(strategy):
    # Trainer's step on two replicas with a batch of NaN: the error, and how far weights moved.
    with strategy.scope():
        e, d = models.build_models('conv_mnist', 4, 1, True, width=1 / 8)
    tr = trainer.Trainer('vpga', e, d, dict(zn_rec=0.06, vrec=0.02, vkld=0.02), 0.05,
                         strategy=strategy, jit_compile=False)
    x = tf.fill([8, 28, 28, 1], np.nan)
    batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))))
    state = lambda: [v.numpy() for v in e.variables + d.variables + tr.opt_enc.variables
                     + tr.opt_dec.variables]
    before = state()
    try:
        tr.train_step(batch)
        error = ''
    except tf.errors.InvalidArgumentError as err:
        error = str(err)
    return error, max_diff(before, state())


def split_noise(strategy):
    # replica_inputs on a global batch of 7 split 4 + 3: each replica's share and noise rows.
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(tf.zeros([7, 2, 2, 1])).batch(7))
    step = tf.function(lambda b: strategy.run(
        lambda x: trainer.replica_inputs(x, 3, 5, 2, 2)[1:], args=(b,)))
    noise, share = step(next(iter(batches)))
    rows = [v.numpy().tolist() for v in strategy.experimental_local_results(noise['z_prior'])]
    return rows, [float(v) for v in strategy.experimental_local_results(share)]


def max_diff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))


# One strategy for every run: a second one in the process reuses its collectives' keys.
mirrored = distribute.make_strategy('mirrored', cpu_replicas=2)
one, two = run(tf.distribute.get_strategy()), run(mirrored)
out = {'one': one[0], 'two': two[0], 'replicas': [one[2], two[2]],
       'max_weight_diff': max_diff(one[1], two[1])}
step_nan = nan_step(mirrored)
split = split_noise(mirrored)
one_device = losses.draw_noise(tf.constant([3, 5], tf.int64), 7, 2)['z_prior'].numpy().tolist()
fit_one, fit_two = fit(tf.distribute.get_strategy()), fit(mirrored)
# A NaN third batch: fit stops there, the weights those after the first two batches.
fit_nan, fit_two_batches = fit(mirrored, nan_batch=2), fit(mirrored, rows=16)
# A last batch of 7 splits 4 + 3; of 1, one replica has no rows. A strategy of one replica.
uneven = [fit(tf.distribute.get_strategy(), rows=15), fit(mirrored, rows=15)]
empty = fit(mirrored, rows=9)
single = fit(tf.distribute.MirroredStrategy(['/cpu:0']))
print(json.dumps({**out, 'fit_one': fit_one[0], 'fit_two': fit_two[0],
                  'fit_steps': [fit_one[1], fit_two[1]],
                  'fit_weight_diff': max_diff(fit_one[2], fit_two[2]),
                  'step_nan': step_nan, 'nan_error': fit_nan[3],
                  'split': split, 'one_device_noise': one_device,
                  'uneven': [uneven[0][0], uneven[1][0]],
                  'uneven_weight_diff': max_diff(uneven[0][2], uneven[1][2]),
                  'empty_error': empty[3], 'single': single[0], 'single_error': single[3],
                  'single_weight_diff': max_diff(fit_one[2], single[2]), 'nan_weight_diff': max_diff(fit_nan[2], fit_two_batches[2])}))
'''


def test_mirrored_on_two_cpus_matches_one_device():
    result = subprocess.run([sys.executable, '-c', MIRRORED], capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['replicas'] == [1, 2]
    for a, b in zip(out['one'], out['two']):
        assert sorted(a) == sorted(b)
        # Gradient norms are each replica's own (of its 4 images' loss): not the global one.
        for k in set(a) - {'enc_grad_norm', 'dec_grad_norm'}:
            np.testing.assert_allclose(b[k], a[k], rtol=2e-3, atol=1e-5, err_msg=k)
    assert out['max_weight_diff'] < 2e-3
    # keras_model.PGA under the strategy: the global batch's mean losses and update, its noise
    # split between the replicas as one device draws it.
    assert out['fit_steps'] == [3, 3]
    assert sorted(out['fit_one']) == sorted(out['fit_two'])
    for k in set(out['fit_one']) - {'enc_grad_norm', 'dec_grad_norm'}:
        np.testing.assert_allclose(out['fit_two'][k], out['fit_one'][k], rtol=2e-3, atol=1e-5,
                                   err_msg=k)
    assert out['fit_weight_diff'] < 2e-3
    # Shares of 4 and 3 rows weigh 4/7 and 3/7: the one device's update and epoch means.
    a, b = out['uneven']
    assert sorted(a) == sorted(b)
    for k in set(a) - {'enc_grad_norm', 'dec_grad_norm'}:
        np.testing.assert_allclose(b[k], a[k], rtol=2e-3, atol=1e-5, err_msg=k)
    # (Weighting the 4 + 3 rows 1/2 each instead moves the weights by 8e-5.)
    assert out['uneven_weight_diff'] < 2e-5
    rows, shares = out['split']
    np.testing.assert_allclose(shares, [4 / 7, 3 / 7], rtol=1e-6)
    assert rows[0] + rows[1] == out['one_device_noise']
    assert trainer.EMPTY_SHARE in out['empty_error']
    # A strategy of one replica (the update cannot sit in a tf.cond there): one device's run.
    assert out['single_error'] == '' and out['single_weight_diff'] < 1e-5
    for k in out['fit_one']:
        np.testing.assert_allclose(out['single'][k], out['fit_one'][k], rtol=1e-5, atol=1e-7,
                                   err_msg=k)
    # A non-finite step on two replicas ends Trainer's step and fit with the error, before
    # any update of the weights or the optimiser's slots.
    assert trainer.NONFINITE_REPLICAS in out['step_nan'][0] and out['step_nan'][1] == 0
    assert trainer.NONFINITE_REPLICAS in out['nan_error']
    assert out['nan_weight_diff'] == 0


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights(checkpoint_dir):
    reader = tf.train.load_checkpoint(str(checkpoint_dir))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if '_CHECKPOINTABLE_OBJECT_GRAPH' not in k}


def test_two_workers_train_and_agree(tmp_path):
    cluster = {'worker': [f'localhost:{p}' for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**ENV, 'TF_CONFIG': json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}})}
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'pga_tf.train', '--strategy=multi_worker', '--dataset=mnist_5k',
             '--model=vpga', '--width=0.0625', '--batch_size=4', '--z_dim=4', '--train_steps=3',
             '--log_every=1', f'--run_dir={tmp_path / f"w{index}"}'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    assert '2 replica(s) of batch 4' in outputs[0]
    chief, other = tmp_path / 'w0', tmp_path / 'w1'
    # The chief writes the run; the other worker only its own checkpoint copy.
    assert (chief / 'checkpoints' / 'ckpt-3.index').exists() and (chief / 'flags.cfg').exists()
    assert (chief / 'train').is_dir() and (chief / 'samples').is_dir()
    assert sorted(os.listdir(other)) == ['.worker1_checkpoints']
    a, b = _weights(chief / 'checkpoints'), _weights(other / '.worker1_checkpoints')
    assert sorted(a) == sorted(b) and len(a) > 20
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert int(a['step/.ATTRIBUTES/VARIABLE_VALUE']) == 3


def test_strategies_that_cannot_work_here(monkeypatch):
    from pga_tf.training import distribute

    if len(tf.config.list_physical_devices('GPU')) > 1:
        pytest.skip('a machine with several GPUs mirrors over them')
    # One device: mirrored trains as one replica instead of failing at the first step.
    strategy = distribute.make_strategy('mirrored')
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(distribute.StrategyError, match='TF_CONFIG'):
        distribute.make_strategy('multi_worker')
    for broken in ('{not json', '[]', '{"task": {"type": "worker", "index": 0}}',
                   '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 4}}'):
        monkeypatch.setenv('TF_CONFIG', broken)
        with pytest.raises(distribute.StrategyError, match='TF_CONFIG does not describe'):
            distribute.make_strategy('multi_worker')
    with pytest.raises(distribute.StrategyError, match='no TPU'):
        distribute.make_strategy('tpu')
