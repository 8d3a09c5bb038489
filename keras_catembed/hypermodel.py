"""The `RatingHyperModel`: a KerasTuner search space over `RatingModel`s.

This module needs KerasTuner, the optional `[tuner]` extra:
`pip install "keras-catembed[tuner]"`.
"""

import collections.abc
import importlib.util
import math
import numbers

import keras
import numpy as np

try:
    import keras_tuner
except ModuleNotFoundError as error:  # pragma: no cover - tested in a copy
    if error.name != "keras_tuner":
        raise
    raise ImportError(
        "keras_catembed.RatingHyperModel needs KerasTuner, which is not "
        'installed. Install it with: pip install "keras-catembed[tuner]"'
    ) from error

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

from keras_catembed import _checks
from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.entity_embedding import auto_output_dim
from keras_catembed.rating_model import RatingModel
from keras_catembed.rating_model import _check_columns
from keras_catembed.rating_model import _check_rating_range

OBJECTIVE_METRICS = ("rmse", "mae", "mse")

# Search ranges. `build` documents them in `RatingHyperModel`'s docstring.
OUTPUT_DIM_FACTORS = (0.25, 0.5, 1.0, 2.0)
MAX_HIDDEN_LAYERS = 3
HIDDEN_UNITS_CHOICES = (4, 8, 16, 32, 64, 128)
HIDDEN_UNITS_DEFAULTS = (32, 4, 4)
ACTIVATION_CHOICES = ("relu", "gelu", "silu", "tanh")
EMBEDDINGS_L2_CHOICES = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
OPTIMIZER_CHOICES = ("adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine")
# "uniform": Keras's default, U(-0.05, 0.05); "normal": N(0, 0.01**2), the
# presets' smaller start.
EMBEDDINGS_INITIALIZERS = ("uniform", "normal")
BATCH_SIZE_CHOICES = (64, 128, 256, 512, 1024, 2048)
# 0.0: no moving average of the weights.
EMA_MOMENTUM_CHOICES = (0.0, 0.99, 0.999)

# Optimizers that a fixed `optimizer` may name (the search uses
# `OPTIMIZER_CHOICES`).
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
    "sgd": keras.optimizers.SGD,
}


