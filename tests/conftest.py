"""Shared test fixtures."""
import os

import pytest


@pytest.fixture(scope="module")
def keras_lib():
    """Keras on one TensorFlow thread, logs quiet; the tests that use it skip without TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TF already initialized by another test module
    import keras

    return keras
