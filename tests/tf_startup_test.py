"""TensorFlow's start-up lines are kept off stderr; anything else it prints is not."""
from pga_tf.utils import tf_startup

# Lines TensorFlow 2.21 printed at import on the CPU machines of this project.
NOISE = [
    b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n',
    b'I0000 00:00:1795635251.825019   28317 port.cc:153] oneDNN custom operations are on.\n',
    b'I0000 00:00:1795635251.825413   28317 cudart_stub.cc:31] Could not find cuda drivers\n',
    b'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow\n',
    b'E0000 00:00:1795635256.225282   28317 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n',
]
KEPT = [
    b'W0000 00:00:1795635256.2 28317 gpu_device.cc:2] Cannot dlopen some GPU libraries.\n',
    b'E0000 00:00:1795635256.2 28317 cuda_dnn.cc:9] Loaded runtime CuDNN library: 8.1.0\n',
    b'Traceback (most recent call last):\n',
]


def test_only_start_up_noise_is_dropped():
    assert all(tf_startup._NOISE.match(line) for line in NOISE)
    assert not any(tf_startup._NOISE.match(line) for line in KEPT)


def test_the_filter_drops_matching_native_lines_and_keeps_the_rest(capfd):
    import os

    with tf_startup.native_stderr_filtered(tf_startup._NOISE):
        for line in NOISE + KEPT:
            os.write(2, line)
    assert capfd.readouterr().err.encode() == b''.join(KEPT)


def test_the_converters_lines_are_noise():
    noise = [b'W0000 00:00:1795759804.455377   32413 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.\n',
             b'W0000 00:00:1795759804.455436   32413 tf_tfl_flatbuffer_helpers.cc:367] Ignored drop_control_dependency.\n']
    assert all(tf_startup.CONVERTER_NOISE.match(line) for line in noise)
    assert not any(tf_startup.CONVERTER_NOISE.match(line) for line in KEPT)


def test_grappler_remapper_line_is_noise_and_other_errors_are_not():
    line = (b"E0000 00:00:1795761567.566621    6268 meta_optimizer.cc:967] remapper failed: "
            b"INVALID_ARGUMENT: Mutation::Apply error: fanout 'StatefulPartitionedCall/gradient_tape/"
            b"encoder_1/leaky_re_lu_1_2/LeakyRelu/LeakyReluGrad' exist for missing node "
            b"'StatefulPartitionedCall/encoder_1/conv2d_1_2/BiasAdd'.\n")
    assert tf_startup.GRAPPLER_NOISE.match(line)
    assert not any(tf_startup.GRAPPLER_NOISE.match(l) for l in KEPT + NOISE)
