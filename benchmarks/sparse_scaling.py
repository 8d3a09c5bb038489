"""Step time as an embedding table grows: dense Adam vs SparseAdam.

One user table grows from 10k to 5M rows (8 dims) beside a 1,000-row movie
table; the network is the course model's (Dense 32-4-1, MSE, batch 1024).
Three models train for `--steps` steps per timed epoch. Ids follow the
throughput benchmark's Zipf-like popularity (`--ids zipf`, the default, as
in MovieLens) or are uniform at random (`--ids uniform`: every step touches
cold rows, the worst case for caches):

- `stock Adam`: plain Keras (`keras.layers.Embedding`,
  `keras.optimizers.Adam`, `keras.Model.fit`). Adam updates both moments of
  every row at every step, so its step time grows with the table.
- `stock SGD`: the same with plain SGD, whose update Keras applies only to
  the gathered rows on TensorFlow: a reference for what a sparse step costs.
- `RatingModel SparseAdam`: `keras_catembed.RatingModel` with
  `keras_catembed.optimizers.SparseAdam`, trained by its device loop.

Each backend runs in its own process; within it the models are timed over
`--repeats` epochs after a warm-up epoch (median reported). The growth
column is the 5M-row step time over the 10k-row one.

Usage:

    python benchmarks/sparse_scaling.py --backends tensorflow jax
    python benchmarks/sparse_scaling.py --ids uniform \
        --out benchmarks/results/sparse_scaling_uniform

It prints a markdown table and writes
`benchmarks/results/sparse_scaling.{md,json}`.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

NUM_MOVIES = 1_000
BATCH_SIZE = 1024


def stock_model(num_users, optimizer):
    import keras

    user = keras.Input((1,), name="user_id", dtype="int32")
    movie = keras.Input((1,), name="movie_id", dtype="int32")
    u = keras.layers.Flatten()(keras.layers.Embedding(num_users, 8)(user))
    m = keras.layers.Flatten()(keras.layers.Embedding(NUM_MOVIES, 8)(movie))
    h = keras.layers.Concatenate()([u, m])
    h = keras.layers.Dense(32, activation="relu")(h)
    h = keras.layers.Dense(4, activation="relu")(h)
    model = keras.Model([user, movie], keras.layers.Dense(1)(h))
    model.compile(
        optimizer=(
            keras.optimizers.Adam(0.005)
            if optimizer == "adam"
            else keras.optimizers.SGD(0.005)
        ),
        loss="mse",
    )
    return model


def rating_model(num_users):
    import keras_catembed

    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(num_users, 8),
            "movie_id": keras_catembed.EntityEmbedding(NUM_MOVIES, 8),
        }
    )
    model.compile(
        optimizer=keras_catembed.optimizers.SparseAdam(0.005), loss="mse"
    )
    return model


def draw_ids(rng, ids, num_rows, n, exponent):
    if ids == "zipf":
        return (rng.zipf(exponent, n) - 1) % num_rows
    return rng.integers(0, num_rows, n)


def measure(table_rows, steps, repeats, skip_stock_above, ids):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    n = steps * BATCH_SIZE
    results = []
    for num_users in table_rows:
        x = {
            "user_id": draw_ids(rng, ids, num_users, n, 1.3).astype("int32"),
            "movie_id": draw_ids(rng, ids, NUM_MOVIES, n, 1.2).astype("int32"),
        }
        y = rng.random(n).astype("float32")
        x_stock = {k: v.reshape(-1, 1) for k, v in x.items()}
        models = {"RatingModel SparseAdam": (rating_model(num_users), x)}
        if num_users <= skip_stock_above:
            models["stock Adam"] = (stock_model(num_users, "adam"), x_stock)
            models["stock SGD"] = (stock_model(num_users, "sgd"), x_stock)
        for name, (model, inputs) in models.items():
            model.fit(inputs, y, batch_size=BATCH_SIZE, verbose=0)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model.fit(inputs, y, batch_size=BATCH_SIZE, verbose=0)
                times.append(time.perf_counter() - start)
            results.append(
                {
                    "backend": keras.backend.backend(),
                    "table_rows": num_users,
                    "model": name,
                    "ms_per_step": 1000 * statistics.median(times) / steps,
                    "seconds": times,
                }
            )
        del models
        keras.utils.clear_session()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table-rows",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000, 5_000_000],
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument(
        "--skip-stock-above",
        type=int,
        default=10**9,
        help="Leave the stock models out for larger tables (time).",
    )
    parser.add_argument("--ids", choices=["zipf", "uniform"], default="zipf")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "sparse_scaling")
    )
    args = parser.parse_args(argv)
    if args.worker:
        results = measure(
            args.table_rows,
            args.steps,
            args.repeats,
            args.skip_stock_above,
            args.ids,
        )
        print("RESULTS " + json.dumps(results))
        return results
    results = []
    for backend in args.backends:
        results.extend(
            _results.run_worker(
                __file__,
                backend,
                [
                    "--steps",
                    args.steps,
                    "--repeats",
                    args.repeats,
                    "--skip-stock-above",
                    args.skip_stock_above,
                    "--ids",
                    args.ids,
                    "--table-rows",
                    *args.table_rows,
                ],
            )
        )
    table = markdown(results, args.table_rows)
    print(table)
    machine = _results.machine_info(
        steps=args.steps,
        repeats=args.repeats,
        batch_size=BATCH_SIZE,
        ids=args.ids,
    )
    _results.write(args.out, table, results, machine)
    return results


def markdown(results, table_rows):
    header = " | ".join(f"{rows:,} rows" for rows in table_rows)
    lines = [
        f"| backend | model | {header} | growth |",
        "|---|---|" + "---:|" * (len(table_rows) + 1),
    ]
    keys = sorted({(r["backend"], r["model"]) for r in results})
    for backend, model in keys:
        by_rows = {
            r["table_rows"]: r["ms_per_step"]
            for r in results
            if r["backend"] == backend and r["model"] == model
        }
        cells = [
            f"{by_rows[rows]:.2f}" if rows in by_rows else "-"
            for rows in table_rows
        ]
        first, last = table_rows[0], table_rows[-1]
        growth = (
            f"{by_rows[last] / by_rows[first]:.2f}x"
            if first in by_rows and last in by_rows
            else "-"
        )
        lines.append(
            f"| {backend} | {model} | {' | '.join(cells)} | {growth} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
