"""Cross-validation of rating models.

Each fold of the outer protocol trains on its training part only and is
scored on its test part only. Whatever is chosen on validation data (the
epoch where early stopping halts, the hyperparameters of a search) comes
from a carve-out of the fold's own training part, never from the rows of
another fold: on k-fold data every other fold's test part lies inside this
fold's training part, so validating on "the test part of the last run"
would choose on rows that are later reported as test.

Nested cross-validated tuning is in `keras_catembed.evaluation.nested`.
"""

import collections.abc
import os
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_catembed.evaluation import protocols as _protocols
from keras_catembed.evaluation._common import Data
from keras_catembed.evaluation._common import Results
from keras_catembed.evaluation._common import check_seed as _check_seed
from keras_catembed.evaluation._common import empty_results as _empty_results
from keras_catembed.evaluation._common import finish as _finish
from keras_catembed.evaluation._common import model_data as _xy
from keras_catembed.evaluation._common import num_rows as _num_rows
from keras_catembed.evaluation._common import score as _score
from keras_catembed.evaluation._common import set_seed as _set_seed

__all__ = ["cross_validate"]


def cross_validate(
    build: str | os.PathLike[str] | Mapping[str, Any] | Callable[[Data], Any],
    data: Data,
    *,
    protocol: Any = 5,
    inner_validation: float | _protocols.Protocol | None = None,
    target: str = "rating",
    seed: int = 0,
    verbose: bool = False,
    fit_verbose: int | str = 0,
) -> Results:
    """Cross-validates a rating model, like Surprise's `cross_validate`.

    For each split of `protocol`, a fresh model is built and trained on the
    split's training part, then its predictions on the test part are
    scored. With `inner_validation`, a validation part is first carved out
    of the training part; the model trains on the rest and gets the
    carve-out as `validation_data` (for `keras.callbacks.EarlyStopping`
    and the like). The test part is used for nothing but the scores.

    Args:
        build: What to train on each fold. Either a preset: a name (a key
            of `keras_catembed.presets.PRESETS`), a preset dict (such as
            `presets.load("recommended")` with some settings changed) or a
            folder written by `presets.save_to_preset`, whose model is
            built with the preset's training settings (learning rate and
            schedule, batch size, epochs; a model with implicit feedback is
            adapted to the training inputs). Each fold trains a new model:
            a folder's saved weights are not loaded. Or a function called
            with the
            fold's training data (a `Ratings` or a dict, like `data`, without
            the validation carve-out) that returns a compiled Keras model,
            or a pair `(model, fit_kwargs)` whose dict is passed to
            `model.fit` (e.g. `{"epochs": 10, "batch_size": 256,
            "callbacks": [...]}`). Create callbacks inside the function:
            each fold needs its own. Size embedding tables on the whole
            data set (`Ratings` splits share its index maps), since test
            ids may be absent from a training part.
        data: A `keras_catembed.datasets.movielens.Ratings`, or a dict of
            1-D arrays: the model's input columns and the `target` column
            (other columns, such as timestamps or fold labels, are left out
            of the inputs of a model with a `columns` attribute, like
            `RatingModel`; a preset's model has a column for each key but
            `target`, `"timestamp"` and the protocols' `fold_column`;
            other models get every column but `target` and
            `"timestamp"`).
        protocol: A `keras_catembed.evaluation.protocols.Protocol`, or a
            spec for `protocols.get`: an integer number of shuffled folds,
            a test fraction, or `"official"`. Defaults to `5` (`KFold(5)`).
        inner_validation: Optional float in (0, 1) (the fraction of each
            training part to hold out at random, seeded with `seed`) or a
            one-split `Protocol` applied to the training part (e.g.
            `LeaveLastN(1)`). Defaults to `None` (no validation data).
        target: String. The rating column of dict data. Defaults to
            `"rating"`.
        seed: Integer. Seed of the `inner_validation` carve-out and of
            `keras.utils.set_random_seed` before each fold's model is
            built. Defaults to `0`.
        verbose: Boolean. Whether to print a table of the per-fold results.
            Defaults to `False`.
        fit_verbose: The `verbose` of `model.fit`. Defaults to `0`.

    Returns:
        A dict with, for each of `"test_rmse"`, `"test_mae"`, `"fit_time"`
        and `"test_time"` (seconds; the fit time includes `adapt`, and the
        test predictions run in batches of 4096), a float64 array with one
        entry per fold; `"mean"` and `"std"` (dicts of floats with the
        same keys); and `"num_train"` (rows the
        model trained on, without the validation carve-out) and
        `"num_test"`: lists with one count per fold.

    Example:

    ```python
    ratings = keras_catembed.datasets.movielens.load_ratings("ml-100k")
    results = cross_validate(
        "course", ratings, protocol=OfficialFolds(), verbose=True
    )
    print(results["mean"]["test_rmse"])
    ```
    """
    seed = _check_seed(seed)
    protocol = _protocols.get(protocol)
    inner = (
        None
        if inner_validation is None
        else _protocols._inner_split(inner_validation, seed, "inner_validation")
    )
    if isinstance(build, (str, os.PathLike, Mapping)):
        build = _preset_builder(
            build, data, target, _label_columns(protocol, inner)
        )
    elif not callable(build):
        raise ValueError(
            "`build` must be a preset (a name, a preset dict or a preset "
            f"folder) or a function of the training data. Received: {build!r}"
        )
    results = _empty_results()
    for train, test in protocol.split_data(data):
        validation = None
        if inner is not None:
            (train, validation), *_ = inner.split_data(train)
        _set_seed(seed)
        start = time.perf_counter()
        built = build(train)
        model, fit_kwargs = built if isinstance(built, tuple) else (built, {})
        fit_kwargs = dict(fit_kwargs)
        fit_kwargs.setdefault("verbose", fit_verbose)
        if validation is not None:
            fit_kwargs["validation_data"] = _xy(model, validation, target)
        model.fit(*_xy(model, train, target), **fit_kwargs)
        fit_time = time.perf_counter() - start
        _score(results, model, train, test, target, fit_time)
    return _finish(results, verbose)


