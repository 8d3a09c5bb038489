"""RMSE and MAE on MovieLens: baselines, the course model and RatingModel.

Protocols:

- ml-100k: the five official folds u1..u5 (u<k>.base / u<k>.test).
- ml-1m: 5-fold cross-validation. With a copy that has a `siren_fold`
  column (`ml-1m/ratings_no_timestamp.csv`, as in this project's shared
  data) that ready-made split is used; with an official release, a seeded
  random 5-fold split.

Configurations:

- `global_mean`, `movie_mean`: the classic baselines (the per-movie mean
  falls back to the global mean for movies not in the training part).
- `bias_only`: global + user + movie bias, fitted with Adam (L2 on biases).
- `course`: the Kaggle "Embeddings" course model in plain Keras (8-dim
  embeddings, Concatenate, Flatten, Dense 32 relu, Dense 4 relu, Dense 1;
  Adam 0.005, MSE; 5 epochs at batch size 1024).
- `mlp`: `RatingModel.from_preset(name)` with the preset's own training
  settings, where `name = presets.recommended_for(len(train),
  implicit=False)`: `"mlp"` for ml-100k, `"mlp-large"` for ml-1m.
- `recommended`: the same with `presets.recommended_for(len(train))`:
  `"recommended"` for ml-100k, `"recommended-large"` for ml-1m (the `mlp`
  configuration plus implicit feedback, adapted to the training part).
- `preset:NAME` (not run by default): any named preset with its own
  training settings, e.g. `preset:tuned-ml-1m`; `preset:NAME:xK` scores
  the mean prediction of K such models trained from different random
  starts (an ensemble).

Usage:

    KERAS_BACKEND=jax python benchmarks/movielens_accuracy.py \\
        --data-dir ../shared/data/movielens

It prints a markdown table (mean +- standard deviation over folds, and wall
time per fold) and writes it with the raw figures to
`benchmarks/results/movielens_accuracy.{md,json}`.
"""

import argparse
import dataclasses
import os
import sys
import time

import keras
import numpy as np

import keras_catembed
from keras_catembed import evaluation
from keras_catembed import presets
from keras_catembed import training
from keras_catembed.datasets import movielens
from keras_catembed.datasets.movielens import inputs
from keras_catembed.evaluation.protocols import OfficialFolds

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

CONFIGS = (
    "global_mean",
    "movie_mean",
    "bias_only",
    "course",
    "mlp",
    "recommended",
)


def folds_100k(data_dir):
    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    for k in range(1, 6):
        yield f"u{k}", ratings.official_split(f"u{k}")


def load_1m(data_dir):
    """ml-1m's ratings and a fold label per rating.

    With a copy that has a `siren_fold` column
    (`ml-1m/ratings_no_timestamp.csv`) its labels (1..5) are used; with an
    official release, a seeded random 5-fold split (labels 0..4). The
    copy's ratings are placed in its folder, so that
    `Ratings.user_features()` reads the `users.dat` beside them.
    """
    folder = os.path.join(data_dir, "ml-1m")
    csv_path = os.path.join(folder, "ratings_no_timestamp.csv")
    if os.path.exists(csv_path):
        table = np.loadtxt(csv_path, delimiter=",", skiprows=1, dtype=np.int64)
        ratings = movielens.Ratings.from_arrays(
            table[:, 0], table[:, 1], table[:, 2], name="ml-1m"
        )
        ratings = dataclasses.replace(ratings, path=os.path.abspath(folder))
        return ratings, table[:, 3]
    ratings = movielens.load_ratings("ml-1m", data_dir=data_dir)
    return ratings, np.random.default_rng(0).permutation(len(ratings)) % 5


def official_folds(dataset, data_dir, names=None):
    """The ratings, the fold names and a protocol of a list of them.

    ml-100k's official folds (u1..u5 by default) or the labels of ml-1m's
    fold column (all by default); `protocol(names)` is an `OfficialFolds`.
    """
    if dataset == "ml-100k":
        ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
        return ratings, names or ["u1", "u2", "u3", "u4", "u5"], OfficialFolds
    ratings, labels = load_1m(data_dir)
    names = [int(name) for name in names or sorted(set(labels.tolist()))]
    return (
        ratings,
        names,
        lambda folds: OfficialFolds(folds, fold_column=labels),
    )


def folds_1m(data_dir):
    ratings, fold = load_1m(data_dir)
    for k in np.unique(fold):
        test_mask = fold == k
        yield (
            f"fold {int(k)}",
            (
                ratings.subset(np.flatnonzero(~test_mask)),
                ratings.subset(np.flatnonzero(test_mask)),
            ),
        )


def errors(prediction, target):
    error = np.asarray(prediction, "float64").reshape(-1) - target
    return float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))


