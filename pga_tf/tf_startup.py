"""Imports TensorFlow without the lines its C++ core prints while starting.

Before absl's log is set up, TensorFlow writes INFO lines straight to stderr (oneDNN, the CPU
instructions it was built for, CUDA stubs), and on a machine without a GPU an ERROR that cuInit
failed. They come before every message of every command, so a refusal would not be one line.
`import_quietly` imports TensorFlow and finds its devices with stderr captured, then writes back
every captured line except those; `TF_CPP_MIN_LOG_LEVEL=0` writes back all of them.
"""
import os
import re
import sys
import tempfile

# The start-up lines that are dropped: INFO lines, absl's banner about them, the continuation
# of the CPU-instructions line, and cuInit failing where there is no GPU driver or device.
_NOISE = re.compile(rb'I\d{4} |WARNING: All log messages before absl::InitializeLog|'
                    rb'To enable the following instructions:|E\d{4} .*failed call to cuInit')


def import_quietly():
    """Imports tensorflow and lists its physical devices, keeping start-up noise off stderr."""
    if 'tensorflow' in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no stderr to keep clean
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            show_all = failed or os.environ.get('TF_CPP_MIN_LOG_LEVEL') == '0'
            kept = [line for line in sink if show_all or not _NOISE.match(line)]
            if kept:
                os.write(2, b''.join(kept))
