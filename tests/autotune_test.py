"""--jit_compile=auto on a CPU: the probe on a run's own steps, its choice and its cache."""
import dataclasses
import json
import os

import pytest
import tensorflow as tf

from pga_tf.core import losses
from pga_tf.training import autotune, cli_flags, trainer
from pga_tf.utils import device_info
import tiny_models as tm

WARM, TIMED = autotune.WARMUP, autotune.TIMED


def _trainer():
    encoder, decoder, _ = tm.build(True)
    weights = losses.LossWeights(zn_rec=0.3, vrec=0.5, vkld=0.1)
    return trainer.Trainer('vpga', encoder, decoder, weights, 0.05)


def _drive(choice, off_seconds, on_seconds):
    """Reports one step time per call, from the list of the setting the trainer is on."""
    times = {False: iter(off_seconds), True: iter(on_seconds)}
    while not choice.done:
        choice.observe(next(times[choice.trainer.jit_compile]))


KEY = 'machine | TF | step'


def test_a_long_run_times_xla_and_keeps_the_faster(tmp_path):
    cache = str(tmp_path / 'cache' / autotune.CACHE_FILE)
    tr = _trainer()
    choice = autotune.JitChoice(tr, KEY, cache, steps_left=10_000)
    assert not tr.jit_compile  # the probe starts without XLA
    off = [9.0] * WARM + [0.2, 0.21, 0.19] * 10
    on = [30.0] + [0.25] * (WARM - 1) + [0.1, 0.12, 0.11] * 10  # compilation, then faster
    _drive(choice, off, on)
    assert tr.jit_compile
    record = json.load(open(cache))[KEY]
    assert record['xla'] and record['sec_per_step_on'] == pytest.approx(0.11)
    assert record['sec_per_step_off'] == pytest.approx(0.2)
    # The next run on this machine starts with the cached choice and times nothing.
    again = _trainer()
    assert autotune.JitChoice(again, KEY, cache, steps_left=10_000).done and again.jit_compile
    assert autotune.describe_choice(cache, KEY).startswith('XLA on, measured by a run on ')
    assert autotune.describe_choice(cache, 'another step').startswith('not yet measured')


def test_a_compiled_step_much_slower_ends_the_probe_at_once(tmp_path):
    cache = str(tmp_path / autotune.CACHE_FILE)
    tr = _trainer()
    choice = autotune.JitChoice(tr, KEY, cache, steps_left=10_000)
    on = [60.0, 0.2 * autotune.GIVE_UP * 1.1]  # compilation, then one step too slow
    _drive(choice, [1.0] * WARM + [0.2] * TIMED, on)
    assert not tr.jit_compile
    assert len(choice.times[True]) == 2
    assert json.load(open(cache))[KEY]['xla'] is False


def test_a_short_run_keeps_xla_off_and_caches_nothing(tmp_path):
    cache = str(tmp_path / autotune.CACHE_FILE)
    tr = _trainer()
    steps = WARM + TIMED + 100  # 100 steps left at 0.2 s: 20 s, far below PROBE_WORTH_S
    choice = autotune.JitChoice(tr, KEY, cache, steps_left=steps)
    _drive(choice, [1.0] * WARM + [0.2] * TIMED, [])
    assert not tr.jit_compile and not choice.times[True]
    assert not os.path.exists(cache)


def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path):
    cache = tmp_path / autotune.CACHE_FILE
    cache.write_text('{"machine | TF | step": {"xla": tru')
    assert autotune.read_choices(str(cache)) == {}
    cache.write_text(json.dumps({KEY: {'xla': 'yes'}, 'other': 1}))
    assert autotune.cached_choice(str(cache), KEY) is None
    tr = _trainer()
    choice = autotune.JitChoice(tr, KEY, str(cache), steps_left=10_000)
    assert not choice.done
    _drive(choice, [1.0] * WARM + [0.1] * TIMED, [5.0] + [0.3] * 20)
    choices = json.load(open(cache))
    assert choices[KEY]['xla'] is False and choices['other'] == 1  # other entries kept


def test_an_unwritable_cache_costs_a_probe_not_the_run(tmp_path):
    (tmp_path / 'file').write_text('')
    cache = str(tmp_path / 'file' / autotune.CACHE_FILE)  # its folder is a file
    tr = _trainer()
    choice = autotune.JitChoice(tr, KEY, cache, steps_left=10_000)
    _drive(choice, [1.0] * WARM + [0.3] * TIMED, [5.0] + [0.1] * 20)
    assert tr.jit_compile  # chosen, though not cached


def test_real_steps_switched_mid_run_train_as_plain_steps(tmp_path):
    """The probe's switches train as a run that never switched (XLA changes round-off only)."""
    x = tf.constant(tm.data()[0])
    plain, probed = _trainer(), _trainer()
    choice = autotune.JitChoice(probed, KEY, str(tmp_path / autotune.CACHE_FILE), 10_000)
    while not choice.done:
        a, b = plain.train_step(x), probed.train_step(x)
        for k in a:
            tf.debugging.assert_near(a[k], b[k], rtol=1e-3, atol=1e-5, message=k)
        choice.observe(0.1 if probed.jit_compile else 0.2)  # XLA "faster": it stays on
    assert probed.jit_compile and probed.jit_compile in probed._traced
    assert int(probed.step) == int(plain.step) == 2 * (WARM + TIMED)


def test_the_key_names_the_machine_tensorflow_and_the_step():
    config = cli_flags.read_preset('mnist_5k', 'vpga')
    key = autotune.choice_key(config)
    assert device_info.describe() in key and tf.__version__ in key
    changed = [dataclasses.replace(config, **kw) for kw in
               (dict(batch_size=32), dict(precision='mixed_bfloat16'), dict(width=0.25),
                dict(model='lpga'), dict(arch='conv_32', dataset='cifar10'), dict(bn=True))]
    assert len({key, *map(autotune.choice_key, changed)}) == 1 + len(changed)
    # Settings that do not change the step's work share the choice.
    assert autotune.choice_key(dataclasses.replace(config, lr=0.3, seed=5)) == key
