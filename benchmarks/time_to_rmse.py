"""Wall time to a validation RMSE on MovieLens-1M: stock fit vs ours.

Both runs train the `mlp-large` preset's model (same
architecture, learning-rate schedule, batch size and number of epochs) on
four of the five `siren_fold` folds of ml-1m and validate on the fifth
after every epoch:

- `stock`: `keras.Model.fit` (`fit(fast=False)`) with
  `keras.optimizers.Adam`: the stock Keras training loop and optimizer.
- `ours`: `RatingModel.fit` (device loop) with
  `keras_catembed.optimizers.SparseAdam`.
- `ours, Adam`: the device loop with dense Adam (for the breakdown).

The target RMSE is the larger of the runs' best validation RMSEs, so every
run reaches it; the time to it counts the whole `fit` call up to the end
of the first epoch whose validation RMSE is at or below it (validation
included). The speed-up is stock time / our time, from the same process.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/time_to_rmse.py \\
        --data-dir ../shared/data/movielens

It prints a markdown table and writes
`benchmarks/results/time_to_rmse.{md,json}`.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

import keras_catembed
from keras_catembed import presets
from keras_catembed.datasets.movielens import inputs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402

RUNS = {
    "stock": ("adam", False),
    "ours": ("sparse_adam", "auto"),
    "ours, Adam": ("adam", "auto"),
}


class Clock(keras.callbacks.Callback):
    """Records the wall time since `fit` began and the metrics per epoch."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(
            {
                "epoch": epoch + 1,
                "seconds": time.perf_counter() - self.start,
                "val_rmse": float(logs["val_rmse"]),
            }
        )


def train(run, train_set, validation, epochs, seed):
    optimizer_name, fast = RUNS[run]
    recipe = presets.recipe("mlp-large")
    if epochs:
        recipe = recipe.replace(epochs=epochs)
    keras.utils.set_random_seed(seed)
    model = keras_catembed.RatingModel.from_preset(
        "mlp-large",
        {"user_id": train_set.num_users, "movie_id": train_set.num_movies},
    )
    rate = recipe.learning_rate_for(len(train_set))
    optimizer = (
        keras_catembed.optimizers.SparseAdam(rate)
        if optimizer_name == "sparse_adam"
        else keras.optimizers.Adam(rate)
    )
    model.compile(
        optimizer=optimizer,
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    clock = Clock()
    model.fit(
        inputs(train_set),
        train_set.rating,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        validation_data=(inputs(validation), validation.rating),
        validation_batch_size=16384,
        callbacks=[clock],
        verbose=0,
        fast=fast,
    )
    return clock.epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "movielens"),
    )
    parser.add_argument("--runs", nargs="+", default=list(RUNS))
    parser.add_argument(
        "--epochs", type=int, default=0, help="0: the preset's epochs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "time_to_rmse")
    )
    args = parser.parse_args(argv)
    _, (train_set, validation) = next(
        movielens_accuracy.folds_1m(args.data_dir)
    )
    curves = {}
    for run in args.runs:
        curves[run] = train(run, train_set, validation, args.epochs, args.seed)
        best = min(e["val_rmse"] for e in curves[run])
        print(
            f"{run}: best val RMSE {best:.4f}, final "
            f"{curves[run][-1]['val_rmse']:.4f}, "
            f"{curves[run][-1]['seconds']:.1f} s",
            flush=True,
        )
    target = max(min(e["val_rmse"] for e in curve) for curve in curves.values())
    results = []
    for run, curve in curves.items():
        reached = next(e for e in curve if e["val_rmse"] <= target)
        results.append(
            {
                "run": run,
                "target_rmse": target,
                "epochs_to_target": reached["epoch"],
                "seconds_to_target": reached["seconds"],
                "best_val_rmse": min(e["val_rmse"] for e in curve),
                "final_val_rmse": curve[-1]["val_rmse"],
                "total_seconds": curve[-1]["seconds"],
                "curve": curve,
            }
        )
    table = markdown(results)
    print(table)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        train_rows=len(train_set),
        validation_rows=len(validation),
    )
    _results.write(args.out, table, results, machine)
    return results


def markdown(results):
    stock = next((r for r in results if r["run"] == "stock"), results[0])
    lines = [
        f"Target validation RMSE: {results[0]['target_rmse']:.4f}",
        "",
        "| run | epochs to target | seconds to target | speed-up vs stock "
        "| best val RMSE | final val RMSE | total seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        speedup = stock["seconds_to_target"] / r["seconds_to_target"]
        lines.append(
            f"| {r['run']} | {r['epochs_to_target']} | "
            f"{r['seconds_to_target']:.1f} | {speedup:.2f}x | "
            f"{r['best_val_rmse']:.4f} | {r['final_val_rmse']:.4f} | "
            f"{r['total_seconds']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
