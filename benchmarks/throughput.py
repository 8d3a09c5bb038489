"""Training and prediction throughput: stock Keras vs RatingModel.

The stock model is the Kaggle course model in plain Keras (8-dim user and
movie embeddings, Dense 32-4-1, `keras.optimizers.Adam(0.005)`, MSE,
trained by `keras.Model.fit`). RatingModel has the same architecture and
trains with `keras_catembed.optimizers.SparseAdam(0.005)` through its
device loop (`fit(fast="auto")`, the default for array inputs); a third row
shows RatingModel's device loop with the stock dense Adam. Data: synthetic,
shaped like MovieLens-20M (138,493 users, 26,744 movies, Zipf-like
popularity).

Each backend runs in its own process (the backend is fixed when Keras is
imported); within a process the models alternate over `--repeats`
one-epoch rounds after a warm-up epoch, and the script reports median
samples/s, the same-run ratio to stock, the peak resident memory added
during training, and `predict` samples/s.

After the one-epoch rounds, each model runs `--repeats` calls of
`--in-call-epochs` epochs (3 by default), alternated, and a callback
times each epoch from the end of the one before: the epochs after each
call's first are the steady state inside a `fit` call, without the
per-call work that a one-epoch round pays each time (checks, copies, the
first epoch's shuffle, the training fingerprint; stock Keras has its
own). `--in-call-epochs 0` skips them.

A new model's first `fit` call of `--whole-epochs` epochs (3 by default)
is timed whole, from the model's construction (its tables are built then
or in `fit`) through its checks, copies and compilation; it also warms
up the steady one-epoch rounds. These first calls follow one another in
the process, so a later model finds programs of the same shapes (on
JAX, the initializers' draws) compiled: `first_call.py` times each first
call in a fresh process instead. Before any of
them, a tiny unrelated model trains once, so that no timed call pays
the backend's own start-up in the process.

Usage:

    python benchmarks/throughput.py --rows 1000000 --batch-sizes 1024 16384

With `--every-row-shares 1 0.5` (JAX) the SparseAdam model runs once per
share, alternated with the others in the same process: a table keeps
every row at its own slot when a step's lookups are at least that share
of its rows (`keras_catembed.backend.jax_rows.EVERY_ROW_SHARE`).

With `--layer-calls direct layered` (torch) the SparseAdam model runs
once with its training steps calling its layers' `call` methods directly
(the default) and once calling every layer as a Keras layer
(`keras_catembed._forward.DIRECT_CALLS = False`), alternated with
the others in the same process.

With `--frozen-tables` a fourth model runs: the SparseAdam model with its
embedding tables frozen (`trainable=False`). Its steps gather the tables'
rows and train the rest as the SparseAdam model's do, without the tables'
gradients and updates, so its time is a floor for any way of updating
the tables, and stock's time over it the highest ratio such a way could
reach.

It prints a markdown table and writes `benchmarks/results/throughput.{md,json}`.
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
import _timing  # noqa: E402
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


def rating_model(optimizer, frozen_tables=False):
    """RatingModel with the course model's architecture.

    With `frozen_tables=True` its embedding tables are not trainable: a
    step still gathers their rows and trains the rest, so its time is a
    floor for any way of updating the tables.
    """
    import keras

    import keras_catembed

    tables = {
        "user_id": keras_catembed.EntityEmbedding(NUM_USERS, 8),
        "movie_id": keras_catembed.EntityEmbedding(NUM_MOVIES, 8),
    }
    for table in tables.values():
        table.trainable = not frozen_tables
    model = keras_catembed.RatingModel(tables)
    if optimizer == "sparse":
        optimizer = keras_catembed.optimizers.SparseAdam(0.005)
    else:
        optimizer = keras.optimizers.Adam(0.005)
    model.compile(optimizer=optimizer, loss="mse")
    return model


class PeakMemory:
    """Peak resident memory above the level at entry (Linux /proc)."""

    def __init__(self):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def rss():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(0.005)

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.added = self.peak - self.start


MODELS = {
    "stock": lambda: stock_model(),
    "RatingModel SparseAdam": lambda: rating_model("sparse"),
    "RatingModel Adam": lambda: rating_model("adam"),
}


def warm_up_backend():
    """Trains a tiny unrelated model: the backend's start-up, untimed."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    data = np.ones((8, 2), "float32")
    model.fit(data, data[:, :1], epochs=1, verbose=0)
    model.predict(data, verbose=0)


# With `--frozen-tables`, one more model: its time is a floor for the
# SparseAdam model's (the same step without the tables' gradients and
# updates).
FROZEN = "RatingModel SparseAdam, tables frozen"


