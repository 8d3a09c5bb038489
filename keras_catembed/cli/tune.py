"""`catembed tune`: a KerasTuner search of RatingHyperModel."""

import argparse
import json
import os
from typing import Any
from typing import TextIO

from keras_catembed import _preset_columns
from keras_catembed._preset_table import CONFIG_FILE
from keras_catembed.cli import _common
from keras_catembed.datasets import movielens
from keras_catembed.datasets.movielens import Ratings

# The settings of a search, written in its project folder and compared
# when it is resumed.
SETTINGS_FILE = "catembed_search.json"
TUNERS = {
    "random": "RandomSearch",
    "bayesian": "BayesianOptimization",
    "hyperband": "Hyperband",
    "grid": "GridSearch",
}


def add_parser(commands: _common.Commands) -> None:
    """Adds the `tune` command to the subparsers `commands`."""
    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with KerasTuner",
        description="Search RatingHyperModel's hyperparameters on the "
        "training part of a split; the validation data is carved from the "
        "training part, never from the test part. Resumes the search in "
        "--directory unless --overwrite is given. Needs the [tuner] extra.",
    )
    _common._add_data_arguments(tune)
    _common._add_split_arguments(tune)
    _common._add_columns_argument(
        tune, "each with its size searched (<column>_output_dim)"
    )
    tune.add_argument(
        "--tuner",
        default="bayesian",
        choices=sorted(TUNERS),
        help="KerasTuner tuner (default: bayesian)",
    )
    tune.add_argument(
        "--max-trials",
        type=int,
        default=10,
        help="number of hyperparameter sets to try, >= 1 (not used by "
        "hyperband; default: 10)",
    )
    tune.add_argument(
        "--epochs",
        type=int,
        default=5,
        help="epochs per trial (Hyperband: its max_epochs; default: 5)",
    )
    tune.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share of the training part held out to score trials "
        "(default: 0.1)",
    )
    tune.add_argument(
        "--directory",
        default="catembed-tuning",
        help="folder of the search's state, to resume it (default: "
        "catembed-tuning)",
    )
    tune.add_argument(
        "--project-name",
        default=None,
        help="subfolder of --directory for this search (default: "
        "DATASET-SPLIT, e.g. ml-100k-u1)",
    )
    tune.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh instead of resuming, and replace existing "
        "--best-out and --preset-out files",
    )
    _common._add_pair_dtype_argument(
        tune,
        "the dtype of the pairs of implicit-feedback and neighbourhood "
        "trials (not searched)",
    )
    tune.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a hyperparameter (VALUE read as JSON, e.g. "
        "bias_terms=true); repeatable",
    )
    tune.add_argument(
        "--best-out",
        metavar="PATH",
        help="write the best hyperparameters to this .json file, and the "
        "best model beside it (.keras)",
    )
    tune.add_argument(
        "--preset-out",
        metavar="FOLDER",
        help="write the best trial as a preset folder (config.json: its "
        "model and training recipe, and model.weights.h5), which catembed "
        "train --preset FOLDER and RatingModel.from_preset read",
    )


def check(args: argparse.Namespace) -> None:
    """Checks the options of `catembed tune` before anything runs."""
    _common._check_output("--best-out", args.best_out, (".json",))
    if args.best_out is not None:
        _common._check_new("--best-out", args.best_out, args.overwrite)
        _common._check_new(
            "--best-out", _best_model_path(args.best_out), args.overwrite
        )
    args.columns = _common._added_columns(args.add_columns)
    if args.preset_out is not None and os.path.isfile(args.preset_out):
        raise _common.CommandError(
            "--preset-out names a file; expected a folder (created if "
            f"missing). Received: {args.preset_out!r}"
        )
    if args.preset_out is not None:
        _common._check_new(
            "--preset-out",
            os.path.join(args.preset_out, CONFIG_FILE),
            args.overwrite,
        )


def _check_resumable(project: str, settings: dict[str, Any]) -> None:
    """Refuses to resume a search in `project` run with other settings."""
    try:
        with open(os.path.join(project, SETTINGS_FILE)) as file:
            earlier = json.load(file)
    except FileNotFoundError:
        return
    # As JSON writes them (tuples become lists).
    settings = json.loads(json.dumps(settings))
    changed = [
        f"{key}: {earlier.get(key)!r} there, {value!r} now"
        for key, value in settings.items()
        if earlier.get(key) != value
    ]
    if changed:
        raise _common.CommandError(
            f"{project} holds a search run with other settings "
            f"({'; '.join(changed)}), which this one would resume; pass "
            "--overwrite to start afresh, or another --project-name or "
            "--directory"
        )


def _best_model_path(best_out: str) -> str:
    """The .keras file `--best-out` writes beside its .json file."""
    return os.path.splitext(best_out)[0] + ".keras"


def _fixed(pairs: list[str]) -> dict[str, Any]:
    fixed: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise _common.CommandError(
                f"--fix expects NAME=VALUE. Received: {pair!r}"
            )
        try:
            fixed[name] = json.loads(text)
        except json.JSONDecodeError:
            fixed[name] = text
    return fixed


