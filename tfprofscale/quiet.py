"""Import TensorFlow without its native start-up notices on stderr."""
from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up chatter kept off stderr.

    TensorFlow 2.21 logs oneDNN/CUDA notices from C++ before any log level
    applies; they are captured and shown only if the import itself fails.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
