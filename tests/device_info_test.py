"""Benchmark lines name the machine: the CPU's model and vector extensions."""
import os

import pytest
import tensorflow as tf

from pga_tf.utils import device_info


def test_extensions_of_the_two_cpu_kinds():
    amd_avx2 = {'sse4_2', 'avx', 'avx2', 'fma'}
    intel = amd_avx2 | {'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile'}
    assert device_info.cpu_extensions(amd_avx2) == ['AVX2', 'FMA']
    assert device_info.cpu_extensions(intel) == ['AVX2', 'FMA', 'AVX-512', 'VNNI', 'AVX512-BF16', 'AMX']


def test_describe_names_this_cpu():
    if tf.config.list_physical_devices('GPU'):
        pytest.skip('a GPU is named instead')
    model, flags = device_info.cpu_model()
    text = device_info.describe()
    assert model in text and 'CPUs' in text
    assert ('AVX2' in text) == ('avx2' in flags)


def test_native_bfloat16_needs_avx512_bf16_or_amx():
    avx2 = {'avx', 'avx2', 'fma'}
    assert not device_info.native_bfloat16(avx2)
    assert not device_info.native_bfloat16(avx2 | {'avx512f', 'avx512_vnni'})
    assert device_info.native_bfloat16(avx2 | {'avx512f', 'avx512_bf16'})
    assert device_info.native_bfloat16(avx2 | {'amx_bf16', 'amx_tile'})


def test_describe_counts_the_cpus_this_process_may_use():
    if tf.config.list_physical_devices('GPU'):
        pytest.skip('a GPU is named instead')
    everything = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everything)})  # as under `taskset -c 0`
    try:
        assert device_info.describe().endswith(', 1 CPU)')
    finally:
        os.sched_setaffinity(0, everything)
    if len(everything) > 1:
        assert device_info.describe().endswith(f', {len(everything)} CPUs)')