def _typed(value: object) -> str:
    """A hyperparameter value as one would type it after `--fix NAME=`.

    Floats are rounded to 6 significant digits (0.3, not
    0.30000000000000004); booleans read `true`/`false` as in JSON.
    """
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _reporting(tuner_class: Any, out: TextIO) -> Any:
    """A subclass of `tuner_class` that prints each trial as it ends.

    One line per finished trial: its number, hyperparameters, score and
    the best score so far (KerasTuner's `on_trial_end` hook).
    """

    # KerasTuner has no type information: its classes are `Any`.
    class Reporting(tuner_class):  # type: ignore[misc]
        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            objective = self.oracle.objective
            score = "failed" if trial.score is None else f"{trial.score:.4f}"
            best = self.oracle.get_best_trials(num_trials=1)
            best = (
                "n/a"
                if not best or best[0].score is None
                else f"{best[0].score:.4f}"
            )
            values = ", ".join(
                f"{k}={_typed(v)}"
                for k, v in sorted(trial.hyperparameters.values.items())
            )
            print(
                f"trial {trial.trial_id} done: {objective.name}={score} "
                f"(best so far {best}); {values}",
                file=out,
            )
            if hasattr(out, "flush"):
                out.flush()

    Reporting.__name__ = tuner_class.__name__
    return Reporting


def run(args: argparse.Namespace, out: TextIO) -> list[Any]:
    """Runs `catembed tune`; returns its trials, best first."""
    from keras_catembed.hypermodel import RatingHyperModel
    from keras_catembed.hypermodel import keras_tuner

    fixed = _fixed(args.fix)
    ratings = _common._load(args)
    split, (train, _) = _common._split(ratings, args)
    train, validation = train.random_split(
        args.validation_fraction, seed=args.seed
    )
    hypermodel = RatingHyperModel(
        _preset_columns.cardinalities(
            [*_preset_columns.ID_COLUMNS, *args.columns], ratings
        ),
        pair_dtype=args.pair_dtype,
        **fixed,
    )
    tuner_class = _reporting(getattr(keras_tuner, TUNERS[args.tuner]), out)
    options = {
        "objective": hypermodel.objective,
        "directory": args.directory,
        "project_name": args.project_name or f"{ratings.name}-{split}",
        "overwrite": args.overwrite,
        "seed": args.seed,
    }
    project = os.path.join(args.directory, options["project_name"])
    settings = {
        "dataset": ratings.name,
        "split": split,
        "test_fraction": args.test_fraction if split == "random" else None,
        "seed": args.seed,
        "validation_fraction": args.validation_fraction,
        "columns": list(hypermodel.columns),
        "tuner": args.tuner,
        "epochs": args.epochs,
        "fix": fixed,
        "pair_dtype": args.pair_dtype,
    }
    if not args.overwrite:
        _check_resumable(project, settings)
    if args.tuner == "hyperband":
        tuner = tuner_class(hypermodel, max_epochs=args.epochs, **options)
    else:
        tuner = tuner_class(hypermodel, max_trials=args.max_trials, **options)
    # With `overwrite`, KerasTuner has just removed the old project folder.
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, SETTINGS_FILE), "w") as file:
        json.dump(settings, file, indent=2)
    print(
        f"Tuning on {ratings.name} ({split} split): {len(train):,} training "
        f"and {len(validation):,} validation ratings; {args.tuner} search "
        f"in {os.path.join(args.directory, options['project_name'])}.",
        file=out,
    )
    import keras

    # Trials repeat: the same seed draws the same weights and batches.
    keras.utils.set_random_seed(args.seed)
    columns = hypermodel.columns
    tuner.search(
        movielens.inputs(train, columns),
        train.rating,
        epochs=args.epochs,
        validation_data=(
            movielens.inputs(validation, columns),
            validation.rating,
        ),
        verbose=0,
    )
    trials: list[Any] = tuner.oracle.get_best_trials(
        num_trials=len(tuner.oracle.trials)
    )
    objective = hypermodel.objective.name
    print(f"{'trial':<8} {objective:>10}  hyperparameters", file=out)
    for trial in trials:
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        values = ", ".join(
            f"{k}={_typed(v)}"
            for k, v in sorted(trial.hyperparameters.values.items())
        )
        print(f"{trial.trial_id:<8} {score:>10}  {values}", file=out)
    best = tuner.get_best_hyperparameters()[0]
    if args.best_out:
        model_path = _best_model_path(args.best_out)
        tuner.get_best_models()[0].save(model_path)
        with open(args.best_out, "w", encoding="utf-8") as file:
            json.dump(
                {
                    "dataset": ratings.name,
                    "split": split,
                    "validation_fraction": args.validation_fraction,
                    "objective": objective,
                    "score": trials[0].score,
                    "hyperparameters": best.values,
                    "model": model_path,
                },
                file,
                indent=2,
            )
        print(f"Wrote {args.best_out} and {model_path}", file=out)
    if args.preset_out:
        _write_preset(args, tuner, hypermodel, best, trials[0], ratings, split)
        print(f"Wrote the preset {args.preset_out}", file=out)
    return trials


def _write_preset(
    args: argparse.Namespace,
    tuner: Any,
    hypermodel: Any,
    best: Any,
    trial: Any,
    ratings: Ratings,
    split: str,
) -> None:
    """Writes the best trial as a preset folder (`save_to_preset`)."""
    from keras_catembed import presets

    recipe = hypermodel.recipe(best, epochs=args.epochs)
    score = "failed" if trial.score is None else f"{trial.score:.4f}"
    presets.save_to_preset(
        tuner.get_best_models()[0],
        args.preset_out,
        recipe,
        description=(
            f"Best of a {args.tuner} search on {ratings.name} ({split} "
            f"split, validation: {args.validation_fraction:g} of the "
            f"training part): {hypermodel.objective.name}={score}."
        ),
    )
