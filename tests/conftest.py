"""Shared test fixtures."""
import os

import pytest

try:  # the property suite's profiles (tests/property/conftest.py says what each is for)
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    settings = None
if settings is not None:
    _QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
              HealthCheck.function_scoped_fixture]
    settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, suppress_health_check=_QUIET,
                              print_blob=True)
    settings.register_profile("nightly", max_examples=2000, deadline=None, suppress_health_check=_QUIET,
                              print_blob=True)
    if settings.get_current_profile_name() == "default":
        settings.load_profile("ci")


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
