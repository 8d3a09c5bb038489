"""Cross-validation of rating models, and nested cross-validated tuning.

Each fold of the outer protocol trains on its training part only and is
scored on its test part only. Whatever is chosen on validation data (the
epoch where early stopping halts, the hyperparameters of a search) comes
from a carve-out of the fold's own training part, never from the rows of
another fold: on k-fold data every other fold's test part lies inside this
fold's training part, so validating on "the test part of the last run"
would choose on rows that are later reported as test.
"""

import collections.abc
import os
import tempfile
import time
from collections.abc import Callable
from collections.abc import Mapping
from types import ModuleType
from typing import Any
from typing import cast

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

__all__ = ["cross_validate", "nested_cross_validate"]


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
        else _inner_protocol(inner_validation, seed, "inner_validation")
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


def nested_cross_validate(
    hypermodel: Any,
    data: Data,
    *,
    outer: Any = 5,
    inner: float | _protocols.Protocol = 0.2,
    tuner: str | type = "random",
    max_trials: int = 10,
    epochs: int = 1,
    objective: Any = None,
    directory: str | None = None,
    target: str = "rating",
    seed: int = 0,
    tuner_kwargs: Mapping[str, Any] | None = None,
    verbose: bool = False,
    fit_verbose: int | str = 0,
) -> Results:
    """Nested cross-validation: a KerasTuner search inside each outer fold.

    For each split of `outer`, the search sees only the outer training
    part: every trial trains on the training rows of each `inner` split of
    it and is scored on that split's validation rows. The best
    hyperparameters are then retrained on the whole outer training part,
    and that model is scored on the outer test part. The outer test
    metrics estimate how well the whole procedure (search included) does on
    unseen ratings; the best score of a search does not, since it was
    chosen on its own validation rows.

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g.
            `keras_catembed.RatingHyperModel`, sized on the whole data
            set) or a function `build(hp)` returning a compiled model.
        data: A `Ratings` or a dict of 1-D arrays, as in `cross_validate`.
        outer: The outer protocol (a `Protocol` or a spec for
            `protocols.get`). Defaults to `5`.
        inner: The inner protocol, applied to each outer training part: a
            float in (0, 1) (a random hold-out of that fraction, seeded with
            `seed`) or a `Protocol`; with several splits (`KFold(3)`), each
            trial's score is the mean over them. Defaults to `0.2`.
        tuner: `"random"`, `"bayesian"`, `"hyperband"` or `"grid"`, or a
            `keras_tuner.Tuner` subclass. Defaults to `"random"`.
        max_trials: Positive integer. Trials per search (not passed to
            Hyperband). Defaults to `10`.
        epochs: Positive integer. Epochs of each trial and of the retrained
            model (Hyperband's `max_epochs`). Defaults to `1`.
        objective: The tuner's objective. Defaults to the hypermodel's
            `objective` attribute, else `"val_loss"`.
        directory: Optional folder for the tuners' files (a project per
            outer fold). Defaults to `None` (a temporary folder).
        target: String. The rating column of dict data. Defaults to
            `"rating"`.
        seed: Integer. Seed of the tuner, of the inner hold-out and of
            `keras.utils.set_random_seed`. Defaults to `0`.
        tuner_kwargs: Optional dict of more tuner arguments.
        verbose: Boolean. Whether to print a table of the per-fold results.
            Defaults to `False`.
        fit_verbose: The `verbose` of the search and of `model.fit`.
            Defaults to `0`.

    Returns:
        The dict of `cross_validate`, plus `"hyperparameters"`: for each
        outer fold, the dict of the chosen hyperparameter values.
    """
    import keras_tuner

    from keras_catembed import _checks

    seed = _check_seed(seed)
    max_trials = _checks.positive_int("max_trials", max_trials)
    epochs = _checks.positive_int("epochs", epochs)
    outer = _protocols.get(outer)
    splits = _inner_protocol(inner, seed, "inner", one_split=False)
    tuner_class = _tuner_class(tuner, keras_tuner)
    if objective is None:
        objective = getattr(hypermodel, "objective", "val_loss")
    if not isinstance(hypermodel, keras_tuner.HyperModel):
        if not callable(hypermodel):
            raise ValueError(
                "`hypermodel` must be a `keras_tuner.HyperModel` or a "
                f"function of `hp`. Received: {hypermodel!r}"
            )
        hypermodel = _function_hypermodel(hypermodel)
    results = _empty_results()
    results["hyperparameters"] = []
    with tempfile.TemporaryDirectory() as scratch:
        for fold, (train, test) in enumerate(outer.split_data(data)):
            _set_seed(seed)
            search = _inner_search(hypermodel, train, splits, target)
            kwargs = dict(
                hypermodel=search,
                objective=objective,
                directory=directory or scratch,
                project_name=f"outer_fold_{fold + 1}",
                overwrite=True,
                seed=seed,
            )
            if tuner_class is keras_tuner.Hyperband:
                kwargs["max_epochs"] = epochs
            else:
                kwargs["max_trials"] = max_trials
            kwargs.update(tuner_kwargs or {})
            search_tuner = tuner_class(**kwargs)
            search_tuner.search(epochs=epochs, verbose=fit_verbose)
            best = _best_scored(search_tuner, fold)
            _set_seed(seed)
            start = time.perf_counter()
            model = hypermodel.build(best)
            hypermodel.fit(
                best,
                model,
                *_xy(model, train, target),
                epochs=epochs,
                verbose=fit_verbose,
            )
            fit_time = time.perf_counter() - start
            _score(results, model, train, test, target, fit_time)
            results["hyperparameters"].append(dict(best.values))
    return _finish(results, verbose)