class RatingHyperModel(keras_tuner.HyperModel):
    """A KerasTuner search space of compiled `RatingModel`s.

    `build(hp)` declares the hyperparameters below, then returns a
    `keras_catembed.RatingModel` that is compiled (loss `"mse"`, metrics
    `"rmse"`, `"mae"` and `"mse"`) and built, so its weights exist before
    training. Being built matters to KerasTuner in two places: its
    `max_model_size` check counts the weights of built models only (an
    unbuilt subclassed model counts as 0 parameters, and the limit is
    silently skipped), and `Tuner.get_best_models()` loads the best
    checkpoint into a freshly built model. The size KerasTuner counts
    includes the embedding tables, which are most of a rating model.

    `fit(hp, model, *args, **kwargs)` tunes the batch size and passes every
    other argument (the data, `epochs`, `validation_data`, and the tuner's
    callbacks) to `model.fit`. A trial whose training loss becomes NaN or
    infinite is stopped (`keras.callbacks.TerminateOnNaN`) and reported to
    the tuner as failed, so the search goes on; the tuner's
    `max_consecutive_failed_trials` (3 by default) still stops a search
    that keeps failing.

    The hyperparameters, their search ranges and their defaults (a
    hyperparameter's default is used by `GridSearch`'s first trial and when
    KerasTuner needs a value without searching). With every default, the
    model is `keras_catembed.RatingModel(embeddings)` with its own defaults,
    trained with Adam at a learning rate of 0.001 on batches of 256.

    - `"<column>_output_dim"`, one per column. Integer choice among
      `auto_output_dim(n)` (fastai's rule on the cardinality `n`) times
      0.25, 0.5, 1 and 2, rounded, at least 1 and without repeats.
      Defaults to `auto_output_dim(n)`.
    - `"num_hidden_layers"`: Integer in [0, 3]. Number of hidden layers;
      0 makes the output a linear function of the embeddings. Defaults to
      `2`.
    - `"hidden_units_<i>"` for `i` in 0, 1, 2: Integer choice in
      `[4, 8, 16, 32, 64, 128]`. Width of hidden layer `i`; active only
      when `num_hidden_layers > i`. Defaults to `32`, `4` and `4`.
    - `"activation"`: Choice of `"relu"`, `"gelu"`, `"silu"` and `"tanh"`.
      Activation of the hidden layers; active only with hidden layers.
      Defaults to `"relu"`.
    - `"dropout"`: Float in [0, 0.5], step 0.1. Dropout after each hidden
      layer; active only with hidden layers. Defaults to `0.0`.
    - `"embeddings_l2"`: Float choice among `0.0` and the log-spaced
      `1e-7`, `1e-6`, `1e-5`, `1e-4`, `1e-3`. L2 penalty on every
      embedding table (`0.0`: none). Defaults to `0.0`.
    - `"embeddings_initializer"`: `"uniform"` (Keras's default,
      U(-0.05, 0.05)) or `"normal"` (N(0, 0.01²), the presets' smaller
      start). Defaults to `"uniform"`.
    - `"entity_dropout"`: Float in [0, 0.5], step 0.1. The `dropout` of
      each `EntityEmbedding`: whole vectors are dropped during training.
      Defaults to `0.0`.
    - `"bias_terms"`: Boolean. `RatingModel`'s per-id bias terms.
      Defaults to `False`.
    - `"bounded_output"`: Boolean. Whether the output is bounded to
      `rating_range` by a scaled sigmoid. Fixed to `False` when
      `rating_range=None`. Defaults to `False`.
    - `"implicit"`: Boolean. `RatingModel`'s implicit feedback, each of
      the two columns described by the ids of the other it occurs with
      (`fit` adapts the model to the training inputs). Fixed to `False`
      unless there are exactly two columns. Defaults to `False`.
    - `"optimizer"`: Choice of `"adam"`, `"adamw"` and `"rmsprop"` (a fixed
      value may also be `"nadam"`, `"adagrad"` or `"sgd"`). Defaults to
      `"adam"`.
    - `"learning_rate"`: Float in [1e-4, 1e-1], log-scaled. Defaults to
      `1e-3`.
    - `"schedule"`: `"constant"` or `"cosine"`: a linear warm-up from a
      tenth of the rate over the first fifth of the steps, then cosine
      decay to 0 at the end of `fit` (the presets' schedule; `fit` counts
      the steps from the data, the batch size and `epochs`). Defaults to
      `"constant"`.
    - `"ema_momentum"`: Float choice among `0.0`, `0.99` and `0.999`. With
      a momentum above 0 the optimizer keeps an exponential moving average
      of the weights (`use_ema=True`); `fit` evaluates the validation data
      with the averaged weights (`keras.callbacks.SwapEMAWeights`), so the
      objective and the tuner's checkpoints are those of the average,
      which replaces the weights at the end of training. `0.0`: no
      average. Defaults to `0.0`.
    - `"batch_size"`: Integer choice in `[64, 128, 256, 512, 1024, 2048]`.
      Used by `fit` for array inputs; a `tf.data.Dataset` or other batched
      input keeps its own batches. Defaults to `256`.

    Every hyperparameter is declared in `build`, so the tuner knows the
    whole space before the first trial. Any hyperparameter can be fixed by
    passing its name as a keyword argument; it is then declared with
    `hp.Fixed`, so it still shows in each trial's hyperparameters. A fixed
    value may lie outside the search range (`user_id_output_dim=7`). To
    search a different range, declare the hyperparameter yourself in a
    `keras_tuner.HyperParameters` passed to the tuner as `hyperparameters=`:
    the tuner's declaration wins.

    Args:
        embeddings: Dict mapping each column name to its cardinality (a
            positive integer: ids are `0..n-1`), as in
            `keras_catembed.RatingModel`.
        objective_metric: String, one of `"rmse"`, `"mae"` and `"mse"`.
            The validation metric that `objective` minimizes. Defaults to
            `"rmse"`.
        rating_range: Optional pair `(low, high)` with `low < high`: the
            bounds of the `bounded_output` hyperparameter. Set it a little
            wider than your rating scale: `(0.5, 5.5)` suits 1-5 stars
            (MovieLens), `(0.5, 10.5)` suits 1-10. `None` fixes
            `bounded_output` to `False`. Defaults to `(0.5, 5.5)`.
        name: Optional string, the name of this hypermodel. Defaults to
            `None`.
        tunable: Boolean. Whether the hyperparameters declared here are
            added to the search space (see `keras_tuner.HyperModel`).
            Defaults to `True`.
        **fixed: Hyperparameters to fix instead of searching, by name (see
            the list above).

    Raises:
        ValueError: for bad `embeddings`, `objective_metric` or
            `rating_range`, for a fixed name that is not a hyperparameter
            (the message lists the valid names) and for a fixed value of the
            wrong type or range.

    Example:

    ```python
    hypermodel = keras_catembed.RatingHyperModel(
        {"user_id": 943, "movie_id": 1682}, bias_terms=True
    )
    tuner = keras_tuner.BayesianOptimization(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=20,
        directory="tuning",
        project_name="movielens",
    )
    tuner.search(x_train, y_train, epochs=5, validation_data=(x_val, y_val))
    model = tuner.get_best_models()[0]
    kwargs = hypermodel.model_kwargs(tuner.get_best_hyperparameters()[0])
    ```

    Reference:
        - [Guo & Berkhahn, 2016. Entity Embeddings of Categorical
          Variables](https://arxiv.org/abs/1604.06737)
        - [Li et al., 2018. Hyperband: A Novel Bandit-Based Approach to
          Hyperparameter Optimization](https://arxiv.org/abs/1603.06560)
    """

    def __init__(
        self,
        embeddings,
        *,
        objective_metric="rmse",
        rating_range=(0.5, 5.5),
        name=None,
        tunable=True,
        **fixed,
    ):
        super().__init__(name=name, tunable=tunable)
        self.columns = _check_columns(embeddings)
        for column in self.columns:
            if isinstance(embeddings[column], EntityEmbedding):
                raise ValueError(
                    "`embeddings` must map each column to an integer "
                    "cardinality: the hypermodel configures the "
                    "EntityEmbedding layers itself. Received: "
                    f"embeddings['{column}']={embeddings[column]!r}"
                )
        self.embeddings = {
            column: int(embeddings[column]) for column in self.columns
        }
        if objective_metric not in OBJECTIVE_METRICS:
            raise ValueError(
                f"`objective_metric` must be one of {list(OBJECTIVE_METRICS)}."
                f" Received: objective_metric={objective_metric!r}"
            )
        self.objective_metric = objective_metric
        self.rating_range = _check_rating_range(rating_range)
        self.fixed = self._check_fixed(fixed)

    # Public helpers ----------------------------------------------------------

    @property
    def objective(self):
        """The `keras_tuner.Objective` to pass to tuners.

        `keras_tuner.Objective("val_<objective_metric>", "min")`, e.g.
        `"val_rmse"`. Search with `validation_data` (or
        `validation_split`) so that the metric exists.
        """
        return keras_tuner.Objective(f"val_{self.objective_metric}", "min")

    @property
    def hyperparameter_names(self):
        """List of the names of every hyperparameter, in declaration order."""
        return _hyperparameter_names(self.columns, self._max_layers())

    def values(self, hp):
        """Declares every hyperparameter on `hp` and returns their values.

        Args:
            hp: A `keras_tuner.HyperParameters`, or a dict of values by name
                (such as `best_hp.values`, or a preset saved as JSON); a
                hyperparameter missing from the dict takes its default.

        Returns:
            Dict of every hyperparameter name to its value. An inactive
            hyperparameter (`hidden_units_2` with two hidden layers) is
            `None`.
        """
        hp = self._as_hyperparameters(hp)
        values = {}
        for column, cardinality in self.embeddings.items():
            name = f"{column}_output_dim"
            choices = output_dim_choices(cardinality)
            values[name] = self._declare(
                hp,
                name,
                lambda name=name, choices=choices, n=cardinality: hp.Choice(
                    name, choices, default=auto_output_dim(n)
                ),
            )
        max_layers = self._max_layers()
        values["num_hidden_layers"] = self._declare(
            hp,
            "num_hidden_layers",
            lambda: hp.Int(
                "num_hidden_layers", 0, MAX_HIDDEN_LAYERS, default=2
            ),
        )
        for index in range(max_layers):
            name = f"hidden_units_{index}"
            default = HIDDEN_UNITS_DEFAULTS[
                min(index, len(HIDDEN_UNITS_DEFAULTS) - 1)
            ]
            with hp.conditional_scope(
                "num_hidden_layers", list(range(index + 1, max_layers + 1))
            ):
                values[name] = self._declare(
                    hp,
                    name,
                    lambda name=name, default=default: hp.Choice(
                        name, list(HIDDEN_UNITS_CHOICES), default=default
                    ),
                )
        with hp.conditional_scope(
            "num_hidden_layers", list(range(1, max_layers + 1))
        ):
            values["activation"] = self._declare(
                hp,
                "activation",
                lambda: hp.Choice(
                    "activation", list(ACTIVATION_CHOICES), default="relu"
                ),
            )
            values["dropout"] = self._declare(
                hp,
                "dropout",
                lambda: hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0),
            )
        values["embeddings_l2"] = self._declare(
            hp,
            "embeddings_l2",
            lambda: hp.Choice(
                "embeddings_l2", list(EMBEDDINGS_L2_CHOICES), default=0.0
            ),
        )
        values["embeddings_initializer"] = self._declare(
            hp,
            "embeddings_initializer",
            lambda: hp.Choice(
                "embeddings_initializer",
                list(EMBEDDINGS_INITIALIZERS),
                default="uniform",
            ),
        )
        values["entity_dropout"] = self._declare(
            hp,
            "entity_dropout",
            lambda: hp.Float("entity_dropout", 0.0, 0.5, step=0.1, default=0.0),
        )
        values["bias_terms"] = self._declare(
            hp,
            "bias_terms",
            lambda: hp.Boolean("bias_terms", default=False),
        )
        if self.rating_range is None:
            values["bounded_output"] = hp.Fixed("bounded_output", False)
        else:
            values["bounded_output"] = self._declare(
                hp,
                "bounded_output",
                lambda: hp.Boolean("bounded_output", default=False),
            )
        if len(self.columns) == 2:
            values["implicit"] = self._declare(
                hp, "implicit", lambda: hp.Boolean("implicit", default=False)
            )
        else:
            values["implicit"] = hp.Fixed("implicit", False)
        values["optimizer"] = self._declare(
            hp,
            "optimizer",
            lambda: hp.Choice(
                "optimizer", list(OPTIMIZER_CHOICES), default="adam"
            ),
        )
        values["learning_rate"] = self._declare(
            hp,
            "learning_rate",
            lambda: hp.Float(
                "learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3
            ),
        )
        values["schedule"] = self._declare(
            hp,
            "schedule",
            lambda: hp.Choice("schedule", list(SCHEDULES), default="constant"),
        )
        values["ema_momentum"] = self._declare(
            hp,
            "ema_momentum",
            lambda: hp.Choice(
                "ema_momentum", list(EMA_MOMENTUM_CHOICES), default=0.0
            ),
        )
        values["batch_size"] = self._declare(
            hp,
            "batch_size",
            lambda: hp.Choice(
                "batch_size", list(BATCH_SIZE_CHOICES), default=256
            ),
        )
        return values

    def model_kwargs(self, hp):
        """Turns hyperparameters into `keras_catembed.RatingModel` kwargs.

        Use it to rebuild the best model of a search without KerasTuner, or
        to derive named presets from search results:
        `keras_catembed.RatingModel(**hypermodel.model_kwargs(best_hp))`.

        Args:
            hp: A `keras_tuner.HyperParameters` (such as
                `tuner.get_best_hyperparameters()[0]`) or a dict of values
                by name; missing names take their defaults.

        Returns:
            Dict with the keys `embeddings` (a dict of configured
            `keras_catembed.EntityEmbedding` layers), `hidden_units`,
            `activation`, `dropout`, `bias_terms`, `rating_range` and
            `implicit`.
        """
        values = self.values(hp)
        l2 = values["embeddings_l2"]
        embeddings = {}
        for column in self.columns:
            embeddings[column] = EntityEmbedding(
                input_dim=self.embeddings[column],
                output_dim=values[f"{column}_output_dim"],
                embeddings_regularizer=(
                    keras.regularizers.L2(l2) if l2 > 0 else None
                ),
                embeddings_initializer=(
                    "uniform"
                    if values["embeddings_initializer"] == "uniform"
                    else keras.initializers.RandomNormal(stddev=0.01)
                ),
                dropout=values["entity_dropout"],
                name=f"{column}_embedding",
            )
        num_layers = values["num_hidden_layers"]
        return {
            "embeddings": embeddings,
            "hidden_units": tuple(
                values[f"hidden_units_{index}"] for index in range(num_layers)
            ),
            "activation": values["activation"] or "relu",
            "dropout": values["dropout"] or 0.0,
            "bias_terms": values["bias_terms"],
            "rating_range": (
                self.rating_range if values["bounded_output"] else None
            ),
            "implicit": values["implicit"],
        }

    def compile_kwargs(self, hp, steps=None):
        """Turns hyperparameters into `model.compile` kwargs.

        Args:
            hp: A `keras_tuner.HyperParameters` or a dict of values by name.
            steps: Optional integer. The number of training steps (batches
                per epoch times epochs), which the `"cosine"` schedule
                needs. Without it that schedule has placeholder step
                counts, which `fit` sets.

        Returns:
            Dict with a new `optimizer` (with the tuned learning rate or
            schedule), the loss `"mse"` and the metrics `rmse`, `mae` and
            `mse`.
        """
        kwargs, schedule = self._compile_kwargs(hp)
        if schedule is not None and steps is not None:
            _set_schedule_steps(schedule, _checks.positive_int("steps", steps))
        return kwargs

    def _compile_kwargs(self, hp):
        """`compile_kwargs`, and the learning rate schedule (or `None`)."""
        values = self.values(hp)
        optimizer_class = OPTIMIZERS[values["optimizer"]]
        rate = schedule = values["learning_rate"]
        if values["schedule"] == "cosine":
            # `fit` sets the step counts once it knows the data.
            schedule = keras.optimizers.schedules.CosineDecay(
                rate / 10, decay_steps=1, warmup_target=rate, warmup_steps=0
            )
        momentum = values["ema_momentum"]
        kwargs = {
            "optimizer": optimizer_class(
                learning_rate=schedule,
                use_ema=momentum > 0,
                ema_momentum=momentum if momentum > 0 else 0.99,
            ),
            "loss": "mse",
            "metrics": [
                keras.metrics.RootMeanSquaredError(name="rmse"),
                keras.metrics.MeanAbsoluteError(name="mae"),
                keras.metrics.MeanSquaredError(name="mse"),
            ],
        }
        return kwargs, (None if schedule is rate else schedule)

    def fit_kwargs(self, hp):
        """Turns hyperparameters into `model.fit` kwargs.

        Args:
            hp: A `keras_tuner.HyperParameters` or a dict of values by name.

        Returns:
            Dict with the key `batch_size`.
        """
        return {"batch_size": self.values(hp)["batch_size"]}

    # HyperModel API ----------------------------------------------------------

    def build(self, hp):
        model = RatingModel(**self.model_kwargs(hp))
        compile_kwargs, schedule = self._compile_kwargs(hp)
        # `fit` sets its step counts.
        model._hypermodel_schedule = schedule
        model.compile(**compile_kwargs)
        model.build()
        # Creating the optimizer's variables now lets a checkpoint written
        # during training load into a model from `build` without skipping
        # them (`Tuner.get_best_models` does exactly that).
        model.optimizer.build(model.trainable_variables)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains `model` with the tuned batch size.

        A model with implicit feedback is first adapted to the training
        inputs (`model.adapt(x)`), which must then be a dict of id arrays.

        Args:
            hp: A `keras_tuner.HyperParameters`.
            model: The model returned by `build(hp)`.
            *args: Positional arguments of `model.fit`, such as the data.
            **kwargs: Keyword arguments of `model.fit`, including the tuner's
                `callbacks`. Do not pass `batch_size`: it is a
                hyperparameter (fix it with `batch_size=` in the
                constructor).

        Returns:
            The `keras.callbacks.History` of `model.fit`.

        Raises:
            keras_tuner.errors.FailedTrialError: when the training loss
                becomes NaN or infinite, so that the tuner marks the trial
                as failed and goes on.
        """
        if "batch_size" in kwargs:
            raise ValueError(
                "`batch_size` is a hyperparameter of RatingHyperModel: fix it "
                "with `RatingHyperModel(..., batch_size=...)` instead of "
                f"passing it to `search`. Received: batch_size="
                f"{kwargs['batch_size']!r}"
            )
        batch_size = self.fit_kwargs(hp)["batch_size"]
        x = args[0] if args else kwargs.get("x")
        if model.implicit:
            if not isinstance(x, collections.abc.Mapping):
                raise ValueError(
                    "With `implicit=True` the model is adapted to the "
                    "training inputs, which must then be a dict of id "
                    f"arrays. Received: {type(x).__name__}"
                )
            model.adapt(x)
        schedule = getattr(model, "_hypermodel_schedule", None)
        if schedule is not None:
            _set_schedule_steps(
                schedule,
                _steps_per_epoch(x, batch_size) * kwargs.get("epochs", 1),
            )
        if _is_unbatched(x):
            kwargs["batch_size"] = batch_size
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if model.optimizer.use_ema and not any(
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
        history = model.fit(*args, callbacks=callbacks, **kwargs)
        losses = history.history.get("loss", [])
        if any(not math.isfinite(float(loss)) for loss in losses):
            raise keras_tuner.errors.FailedTrialError(
                f"Training diverged: the loss became {losses[-1]} after "
                f"{len(losses)} epoch(s) with the hyperparameters "
                f"{hp.values}."
            )
        return history

    # Private -----------------------------------------------------------------

    def _max_layers(self):
        return max(MAX_HIDDEN_LAYERS, self.fixed.get("num_hidden_layers", 0))

    def _declare(self, hp, name, search):
        if name in self.fixed:
            return hp.Fixed(name, self.fixed[name])
        return search()

    def _as_hyperparameters(self, hp):
        if isinstance(hp, keras_tuner.HyperParameters):
            return hp
        if not isinstance(hp, collections.abc.Mapping):
            raise ValueError(
                "`hp` must be a keras_tuner.HyperParameters or a dict of "
                f"values by name. Received: hp={hp!r}"
            )
        names = self.hyperparameter_names
        unknown = [name for name in hp if name not in names]
        if unknown:
            raise ValueError(
                f"Unknown hyperparameters {unknown}. Valid names: {names}"
            )
        values = {
            name: self._check_fixed_value(name, value)
            for name, value in hp.items()
            if value is not None
        }
        layers = values.get("num_hidden_layers", 0)
        if layers > self._max_layers():
            raise ValueError(
                f"`num_hidden_layers` must be at most {self._max_layers()} "
                "unless the hypermodel fixes it. Received: "
                f"num_hidden_layers={layers}"
            )
        hyperparameters = keras_tuner.HyperParameters()
        hyperparameters.values.update(values)
        return hyperparameters

    def _check_fixed(self, fixed):
        layers = fixed.get("num_hidden_layers")
        names = _hyperparameter_names(
            self.columns,
            max(MAX_HIDDEN_LAYERS, layers if _is_int(layers) else 0),
        )
        unknown = [name for name in fixed if name not in names]
        if unknown:
            raise ValueError(
                f"Unknown hyperparameters to fix: {unknown}. Valid names: "
                f"{names}"
            )
        checked = {}
        for name, value in fixed.items():
            checked[name] = self._check_fixed_value(name, value)
        if checked.get("implicit") and len(self.columns) != 2:
            raise ValueError(
                "`implicit=True` needs exactly two columns (each described "
                f"by the other). Received the columns {self.columns}"
            )
        if checked.get("bounded_output") and self.rating_range is None:
            raise ValueError(
                "`bounded_output=True` needs a `rating_range`. Received: "
                "rating_range=None"
            )
        return checked

    def _check_fixed_value(self, name, value):
        if name.endswith("_output_dim") or name.startswith("hidden_units_"):
            return _checks.positive_int(name, value)
        if name == "batch_size":
            return _checks.positive_int(name, value)
        if name == "num_hidden_layers":
            return _checks.non_negative_int(name, value)
        if name in ("dropout", "entity_dropout", "ema_momentum"):
            return _checks.rate(name, value)
        if name in ("bias_terms", "bounded_output", "implicit"):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={value!r}"
                )
            return bool(value)
        if name in ("embeddings_l2", "learning_rate"):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or value < 0
                or (name == "learning_rate" and value == 0)
            ):
                kind = "> 0" if name == "learning_rate" else ">= 0"
                raise ValueError(
                    f"`{name}` must be a finite float {kind}. Received: "
                    f"{name}={value!r}"
                )
            return float(value)
        for choice_name, choices in (
            ("schedule", SCHEDULES),
            ("embeddings_initializer", EMBEDDINGS_INITIALIZERS),
        ):
            if name == choice_name:
                if value not in choices:
                    raise ValueError(
                        f"`{name}` must be one of {list(choices)}. "
                        f"Received: {name}={value!r}"
                    )
                return value
        if name == "optimizer":
            if value not in OPTIMIZERS:
                raise ValueError(
                    f"`optimizer` must be one of {list(OPTIMIZERS)}. "
                    f"Received: optimizer={value!r}"
                )
            return value
        # activation
        if not isinstance(value, str):
            raise ValueError(
                "`activation` must be the name of a Keras activation. "
                f"Received: activation={value!r}"
            )
        try:
            keras.activations.get(value)
        except ValueError as error:
            raise ValueError(
                "`activation` must be the name of a Keras activation. "
                f"Received: activation={value!r}"
            ) from error
        return value


def _steps_per_epoch(x, batch_size):
    if _is_unbatched(x):
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


def _set_schedule_steps(schedule, steps):
    """Sets the warm-up and decay steps of a `"cosine"` schedule."""
    steps = max(1, steps)
    warmup = steps // 5
    schedule.decay_steps = steps - warmup
    schedule.warmup_steps = warmup


def output_dim_choices(num_rows):
    """The searched embedding sizes for a table of `num_rows` rows.

    `auto_output_dim(num_rows)` times 0.25, 0.5, 1 and 2, rounded, at
    least 1, sorted and without repeats.

    Args:
        num_rows: Integer. Number of rows of the table (the cardinality).

    Returns:
        Sorted list of distinct positive integers.
    """
    auto = auto_output_dim(num_rows)
    return sorted(
        {max(1, round(auto * factor)) for factor in OUTPUT_DIM_FACTORS}
    )


def _hyperparameter_names(columns, max_layers):
    names = [f"{column}_output_dim" for column in columns]
    names.append("num_hidden_layers")
    names.extend(f"hidden_units_{index}" for index in range(max_layers))
    names.extend(
        [
            "activation",
            "dropout",
            "embeddings_l2",
            "embeddings_initializer",
            "entity_dropout",
            "bias_terms",
            "bounded_output",
            "implicit",
            "optimizer",
            "learning_rate",
            "schedule",
            "ema_momentum",
            "batch_size",
        ]
    )
    return names


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_unbatched(x):
    """True for inputs that `fit` batches itself (arrays, dicts, frames)."""
    if isinstance(x, (collections.abc.Mapping, np.ndarray, list, tuple)):
        return True
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        return True
    # Backend tensors; a `tf.data.Dataset` has no `dtype`.
    return hasattr(x, "shape") and hasattr(x, "dtype")
