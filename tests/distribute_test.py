"""tf.distribute: mirrored over 2 logical CPUs equals one device; 2 workers agree on the weights."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}

MIRRORED = r'''
import json, sys
import numpy as np, tensorflow as tf
from pga_tf import distribute, models, trainer
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

one = run(tf.distribute.get_strategy())
two = run(distribute.make_strategy('mirrored', cpu_replicas=2))
diff = max(float(np.abs(a - b).max()) for a, b in zip(one[1], two[1]))
print(json.dumps({'one': one[0], 'two': two[0], 'replicas': [one[2], two[2]], 'max_weight_diff': diff}))
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
    from pga_tf import distribute

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
