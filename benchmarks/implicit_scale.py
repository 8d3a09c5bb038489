"""The recommended large-data model at MovieLens-20M's scale, on a CPU.

Trains `RatingModel.from_preset("recommended-large", ...)` (implicit
feedback for users and movies, 64-dim embeddings, batch 2048) on synthetic
ratings shaped like MovieLens-20M (`_ml20m_shape.py`: per-user and
per-movie counts like the real set, distinct pairs), at each `--rows`.
The pairs are held as per-id lists of at most `--max-pairs-per-id` ids
(`RatingModel(max_pairs_per_id=...)`); with `--pairs-per-step`, training
steps read a moving window of that many of them
(`RatingModel(pairs_per_step=...)`, whose anchors `fit` refreshes as
the tables move).

For each backend (own process) and size it records:
- `adapt_s`: `model.adapt(x)` on all rows (pairs deduplicated, sampled
  and written to the layers);
- the `fit` call (`--optimizer`: by default SparseAdam at the preset's
  learning rate, without the preset's decay of the tables; `recipe` for
  the preset's own optimizer, as `presets.recipe(...).make_optimizer`
  makes it; with `--ema-momentum M`, either one also keeps Keras's moving
  average of the weights, `use_ema=True`, which the preset does not;
  `--refresh-after-reads R` refreshes the windows' anchors after the
  steps have read R times the listed pairs, 1 by default): one
  epoch with the device loop, timed per compiled block
  (about 2**20 rows). The first block includes compiling. With
  `--budget S` the epoch stops after the first block that ends past S
  seconds; the epoch time is then projected from the blocks after the
  first (`epoch_s_projected`), and `epoch_s` is null;
- with `--time-refresh`, `refresh_s`: each window layer's refresh of its
  anchors after `adapt`, as the library does it for a table in host
  memory (one SciPy sparse product; `host` writes the sparse matrix of
  the pairs anew at each refresh, `host_reused` reuses one written
  once, as a `fit` call does; `host_pairs_s` is that writing) and by
  gathers (its way on an accelerator or without SciPy);
- with `--anchor-by rows pairs ...`, one `fit` call per entry: the
  windows subtract their anchor once per distinct row a sparse step
  gathered (`rows`, the library's way) or once per pair read (`pairs`,
  the way before), for a same-process comparison;
- with `--slots-by every distinct ...` (JAX), one `fit` call per entry:
  a table with no more rows than a step's lookups (the movies' implicit
  table) keeps every row at its own slot (`every`, the library's way:
  no gathers, whole-array writes of the rows read) or has its distinct
  rows gathered (`distinct`, the way before);
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

# `RatingModel(implicit=...)` for each `--sides`.
SIDES = {
    "both": True,
    "user": {"user_id": "movie_id"},
    "movie": {"movie_id": "user_id"},
}


def worker(args):
    import keras
    import numpy as np

    import keras_catembed
    from keras_catembed import _pair_sums
    from keras_catembed import _pair_windows

    if args.refresh_after_reads is not None:
        _pair_windows.REFRESH_AFTER_READS = args.refresh_after_reads
    data = np.load(args.data)
    x = {"user_id": data["user_id"], "movie_id": data["movie_id"]}
    y = data["rating"]
    sizes = {c: int(v.max()) + 1 for c, v in x.items()}
    windows = (
        _results.pairs_per_step(args.pairs_per_step)
        if args.pairs_per_step
        else None
    )
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel.from_preset(
        "recommended-large",
        sizes,
        max_pairs_per_id=args.max_pairs_per_id,
        pairs_per_step=windows,
        implicit=SIDES[args.sides],
    )
    recipe = keras_catembed.presets.recipe("recommended-large")
    start = time.perf_counter()
    model.adapt(x)
    adapt_s = time.perf_counter() - start
    refresh_s = _time_refreshes(model) if args.time_refresh else None
    # One adapt, then one fit call per batch size (each with its own
    # optimizer; the weights carry on, which does not change the timing).
    batch_sizes = args.batch_sizes or [recipe.batch_size]
    # One fit call per batch size, or per `--refresh-by`, `--anchor-by`
    # or `--slots-by` entry (at the first).
    calls = [(size, None, None) for size in batch_sizes]
    if args.refresh_by:
        calls = [(batch_sizes[0], way, None) for way in args.refresh_by]
    if args.anchor_by:
        calls = [(batch_sizes[0], None, way) for way in args.anchor_by]
    if args.slots_by:
        calls = [(batch_sizes[0], None, way) for way in args.slots_by]
    results = []
    # `host-each` refreshes by the sparse product but writes the sparse
    # matrix anew at every refresh (the library's way before it reused
    # it within a fit call).
    reused = _pair_windows.refresh
    for batch_size, way, switch in calls:
        if switch in ("rows", "pairs"):
            # `pairs`: the window's anchor gathered for each pair read,
            # as the library did before it subtracted it per row.
            _pair_sums.ANCHOR_BY_ROW = switch == "rows"
        if switch in ("every", "distinct"):
            # `distinct`: a small table's distinct rows gathered, as the
            # library did before it kept every row at its own slot.
            from keras_catembed.backend import jax_rows

            jax_rows.EVERY_ROW = switch == "every"
        if way is not None:
            _pair_windows.HOST_PRODUCT = way != "gathered"
            _pair_windows.refresh = (
                (lambda layer, pairs=None: reused(layer))
                if way == "host-each"
                else reused
            )
        results.append(
            train(
                model, x, y, recipe, batch_size, adapt_s, sizes, windows, args
            )
        )
        results[-1]["refresh_by"] = way
        results[-1]["anchor_by" if args.anchor_by else "slots_by"] = switch
        results[-1]["refresh_s"] = refresh_s
    print("RESULTS " + json.dumps(results))


def _time_refreshes(model, repeats=3):
    """Seconds of each windowed layer's anchor refresh, done both ways.

    By one SciPy sparse product on the host (the library's way for a table
    in host memory) and gathered with Keras ops (its way on an accelerator
    or without SciPy), each `repeats` times after a first call (which
    compiles the gathers); the median, and the first call alone.
    """
    import statistics

    import keras

    from keras_catembed import _pair_windows

    timings = {}
    for layer in model.implicit_layers.values():
        if not layer.sampled:
            continue
        timings[layer.name] = {}
        start = time.perf_counter()
        pairs = _pair_windows.host_pairs(layer)
        timings[layer.name]["host_pairs_s"] = time.perf_counter() - start
        ways = (
            ("gathered", False, None),
            ("host", True, None),
            ("host_reused", True, pairs),
        )
        for way, host, given in ways:
            _pair_windows.HOST_PRODUCT = host
            seconds = []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                _pair_windows.refresh(layer, given)
                keras.ops.convert_to_numpy(layer.anchor_sums[0])
                seconds.append(time.perf_counter() - start)
            timings[layer.name][way] = {
                "first_s": seconds[0],
                "median_s": statistics.median(seconds[1:]),
            }
    _pair_windows.HOST_PRODUCT = True
    return timings


def train(model, x, y, recipe, batch_size, adapt_s, sizes, windows, args):
    """One `fit` call of `args.epochs` epochs at `batch_size`, timed."""
    import keras

    from keras_catembed import optimizers

    ema = {}
    if args.ema_momentum is not None:
        ema = {"use_ema": True, "ema_momentum": args.ema_momentum}
    if args.optimizer == "recipe":
        # The preset's own: SparseAdam with the decay of the tables and
        # the cosine schedule over its epochs (and its moving average of
        # the weights, if it has one or `--ema-momentum` asks for one).
        if args.ema_momentum is not None:
            recipe = recipe.replace(ema_momentum=args.ema_momentum)
        optimizer = recipe.make_optimizer(len(y), model)
    elif args.optimizer == "sparse_adam":
        optimizer = optimizers.SparseAdam(recipe.learning_rate, **ema)
    else:
        optimizer = keras.optimizers.Adam(recipe.learning_rate, **ema)
    model.compile(optimizer=optimizer, loss="mse")
    blocks, epochs = [], []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs.append(time.perf_counter() - self.epoch_begin)

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

    fit_start = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[Timer()],
    )
    fit_s = time.perf_counter() - fit_start
    steps_done = sum(b["steps"] for b in blocks)
    steps_total = -(-len(y) // batch_size) * args.epochs
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
    if complete:
        projected /= args.epochs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "backend": keras.backend.backend(),
        "device": _device(),
        "rows": int(len(y)),
        "users": sizes["user_id"],
        "movies": sizes["movie_id"],
        "max_pairs_per_id": args.max_pairs_per_id,
        "pairs_per_step": windows,
        "sides": args.sides,
        "optimizer": args.optimizer,
        "ema_momentum": args.ema_momentum,
        "refresh_after_reads": args.refresh_after_reads,
        "batch_size": batch_size,
        "adapt_s": adapt_s,
        "fit_call_s": fit_s,
        "epochs": args.epochs,
        "epoch_times": epochs,
        "epoch_complete": complete,
        # One epoch's time: the whole call when it ran one epoch, else the
        # median of the epochs after the first (which compiles).
        "epoch_s": (
            (fit_s if args.epochs == 1 else _median(epochs[1:]))
            if complete
            else None
        ),
        "epoch_s_projected": projected,
        "steady_rows_per_s": rate * batch_size if rate else None,
        "steps_timed": steps_done,
        "first_block_s": blocks[0]["seconds"] if blocks else None,
        "last_loss": blocks[-1]["loss"] if blocks else None,
        "peak_rss_gb": peak,
        "peak_device_gb": _peak_device_gb(),
        # Pairs each described column lists (a refresh reads them all).
        "listed_pairs": {
            column: layer.listed_pairs()
            for column, layer in model.implicit_layers.items()
        },
    }


def _device():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    return "cpu"


def _peak_device_gb():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**30


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument(
        "--rows", nargs="+", type=int, default=[1_000_000, 20_000_263]
    )
    parser.add_argument("--max-pairs-per-id", type=int, default=32)
    parser.add_argument(
        "--pairs-per-step",
        help=(
            "read a moving window of this many pairs per training step "
            "('16'), or one per column ('user_id=16,movie_id=4')"
        ),
    )
    parser.add_argument(
        "--sides",
        choices=sorted(SIDES),
        default="both",
        help="which columns implicit feedback describes (both: the preset)",
    )
    parser.add_argument(
        "--optimizer",
        choices=["sparse_adam", "adam", "recipe"],
        default="sparse_adam",
        help=(
            "SparseAdam or Adam at the preset's learning rate (no decay), "
            "or 'recipe': the preset's own optimizer (SparseAdam, decay "
            "of the tables, cosine schedule; no moving average)"
        ),
    )
    parser.add_argument(
        "--ema-momentum",
        type=float,
        help=(
            "also keep Keras's moving average of the weights "
            "(use_ema=True) at this momentum"
        ),
    )
    parser.add_argument(
        "--refresh-after-reads",
        type=float,
        help=(
            "refresh the windows' anchors after the steps have read this "
            "many times the listed pairs (the library's default otherwise)"
        ),
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="seconds of training after which the epoch is projected",
    )
    parser.add_argument(
        "--batch-sizes",
        nargs="+",
        type=int,
        help="batch sizes to time, one fit call each (default: the preset's)",
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs per fit call"
    )
    parser.add_argument(
        "--refresh-by",
        nargs="+",
        choices=["host", "host-each", "gathered"],
        help="one fit call per entry (at the first batch size), refreshing "
        "the anchors by the host's sparse product (host-each: its sparse "
        "matrix written anew at each refresh) or by gathers",
    )
    parser.add_argument(
        "--anchor-by",
        nargs="+",
        choices=["rows", "pairs"],
        help="one fit call per entry (at the first batch size): a sparse "
        "step's windows subtract their anchor from the distinct rows the "
        "step gathered (rows, the library's way) or from each pair read "
        "(pairs, as before)",
    )
    parser.add_argument(
        "--slots-by",
        nargs="+",
        choices=["every", "distinct"],
        help="one fit call per entry (at the first batch size), JAX only: "
        "a table with no more rows than a step's lookups keeps every row "
        "at its own slot (every, the library's way) or has its distinct "
        "rows gathered (distinct, as before)",
    )
    parser.add_argument(
        "--time-refresh",
        action="store_true",
        help="after adapt, time each window layer's anchor refresh by the "
        "host's sparse product (its matrix written anew, and reused) and "
        "by gathers (recorded as refresh_s)",
    )
    parser.add_argument(
        "--cache",
        help="folder keeping the generated ratings (<rows>.npz) between runs",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="only generate the ratings into --cache",
    )
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "implicit_scale")
    )
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.generate_only and not args.cache:
        parser.error("--generate-only needs --cache")
    results, shapes = [], {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.cache or temporary
        for rows in args.rows:
            path, shapes[rows] = _data(folder, rows)
            if args.generate_only:
                continue
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
                    "--epochs",
                    args.epochs,
                    "--sides",
                    args.sides,
                ]
                if args.ema_momentum is not None:
                    arguments += ["--ema-momentum", args.ema_momentum]
                if args.refresh_after_reads is not None:
                    arguments += [
                        "--refresh-after-reads",
                        args.refresh_after_reads,
                    ]
                if args.pairs_per_step:
                    arguments += ["--pairs-per-step", args.pairs_per_step]
                if args.batch_sizes:
                    arguments += ["--batch-sizes", *args.batch_sizes]
                if args.time_refresh:
                    arguments.append("--time-refresh")
                if args.refresh_by:
                    arguments += ["--refresh-by", *args.refresh_by]
                if args.anchor_by:
                    arguments += ["--anchor-by", *args.anchor_by]
                if args.slots_by:
                    arguments += ["--slots-by", *args.slots_by]
                rows_results = _results.run_worker(__file__, backend, arguments)
                results += rows_results
                for r in rows_results:
                    print(json.dumps(r), flush=True)
    if args.generate_only:
        return []
    lines = [
        "| backend | device | rows | sides | max pairs per id "
        "| pairs per step | batch | adapt s "
        "| fit call s | epoch s | rows/s (steady) | peak GB "
        "| peak device GB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        epoch = (
            _seconds(r["epoch_s"])
            if r["epoch_complete"]
            else f"{_seconds(r['epoch_s_projected'])} (projected)"
        )
        steady = r["steady_rows_per_s"]
        device = r.get("peak_device_gb")
        lines.append(
            f"| {r['backend']} | {r.get('device', 'cpu')} | {r['rows']:,} "
            f"| {r.get('sides', 'both')} | {r['max_pairs_per_id']} "
            f"| {_results.steps_cell(r.get('pairs_per_step'))} "
            f"| {r['batch_size']} "
            f"| {r['adapt_s']:.1f} "
            f"| {_seconds(r['fit_call_s'])} | {epoch} "
            f"| {'-' if steady is None else f'{steady:,.0f}'} "
            f"| {r['peak_rss_gb']:.2f} "
            f"| {'-' if device is None else f'{device:.2f}'} |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        max_pairs_per_id=args.max_pairs_per_id,
        pairs_per_step=args.pairs_per_step,
        sides=args.sides,
        optimizer=args.optimizer,
        ema_momentum=args.ema_momentum,
        refresh_after_reads=args.refresh_after_reads,
        budget=args.budget,
        shapes={str(k): v for k, v in shapes.items()},
    )
    _results.write(args.out, table, results, machine)
    return results


def _data(folder, rows):
    """The path of `rows` generated ratings in `folder`, and their shape."""
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{rows}.npz")
    if os.path.exists(path):
        data = np.load(path)
        users, movies = data["user_id"], data["movie_id"]
    else:
        users, movies, rating = _ml20m_shape.ratings(rows)
        np.savez(
            path + ".tmp.npz", user_id=users, movie_id=movies, rating=rating
        )
        os.replace(path + ".tmp.npz", path)
    return path, _ml20m_shape.describe(users, movies)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _seconds(value):
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


if __name__ == "__main__":
    main()
