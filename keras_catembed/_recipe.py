"""The `Recipe` class: training settings, and how they compile and fit."""

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Self

import keras

from keras_catembed import _checks
from keras_catembed import _recipe_parts
from keras_catembed._recipe_parts import OPTIMIZERS


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
        settings = _recipe_parts.check_settings(
            learning_rate=learning_rate,
            schedule=schedule,
            batch_size=batch_size,
            epochs=epochs,
            ema_momentum=ema_momentum,
            optimizer=optimizer,
            table_decay=table_decay,
        )
        self.learning_rate: float = settings["learning_rate"]
        self.schedule: str = settings["schedule"]
        self.batch_size: int = settings["batch_size"]
        self.epochs: int = settings["epochs"]
        # 0 means no average, as in RatingHyperModel.
        self.ema_momentum: float | None = settings["ema_momentum"]
        self.optimizer: str = settings["optimizer"]
        self.table_decay: float | None = settings["table_decay"]

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
        batches = _recipe_parts.batches_per_epoch(x, self.batch_size)
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
        total = _recipe_parts.total_steps(self, num_rows, steps)
        if self.schedule == "constant":
            return self.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            **_recipe_parts.cosine_settings(self.learning_rate, total)
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
        for name, value in _recipe_parts.cosine_settings(
            self.learning_rate, steps
        ).items():
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
        elif self.optimizer == "adamw":
            # No decay, as documented: not AdamW's own default, which would
            # decay every weight, the dense layers' too.
            extra["weight_decay"] = 0.0
        optimizer = OPTIMIZERS[self.optimizer](
            learning_rate,
            use_ema=self.ema_momentum is not None,
            ema_momentum=self.ema_momentum or 0.99,
            **extra,
        )
        if self.table_decay is not None:
            optimizer.exclude_from_weight_decay(
                var_list=_recipe_parts.not_tables(model)
            )
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
        _recipe_parts.reject_taken(
            kwargs, ("optimizer", "loss", "metrics"), "`Recipe.compile` sets"
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
        if _recipe_parts.is_unbatched(x):
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
        len(y))` (with `model.fit_rows(x)` for a model that has it, such
        as `ItemAutoencoder`, whose steps are batches of items). With a
        moving average of the weights, validation sees the averaged
        weights (`keras.callbacks.SwapEMAWeights`), which
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
        _recipe_parts.reject_taken(
            kwargs,
            ("batch_size", "epochs"),
            "`Recipe.fit` takes",
            "from the recipe: build a Recipe with other values instead.",
        )
        if y is None or not hasattr(y, "__len__"):
            raise ValueError(
                "`Recipe.fit` expects `y`, an array of ratings. Received: "
                f"y={type(y).__name__}"
            )
        if not getattr(model, "compiled", False):
            # A model whose `fit` batches other examples than rows (the
            # items of an `ItemAutoencoder`) says how many an epoch has.
            fit_rows = getattr(model, "fit_rows", None)
            self.compile(model, len(y) if fit_rows is None else fit_rows(x))
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
