"""Step time of implicit feedback: the dense and the lists pair layouts.

`RatingModel(implicit=...)` holds the (target, source) pairs of a column
either as a dense `num_targets x num_sources` matrix (a batch of its rows
times the implicit table) or as per-id lists of at most `k` source ids
(`max_pairs_per_id=k`: a batch gathers `k` vectors per row). This times
one forward and backward pass of the implicit-feedback layer (the gradient
of the implicit table) for a batch of target ids, in each layout, at
ml-1m's size by default: 6,040 users, 3,706 movies, 720,000 pairs with
Zipf-like popularity, 64 dimensions, batch 2048, lists of `--caps` ids.

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


def worker(args):
    import keras
    import numpy as np
    from keras import ops

    from keras_catembed._implicit import ImplicitFeedback

    targets, sources = pairs(args.targets, args.sources, args.pairs)
    rows = ops.convert_to_tensor(
        np.random.default_rng(1).integers(0, args.targets, args.batch_size),
        dtype="int32",
    )
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
        run()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        results.append(
            {
                "backend": keras.backend.backend(),
                "layout": "dense" if dense else f"lists-{cap}",
                "pairs": int(np.unique(targets * args.sources + sources).size),
                "ms_per_step": 1000 * statistics.median(times),
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
    results = []
    for backend in args.backends:
        results += _results.run_worker(__file__, backend, arguments)
    layouts = ["dense", *(f"lists-{cap}" for cap in args.caps)]
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
        batch_size=args.batch_size, dim=args.dim, repeats=args.repeats
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
