"""Step time of implicit feedback: the dense and the lists pair layouts.

`RatingModel(implicit=...)` holds the (target, source) pairs of a column
either as a dense `num_targets x num_sources` matrix (a batch of its rows
times the implicit table) or as per-id lists of at most `k` source ids
(`max_pairs_per_id=k`: a batch gathers `k` vectors per row). This times
one forward and backward pass of the implicit-feedback layer (the gradient
of the implicit table) for a batch of target ids, in each layout, at
ml-1m's size by default: 6,040 users, 3,706 movies, 720,000 pairs with
Zipf-like popularity, 64 dimensions, batch 2048, lists of `--caps` ids.

`--csr` adds a layout the library does not have, to measure it before
building it: every pair held once, in compressed rows (each target's
sources and weights in one flat array, found by its offset), a batch's
pairs gathered into one flat array of a fixed length and summed per row
(`keras.ops.segment_sum`). A compiled step needs that length fixed:
"csr-batch" uses the batch's own count of pairs (the least any step
could read), "csr-bound" the most pairs of 1,000 batches drawn alike (what
a step compiled once must allow for, with a rare overflow handled apart).

Each backend runs in its own process; each layout is timed over
`--repeats` compiled steps after a warm-up (median reported), and the
ratios are lists over dense from the same process.

Usage:

    python benchmarks/implicit_layouts.py --backends tensorflow jax torch

It prints a markdown table and writes
`benchmarks/results/implicit_layouts.{md,json}`.
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


def pairs(num_targets, num_sources, num_pairs, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)

    def zipf(n, exponent, size):
        weights = 1.0 / np.arange(1, n + 1) ** exponent
        return rng.choice(n, size, p=weights / weights.sum())

    return zipf(num_targets, 0.7, num_pairs), zipf(num_sources, 0.9, num_pairs)


def step_function(layer, rows):
    """One forward and backward pass; returns the table's gradient."""
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(table):
            values, _ = layer.stateless_call(
                [table], [v.value for v in layer.non_trainable_weights], rows
            )
            return ops.sum(values**2)

        grad = jax.jit(jax.grad(loss))
        table = layer.embeddings.value
        return lambda: grad(table).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def grad():
            with tf.GradientTape() as tape:
                value = ops.sum(layer(rows) ** 2)
            gradient = tape.gradient(value, layer.trainable_weights)[0]
            return tf.convert_to_tensor(gradient)

        return lambda: grad().numpy()
    import torch

    def grad():
        table = layer.embeddings.value
        table.grad = None
        ops.sum(layer(rows) ** 2).backward()
        return table.grad

    def run():
        with torch.enable_grad():
            return grad()

    return run


# "csr-bound" allows for the most pairs of this many batches drawn alike.
BOUND_BATCHES = 1000


def compressed_rows(targets, sources, num_targets):
    """Every distinct pair once, by target: offsets, sources and weights."""
    import numpy as np

    keys = np.unique(targets.astype("int64") * (sources.max() + 1) + sources)
    targets, sources = np.divmod(keys, sources.max() + 1)
    counts = np.bincount(targets, minlength=num_targets)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    weights = (1.0 / np.sqrt(np.maximum(counts, 1)))[targets]
    return (
        offsets.astype("int32"),
        counts.astype("int32"),
        sources.astype("int32"),
        weights.astype("float32"),
    )


def csr_sums(table, rows, csr, length):
    """Each row's weighted sum over its pairs, read as one flat array.

    The batch's pairs fill the first slots of `length`; the rest read
    pair 0 with weight zero.
    """
    import keras
    from keras import ops

    offsets, counts, sources, weights = csr
    batch_counts = ops.take(counts, rows, axis=0)
    ends = ops.cumsum(batch_counts)
    slots = ops.arange(length, dtype="int32")
    owner = ops.minimum(
        ops.cast(ops.searchsorted(ends, slots, side="right"), "int32"),
        ops.shape(rows)[0] - 1,
    )
    starts = ops.take(ends - batch_counts, owner, axis=0)
    pair = ops.take(ops.take(offsets, rows, axis=0), owner, axis=0) + (
        slots - starts
    )
    read = ops.less(slots, ends[-1])
    pair = ops.where(read, pair, ops.zeros_like(pair))
    pair_weights = ops.where(
        read, ops.take(weights, pair, axis=0), ops.zeros(ops.shape(pair))
    )
    vectors = ops.take(table, ops.take(sources, pair, axis=0), axis=0)
    return ops.segment_sum(
        vectors * ops.expand_dims(pair_weights, -1),
        owner,
        num_segments=ops.shape(rows)[0],
        # The slots are in row order; TensorFlow's sorted sum cannot be
        # given the number of rows (a row may have no pairs).
        sorted=keras.backend.backend() != "tensorflow",
    )


