"""Training recipes: how a rating model is compiled and fitted.

A `Recipe` holds the training settings that go with a model: the
optimizer, its (peak) learning rate and schedule, a moving average of the
weights, the batch size and the number of epochs. `recipe.compile(model,
num_rows)` compiles a model with them (MSE loss, RMSE and MAE metrics) and
`recipe.fit(model, x, y)` trains it. Every preset has one
(`keras_catembed.presets`), and `train` fits a preset's model and recipe
on MovieLens ratings. `blend` builds the library's most accurate model
for a training part: preset models averaged with item autoencoders.
"""

import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import keras

from keras_catembed import _checks
from keras_catembed import _inputs
from keras_catembed import _preset_columns
from keras_catembed._blend import blend
from keras_catembed._preset_table import EMBEDDING_KEYS
from keras_catembed._preset_table import LEGACY_KEYS
from keras_catembed._preset_table import MODEL_KEYS
from keras_catembed._recipe import Recipe
from keras_catembed._recipe_parts import OPTIMIZERS
from keras_catembed._recipe_parts import SCHEDULES

if TYPE_CHECKING:
    from keras_catembed.datasets.movielens import Ratings

__all__ = ["OPTIMIZERS", "SCHEDULES", "Recipe", "blend", "train"]


def train(
    train: "Ratings",
    preset: str | os.PathLike[str] | Mapping[str, Any] = "recommended",
    *,
    validation: "Ratings | None" = None,
    validation_name: str = "val",
    verbose: str | int = 2,
    seed: int | None = None,
    callbacks: Sequence[Any] | None = None,
    **overrides: Any,
) -> tuple[Any, Any]:
    """Builds, compiles and fits a preset's model on MovieLens ratings.

    The model comes from `RatingModel.from_preset(preset, ...)` with the
    cardinalities of `train` (and the user features the preset embeds); a
    model with implicit feedback or a neighbourhood is adapted to the
    training pairs; then the preset's recipe compiles and fits it.

    Args:
        train: `keras_catembed.datasets.movielens.Ratings` to fit.
        preset: A name in `keras_catembed.presets.PRESETS`, a folder
            written by `keras_catembed.presets.save_to_preset` (its settings;
            its saved weights are not loaded), or a preset dict (such as
            `presets.load("recommended")` with some settings changed).
        validation: Optional `Ratings` passed as validation data.
        validation_name: String. The prefix of the metrics on `validation`
            in the progress log and the history, e.g. `"test"` when
            `validation` is the test part (`test_rmse`). Defaults to
            `"val"` (Keras's `val_rmse`).
        verbose: Keras `fit` verbosity.
        seed: Optional integer. Seeds Python's, NumPy's and the backend's
            generators (`keras.utils.set_random_seed`) before the model is
            built, which fixes the initial weights, the implicit-feedback
            sample, the shuffling and the dropout masks: the same seed
            gives the same model on a CPU, on every backend. Defaults to
            `None` (unseeded).
        callbacks: Optional list of Keras callbacks, passed to `fit`
            after the one that renames the validation metrics.
        **overrides: Model settings (`RatingModel` arguments, or
            `EntityEmbedding` ones such as `output_dim` for every column)
            or recipe settings (`learning_rate`, `batch_size`, `epochs`,
            `schedule`, `ema_momentum`, `optimizer`). `implicit=True` and
            `neighborhood=True` mean the users' and movies' pairs, also
            for a preset of more than two columns
            (`presets.with_columns`).

    Returns:
        `(model, history)`.
    """
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    for name, part in (("train", train), ("validation", validation)):
        if part is not None and not isinstance(part, movielens.Ratings):
            raise ValueError(
                f"`{name}` must be a keras_catembed.datasets.movielens.Ratings "
                "(for a dict of arrays, build the model with "
                "`presets.build_model` and train it with `model.fit`). "
                f"Received: {name} of type {type(part).__name__}"
            )
    if seed is not None:
        keras.utils.set_random_seed(_checks.seed("seed", seed))
    config = presets.load(preset)
    recipe_keys = set(Recipe().get_config())
    model_keys = {*MODEL_KEYS, *EMBEDDING_KEYS, "dtype"}
    unknown = sorted(set(overrides) - recipe_keys - model_keys - {*LEGACY_KEYS})
    if unknown:
        raise ValueError(
            f"Unknown overrides {unknown}. Expected some of the recipe's "
            f"{sorted(recipe_keys)} or the model's {sorted(model_keys)}"
        )
    changes = {k: overrides.pop(k) for k in list(overrides) if k in recipe_keys}
    recipe = Recipe.from_config(config["recipe"]).replace(**changes)
    for key in ("implicit", "neighborhood"):
        if key in overrides:
            overrides[key] = _inputs.first_two_paired(
                overrides[key], _preset_columns.columns(config)
            )
    embeddings = _ratings_cardinalities(config, train)
    model = presets.build_model(config, embeddings, **overrides)
    x_train = movielens.inputs(train, model.columns)
    if model.implicit or model.neighborhood:
        # Implicit feedback describes ids by the training pairs only.
        model.adapt(x_train, train.rating)
    recipe.compile(model, len(train))
    fit_callbacks: list[Any] = []
    if validation is not None and validation_name != "val":
        fit_callbacks.append(_rename_metrics("val_", f"{validation_name}_"))
    fit_callbacks.extend(callbacks or [])
    history = recipe.fit(
        model,
        x_train,
        train.rating,
        validation_data=(
            None
            if validation is None
            else (
                movielens.inputs(validation, model.columns),
                validation.rating,
            )
        ),
        callbacks=fit_callbacks,
        verbose=verbose,
    )
    model.recipe = recipe
    return model, history


def _ratings_cardinalities(
    config: Mapping[str, Any], ratings: "Ratings"
) -> dict[str, int]:
    """The cardinality of each column a preset's model embeds for `ratings`.

    The columns are `_preset_columns.columns(config)`: the ids, the listed
    user features and time columns, and every column the model part sets
    per column (which a saved preset folder does for all of them).
    """
    return _preset_columns.cardinalities(
        _preset_columns.columns(config), ratings
    )


def _rename_metrics(old: str, new: str) -> Any:
    """A callback that renames the epoch metrics starting with `old`.

    The progress log and the history, which run after it, see the new
    names.
    """

    # Keras has no type information: its classes are `Any`.
    class RenameMetrics(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(
            self, epoch: int, logs: dict[str, Any] | None = None
        ) -> None:
            if logs is None:
                return
            for name in [n for n in logs if n.startswith(old)]:
                logs[new + name[len(old) :]] = logs.pop(name)

    return RenameMetrics()
