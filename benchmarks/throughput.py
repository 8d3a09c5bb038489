"""Training throughput: the course model in plain Keras vs RatingModel.

Both models have the same architecture (8-dim user and movie embeddings,
Dense 32-4-1, Adam 0.005, MSE) and train on the same synthetic data shaped
like MovieLens-20M (138,493 users, 26,744 movies, Zipf-like popularity).
The difference is what RatingModel adds for safety: it checks every array
before `fit`, and its embeddings check ids inside the compiled step (an
assertion op on TensorFlow, which also keeps XLA off; a host callback on
JAX; an eager check on torch).

Each backend runs in its own process (the backend is fixed when Keras is
imported); within a process the two models alternate over `--repeats`
rounds and the script reports median samples/s and the ratio
RatingModel / stock, both measured in the same process.

Usage:

    python benchmarks/throughput.py --rows 1000000 --batch-sizes 1024 16384

It prints a markdown table and writes `benchmarks/results/throughput.{md,json}`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402  (the course model)

NUM_USERS = 138_493
NUM_MOVIES = 26_744


def synthetic(rows, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.3, rows) - 1) % NUM_USERS
    movies = (rng.zipf(1.2, rows) - 1) % NUM_MOVIES
    ratings = rng.integers(1, 6, rows).astype("float32")
    return (
        {"user_id": users.astype("int32"), "movie_id": movies.astype("int32")},
        ratings,
    )


def stock_model():
    """The course's model in plain Keras (the accuracy benchmark's)."""
    return movielens_accuracy.course_model(NUM_USERS, NUM_MOVIES)


def rating_model():
    import keras

    import keras_catembed

    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(NUM_USERS, 8),
            "movie_id": keras_catembed.EntityEmbedding(NUM_MOVIES, 8),
        }
    )
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss="mse")
    return model


def measure(rows, batch_sizes, repeats):
    """Runs in one backend's process; returns a list of result dicts."""
    import keras

    x, y = synthetic(rows)
    x_stock = {k: v.reshape(-1, 1) for k, v in x.items()}
    results = []
    for batch_size in batch_sizes:
        models = {"stock": stock_model(), "RatingModel": rating_model()}
        inputs = {"stock": x_stock, "RatingModel": x}
        times = {name: [] for name in models}
        for name, model in models.items():  # Warm-up: compile the steps.
            model.fit(
                inputs[name],
                y,
                batch_size=batch_size,
                epochs=1,
                verbose=0,
                steps_per_epoch=3,
            )
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.fit(
                    inputs[name], y, batch_size=batch_size, epochs=1, verbose=0
                )
                times[name].append(time.perf_counter() - start)
        for name in models:
            results.append(
                {
                    "backend": keras.backend.backend(),
                    "batch_size": batch_size,
                    "model": name,
                    "samples_per_second": rows / statistics.median(times[name]),
                    "seconds": times[name],
                }
            )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1024, 16384]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "throughput")
    )
    args = parser.parse_args(argv)
    if args.worker:
        results = measure(args.rows, args.batch_sizes, args.repeats)
        print("RESULTS " + json.dumps(results))
        return results
    results = []
    for backend in args.backends:
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--rows",
            str(args.rows),
            "--repeats",
            str(args.repeats),
            "--batch-sizes",
            *map(str, args.batch_sizes),
        ]
        env = dict(os.environ, KERAS_BACKEND=backend)
        output = subprocess.run(
            command, env=env, capture_output=True, text=True, check=True
        ).stdout
        line = next(
            ln for ln in output.splitlines() if ln.startswith("RESULTS ")
        )
        results.extend(json.loads(line[len("RESULTS ") :]))
    table = markdown(results)
    print(table)
    machine = _results.machine_info(rows=args.rows, repeats=args.repeats)
    _results.write(args.out, table, results, machine)
    return results


def markdown(results):
    lines = [
        "| backend | batch size | stock samples/s | RatingModel samples/s "
        "| ratio (ours / stock) |",
        "|---|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["backend"], r["batch_size"]) for r in results})
    for backend, batch_size in keys:
        by_model = {
            r["model"]: r["samples_per_second"]
            for r in results
            if r["backend"] == backend and r["batch_size"] == batch_size
        }
        stock, ours = by_model["stock"], by_model["RatingModel"]
        lines.append(
            f"| {backend} | {batch_size} | {stock:,.0f} | {ours:,.0f} | "
            f"{ours / stock:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
