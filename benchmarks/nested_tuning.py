"""Nested cross-validation of the search behind `"tuned-ml-100k"`.

`tune_presets.py` chose `"tuned-ml-100k"` on a validation part carved from
u1.base, which holds the test parts of u2..u5: only its u1 figure is clean.
Here the same search (search 3 of `docs/tuning.md`: the `preset` space
around `"recommended"`, its defaults as the first trial, Bayesian
optimization after 5 random trials, each trial the mean of 2 runs of 25
epochs) runs again inside each outer fold u1..u5, on a validation tenth
carved from that fold's training part only; the best trial is retrained
on the whole training part and scored once on the fold's test part
(`keras_catembed.evaluation.nested_cross_validate`). No test rating of a
fold reaches its search, so the five test figures and their mean measure
the whole procedure, search included, without optimism.

Usage:

    KERAS_BACKEND=jax python benchmarks/nested_tuning.py \\
        --data-dir ../shared/data/movielens

It prints the per-fold table and writes
`benchmarks/results/nested_tuning_ml-100k.{md,json}`: each fold's test
RMSE and MAE, fit time, chosen hyperparameters and search time.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time

import keras
import keras_tuner

from keras_catembed.datasets import movielens
from keras_catembed.evaluation import nested_cross_validate
from keras_catembed.evaluation.protocols import OfficialFolds
from keras_catembed.hypermodel import RatingHyperModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import tune_presets  # noqa: E402  (the search space and its oracle)


class PresetSearch(keras_tuner.Tuner):
    """The search of `tune_presets.py --space preset`, built per outer fold."""

    def __init__(
        self,
        hypermodel,
        objective,
        max_trials,
        seed,
        num_initial_points=None,
        space="preset",
        **kwargs,
    ):
        oracle = tune_presets.DefaultsFirstOracle(
            objective=objective,
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            seed=seed,
            hyperparameters=tune_presets.space(space),
            tune_new_entries=False,
        )
        super().__init__(oracle, hypermodel, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--executions-per-trial", type=int, default=2)
    parser.add_argument("--initial-points", type=int, default=5)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--directory", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--space",
        choices=["preset", "preset-sparse"],
        default="preset",
        help="tune_presets.py's space: 'preset' is search 3 as it ran "
        "(dense Adam, L2); 'preset-sparse' the same search on the presets' "
        "current recipe (SparseAdam, decay of the tables)",
    )
    args = parser.parse_args(argv)

    ratings = movielens.load_ratings("ml-100k", data_dir=args.data_dir)
    hypermodel = RatingHyperModel(
        {"user_id": ratings.num_users, "movie_id": ratings.num_movies},
        # The recorded searches ran before `neighborhood` was a
        # hyperparameter: their spaces stay as they were.
        neighborhood=False,
    )
    table = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(table):
        results = nested_cross_validate(
            hypermodel,
            ratings,
            outer=OfficialFolds(),
            inner=args.validation_fraction,
            tuner=PresetSearch,
            max_trials=args.max_trials,
            epochs=args.epochs,
            directory=args.directory or f"/tmp/catembed-nested-{args.space}",
            seed=args.seed,
            tuner_kwargs={
                "num_initial_points": args.initial_points,
                "executions_per_trial": args.executions_per_trial,
                "space": args.space,
            },
            verbose=True,
        )
    seconds = time.perf_counter() - start
    print(table.getvalue())
    figures = {
        key: (value.tolist() if hasattr(value, "tolist") else value)
        for key, value in results.items()
    }
    figures["total_seconds"] = seconds
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        dataset="ml-100k",
        outer="OfficialFolds(u1..u5)",
        inner=(
            f"HoldOut({args.validation_fraction}) of each outer training part"
        ),
        search=(
            f"{args.max_trials} trials x {args.epochs} epochs x "
            f"{args.executions_per_trial} runs, Bayesian after "
            f"{args.initial_points} random, preset's defaults first"
        ),
        seed=args.seed,
        space=args.space,
    )
    chosen = "\n".join(
        f"- u{fold + 1}: `{json.dumps(values)}`"
        for fold, values in enumerate(figures["hyperparameters"])
    )
    text = (
        table.getvalue().rstrip()
        + f"\n\nWhole run: {seconds / 60:.1f} min.\n\nChosen per fold:\n\n"
        + chosen
    )
    name = "nested_tuning_ml-100k"
    if args.space != "preset":
        name += f"_{args.space}"
    out = os.path.join(HERE, "results", name)
    _results.write(out, text, figures, machine)
    return figures


if __name__ == "__main__":
    main()
