"""The `Recipe` class: training settings, and how they compile and fit."""

import collections.abc
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Self

import keras
import numpy as np

from keras_catembed import _checks
from keras_catembed import optimizers

# The optimizers a recipe may name.
OPTIMIZERS: dict[str, Any] = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
    "sgd": keras.optimizers.SGD,
    "sparse_adam": optimizers.SparseAdam,
}

SCHEDULES = ("constant", "cosine")


class Recipe:
    """The training settings of a rating model.

    Args:
        learning_rate: Positive float. The learning rate, or the peak of
            the `"cosine"` schedule.
        schedule: `"constant"`, or `"cosine"`: a linear warm-up over the
            first fifth of the steps, from a tenth of the rate, then cosine
            decay to 0 at the end of the last epoch. Defaults to
            `"constant"`.
        batch_size: Positive integer. Ratings per step. Defaults to 256.
        epochs: Positive integer. Passes over the data. Defaults to 10.
        ema_momentum: `None`, 0, or a float in (0, 1). A momentum makes the
            optimizer keep an exponential moving average of the weights
            (Keras's `use_ema=True`), which replaces the weights at the end
            of training and is what validation sees. `None` or 0: no
            average. Defaults to `None`.
        optimizer: Name of the optimizer, one of `OPTIMIZERS` (`"adam"`,
            `"adamw"`, `"rmsprop"`, `"nadam"`, `"adagrad"`, `"sgd"`,
            `"sparse_adam"`: `keras_catembed.optimizers.SparseAdam`).
            Defaults to `"adam"`.
        table_decay: `None` or a float >= 0. A decoupled weight decay of
            the embedding tables of a `RatingModel` only (the id vectors
            and the implicit-feedback and neighbourhood tables; not the
            bias tables nor the dense layers), the optimizer's
            `weight_decay`; with `"sparse_adam"` it reaches the rows a
            step skips lazily (see `SparseAdam`). It stands in for an L2
            penalty of the tables. Needs `"sparse_adam"` or `"adamw"`.
            Defaults to `None`.

    Example:

    ```python
    recipe = keras_catembed.training.Recipe(
        2e-3, schedule="cosine", batch_size=256, epochs=25)
    model = keras_catembed.RatingModel({"user_id": 943, "movie_id": 1682})
    history = recipe.fit(model, x_train, y_train)  # Compiles it first.
    ```
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        *,
        schedule: str = "constant",
        batch_size: int = 256,
        epochs: int = 10,
        ema_momentum: float | None = None,
        optimizer: str = "adam",
        table_decay: float | None = None,
    ) -> None:
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or not math.isfinite(learning_rate)
            or learning_rate <= 0
        ):
            raise ValueError(
                "`learning_rate` must be a finite number > 0. Received: "
                f"learning_rate={learning_rate!r}"
            )
        if schedule not in SCHEDULES:
            raise ValueError(
                f"`schedule` must be one of {list(SCHEDULES)}. Received: "
                f"schedule={schedule!r}"
            )
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {sorted(OPTIMIZERS)}. "
                f"Received: optimizer={optimizer!r}"
            )
        if ema_momentum is not None:
            if isinstance(ema_momentum, bool) or not isinstance(
                ema_momentum, (int, float)
            ):
                raise ValueError(
                    "`ema_momentum` must be None or a number in [0, 1). "
                    f"Received: ema_momentum={ema_momentum!r}"
                )
            ema_momentum = _checks.rate("ema_momentum", ema_momentum)
        self.learning_rate = float(learning_rate)
        self.schedule: str = schedule
        self.batch_size: int = _checks.positive_int("batch_size", batch_size)
        self.epochs: int = _checks.positive_int("epochs", epochs)
        # 0 means no average, as in RatingHyperModel.
        self.ema_momentum = float(ema_momentum) if ema_momentum else None
        self.optimizer: str = optimizer
        if table_decay is not None:
            if (
                isinstance(table_decay, bool)
                or not isinstance(table_decay, (int, float))
                or not math.isfinite(table_decay)
                or table_decay < 0
            ):
                raise ValueError(
                    "`table_decay` must be None or a finite number >= 0. "
                    f"Received: table_decay={table_decay!r}"
                )
            if optimizer not in ("sparse_adam", "adamw"):
                raise ValueError(
                    "`table_decay` is the optimizer's weight decay: use "
                    "optimizer='sparse_adam' or 'adamw'. Received: "
                    f"optimizer={optimizer!r}"
                )
            table_decay = float(table_decay)
        self.table_decay: float | None = table_decay

    # Building blocks ---------------------------------------------------------

    def steps(self, num_rows: int) -> int:
        """Number of training steps: batches per epoch times epochs."""
        num_rows = _checks.positive_int("num_rows", num_rows)
        return max(1, -(-num_rows // self.batch_size) * self.epochs)

    def fit_steps(self, x: Any) -> int:
        """Number of training steps of `fit` on the inputs `x`.

        Args:
            x: Inputs that `fit` batches itself (arrays, a dict of arrays,
                a data frame), which have `batch_size` rows per step, or a
                dataset or `keras.utils.PyDataset` with a length (its
                number of batches).

        Returns:
            Batches per epoch times `epochs`.
        """
        if is_unbatched(x):
            first = next(iter(x.values())) if isinstance(x, Mapping) else x
            batches = -(-len(first) // self.batch_size)
        elif hasattr(x, "__len__"):
            batches = len(x)
        else:
            raise ValueError(
                "The 'cosine' schedule needs the number of steps per epoch: "
                "pass arrays, or a dataset or PyDataset with a length. "
                f"Received: {type(x).__name__}"
            )
        return max(1, batches * self.epochs)

    def learning_rate_for(
        self, num_rows: int | None = None, *, steps: int | None = None
    ) -> Any:
        """The learning rate, or the schedule over the training steps.

        Args:
            num_rows: Optional positive integer. Number of training rows,
                which sets the length of the `"cosine"` schedule.
            steps: Optional positive integer, instead of `num_rows`: the
                number of training steps. Without either, a `"cosine"`
                schedule spans one step until `set_schedule_steps` sets its
                length (for a model compiled before its data is known).

        Returns:
            A float for `"constant"`, else a
            `keras.optimizers.schedules.CosineDecay`.
        """
        total = self._total_steps(num_rows, steps)
        if self.schedule == "constant":
            return self.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            **_cosine_settings(self.learning_rate, total)
        )

    def set_schedule_steps(self, schedule: Any, steps: int) -> None:
        """Sets the length of this recipe's `"cosine"` schedule.

        Args:
            schedule: The `CosineDecay` of `learning_rate_for` (or of the
                optimizer of `make_optimizer`), before training starts.
            steps: Integer. The number of training steps (at least 1 is
                used).
        """
        if not isinstance(schedule, keras.optimizers.schedules.CosineDecay):
            raise ValueError(
                "`schedule` must be the CosineDecay of a 'cosine' recipe. "
                f"Received: schedule={schedule!r}"
            )
        for name, value in _cosine_settings(self.learning_rate, steps).items():
            setattr(schedule, name, value)

    def make_optimizer(
        self,
        num_rows: int | None = None,
        model: Any = None,
        *,
        steps: int | None = None,
        learning_rate: Any = None,
    ) -> Any:
        """A new Keras optimizer for `num_rows` training rows.

        With `table_decay`, `model` (a `RatingModel`) is needed: it is
        built, and every variable but its embedding tables is excluded
        from the decay.

        Args:
            num_rows: Optional positive integer. Number of training rows.
            model: The model to train; needed with `table_decay`.
            steps: Optional positive integer, instead of `num_rows`: the
                number of training steps (see `learning_rate_for`).
            learning_rate: Optional result of `learning_rate_for`, instead
                of `num_rows` or `steps`: the optimizer then uses this
                schedule, whose length `set_schedule_steps` can still set.

        Returns:
            The optimizer, with the rate or schedule and the moving
            average of the weights.
        """
        if learning_rate is None:
            learning_rate = self.learning_rate_for(num_rows, steps=steps)
        elif num_rows is not None or steps is not None:
            raise ValueError(
                "Pass `learning_rate`, or `num_rows` or `steps`, not both. "
                f"Received: num_rows={num_rows!r}, steps={steps!r}"
            )
        extra: dict[str, float] = {}
        if self.table_decay is not None:
            extra["weight_decay"] = self.table_decay
        optimizer = OPTIMIZERS[self.optimizer](
            learning_rate,
            use_ema=self.ema_momentum is not None,
            ema_momentum=self.ema_momentum or 0.99,
            **extra,
        )
        if self.table_decay is not None:
            optimizer.exclude_from_weight_decay(var_list=_not_tables(model))
        return optimizer

    # Compile and fit ---------------------------------------------------------

    def compile_kwargs(
        self,
        num_rows: int | None = None,
        model: Any = None,
        *,
        optimizer: Any = None,
        metrics: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """The `model.compile` arguments of this recipe.

        Args:
            num_rows: Optional positive integer. Number of training rows,
                which sets the length of the `"cosine"` schedule.
            model: The model to compile; needed with `table_decay`.
            optimizer: Optional optimizer of `make_optimizer` (one made
                for a number of steps, or with a schedule to set later),
                instead of a new one for `num_rows`.
            metrics: Optional list of metrics. Defaults to `rmse`
                (`keras.metrics.RootMeanSquaredError`) and `"mae"`.

        Returns:
            Dict with the `optimizer` (by default `make_optimizer(num_rows,
            model)`), the loss `"mse"` and the `metrics`.
        """
        if optimizer is None:
            optimizer = self.make_optimizer(num_rows, model)
        if metrics is None:
            metrics = [keras.metrics.RootMeanSquaredError(name="rmse"), "mae"]
        return {"optimizer": optimizer, "loss": "mse", "metrics": list(metrics)}

    def compile(self, model: Any, num_rows: int, **kwargs: Any) -> Any:
        """Compiles `model` with this recipe.

        The recipe's optimizer, the loss `"mse"`, and the metrics `rmse`
        (`keras.metrics.RootMeanSquaredError`) and `"mae"`.

        Args:
            model: A Keras model, such as a `keras_catembed.RatingModel`.
            num_rows: Positive integer. Number of training rows, which
                sets the length of the `"cosine"` schedule.
            **kwargs: Other arguments of `model.compile` (e.g.
                `jit_compile`). `optimizer`, `loss` and `metrics` are the
                recipe's.

        Returns:
            `model`, compiled.
        """
        taken = sorted({"optimizer", "loss", "metrics"} & set(kwargs))
        if taken:
            raise ValueError(
                f"`Recipe.compile` sets {taken} itself. Received: "
                + ", ".join(f"{name}={kwargs[name]!r}" for name in taken)
            )
        model.compile(**self.compile_kwargs(num_rows, model), **kwargs)
        return model

    def fit_kwargs(
        self,
        model: Any,
        x: Any,
        *,
        callbacks: Sequence[Any] | None = None,
        swap_on_epoch: bool = False,
    ) -> dict[str, Any]:
        """The `model.fit` arguments of this recipe.

        Args:
            model: The compiled model to train.
            x: The training inputs.
            callbacks: Optional list of Keras callbacks.
            swap_on_epoch: Boolean. With a moving average of the weights,
                `False` swaps the averaged weights in for validation only;
                `True` also leaves them in the model at the end of each
                epoch, so that the callbacks after it (checkpoints) see
                them (`keras.callbacks.SwapEMAWeights(swap_on_epoch)`).
                Defaults to `False`.

        Returns:
            Dict with `epochs`, `callbacks` (a new list: with a moving
            average of the weights, a `keras.callbacks.SwapEMAWeights`
            comes first unless `callbacks` has one) and, for inputs that
            `fit` batches itself (arrays, dicts, data frames),
            `batch_size`.
        """
        callbacks = list(callbacks or [])
        if getattr(model.optimizer, "use_ema", False) and not any(
            isinstance(c, keras.callbacks.SwapEMAWeights) for c in callbacks
        ):
            # First, so that validation and the callbacks after it see the
            # averaged weights, which `fit` keeps.
            callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch))
        kwargs: dict[str, Any] = {"epochs": self.epochs, "callbacks": callbacks}
        if is_unbatched(x):
            kwargs["batch_size"] = self.batch_size
        return kwargs

    def fit(
        self,
        model: Any,
        x: Any,
        y: Any,
        *,
        validation_data: Any = None,
        callbacks: Sequence[Any] | None = None,
        verbose: str | int = "auto",
        **kwargs: Any,
    ) -> Any:
        """Trains `model` with this recipe's batch size and epochs.

        An uncompiled model is first compiled with `compile(model,
        len(y))`. With a moving average of the weights, validation sees
        the averaged weights (`keras.callbacks.SwapEMAWeights`), which
        `fit` leaves in the model at the end.

        Args:
            model: A Keras model, such as a `keras_catembed.RatingModel`
                (adapt one with implicit feedback before).
            x: The training inputs (a dict of id arrays for a
                `RatingModel`).
            y: The training ratings, an array.
            validation_data: Optional, as in `model.fit`.
            callbacks: Optional list of Keras callbacks.
            verbose: As in `model.fit`. Defaults to `"auto"`.
            **kwargs: Other arguments of `model.fit` (e.g.
                `sample_weight`). `batch_size` and `epochs` are the
                recipe's.

        Returns:
            The `keras.callbacks.History` of `model.fit`.
        """
        taken = sorted({"batch_size", "epochs"} & set(kwargs))
        if taken:
            raise ValueError(
                f"`Recipe.fit` takes {taken} from the recipe: build a "
                "Recipe with other values instead. Received: "
                + ", ".join(f"{name}={kwargs[name]!r}" for name in taken)
            )
        if y is None or not hasattr(y, "__len__"):
            raise ValueError(
                "`Recipe.fit` expects `y`, an array of ratings. Received: "
                f"y={type(y).__name__}"
            )
        if not getattr(model, "compiled", False):
            self.compile(model, len(y))
        fit_kwargs = self.fit_kwargs(model, x, callbacks=callbacks)
        fit_kwargs["batch_size"] = self.batch_size
        return model.fit(
            x,
            y,
            validation_data=validation_data,
            verbose=verbose,
            **fit_kwargs,
            **kwargs,
        )

    # Serialization -----------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The recipe as a dict of plain values (JSON-serializable)."""
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "schedule": self.schedule,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "ema_momentum": self.ema_momentum,
            "table_decay": self.table_decay,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A recipe from `get_config()`'s dict (or a preset's recipe).

        Missing keys take their defaults; unknown keys are an error.
        """
        if not isinstance(config, dict):
            raise ValueError(
                "A recipe config must be a dict. Received: "
                f"{type(config).__name__}"
            )
        known = set(cls().get_config())
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"Unknown recipe settings {unknown}. Expected some of "
                f"{sorted(known)}"
            )
        return cls(**config)

    def replace(self, **changes: Any) -> Self:
        """A copy of the recipe with some settings changed."""
        return self.from_config({**self.get_config(), **changes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Recipe({values})"

    # Private -----------------------------------------------------------------

    def _total_steps(self, num_rows: int | None, steps: int | None) -> int:
        if num_rows is not None and steps is not None:
            raise ValueError(
                "Pass `num_rows` or `steps`, not both. Received: "
                f"num_rows={num_rows!r}, steps={steps!r}"
            )
        if steps is not None:
            return int(_checks.positive_int("steps", steps))
        return 1 if num_rows is None else self.steps(num_rows)


def _cosine_settings(rate: float, steps: int) -> dict[str, Any]:
    """The `CosineDecay` arguments of the `"cosine"` schedule.

    A linear warm-up over the first fifth of the `steps`, from a tenth of
    the rate, then cosine decay to 0; no warm-up under 5 steps.
    """
    steps = max(1, steps)
    warmup = steps // 5
    return {
        "initial_learning_rate": rate / 10 if warmup else rate,
        "decay_steps": steps - warmup,
        "warmup_target": rate if warmup else None,
        "warmup_steps": warmup,
    }


def is_unbatched(x: Any) -> bool:
    """True for inputs that `fit` batches itself (arrays, dicts, frames)."""
    if isinstance(x, (collections.abc.Mapping, np.ndarray, list, tuple)):
        return True
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        return True
    # Backend tensors; a `tf.data.Dataset` has no `dtype`.
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _not_tables(model: Any) -> list[Any]:
    """The trainable variables of `model` other than its embedding tables."""
    names = ("embedding_layers", "implicit_layers", "neighborhood_layers")
    groups = [getattr(model, name, None) for name in names]
    layers = [group for group in groups if isinstance(group, dict)]
    if len(layers) < len(groups):
        raise ValueError(
            "`table_decay` decays the embedding tables of a RatingModel. "
            f"Received: {type(model).__name__}"
        )
    if not model.built:
        model.build()
    tables = {
        id(layer.embeddings) for group in layers for layer in group.values()
    }
    return [v for v in model.trainable_variables if id(v) not in tables]