def variant_models(shares=None, layer_calls=None, frozen_tables=False):
    """The SparseAdam model once per variant; each variant's setting.

    A variant is a share of `jax_rows.EVERY_ROW_SHARE` (JAX) or a way of
    calling the layers (torch: `"direct"` or `"layered"`). With
    `frozen_tables`, the `FROZEN` model is added.
    """
    models = dict(MODELS)
    if frozen_tables:
        models[FROZEN] = lambda: rating_model("sparse", frozen_tables=True)
    variants = [(f"every row at {s:g}", ("share", s)) for s in shares or []]
    variants += [
        (f"layers called {c}", ("direct", c == "direct"))
        for c in layer_calls or []
    ]
    if not variants:
        return models, {}
    made, setting_of = {}, {}
    for name, make in models.items():
        if name != "RatingModel SparseAdam":
            made[name] = make
            continue
        for label, setting in variants:
            made[f"{name}, {label}"] = make
            setting_of[f"{name}, {label}"] = setting
    return made, setting_of


def measure(
    rows,
    batch_sizes,
    repeats,
    whole_epochs=3,
    shares=None,
    layer_calls=None,
    frozen_tables=False,
    in_call_epochs=3,
):
    """Runs in one backend's process; returns a list of result dicts."""
    import keras

    makers, setting_of = variant_models(shares, layer_calls, frozen_tables)
    defaults = {}
    if shares:
        from keras_catembed.backend import jax_rows

        defaults["share"] = jax_rows.EVERY_ROW_SHARE
    if layer_calls:
        from keras_catembed import _forward

        defaults["direct"] = _forward.DIRECT_CALLS

    def use_settings(name):
        # Each call runs (and compiles) with the model's own setting; the
        # other models with the library's defaults.
        settings = dict(defaults)
        kind, value = setting_of.get(name, (None, None))
        if kind is not None:
            settings[kind] = value
        if "share" in settings:
            jax_rows.EVERY_ROW_SHARE = settings["share"]
        if "direct" in settings:
            _forward.DIRECT_CALLS = settings["direct"]

    x, y = synthetic(rows)
    x_stock = {k: v.reshape(-1, 1) for k, v in x.items()}
    warm_up_backend()
    results = []
    for batch_size in batch_sizes:
        inputs = {name: x for name in makers}
        inputs["stock"] = x_stock
        times = {name: [] for name in makers}
        memory = {name: 0 for name in makers}
        predict = {name: [] for name in makers}
        models, whole = {}, {}
        # What a user waits for: a new model, constructed and compiled,
        # and its whole `fit` call of `whole_epochs` epochs, checks, copies
        # and compilation included. It also warms the steady rounds up.
        for name, make in makers.items():
            use_settings(name)
            start = time.perf_counter()
            model = models[name] = make()
            model.fit(
                inputs[name],
                y,
                batch_size=batch_size,
                epochs=whole_epochs,
                verbose=0,
            )
            whole[name] = time.perf_counter() - start
            model.predict(inputs[name], batch_size=batch_size, verbose=0)
        for _ in range(repeats):
            for name, model in models.items():
                use_settings(name)
                with PeakMemory() as peak:
                    start = time.perf_counter()
                    model.fit(inputs[name], y, batch_size=batch_size, verbose=0)
                    times[name].append(time.perf_counter() - start)
                memory[name] = max(memory[name], peak.added)
                start = time.perf_counter()
                model.predict(inputs[name], batch_size=batch_size, verbose=0)
                predict[name].append(time.perf_counter() - start)
        # The steady state inside a call: each call's epochs after its
        # first.
        in_call = {name: [] for name in models}
        for _ in range(repeats if in_call_epochs else 0):
            for name, model in models.items():
                use_settings(name)
                timer = _timing.epoch_timer()
                model.fit(
                    inputs[name],
                    y,
                    batch_size=batch_size,
                    epochs=in_call_epochs,
                    verbose=0,
                    callbacks=[timer],
                )
                in_call[name].extend(timer.seconds[1:])
        for name in models:
            extra = {}
            if in_call[name]:
                extra = {
                    "in_call_epochs": in_call_epochs,
                    "in_call_epoch_seconds": in_call[name],
                    "in_call_samples_per_second": rows
                    / statistics.median(in_call[name]),
                }
            results.append(
                {
                    "backend": keras.backend.backend(),
                    "batch_size": batch_size,
                    "model": name,
                    "samples_per_second": rows / statistics.median(times[name]),
                    "seconds": times[name],
                    "peak_added_bytes": memory[name],
                    "predict_samples_per_second": rows
                    / statistics.median(predict[name]),
                    "whole_fit_epochs": whole_epochs,
                    "whole_fit_seconds": whole[name],
                    "whole_fit_ratio": whole["stock"] / whole[name],
                    **extra,
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
        "--whole-epochs",
        type=int,
        default=3,
        help="epochs of the timed first `fit` call of each new model",
    )
    parser.add_argument(
        "--in-call-epochs",
        type=int,
        default=3,
        help="epochs of each timed multi-epoch call (0: none)",
    )
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument(
        "--every-row-shares",
        type=float,
        nargs="+",
        help="JAX: run the SparseAdam model once per share of "
        "`jax_rows.EVERY_ROW_SHARE`",
    )
    parser.add_argument(
        "--layer-calls",
        nargs="+",
        choices=["direct", "layered"],
        help="torch: run the SparseAdam model once per way of calling "
        "its layers",
    )
    parser.add_argument(
        "--frozen-tables",
        action="store_true",
        help="also the SparseAdam model with its tables frozen (a floor "
        "for its step time)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "throughput")
    )
    args = parser.parse_args(argv)
    if args.in_call_epochs == 1 or args.in_call_epochs < 0:
        parser.error(
            "--in-call-epochs times the epochs after a call's first: 2 or "
            f"more, or 0 for none; got {args.in_call_epochs}"
        )
    if args.worker:
        results = measure(
            args.rows,
            args.batch_sizes,
            args.repeats,
            args.whole_epochs,
            args.every_row_shares,
            args.layer_calls,
            args.frozen_tables,
            args.in_call_epochs,
        )
        print("RESULTS " + json.dumps(results))
        return results
    results = []
    for backend in args.backends:
        arguments = [
            "--rows",
            args.rows,
            "--repeats",
            args.repeats,
            "--whole-epochs",
            args.whole_epochs,
            "--in-call-epochs",
            args.in_call_epochs,
            "--batch-sizes",
            *args.batch_sizes,
        ]
        if args.every_row_shares:
            arguments += ["--every-row-shares", *args.every_row_shares]
        if args.layer_calls:
            arguments += ["--layer-calls", *args.layer_calls]
        if args.frozen_tables:
            arguments.append("--frozen-tables")
        results.extend(_results.run_worker(__file__, backend, arguments))
    table = markdown(results)
    print(table)
    # The load when the run ends: the conditions it ran under.
    machine = _results.machine_info(
        rows=args.rows,
        repeats=args.repeats,
        load_average=list(os.getloadavg()),
    )
    _results.write(args.out, table, results, machine)
    return results


def markdown(results):
    whole = all("whole_fit_seconds" in r for r in results)
    in_call = all("in_call_samples_per_second" in r for r in results)
    header = (
        "| backend | batch size | model | one-epoch calls: train samples/s "
        "| ratio to stock "
        "| peak memory added (MB) | predict samples/s | predict ratio |"
    )
    rule = "|---|---:|---|---:|---:|---:|---:|---:|"
    if whole:
        epochs = results[0]["whole_fit_epochs"]
        header += (
            f" whole `fit` call ({epochs} epochs) s | its ratio to stock |"
        )
        rule += "---:|---:|"
    if in_call:
        header += " inside a call: samples/s | ratio to stock |"
        rule += "---:|---:|"
    lines = [header, rule]
    keys = sorted({(r["backend"], r["batch_size"]) for r in results})
    for backend, batch_size in keys:
        group = [
            r
            for r in results
            if r["backend"] == backend and r["batch_size"] == batch_size
        ]
        stock = next(r for r in group if r["model"] == "stock")
        stock_predict = stock["predict_samples_per_second"]
        for r in group:
            line = (
                f"| {backend} | {batch_size} | {r['model']} | "
                f"{r['samples_per_second']:,.0f} | "
                f"{r['samples_per_second'] / stock['samples_per_second']:.2f}"
                f" | {r['peak_added_bytes'] / 2**20:,.0f} | "
                f"{r['predict_samples_per_second']:,.0f} | "
                f"{r['predict_samples_per_second'] / stock_predict:.2f} |"
            )
            if whole:
                line += (
                    f" {r['whole_fit_seconds']:.1f} |"
                    f" {r['whole_fit_ratio']:.2f} |"
                )
            if in_call:
                rate = r["in_call_samples_per_second"]
                line += (
                    f" {rate:,.0f} |"
                    f" {rate / stock['in_call_samples_per_second']:.2f} |"
                )
            lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
