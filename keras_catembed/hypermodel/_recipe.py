"""The training recipe of a trial: a `Recipe` of the hyperparameters.

`recipe` turns the training hyperparameters into a
`keras_catembed.training.Recipe`, whose methods give the optimizer, the
schedule, the moving average of the weights and the `fit` arguments of a
trial; `check_fit_kwargs` refuses a `batch_size` given to `fit`; `adapt`
fits a trial's pairs to its training data; `stop_on_nan` and `diverged`
make a diverging trial fail.
"""

import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras

from keras_catembed import _frames
from keras_catembed._recipe import Recipe
from keras_catembed.hypermodel._hyperparameters import DECAYING_OPTIMIZERS

# The hyperparameters of the recipe.
TRAINING = ("optimizer", "learning_rate", "schedule", "ema_momentum")


def recipe(values: Mapping[str, Any], epochs: int = 1) -> Recipe:
    """The `Recipe` of checked hyperparameter values, for `epochs` epochs.

    Args:
        values: The hyperparameter values by name (`optimizer`,
            `learning_rate`, `schedule`, `ema_momentum`, `batch_size` and
            `table_decay`, used by the optimizers that apply it).
        epochs: Positive integer. The epochs of `fit`, which set the
            length of the `"cosine"` schedule. Defaults to 1.
    """
    settings = {name: values[name] for name in TRAINING}
    decay = values.get("table_decay") or 0.0
    if decay > 0 and values["optimizer"] in DECAYING_OPTIMIZERS:
        settings["table_decay"] = decay
    return Recipe(batch_size=values["batch_size"], epochs=epochs, **settings)


def check_fit_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuses a `batch_size` passed to `fit`: it is a hyperparameter."""
    if "batch_size" in kwargs:
        raise ValueError(
            "`batch_size` is a hyperparameter of RatingHyperModel: fix it "
            "with `RatingHyperModel(..., batch_size=...)` instead of "
            f"passing it to `search`. Received: batch_size="
            f"{kwargs['batch_size']!r}"
        )


def split_validation(
    args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`fit` arguments whose `validation_split` is made `validation_data`.

    Keras holds out the last `validation_split` of the rows only inside
    `fit`; a trial also adapts its pairs and sets its schedule's length
    from the inputs, which must then be the training rows alone. For a
    dict of arrays or a DataFrame the rows are split here as Keras splits
    them; other inputs, or `validation_data` given (which Keras uses in
    place of the split), are left as they are.
    """
    from keras_catembed import _frames

    args, kwargs = tuple(args), dict(kwargs)
    share = kwargs.get("validation_split")
    if not share or kwargs.get("validation_data") is not None:
        return args, kwargs
    x: Any = args[0] if args else kwargs.get("x")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    frame = _frames.is_dataframe(x)
    if len(args) > 2 or not (frame or isinstance(x, Mapping)):
        return args, kwargs
    num_rows = len(x) if frame else len(next(iter(x.values())))
    cut = int(num_rows * (1.0 - share))

    def part(values: Any, rows: slice) -> Any:
        if values is None:
            return None
        if _frames.is_dataframe(values) or _frames.is_series(values):
            return values.iloc[rows]
        if isinstance(values, Mapping):
            return {key: part(column, rows) for key, column in values.items()}
        return values[rows]

    for name in ("x", "y", "validation_split"):
        kwargs.pop(name, None)
    train, held = slice(0, cut), slice(cut, None)
    weights = kwargs.pop("sample_weight", None)
    if weights is None:
        kwargs["validation_data"] = (part(x, held), part(y, held))
    else:
        kwargs["sample_weight"] = part(weights, train)
        kwargs["validation_data"] = (
            part(x, held),
            part(y, held),
            part(weights, held),
        )
    return (part(x, train), part(y, train)), kwargs


def adapt(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Adapts a model's pairs to the `fit` arguments; returns the inputs.

    A model with implicit feedback or a neighbourhood is adapted to the
    training inputs (a dict of id arrays) and ratings (`model.adapt(x,
    y)`); a neighbourhood needs the ratings.
    """
    x = args[0] if args else kwargs.get("x")
    if not (model.implicit or model.neighborhood):
        return x
    option = "implicit" if model.implicit else "neighborhood"
    if not (isinstance(x, Mapping) or _frames.is_dataframe(x)):
        raise ValueError(
            f"With `{option}=True` the model is adapted to the training "
            "inputs, which must then be a dict of id arrays or a "
            f"DataFrame. Received: {type(x).__name__}"
        )
    y = args[1] if len(args) > 1 else kwargs.get("y")
    if model.neighborhood and y is None:
        raise ValueError(
            "With `neighborhood=True` the model is adapted to the training "
            "ratings: pass them to `search` as `y`. Received: y=None"
        )
    model.adapt(x, y)
    return x


def metrics() -> list[Any]:
    """The metrics of a trial: `rmse`, `mae` and `mse` (every objective)."""
    return [
        keras.metrics.RootMeanSquaredError(name="rmse"),
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.MeanSquaredError(name="mse"),
    ]


def stop_on_nan(callbacks: Sequence[Any] | None) -> list[Any]:
    """`callbacks` with a `keras.callbacks.TerminateOnNaN` at the end."""
    callbacks = list(callbacks or [])
    if not any(
        isinstance(callback, keras.callbacks.TerminateOnNaN)
        for callback in callbacks
    ):
        callbacks.append(keras.callbacks.TerminateOnNaN())
    return callbacks


def diverged(history: Any) -> bool:
    """Whether a training loss of `history` is NaN or infinite."""
    losses = history.history.get("loss", [])
    return any(not math.isfinite(float(loss)) for loss in losses)
