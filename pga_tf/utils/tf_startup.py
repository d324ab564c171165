"""Imports TensorFlow without the lines its C++ core prints while starting.

Before absl's log is set up, TensorFlow writes INFO lines straight to stderr (oneDNN, the CPU
instructions it was built for, CUDA stubs), and on a machine without a GPU an ERROR that cuInit
failed. They come before every message of every command, so a refusal would not be one line.
`import_quietly` imports TensorFlow and finds its devices with stderr captured, then writes back
every captured line except those; `TF_CPP_MIN_LOG_LEVEL=0` writes back all of them.
"""
import contextlib
import os
import re
import sys
import tempfile

# The start-up lines that are dropped: INFO lines, absl's banner about them, the continuation
# of the CPU-instructions line, and cuInit failing where there is no GPU driver or device.
_NOISE = re.compile(rb'I\d{4} |WARNING: All log messages before absl::InitializeLog|'
                    rb'To enable the following instructions:|E\d{4} .*failed call to cuInit')


# What the LiteRT converter prints on every conversion: flags it ignores, MLIR pass notes.
CONVERTER_NOISE = re.compile(rb'W\d{4} .*(?:Ignored output_format|Ignored drop_control_dependency)|'
                             rb'I\d{4} ')


# Grappler's remapper, optimising a training step's graph the first time it runs, fails to fuse
# a convolution of the frozen encoder (h', `losses.frozen_encode`) with its gradient and logs an
# ERROR; the graph runs unfused and correct. One line per traced step, not a fault.
GRAPPLER_NOISE = re.compile(rb'E\d{4} .*meta_optimizer\.cc:\d+\] remapper failed: INVALID_ARGUMENT: '
                            rb'Mutation::Apply error: fanout .*gradient_tape/')


@contextlib.contextmanager
def native_stderr_filtered(noise):
    """Runs the body with file descriptor 2 captured (TensorFlow's C++ writes there, past
    sys.stderr), then writes back every captured line that `noise` does not match; all of
    them when the body raised, or with `TF_CPP_MIN_LOG_LEVEL=0`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no stderr to keep clean
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            show_all = failed or os.environ.get('TF_CPP_MIN_LOG_LEVEL') == '0'
            kept = [line for line in sink if show_all or not noise.match(line)]
            if kept:
                os.write(2, b''.join(kept))


def import_quietly():
    """Imports tensorflow and lists its physical devices, keeping start-up noise off stderr."""
    if 'tensorflow' in sys.modules:
        return
    with native_stderr_filtered(_NOISE):
        import tensorflow as tf

        tf.config.list_physical_devices()
