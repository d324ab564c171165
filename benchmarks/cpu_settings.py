"""Which runtime settings pay on this CPU: the step under each, in its own process, with ratios.

  python benchmarks/cpu_settings.py                              # conv_mnist vpga, ~5 min
  python benchmarks/cpu_settings.py --archs=conv_mnist,conv_32 --models=ae,lpga,vpga
  python benchmarks/cpu_settings.py --isa=avx2                   # as on an AVX2-only CPU

Each setting is an environment TensorFlow reads when it starts (so each runs in a fresh process
of `python -m pga_tf.bench --json`): oneDNN's graph rewrites off (TF_ENABLE_ONEDNN_OPTS=0), one
inter-op thread, XLA, mixed_bfloat16. The ratio of each to the default is measured in this run.
--isa=avx2 caps oneDNN's kernels (ONEDNN_MAX_CPU_ISA) and XLA's code generation
(--xla_cpu_max_isa) at AVX2, which is what an AVX2-only CPU runs; TensorFlow's own Eigen
kernels are built for AVX alone on every machine. Every line names the machine. A benchmark,
not a test.
"""
import json
import os
import subprocess
import sys

from absl import app, flags

from pga_tf.utils import device_info

flags.DEFINE_list('archs', ['conv_mnist'], 'Architectures.')
flags.DEFINE_list('models', ['vpga'], 'Methods.')
flags.DEFINE_integer('steps', 10, 'Timed steps per setting.', lower_bound=1)
flags.DEFINE_integer('batch_size', 64, 'Images per step.', lower_bound=1)
flags.DEFINE_enum('isa', 'native', ['native', 'avx2'], 'The instructions the kernels may use.')
flags.DEFINE_list('settings', ['default', 'onednn_opts_off', 'inter_op_1', 'xla', 'bf16'],
                  'Settings to time, each against the default.')
FLAGS = flags.FLAGS

# Each setting: (environment, pga_tf.bench flags).
SETTINGS = {
    'default': ({}, []),
    'onednn_opts_off': ({'TF_ENABLE_ONEDNN_OPTS': '0'}, []),
    'inter_op_1': ({'TF_NUM_INTEROP_THREADS': '1'}, []),
    'xla': ({}, ['--xla=on']),
    'bf16': ({}, ['--precision=mixed_bfloat16']),
}
ISA_ENV = {'native': {}, 'avx2': {'ONEDNN_MAX_CPU_ISA': 'AVX2', 'XLA_FLAGS': '--xla_cpu_max_isa=AVX2'}}


def time_setting(name, arch, model):
    env_vars, bench_flags = SETTINGS[name]
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', **ISA_ENV[FLAGS.isa], **env_vars}
    result = subprocess.run(
        [sys.executable, '-m', 'pga_tf.bench', f'--arch={arch}', f'--model={model}',
         f'--batch_size={FLAGS.batch_size}', f'--steps={FLAGS.steps}', '--json', *bench_flags],
        capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f'{name} failed:\n{result.stderr[-2000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    unknown = set(FLAGS.settings) - set(SETTINGS)
    if unknown or 'default' not in FLAGS.settings:
        raise app.UsageError(f'--settings: default and any of {", ".join(SETTINGS)}')
    settings = list(FLAGS.settings)
    if FLAGS.isa == 'avx2' and 'bf16' in settings:
        # TensorFlow picks its bfloat16 kernels by the real CPU's features; capped oneDNN then
        # has none to give ("could not create a primitive descriptor").
        print('bf16: not emulated with --isa=avx2 (measure it on an AVX2-only CPU)')
        settings.remove('bf16')
    machine = device_info.describe()
    isa = ' kernels capped at AVX2' if FLAGS.isa == 'avx2' else ''
    print(f'machine: {machine}{isa}; batch {FLAGS.batch_size}, median of {FLAGS.steps} steps',
          flush=True)
    print('| arch | model | ' + ' | '.join(settings) + ' |')
    print('|---|---|' + '---|' * len(settings), flush=True)
    for arch in FLAGS.archs:
        for model in FLAGS.models:
            rates = {name: time_setting(name, arch, model)['images_per_sec'] for name in settings}
            cells = [f"{rates[n]:.1f}" + ('' if n == 'default' else f" ({rates[n] / rates['default']:.2f}x)")
                     for n in settings]
            print(f'| {arch} | {model} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    app.run(main)
