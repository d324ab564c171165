"""What the benchmarks ran on, in words: the GPU, or the CPU with its vector extensions."""
import os
import platform

import tensorflow as tf

# The CPU features that decide which kernels are fast (NOTES.md §10), as /proc/cpuinfo names
# them, and how they are printed.
VECTOR_EXTENSIONS = {'avx2': 'AVX2', 'fma': 'FMA', 'avx512f': 'AVX-512', 'avx512_vnni': 'VNNI',
                     'avx512_bf16': 'AVX512-BF16', 'amx_tile': 'AMX'}


def cpu_model():
    """(model name, set of /proc/cpuinfo flags); ('<machine>', empty) where there is none."""
    try:
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    field = lambda name: next((l.split(':', 1)[1].strip() for l in lines
                               if l.split(':', 1)[0].strip() == name), '')
    return field('model name') or platform.machine(), frozenset(field('flags').split())


def cpu_extensions(flags=None):
    """The vector extensions of `VECTOR_EXTENSIONS` this CPU has, in that order."""
    flags = cpu_model()[1] if flags is None else flags
    return [shown for name, shown in VECTOR_EXTENSIONS.items() if name in flags]


def native_bfloat16(flags=None):
    """Whether bfloat16 maths runs natively: a GPU, or a CPU with AVX512-BF16 or AMX. Without,
    mixed_bfloat16 measured 7x slower than float32 (AVX2-only AMD EPYC, NOTES.md §10)."""
    if flags is None and tf.config.list_physical_devices('GPU'):
        return True
    flags = cpu_model()[1] if flags is None else flags
    return bool({'avx512_bf16', 'amx_bf16'} & set(flags))


def usable_cpus():
    """The CPUs this process may run on (its affinity: taskset, a container's cpuset), as
    TensorFlow sizes its thread pools; os.cpu_count() counts the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def describe():
    """The GPU's name, else the CPU's model, vector extensions and the CPUs this process may use."""
    gpus = tf.config.list_physical_devices('GPU')
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')
    model, flags = cpu_model()
    extensions = '/'.join(cpu_extensions(flags)) or 'no AVX2'
    cpus = usable_cpus()
    return f'{model} ({extensions}, {cpus} CPU{"s" if cpus > 1 else ""})'