def _label_columns(*splits: _protocols.Protocol | None) -> set[str]:
    """The columns of dict data that `splits` read fold labels from."""
    return {
        column
        for split in splits
        if isinstance(column := getattr(split, "fold_column", None), str)
    }


def _preset_builder(
    preset: str | os.PathLike[str] | Mapping[str, Any],
    data: Data,
    target: str,
    labels: set[str],
) -> Callable[[Data], tuple[Any, dict[str, Any]]]:
    """A `build` function for a preset (`cross_validate`).

    The model's columns of dict data are its keys but `target`,
    `"timestamp"` and the fold-label columns `labels`.
    """

    from keras_catembed import presets
    from keras_catembed.rating_model import RatingModel
    from keras_catembed.training import Recipe
    from keras_catembed.training import _ratings_cardinalities

    config = presets.load(preset)
    name = preset if isinstance(preset, str) else "preset"
    recipe = Recipe.from_config(config["recipe"])
    if isinstance(data, collections.abc.Mapping):
        left_out = {target, "timestamp", *labels}
        columns = [key for key in data if key not in left_out]
        values = {c: np.asarray(data[c]) for c in columns}
        embeddings = {
            c: int(np.max(v)) + 1 if len(v) else 1 for c, v in values.items()
        }
    else:
        embeddings = _ratings_cardinalities(config, data)

    def build(train: Data) -> tuple[Any, dict[str, Any]]:
        model = presets.build_model(config, embeddings, RatingModel, name=name)
        model.recipe = recipe
        if model.implicit or model.neighborhood:
            model.adapt(*_xy(model, train, target))
        recipe.compile(model, _num_rows(train))
        fit_kwargs = {"batch_size": recipe.batch_size, "epochs": recipe.epochs}
        return model, fit_kwargs

    return build


def __getattr__(name: str) -> Any:
    # `nested_cross_validate` lived here; it moved to `evaluation.nested`.
    if name == "nested_cross_validate":
        import warnings

        from keras_catembed import evaluation

        warnings.warn(
            "`keras_catembed.evaluation.cross_validation.nested_cross_validate`"
            " moved: import it from `keras_catembed.evaluation` (or "
            "`keras_catembed.evaluation.nested`).",
            DeprecationWarning,
            stacklevel=2,
        )
        return evaluation.nested_cross_validate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
