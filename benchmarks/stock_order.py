"""The cost of a new order every epoch in the stock `fit` on TensorFlow.

`RatingModel.fit` runs Keras's own loop when its device loop does not
apply (`fast=False`, `sample_weight`, `class_weight`, eager mode). On
TensorFlow, Keras shuffles
arrays in a `tf.data` pipeline whose order repeats every epoch once
`keras.utils.set_random_seed` has run, so the model feeds its arrays
through `_epoch_order.ShuffledBatches` (a `keras.utils.PyDataset` that
draws each epoch's order with NumPy) instead. This measures what that
costs: one whole `fit` call of 3 epochs (`fast=False`, seeded, everything
included), Keras's array pipeline against the library's batches, in one
process, alternating, on synthetic ratings of ML-20M's shape (nine
tenths train; the test RMSE is on the other tenth).

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/stock_order.py \\
        --rows 1000000 --batch-size 1024

It writes `benchmarks/results/stock_order.{json,md}`.
"""

import argparse
import contextlib
import os
import sys
import time
from unittest import mock

import keras
import numpy as np

import keras_catembed
from keras_catembed import _epoch_order

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _ml20m_shape  # noqa: E402
import _results  # noqa: E402


def _passthrough(model, x, y, options):
    return x, y, options


def run(x, y, test, sizes, batch_size, epochs, pipeline):
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel(
        sizes, hidden_units=[64], bias_terms=True, rating_range=(0.5, 5.0)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    # "keras": the arrays go to Keras's loop as they are.
    patch = (
        mock.patch.object(_epoch_order, "stock_fit_data", _passthrough)
        if pipeline == "keras"
        else contextlib.nullcontext()
    )
    start = time.perf_counter()
    with patch:
        history = model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            fast=False,
            verbose=0,
        )
    seconds = time.perf_counter() - start
    prediction = model.predict(test[0], batch_size=65536, verbose=0)
    error = np.asarray(prediction, "float64").reshape(-1) - test[1]
    rmse = float(np.sqrt(np.mean(error**2)))
    return seconds, float(history.history["loss"][-1]), rmse


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "stock_order")
    )
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("The reordering applies on TensorFlow only.")
    users, movies, ratings = _ml20m_shape.ratings(args.rows)
    sizes = {"user_id": int(users.max()) + 1, "movie_id": int(movies.max()) + 1}
    # A random tenth of the rows is the test part.
    test_rows = np.random.default_rng(1).random(args.rows) < 0.1
    x = {
        "user_id": users[~test_rows].astype("int64"),
        "movie_id": movies[~test_rows].astype("int64"),
    }
    y = ratings[~test_rows].astype("float32")
    test = (
        {
            "user_id": users[test_rows].astype("int64"),
            "movie_id": movies[test_rows].astype("int64"),
        },
        ratings[test_rows].astype("float64"),
    )
    results = {"keras": [], "library": []}
    for _ in range(args.repeats):
        for pipeline in ("keras", "library"):
            seconds, loss, rmse = run(
                x, y, test, sizes, args.batch_size, args.epochs, pipeline
            )
            results[pipeline].append(
                {"seconds": seconds, "last_loss": loss, "test_rmse": rmse}
            )
            print(
                pipeline,
                f"{seconds:.1f} s",
                f"loss {loss:.4f}",
                f"test RMSE {rmse:.4f}",
                flush=True,
            )
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    ratio = best["library"] / best["keras"]
    table = (
        f"Stock `fit` (fast=False) on TensorFlow, {args.rows} rows of "
        f"ML-20M's shape, batch {args.batch_size}, one seeded call of "
        f"{args.epochs} epochs, best of {args.repeats}\n\n"
        "| pipeline | whole call | last epoch's loss | test RMSE |\n"
        "|---|---:|---:|---:|\n"
        + "\n".join(
            f"| {name} | {best[name]:.1f} s | "
            f"{results[name][0]['last_loss']:.4f} | "
            f"{results[name][0]['test_rmse']:.4f} |"
            for name in results
        )
        + f"\n\nlibrary / keras time: {ratio:.2f}"
    )
    print(table)
    _results.write(
        args.out,
        table,
        {
            "rows": args.rows,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "runs": results,
            "best_seconds": best,
            "time_ratio": ratio,
        },
        _results.machine_info(
            backend="tensorflow", load_average=list(os.getloadavg())
        ),
    )


if __name__ == "__main__":
    main()
