"""The recommended large-data model at MovieLens-20M's scale, on a CPU.

Trains `RatingModel.from_preset("recommended-large", ...)` (implicit
feedback for users and movies, 64-dim embeddings, batch 2048) on synthetic
ratings shaped like MovieLens-20M (`_ml20m_shape.py`: per-user and
per-movie counts like the real set, distinct pairs), at each `--rows`.
The pairs are held as per-id lists of at most `--max-pairs-per-id` ids
(`RatingModel(max_pairs_per_id=...)`).

For each backend (own process) and size it records:
- `adapt_s`: `model.adapt(x)` on all rows (pairs deduplicated, sampled
  and written to the layers);
- the `fit` call: one epoch with the device loop, timed per compiled block
  (about 2**20 rows). The first block includes compiling. With
  `--budget S` the epoch stops after the first block that ends past S
  seconds; the epoch time is then projected from the blocks after the
  first (`epoch_s_projected`), and `epoch_s` is null;
- `peak_rss_gb`: the process's peak resident memory (data, model, adapt
  and training; the ratings are generated once, by the parent).

Usage:

    python benchmarks/implicit_scale.py --rows 1000000 20000263 \\
        --backends tensorflow jax --budget 240

It prints a markdown table and writes
`benchmarks/results/implicit_scale.{md,json}`.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _ml20m_shape  # noqa: E402
import _results  # noqa: E402


def worker(args):
    import keras
    import numpy as np

    import keras_catembed
    from keras_catembed import optimizers

    data = np.load(args.data)
    x = {"user_id": data["user_id"], "movie_id": data["movie_id"]}
    y = data["rating"]
    sizes = {c: int(v.max()) + 1 for c, v in x.items()}
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel.from_preset(
        "recommended-large", sizes, max_pairs_per_id=args.max_pairs_per_id
    )
    recipe = keras_catembed.presets.recipe("recommended-large")
    start = time.perf_counter()
    model.adapt(x)
    adapt_s = time.perf_counter() - start
    optimizer = (
        optimizers.SparseAdam(recipe.learning_rate)
        if args.optimizer == "sparse_adam"
        else keras.optimizers.Adam(recipe.learning_rate)
    )
    model.compile(optimizer=optimizer, loss="mse")
    blocks = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.begin = time.perf_counter()
            self.first_step = batch

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            blocks.append(
                {
                    "steps": batch - self.first_step + 1,
                    "seconds": now - self.begin,
                    "loss": float(logs["loss"]),
                }
            )
            if args.budget and now - fit_start > args.budget:
                self.model.stop_training = True

    batch_size = recipe.batch_size
    fit_start = time.perf_counter()
    model.fit(
        x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[Timer()]
    )
    fit_s = time.perf_counter() - fit_start
    steps_done = sum(b["steps"] for b in blocks)
    steps_total = -(-len(y) // batch_size)
    complete = steps_done >= steps_total
    # Steady rate: full blocks after the first (which compiles); the last,
    # shorter block of an epoch compiles its own step and is left out.
    later = [b for b in blocks[1:] if b["steps"] == blocks[0]["steps"]]
    rate = (
        sum(b["steps"] for b in later) / sum(b["seconds"] for b in later)
        if later
        else None
    )
    projected = (
        fit_s
        if complete
        else fit_s + (steps_total - steps_done) / rate
        if rate
        else None
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "backend": keras.backend.backend(),
        "rows": int(len(y)),
        "users": sizes["user_id"],
        "movies": sizes["movie_id"],
        "max_pairs_per_id": args.max_pairs_per_id,
        "optimizer": args.optimizer,
        "batch_size": batch_size,
        "adapt_s": adapt_s,
        "fit_call_s": fit_s,
        "epoch_complete": complete,
        "epoch_s": fit_s if complete else None,
        "epoch_s_projected": projected,
        "steady_rows_per_s": rate * batch_size if rate else None,
        "steps_timed": steps_done,
        "first_block_s": blocks[0]["seconds"] if blocks else None,
        "last_loss": blocks[-1]["loss"] if blocks else None,
        "peak_rss_gb": peak,
    }
    print("RESULTS " + json.dumps([result]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument(
        "--rows", nargs="+", type=int, default=[1_000_000, 20_000_263]
    )
    parser.add_argument("--max-pairs-per-id", type=int, default=32)
    parser.add_argument(
        "--optimizer", choices=["sparse_adam", "adam"], default="sparse_adam"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="seconds of training after which the epoch is projected",
    )
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "implicit_scale")
    )
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    results, shapes = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            users, movies, rating = _ml20m_shape.ratings(rows)
            shapes[rows] = _ml20m_shape.describe(users, movies)
            path = os.path.join(folder, f"{rows}.npz")
            import numpy as np

            np.savez(path, user_id=users, movie_id=movies, rating=rating)
            del users, movies, rating
            for backend in args.backends:
                arguments = [
                    "--data",
                    path,
                    "--max-pairs-per-id",
                    args.max_pairs_per_id,
                    "--optimizer",
                    args.optimizer,
                    "--budget",
                    args.budget,
                ]
                results += _results.run_worker(__file__, backend, arguments)
                print(json.dumps(results[-1]), flush=True)
    lines = [
        "| backend | rows | max pairs per id | adapt s | fit call s "
        "| epoch s | rows/s (steady) | peak GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        epoch = (
            f"{r['epoch_s']:.0f}"
            if r["epoch_complete"]
            else f"{r['epoch_s_projected']:.0f} (projected)"
        )
        steady = r["steady_rows_per_s"]
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['max_pairs_per_id']} "
            f"| {r['adapt_s']:.1f} "
            f"| {r['fit_call_s']:.0f} | {epoch} "
            f"| {'-' if steady is None else f'{steady:,.0f}'} "
            f"| {r['peak_rss_gb']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        max_pairs_per_id=args.max_pairs_per_id,
        optimizer=args.optimizer,
        budget=args.budget,
        shapes={str(k): v for k, v in shapes.items()},
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
