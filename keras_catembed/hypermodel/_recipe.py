"""The training recipe of a trial: optimizer, schedule, EMA, batches.

`training_recipe` turns the recipe's hyperparameters into what `compile`
and `fit` need; it is the one place to change how a trial trains.
"""

import collections.abc
import math
import typing
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

# The optimizers that a fixed `optimizer` may name (the search chooses
# among `OPTIMIZER_CHOICES`) are those of a training recipe.
from keras_catembed.training import OPTIMIZERS


class TrainingRecipe(typing.NamedTuple):
    """What `training_recipe` returns."""

    # A new optimizer, with the rate or the schedule and the EMA settings.
    optimizer: keras.optimizers.Optimizer
    # The `"cosine"` schedule, whose step counts `fit` sets, or `None`.
    schedule: keras.optimizers.schedules.LearningRateSchedule | None
    # The batch size of array inputs.
    batch_size: int


def training_recipe(
    values: Mapping[str, Any], steps: int | None = None
) -> TrainingRecipe:
    """The optimizer, schedule and batch size of the hyperparameters.

    Args:
        values: The checked hyperparameter values by name (`optimizer`,
            `learning_rate`, `schedule`, `ema_momentum`, `batch_size`).
        steps: Optional number of training steps (batches per epoch times
            epochs) for the `"cosine"` schedule; without it `fit` sets
            them with `set_schedule_steps`.
    """
    rate = schedule = values["learning_rate"]
    if values["schedule"] == "cosine":
        # Placeholder step counts until the data is known.
        schedule = keras.optimizers.schedules.CosineDecay(
            rate / 10, decay_steps=1, warmup_target=rate, warmup_steps=0
        )
        if steps is not None:
            set_schedule_steps(schedule, steps)
    momentum = values["ema_momentum"]
    optimizer = OPTIMIZERS[values["optimizer"]](
        learning_rate=schedule,
        use_ema=momentum > 0,
        ema_momentum=momentum if momentum > 0 else 0.99,
    )
    return TrainingRecipe(
        optimizer=optimizer,
        schedule=None if schedule is rate else schedule,
        batch_size=values["batch_size"],
    )


def compile_kwargs(optimizer):
    """`model.compile` kwargs: `optimizer`, the loss and the metrics."""
    return {
        "optimizer": optimizer,
        "loss": "mse",
        "metrics": [
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.MeanSquaredError(name="mse"),
        ],
    }


def set_schedule_steps(schedule, steps):
    """Sets the warm-up (a fifth) and decay steps of a `"cosine"` schedule."""
    steps = max(1, steps)
    warmup = steps // 5
    schedule.decay_steps = steps - warmup
    schedule.warmup_steps = warmup


def steps_per_epoch(x, batch_size):
    """The number of batches in an epoch of `x`."""
    if is_unbatched(x):
        first = (
            next(iter(x.values()))
            if isinstance(x, collections.abc.Mapping)
            else x
        )
        return -(-len(first) // batch_size)
    if hasattr(x, "__len__"):
        return len(x)
    raise ValueError(
        "The 'cosine' schedule needs the number of steps per epoch: pass "
        "arrays, or a dataset or PyDataset with a length. Received: "
        f"{type(x).__name__}"
    )


def is_unbatched(x):
    """True for inputs that `fit` batches itself (arrays, dicts, frames)."""
    if isinstance(x, (collections.abc.Mapping, np.ndarray, list, tuple)):
        return True
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        return True
    # Backend tensors; a `tf.data.Dataset` has no `dtype`.
    return hasattr(x, "shape") and hasattr(x, "dtype")


def fit_callbacks(optimizer, callbacks):
    """The callbacks of a trial: EMA weights swapped, NaN losses stop it."""
    callbacks = list(callbacks or [])
    if optimizer.use_ema and not any(
        isinstance(callback, keras.callbacks.SwapEMAWeights)
        for callback in callbacks
    ):
        # First, so that validation and the callbacks after it (the
        # tuner's checkpoints) see the averaged weights.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(True))
    if not any(
        isinstance(callback, keras.callbacks.TerminateOnNaN)
        for callback in callbacks
    ):
        callbacks.append(keras.callbacks.TerminateOnNaN())
    return callbacks


def diverged(history):
    """Whether a training loss of `history` is NaN or infinite."""
    losses = history.history.get("loss", [])
    return any(not math.isfinite(float(loss)) for loss in losses)