def _best_scored(search_tuner: Any, fold: int) -> Any:
    """The best completed trial's hyperparameters; an error if none."""
    import keras_tuner

    completed = keras_tuner.engine.trial.TrialStatus.COMPLETED
    trials = search_tuner.oracle.get_best_trials(1)
    if not trials or trials[0].status != completed:
        raise RuntimeError(
            f"Every trial of the search in outer fold {fold + 1} failed, so "
            "there is no hyperparameter choice to retrain and score (see the "
            "trials' errors above)."
        )
    return trials[0].hyperparameters


def _set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the backend (`keras.utils.set_random_seed`)."""
    import keras

    keras.utils.set_random_seed(seed)


def _inner_search(
    hypermodel: Any, train: Data, inner: _protocols.Protocol, target: str
) -> Any:
    """A hypermodel whose trials train and validate on the inner splits.

    It ignores the data given to `search`: it only ever sees `train`, the
    outer training part.
    """
    import keras_tuner

    # KerasTuner has no type information: its classes are `Any`.
    class InnerSearch(keras_tuner.HyperModel):  # type: ignore[misc]
        def build(self, hp: Any) -> Any:
            return hypermodel.build(hp)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            histories = []
            for index, (fit_part, validation) in enumerate(
                inner.split_data(train)
            ):
                if index:
                    model = hypermodel.build(hp)
                histories.append(
                    hypermodel.fit(
                        hp,
                        model,
                        *_xy(model, fit_part, target),
                        validation_data=_xy(model, validation, target),
                        **kwargs,
                    )
                )
            # KerasTuner averages the objective over a list of results.
            return histories

    return InnerSearch(name=getattr(hypermodel, "name", None))


def _function_hypermodel(build: Callable[[Any], Any]) -> Any:
    import keras_tuner

    class FunctionHyperModel(keras_tuner.HyperModel):  # type: ignore[misc]
        def build(self, hp: Any) -> Any:
            return build(hp)

    return FunctionHyperModel()


def _tuner_class(tuner: str | type, keras_tuner: ModuleType) -> Any:
    tuners = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
        "grid": keras_tuner.GridSearch,
    }
    if isinstance(tuner, str) and tuner in tuners:
        return tuners[tuner]
    if isinstance(tuner, type) and issubclass(tuner, keras_tuner.Tuner):
        return tuner
    raise ValueError(
        f"`tuner` must be one of {sorted(tuners)} or a keras_tuner.Tuner "
        f"subclass. Received: tuner={tuner!r}"
    )


def _inner_protocol(
    inner: object, seed: int, argument: str, one_split: bool = True
) -> _protocols.Protocol:
    if inner is None:
        raise ValueError(f"`{argument}` must not be None.")
    if isinstance(inner, _protocols.Protocol):
        if one_split and not isinstance(
            inner,
            (_protocols.HoldOut, _protocols.LeaveLastN, _protocols.TimeCut),
        ):
            raise ValueError(
                f"`{argument}` must be a fraction in (0, 1) or a one-split "
                "protocol (HoldOut, LeaveLastN, TimeCut). Received: "
                f"{type(inner).__name__}"
            )
        return inner
    try:
        # HoldOut rejects what is not a fraction in (0, 1).
        return _protocols.HoldOut(cast(float, inner), seed=seed)
    except ValueError:
        raise ValueError(
            f"`{argument}` must be a fraction in (0, 1) or a protocol. "
            f"Received: {argument}={inner!r}"
        ) from None


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
