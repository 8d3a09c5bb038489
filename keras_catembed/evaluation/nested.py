"""Nested cross-validated tuning of rating models.

Each outer fold runs a KerasTuner search on its own training part only:
the trials train and validate on inner splits of that part, and the best
trial's hyperparameters are retrained on the whole training part and
scored on the fold's test part. No rating of any test part takes part in
the choice.
"""

import tempfile
import time
from collections.abc import Callable
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from keras_catembed.evaluation import protocols as _protocols
from keras_catembed.evaluation._common import Data
from keras_catembed.evaluation._common import Results
from keras_catembed.evaluation._common import check_seed as _check_seed
from keras_catembed.evaluation._common import empty_results as _empty_results
from keras_catembed.evaluation._common import finish as _finish
from keras_catembed.evaluation._common import model_data as _xy
from keras_catembed.evaluation._common import score as _score
from keras_catembed.evaluation._common import set_seed as _set_seed

__all__ = ["nested_cross_validate"]


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
    splits = _protocols._inner_split(inner, seed, "inner", one_split=False)
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
