"""Searches RatingHyperModel on MovieLens, then scores the best on test folds.

The search sees only the training part of the first fold (ml-100k: u1.base;
ml-1m: every fold but fold 1 of the 5-fold split), with a validation part
carved from it at random. The best hyperparameters are then trained on each
fold's training part and scored on its test part, as in
`movielens_accuracy.py`.

Only the first fold's test part is kept out of the choice. That training
part is the other folds' test parts (u1.base is exactly u2..u5.test; on
ml-1m, fold 1's training part is folds 2-5's test sets), so the search
trains and validates on ratings that are later scored as test ratings of
folds 2-5: their figures, and the 5-fold mean, are optimistic, and only the
first fold's test RMSE is clean.

Usage:

    KERAS_BACKEND=jax python benchmarks/tune_presets.py --dataset ml-100k \\
        --data-dir ../shared/data/movielens --space preset \\
        --max-trials 20 --epochs 25

`--space full` searches RatingHyperModel's whole space. `--space preset`
searches around the `"recommended"` preset: implicit feedback, per-id
biases, a bounded output, one hidden layer and the warm-up + cosine
schedule fixed, and the sizes, regularization, rate and batch size
searched in ranges around the preset's values.

It prints and writes `benchmarks/results/tune_<dataset>-<space>.{md,json}`:
the
search budget and wall time, every trial's validation RMSE, the best
hyperparameters, their test RMSE per fold and the best configuration in
`keras_catembed.presets` form.
"""

import argparse
import json
import os
import sys
import time

import keras
import keras_tuner
import numpy as np

from keras_catembed.datasets.movielens import inputs
from keras_catembed.hypermodel import RatingHyperModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import movielens_accuracy  # noqa: E402  (the folds and error measures)


def folds(dataset, data_dir):
    if dataset == "ml-100k":
        return list(
            movielens_accuracy.folds_100k(os.path.join(data_dir, dataset))
        )
    return list(movielens_accuracy.folds_1m(data_dir))


# Fixed in the `preset` spaces: the recommended presets' model family.
PRESET_FAMILY = (
    ("implicit", True),
    ("bias_terms", True),
    ("bounded_output", True),
    ("optimizer", "adam"),
    ("table_decay", 0.0),
    ("schedule", "cosine"),
    ("num_hidden_layers", 1),
    ("activation", "relu"),
    ("embeddings_initializer", "normal"),
)


def space(kind):
    """The tuner's own declarations (they override the hypermodel's).

    `preset` searches around `"recommended"`; `preset-large` around
    `"recommended-large"`, at its batch size. The defaults are the values
    of that preset (plus a moving average of the weights), and the first
    trial of the search runs them.
    """
    hp = keras_tuner.HyperParameters()
    if kind == "full":
        return hp
    large = kind == "preset-large"
    sparse = kind == "preset-sparse"
    for name, value in PRESET_FAMILY:
        if sparse and name == "optimizer":
            value = "sparse_adam"
        if not (sparse and name == "table_decay"):
            hp.Fixed(name, value)
    if large:
        hp.Fixed("batch_size", 2048)
    hp.Choice("user_id_output_dim", [32, 64, 128], default=64)
    hp.Choice("movie_id_output_dim", [32, 64, 128], default=64)
    hp.Choice("hidden_units_0", [64, 128, 256], default=128)
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2)
    if large:
        l2 = ([2.5e-5, 5e-5, 1e-4, 2e-4, 4e-4], 1e-4)
    else:
        l2 = ([5e-4, 1e-3, 2e-3, 4e-3, 8e-3], 2e-3)
    if sparse:
        hp.Fixed("embeddings_l2", 0.0)
        hp.Choice("table_decay", [1.0, 3.0, 10.0], default=3.0)
    else:
        hp.Choice("embeddings_l2", l2[0], default=l2[1])
    hp.Float("entity_dropout", 0.0, 0.3, step=0.1, default=0.1)
    low, default = (2e-3, 4e-3) if large else (1e-3, 2e-3)
    hp.Float("learning_rate", low, 8e-3, sampling="log", default=default)
    hp.Choice("ema_momentum", [0.0, 0.99, 0.999], default=0.999)
    if not large:
        hp.Choice("batch_size", [128, 256, 512], default=256)
    return hp


class DefaultsFirstOracle(keras_tuner.oracles.BayesianOptimizationOracle):
    """Bayesian optimization whose first trial runs the space's defaults."""

    def populate_space(self, trial_id):
        if not self.trials or list(self.trials) == [trial_id]:
            return {
                "status": "RUNNING",
                "values": self.hyperparameters.values.copy(),
            }
        return super().populate_space(trial_id)


