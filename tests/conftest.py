"""Test configuration: backend-independent seeds, Hypothesis profiles."""

import gc
import os

import keras
import pytest
from hypothesis import HealthCheck
from hypothesis import settings

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a blank Keras state and seed 0.

    `clear_session` resets the layer-name counters and the backend's global
    state (TensorFlow's default graph and kernel cache, torch's dynamo
    cache). Its `free_memory=True` default adds a full `gc.collect()`, half a
    second a test on TensorFlow; that collection runs once per module
    instead (`_free_memory_per_module`).
    """
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True, scope="module")
def _free_memory_per_module():
    """Collects the garbage a test module left behind, once at its end."""
    yield
    gc.collect()


# Tests of code that does not depend on the Keras backend (argument
# parsing, the MovieLens loader, protocols, docs figures, tuner
# orchestration, examples) carry the `one_backend` marker. When the
# environment variable KERAS_CATEMBED_ONE_BACKEND names a backend
# (scripts/test.sh sets it to "torch"), they run on that backend only and
# are deselected on the others; unset, they run on every backend.
ONE_BACKEND_VARIABLE = "KERAS_CATEMBED_ONE_BACKEND"


def pytest_collection_modifyitems(config, items):
    chosen = os.environ.get(ONE_BACKEND_VARIABLE)
    if not chosen or chosen == keras.backend.backend():
        return
    kept, deselected = [], []
    for item in items:
        marked = item.get_closest_marker("one_backend") is not None
        (deselected if marked else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