def course_model(num_users, num_movies):
    """The course's model, written in plain Keras as the course does."""
    user_input = keras.Input((1,), name="user_id", dtype="int32")
    movie_input = keras.Input((1,), name="movie_id", dtype="int32")
    user_embedded = keras.layers.Embedding(num_users, 8)(user_input)
    movie_embedded = keras.layers.Embedding(num_movies, 8)(movie_input)
    out = keras.layers.Concatenate()([user_embedded, movie_embedded])
    out = keras.layers.Flatten()(out)
    for units in (32, 4):
        out = keras.layers.Dense(units, activation="relu")(out)
    out = keras.layers.Dense(1)(out)
    model = keras.Model({"user_id": user_input, "movie_id": movie_input}, out)
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss="mse")
    return model


def run_config(name, train, test):
    x_train, x_test = inputs(train), inputs(test)
    if name in ("global_mean", "movie_mean"):
        rows = evaluation.baselines(train, test)
        key = "global mean" if name == "global_mean" else "per-movie mean"
        return rows[key]["rmse"], rows[key]["mae"]
    if name == "bias_only":
        model = keras_catembed.RatingModel(
            {
                column: keras_catembed.EntityEmbedding(
                    n,
                    1,
                    embeddings_initializer="zeros",
                    embeddings_regularizer=keras.regularizers.L2(1e-4),
                )
                for column, n in (
                    ("user_id", train.num_users),
                    ("movie_id", train.num_movies),
                )
            },
            hidden_units=[],
        )
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        model.output_layer.build((None, 2))
        model.output_layer.bias.assign([float(np.mean(train.rating))])
        model.fit(x_train, train.rating, batch_size=512, epochs=8, verbose=0)
    elif name == "course":
        model = course_model(train.num_users, train.num_movies)
        model.fit(x_train, train.rating, batch_size=1024, epochs=5, verbose=0)
    elif name.startswith("preset:"):
        preset, _, runs = name[len("preset:") :].partition(":x")
        predictions = []
        for _ in range(int(runs or 1)):
            model, _ = training.train(train, preset, verbose=0)
            x_test = inputs(test, model.columns)
            predictions.append(
                model.predict(x_test, batch_size=8192, verbose=0).reshape(-1)
            )
        return errors(np.mean(predictions, axis=0), test.rating)
    else:
        preset = presets.recommended_for(
            len(train), implicit=name == "recommended"
        )
        model, _ = training.train(train, preset, verbose=0)
        x_test = inputs(test, model.columns)
    prediction = model.predict(x_test, batch_size=8192, verbose=0)
    return errors(prediction, test.rating)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "movielens"),
        help="folder holding ml-100k/ and ml-1m/",
    )
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument(
        "--max-folds", type=int, default=5, help="use the first N folds"
    )
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "movielens_accuracy")
    )
    args = parser.parse_args(argv)
    results = []
    for dataset in args.datasets:
        folds = folds_100k if dataset == "ml-100k" else folds_1m
        folder = os.path.join(args.data_dir, dataset)
        if dataset == "ml-1m":
            folder = args.data_dir
        for fold_index, (fold, (train, test)) in enumerate(folds(folder)):
            if fold_index >= args.max_folds:
                break
            for config in args.configs:
                keras.utils.set_random_seed(fold_index)
                start = time.perf_counter()
                rmse, mae = run_config(config, train, test)
                seconds = time.perf_counter() - start
                results.append(
                    {
                        "dataset": dataset,
                        "fold": fold,
                        "config": config,
                        "rmse": rmse,
                        "mae": mae,
                        "seconds": seconds,
                    }
                )
                print(
                    f"{dataset} {fold} {config:<12} RMSE {rmse:.4f} "
                    f"MAE {mae:.4f} ({seconds:.1f} s)",
                    flush=True,
                )
        # Written after each data set, so a long run keeps what it has.
        table = markdown(results)
        machine = _results.machine_info(
            backend=keras.backend.backend(), keras=keras.__version__
        )
        _results.write(args.out, table, results, machine)
    print(table)
    return results


def markdown(results):
    lines = [
        "| dataset | configuration | folds | RMSE (mean ± sd) | "
        "MAE (mean ± sd) | seconds per fold (median) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    keys = []
    for row in results:
        key = (row["dataset"], row["config"])
        if key not in keys:
            keys.append(key)
    for dataset, config in keys:
        rows = [
            r
            for r in results
            if r["dataset"] == dataset and r["config"] == config
        ]
        rmse = np.array([r["rmse"] for r in rows])
        mae = np.array([r["mae"] for r in rows])
        seconds = np.median([r["seconds"] for r in rows])
        lines.append(
            f"| {dataset} | {config} | {len(rows)} | "
            f"{rmse.mean():.4f} ± {rmse.std():.4f} | "
            f"{mae.mean():.4f} ± {mae.std():.4f} | {seconds:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