def as_preset(values, epochs):
    """The hyperparameter values in `keras_catembed.presets` form."""
    layers = values["num_hidden_layers"]
    return {
        "model": {
            "embedding_dim": {
                "user_id": values["user_id_output_dim"],
                "movie_id": values["movie_id_output_dim"],
            },
            "embeddings_l2": values["embeddings_l2"],
            "entity_dropout": values["entity_dropout"],
            "embeddings_initializer_stddev": (
                0.01 if values["embeddings_initializer"] == "normal" else None
            ),
            "hidden_units": [
                values[f"hidden_units_{i}"] for i in range(layers)
            ],
            "activation": values.get("activation") or "relu",
            "dropout": values.get("dropout") or 0.0,
            "bias_terms": values["bias_terms"],
            "rating_range": [0.5, 5.5] if values["bounded_output"] else None,
            "implicit": values["implicit"],
        },
        "training": {
            "learning_rate": values["learning_rate"],
            "batch_size": values["batch_size"],
            "epochs": epochs,
            "schedule": values["schedule"],
            "ema_momentum": values.get("ema_momentum") or None,
            "optimizer": values.get("optimizer") or "adam",
            "table_decay": values.get("table_decay") or 0.0,
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "movielens"),
    )
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--search-epochs",
        type=int,
        default=None,
        help="epochs of each search trial (default: --epochs, which the "
        "test folds always use)",
    )
    parser.add_argument("--executions-per-trial", type=int, default=1)
    parser.add_argument(
        "--initial-points",
        type=int,
        default=None,
        help="random trials before the Gaussian process (KerasTuner's "
        "default: 3 per searched hyperparameter)",
    )
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--directory", default="/tmp/catembed-tune-presets")
    parser.add_argument("--max-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--space",
        choices=["full", "preset", "preset-sparse", "preset-large"],
        default="full",
    )
    args = parser.parse_args(argv)

    all_folds = folds(args.dataset, args.data_dir)
    _, (train_full, _) = all_folds[0]
    train, validation = train_full.random_split(
        args.validation_fraction, seed=args.seed
    )
    hypermodel = RatingHyperModel(
        {"user_id": train.num_users, "movie_id": train.num_movies},
        # The recorded searches ran before `neighborhood` was a
        # hyperparameter: their spaces stay as they were.
        neighborhood=False,
    )
    search_epochs = args.search_epochs or args.epochs
    oracle_class = (
        keras_tuner.oracles.BayesianOptimizationOracle
        if args.space == "full"
        else DefaultsFirstOracle
    )
    oracle = oracle_class(
        objective=hypermodel.objective,
        max_trials=args.max_trials,
        num_initial_points=args.initial_points,
        seed=args.seed,
        hyperparameters=space(args.space),
        tune_new_entries=args.space == "full",
    )
    tuner = keras_tuner.Tuner(
        oracle,
        hypermodel,
        executions_per_trial=args.executions_per_trial,
        directory=args.directory,
        project_name=(
            f"{args.dataset}-{args.space}-e{search_epochs}"
            f"x{args.executions_per_trial}"
        ),
    )
    start = time.perf_counter()
    tuner.search(
        inputs(train),
        train.rating,
        epochs=search_epochs,
        validation_data=(inputs(validation), validation.rating),
        verbose=0,
    )
    # A resumed search adds its time to that of the runs before it.
    timing = os.path.join(tuner.project_dir, "search_seconds.json")
    search_seconds = time.perf_counter() - start
    if os.path.exists(timing):
        with open(timing) as file:
            search_seconds += json.load(file)["search_seconds"]
    with open(timing, "w") as file:
        json.dump({"search_seconds": search_seconds}, file)
    trials = tuner.oracle.get_best_trials(num_trials=args.max_trials)
    best = tuner.get_best_hyperparameters()[0]
    print(f"search: {len(trials)} trials in {search_seconds:.0f} s")
    for trial in trials:
        print(f"  trial {trial.trial_id}: val_rmse {trial.score}")
    print("best:", json.dumps(best.values))

    scores = []
    for index, (fold, (fold_train, fold_test)) in enumerate(all_folds):
        if index >= args.max_folds:
            break
        keras.utils.set_random_seed(index)
        model = hypermodel.build(best)
        fit_start = time.perf_counter()
        # `hypermodel.fit` adapts implicit feedback to the fold's training
        # part and sets the schedule's steps, as in the search.
        hypermodel.fit(
            best,
            model,
            inputs(fold_train),
            fold_train.rating,
            epochs=args.epochs,
            verbose=0,
        )
        prediction = model.predict(
            inputs(fold_test), batch_size=8192, verbose=0
        )
        rmse, mae = movielens_accuracy.errors(prediction, fold_test.rating)
        seconds = time.perf_counter() - fit_start
        scores.append(
            {"fold": fold, "rmse": rmse, "mae": mae, "seconds": seconds}
        )
        print(f"{fold}: RMSE {rmse:.4f} MAE {mae:.4f} ({seconds:.0f} s)")
    rmse = np.array([s["rmse"] for s in scores])
    summary = {
        "dataset": args.dataset,
        "backend": keras.backend.backend(),
        "max_trials": args.max_trials,
        "epochs": args.epochs,
        "search_epochs": search_epochs,
        "executions_per_trial": args.executions_per_trial,
        "search_seconds": search_seconds,
        "trials": [
            {
                "trial_id": t.trial_id,
                "val_rmse": t.score,
                "hyperparameters": t.hyperparameters.values,
            }
            for t in trials
        ],
        "best": best.values,
        "preset": as_preset(best.values, args.epochs),
        "test": scores,
        "test_rmse_mean": float(rmse.mean()),
        "test_rmse_std": float(rmse.std()),
    }
    out = os.path.join(HERE, "results", f"tune_{args.dataset}-{args.space}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as file:
        json.dump(summary, file, indent=1)
    budget = f"{args.max_trials} trials x {search_epochs} epochs"
    if args.executions_per_trial > 1:
        budget += f" x {args.executions_per_trial} runs"
    line = (
        f"| {args.dataset} | {budget} "
        f"| {search_seconds / 60:.1f} min | {rmse.mean():.4f} ± "
        f"{rmse.std():.4f} ({len(scores)} folds) |"
    )
    with open(out + ".md", "w") as file:
        file.write(
            "| dataset | search budget | search time | test RMSE |\n"
            "|---|---|---:|---:|\n" + line + "\n\n"
            f"Best hyperparameters: `{json.dumps(best.values)}`\n\n"
            "As a preset: "
            f"`{json.dumps(as_preset(best.values, args.epochs))}`\n"
        )
    print(line)
    return summary


if __name__ == "__main__":
    main()
