"""The `Recipe` class: training settings, and how they compile and fit."""

import math

import keras

from keras_catembed import _checks
from keras_catembed import optimizers

# The optimizers a recipe may name.
OPTIMIZERS = {
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
        learning_rate=1e-3,
        *,
        schedule="constant",
        batch_size=256,
        epochs=10,
        ema_momentum=None,
        optimizer="adam",
        table_decay=None,
    ):
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
        self.schedule = schedule
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.epochs = _checks.positive_int("epochs", epochs)
        # 0 means no average, as in RatingHyperModel.
        self.ema_momentum = float(ema_momentum) if ema_momentum else None
        self.optimizer = optimizer
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
        self.table_decay = table_decay

    # Building blocks ---------------------------------------------------------

    def steps(self, num_rows):
        """Number of training steps: batches per epoch times epochs."""
        num_rows = _checks.positive_int("num_rows", num_rows)
        return max(1, -(-num_rows // self.batch_size) * self.epochs)

    def learning_rate_for(self, num_rows):
        """The learning rate, or the schedule over `num_rows` rows.

        Args:
            num_rows: Positive integer. Number of training rows, which
                sets the length of the `"cosine"` schedule.

        Returns:
            A float for `"constant"`, else a
            `keras.optimizers.schedules.CosineDecay`.
        """
        steps = self.steps(num_rows)
        if self.schedule == "constant":
            return self.learning_rate
        warmup = steps // 5
        rate = self.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            rate / 10 if warmup else rate,
            decay_steps=steps - warmup,
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )

    def make_optimizer(self, num_rows, model=None):
        """A new Keras optimizer for `num_rows` training rows.

        With `table_decay`, `model` (a `RatingModel`) is needed: it is
        built, and every variable but its embedding tables is excluded
        from the decay.
        """
        extra = {}
        if self.table_decay is not None:
            extra["weight_decay"] = self.table_decay
        optimizer = OPTIMIZERS[self.optimizer](
            self.learning_rate_for(num_rows),
            use_ema=self.ema_momentum is not None,
            ema_momentum=self.ema_momentum or 0.99,
            **extra,
        )
        if self.table_decay is not None:
            optimizer.exclude_from_weight_decay(var_list=_not_tables(model))
        return optimizer

    # Compile and fit ---------------------------------------------------------

    def compile(self, model, num_rows, **kwargs):
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
        optimizer = self.make_optimizer(num_rows, model)
        model.compile(
            optimizer=optimizer,
            loss="mse",
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), "mae"],
            **kwargs,
        )
        return model

    def fit(
        self,
        model,
        x,
        y,
        *,
        validation_data=None,
        callbacks=None,
        verbose="auto",
        **kwargs,
    ):
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
        callbacks = list(callbacks or [])
        if (
            validation_data is not None
            and getattr(model.optimizer, "use_ema", False)
            and not any(
                isinstance(c, keras.callbacks.SwapEMAWeights) for c in callbacks
            )
        ):
            # Validation metrics of the averaged weights, which `fit` keeps.
            callbacks.insert(0, keras.callbacks.SwapEMAWeights())
        return model.fit(
            x,
            y,
            batch_size=self.batch_size,
            epochs=self.epochs,
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=verbose,
            **kwargs,
        )

    # Serialization -----------------------------------------------------------

    def get_config(self):
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
    def from_config(cls, config):
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

    def replace(self, **changes):
        """A copy of the recipe with some settings changed."""
        return self.from_config({**self.get_config(), **changes})

    def __eq__(self, other):
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __repr__(self):
        values = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Recipe({values})"


def _not_tables(model):
    """The trainable variables of `model` other than its embedding tables."""
    layers = [
        getattr(model, name, None)
        for name in (
            "embedding_layers",
            "implicit_layers",
            "neighborhood_layers",
        )
    ]
    if any(not isinstance(group, dict) for group in layers):
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
