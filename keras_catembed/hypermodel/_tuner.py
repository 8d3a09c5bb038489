"""Imports KerasTuner, or raises an `ImportError` that says how to install it.

`keras_catembed.hypermodel` imports this module before any other.
"""

import importlib.util

import keras

try:
    import keras_tuner  # noqa: F401 (imported from here)
except ModuleNotFoundError as error:  # pragma: no cover - tested in a copy
    if error.name != "keras_tuner":
        raise
    raise ImportError(
        "keras_catembed.RatingHyperModel needs KerasTuner, which is not "
        'installed. Install it with: pip install "keras-catembed[tuner]"'
    ) from error

__all__ = ["keras_tuner"]

# On the TensorFlow backend, KerasTuner 1.4 imports `tensorboard` in every
# trial (`Tuner._configure_tensorboard_dir`), and TensorFlow no longer
# installs it: without it every trial fails.
if (
    keras.backend.backend() == "tensorflow"
    and importlib.util.find_spec("tensorboard") is None
):  # pragma: no cover - depends on the environment
    raise ImportError(
        "On the TensorFlow backend, KerasTuner imports `tensorboard` in "
        "every trial, and it is not installed. Install it with: "
        "pip install tensorboard"
    )
