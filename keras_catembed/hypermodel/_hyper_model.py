"""`RatingHyperModel`: a KerasTuner search space over `RatingModel`s."""

from collections.abc import Mapping
from typing import Any
from typing import TypeAlias

import keras

from keras_catembed._inputs import check_columns as _check_columns
from keras_catembed._inputs import check_rating_range as _check_rating_range
from keras_catembed._inputs import first_two_paired
from keras_catembed._recipe import Recipe
from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.hypermodel import _docs
from keras_catembed.hypermodel import _recipe
from keras_catembed.hypermodel import _space
from keras_catembed.hypermodel._hyperparameters import MAX_HIDDEN_LAYERS
from keras_catembed.hypermodel._tuner import keras_tuner
from keras_catembed.rating_model import RatingModel

OBJECTIVE_METRICS = ("rmse", "mae", "mse")

HyperParametersLike: TypeAlias = keras_tuner.HyperParameters | Mapping[str, Any]


# KerasTuner has no type information: its classes are `Any`.
class RatingHyperModel(keras_tuner.HyperModel):  # type: ignore[misc]
    """A KerasTuner search space of compiled `RatingModel`s.

    `build(hp)` declares the hyperparameters below, then returns a
    `keras_catembed.RatingModel` that is compiled (loss `"mse"`, metrics
    `"rmse"`, `"mae"` and `"mse"`) and built, so its weights exist before
    training: KerasTuner's `max_model_size` counts the weights of built
    models only (the tables included), and `Tuner.get_best_models()`
    loads the best checkpoint into a freshly built model.

    `fit(hp, model, *args, **kwargs)` tunes the batch size and passes every
    other argument (the data, `epochs`, `validation_data`, and the tuner's
    callbacks) to `model.fit`. A trial whose training loss becomes NaN or
    infinite is stopped (`keras.callbacks.TerminateOnNaN`) and reported to
    the tuner as failed, so the search goes on; the tuner's
    `max_consecutive_failed_trials` (3 by default) still stops a search
    that keeps failing.

    A hyperparameter's default is used by `GridSearch`'s first trial and
    when KerasTuner needs a value without searching. With every default,
    the model is `keras_catembed.RatingModel(embeddings)` with its own
    defaults, trained with `keras_catembed.optimizers.SparseAdam` (Adam on
    the table rows a batch reads) at a learning rate of 0.001 on batches
    of 256, without table decay.

    The hyperparameters, their search ranges and their defaults are listed
    in the table of the [Tuning guide](../tuning.md#the-search-space).

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
        pair_dtype: Optional string, `"bfloat16"` to hold the pairs of
            the `implicit` and `neighborhood` trials in bfloat16, as
            `keras_catembed.RatingModel(pair_dtype=...)` does (about
            twice as fast on CPUs with native bfloat16), or `"auto"`. Not
            searched. Defaults to `None` (float32).
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
            wrong type or range, and for a `pair_dtype` no trial can use.

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
        embeddings: Mapping[str, int],
        *,
        objective_metric: str = "rmse",
        rating_range: tuple[float, float] | None = (0.5, 5.5),
        pair_dtype: str | None = None,
        name: str | None = None,
        tunable: bool = True,
        **fixed: Any,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        self.columns: list[str] = _check_columns(embeddings)
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
        self.rating_range: tuple[float, float] | None = _check_rating_range(
            rating_range
        )
        self.fixed = _space.check_fixed(self, fixed)
        self.pair_dtype = _space.check_pair_dtype(self, self.fixed, pair_dtype)

    # Public helpers ----------------------------------------------------------

    @property
    def objective(self) -> keras_tuner.Objective:
        """The `keras_tuner.Objective` to pass to tuners.

        `keras_tuner.Objective("val_<objective_metric>", "min")`, e.g.
        `"val_rmse"`. Search with `validation_data` (or
        `validation_split`) so that the metric exists.
        """
        return keras_tuner.Objective(f"val_{self.objective_metric}", "min")

    @property
    def hyperparameter_names(self) -> list[str]:
        """List of the names of every hyperparameter, in declaration order."""
        return _space.names(self, self._max_layers())

    def values(self, hp: HyperParametersLike) -> dict[str, Any]:
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
        hp = _space.as_hyperparameters(self, hp, self._max_layers(), self.fixed)
        return _space.declare(hp, self, self.fixed, self._max_layers())

    def model_kwargs(self, hp: HyperParametersLike) -> dict[str, Any]:
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
            `activation`, `dropout`, `bias_terms`, `rating_range`,
            `implicit`, `neighborhood` and `pair_dtype` (`None` for a
            trial without pairs).
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
            "implicit": first_two_paired(values["implicit"], self.columns),
            "neighborhood": first_two_paired(
                values["neighborhood"], self.columns
            ),
            "pair_dtype": (
                self.pair_dtype
                if values["implicit"] or values["neighborhood"]
                else None
            ),
        }

    def recipe(self, hp: HyperParametersLike, *, epochs: int = 1) -> Recipe:
        """Turns the training hyperparameters into a training recipe.

        `optimizer`, `learning_rate`, `schedule`, `ema_momentum`,
        `table_decay` and `batch_size` make a
        `keras_catembed.training.Recipe`, the one that
        `build` and `fit` train a trial with: save it with the best model
        (`keras_catembed.presets.save_to_preset(model, path, recipe)`), or
        train again with `recipe.fit`.

        Args:
            hp: A `keras_tuner.HyperParameters` or a dict of values by name.
            epochs: Positive integer. The recipe's number of epochs.
                Defaults to 1 (`fit` uses the `epochs` it is given).

        Returns:
            A `keras_catembed.training.Recipe`.
        """
        return _recipe.recipe(self.values(hp), epochs=epochs)

    def compile_kwargs(
        self,
        hp: HyperParametersLike,
        steps: int | None = None,
        *,
        model: Any = None,
    ) -> dict[str, Any]:
        """Turns hyperparameters into `model.compile` kwargs.

        Args:
            hp: A `keras_tuner.HyperParameters` or a dict of values by name.
            steps: Optional integer. The number of training steps (batches
                per epoch times epochs), which the `"cosine"` schedule
                needs. Without it that schedule has placeholder step
                counts, which `fit` sets.
            model: The `RatingModel` to compile (of `model_kwargs(hp)`).
                Needed when `table_decay` applies: the decay reaches its
                embedding tables only.

        Returns:
            Dict with a new `optimizer` (`Recipe.make_optimizer` of
            `recipe(hp)`), the loss `"mse"` and the metrics `rmse`, `mae`
            and `mse`.
        """
        recipe = self.recipe(hp)
        if recipe.table_decay is not None and model is None:
            raise ValueError(
                f"`table_decay={recipe.table_decay}` decays the model's "
                "embedding tables only: pass the model to compile, "
                "`compile_kwargs(hp, steps, model=model)`."
            )
        return recipe.compile_kwargs(
            optimizer=recipe.make_optimizer(steps=steps, model=model),
            metrics=_recipe.metrics(),
        )

    def fit_kwargs(self, hp: HyperParametersLike) -> dict[str, Any]:
        """Turns hyperparameters into `model.fit` kwargs.

        Args:
            hp: A `keras_tuner.HyperParameters` or a dict of values by name.

        Returns:
            Dict with the key `batch_size`.
        """
        return {"batch_size": self.values(hp)["batch_size"]}

    # HyperModel API ----------------------------------------------------------

    def build(self, hp: keras_tuner.HyperParameters) -> RatingModel:
        model = RatingModel(**self.model_kwargs(hp))
        recipe = self.recipe(hp)
        rate = recipe.learning_rate_for()
        optimizer = recipe.make_optimizer(learning_rate=rate, model=model)
        model.compile(
            **recipe.compile_kwargs(
                optimizer=optimizer, metrics=_recipe.metrics()
            )
        )
        # `fit` sets the length of a "cosine" schedule.
        model._hypermodel_schedule = None if isinstance(rate, float) else rate
        model.build()
        # Creating the optimizer's variables now lets a checkpoint written
        # during training load into a model from `build` without skipping
        # them (`Tuner.get_best_models` does exactly that).
        model.optimizer.build(model.trainable_variables)
        return model

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: RatingModel,
        *args: Any,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        """Trains `model` with the tuned batch size.

        A model with implicit feedback or a neighbourhood is first adapted
        to the training inputs (`model.adapt(x, y)`), which must then be a
        dict of id arrays (and the ratings, for a neighbourhood).

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
        _recipe.check_fit_kwargs(kwargs)
        recipe = self.recipe(hp, epochs=kwargs.pop("epochs", 1))
        # The pairs and the schedule's length come from the training rows.
        args, kwargs = _recipe.split_validation(args, kwargs)
        x = _recipe.adapt(model, args, kwargs)
        schedule = getattr(model, "_hypermodel_schedule", None)
        if schedule is not None:
            recipe.set_schedule_steps(schedule, recipe.fit_steps(x))
        callbacks = _recipe.stop_on_nan(kwargs.pop("callbacks", None))
        # The averaged weights at the end of each epoch: the objective and
        # the tuner's checkpoints are those of the average.
        kwargs.update(
            recipe.fit_kwargs(model, x, callbacks=callbacks, swap_on_epoch=True)
        )
        history = model.fit(*args, **kwargs)
        if _recipe.diverged(history):
            losses = history.history["loss"]
            raise keras_tuner.errors.FailedTrialError(
                f"Training diverged: the loss became {losses[-1]} after "
                f"{len(losses)} epoch(s) with the hyperparameters "
                f"{hp.values}."
            )
        return history

    # Private -----------------------------------------------------------------

    def _max_layers(self) -> int:
        return max(
            MAX_HIDDEN_LAYERS, int(self.fixed.get("num_hidden_layers", 0))
        )


# `help(RatingHyperModel)` lists the hyperparameters.
_docs.list_hyperparameters(RatingHyperModel)