def csr_step_function(table, rows, csr, length):
    """One forward and backward pass of `csr_sums`; the table's gradient."""
    import keras
    from keras import ops

    backend = keras.backend.backend()
    csr = [ops.convert_to_tensor(part) for part in csr]
    if backend == "jax":
        import jax

        value = ops.convert_to_tensor(table)
        grad = jax.jit(
            jax.grad(lambda t: ops.sum(csr_sums(t, rows, csr, length) ** 2))
        )
        return lambda: grad(value).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(table)

        @tf.function
        def grad():
            with tf.GradientTape() as tape:
                value = ops.sum(csr_sums(variable, rows, csr, length) ** 2)
            return tf.convert_to_tensor(tape.gradient(value, variable))

        return lambda: grad().numpy()
    import torch

    value = torch.tensor(table, requires_grad=True)

    def run():
        with torch.enable_grad():
            value.grad = None
            ops.sum(csr_sums(value, rows, csr, length) ** 2).backward()
            return value.grad

    return run


def timed(run, repeats):
    """The median seconds of `repeats` calls of `run` after a warm-up."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(args):
    import keras
    import numpy as np
    from keras import ops

    from keras_catembed._implicit import ImplicitFeedback

    targets, sources = pairs(args.targets, args.sources, args.pairs)
    # Each distinct pair once, as target * sources + source.
    listed = np.unique(targets * args.sources + sources)
    draw = np.random.default_rng(1)

    def batch_rows():
        if args.rows_from_pairs:
            # As a training batch draws its rows: the targets of random
            # pairs, so an id with more pairs is drawn more often.
            return draw.choice(listed // args.sources, args.batch_size)
        return draw.integers(0, args.targets, args.batch_size)

    rows = ops.convert_to_tensor(batch_rows(), dtype="int32")
    results = []
    for cap in [None, *args.caps]:
        dense = cap is None
        layer = ImplicitFeedback(
            args.targets, args.sources, args.dim, max_pairs_per_id=cap
        )
        assert layer.dense == dense
        layer.build()
        layer.adapt(targets, sources)
        run = step_function(layer, rows)
        results.append(
            {
                "backend": keras.backend.backend(),
                "layout": "dense" if dense else f"lists-{cap}",
                "pairs": int(listed.size),
                "ms_per_step": 1000 * timed(run, args.repeats),
            }
        )
        if dense:
            table = np.array(ops.convert_to_numpy(layer.embeddings.value))
            gradient = ops.convert_to_numpy(run())
    if args.csr:
        csr = compressed_rows(targets, sources, args.targets)
        counts = csr[1]
        lengths = {
            "csr-batch": int(counts[ops.convert_to_numpy(rows)].sum()),
            "csr-bound": max(
                int(counts[batch_rows()].sum()) for _ in range(BOUND_BATCHES)
            ),
        }
        for name, length in lengths.items():
            run = csr_step_function(table, rows, csr, length)
            # The same sums as the dense matrix: the same gradient.
            difference = np.abs(ops.convert_to_numpy(run()) - gradient).max()
            assert difference < 1e-4 * np.abs(gradient).max(), difference
            results.append(
                {
                    "backend": keras.backend.backend(),
                    "layout": name,
                    "pairs": int(csr[2].size),
                    "slots_per_step": length,
                    "ms_per_step": 1000 * timed(run, args.repeats),
                }
            )
    print("RESULTS " + json.dumps(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument("--targets", type=int, default=6040)
    parser.add_argument("--sources", type=int, default=3706)
    parser.add_argument("--pairs", type=int, default=720_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--caps", nargs="+", type=int, default=[32, 128])
    parser.add_argument(
        "--csr",
        action="store_true",
        help="also time every pair in compressed rows, summed per row",
    )
    parser.add_argument(
        "--rows-from-pairs",
        action="store_true",
        help="draw the batch's rows as training does (the targets of random "
        "pairs) rather than uniformly over the targets",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "implicit_layouts")
    )
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    arguments = []
    for name in ("targets", "sources", "pairs", "dim", "batch_size", "repeats"):
        arguments += [f"--{name.replace('_', '-')}", getattr(args, name)]
    arguments += ["--caps", *args.caps]
    arguments += [
        f"--{name.replace('_', '-')}"
        for name in ("csr", "rows_from_pairs")
        if getattr(args, name)
    ]
    results = []
    for backend in args.backends:
        results += _results.run_worker(__file__, backend, arguments)
    layouts = ["dense", *(f"lists-{cap}" for cap in args.caps)]
    if args.csr:
        layouts += ["csr-batch", "csr-bound"]
    lines = [
        "| backend | distinct pairs | "
        + " | ".join(f"{name} ms/step" for name in layouts)
        + " | "
        + " | ".join(f"{name} / dense" for name in layouts[1:])
        + " |",
        "|---|---:|" + "---:|" * (2 * len(layouts) - 1),
    ]
    for backend in args.backends:
        row = {r["layout"]: r for r in results if r["backend"] == backend}
        dense = row["dense"]["ms_per_step"]
        cells = [f"{row[name]['ms_per_step']:.1f}" for name in layouts]
        cells += [
            f"{row[name]['ms_per_step'] / dense:.2f}x" for name in layouts[1:]
        ]
        lines.append(
            f"| {backend} | {row['dense']['pairs']:,} | "
            + " | ".join(cells)
            + " |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        targets=args.targets,
        sources=args.sources,
        drawn_pairs=args.pairs,
        batch_size=args.batch_size,
        dim=args.dim,
        repeats=args.repeats,
        rows_from_pairs=args.rows_from_pairs,
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
