"""Epoch time on one GPU: stock Keras fit vs RatingModel's device loop.

Sized to run in a few minutes on one GPU with the JAX backend. Data: the
throughput benchmark's synthetic set shaped like MovieLens-20M
(`--rows`, default 20,000,263). Models: the Kaggle course model in plain
Keras with `keras.optimizers.Adam` and `keras.Model.fit`, and the same
architecture as `keras_catembed.RatingModel` with
`keras_catembed.optimizers.SparseAdam` (and with dense Adam) trained by the
device loop.

For each model and batch size, one warm-up epoch compiles the steps; then
one `fit` call runs `--epochs` epochs and a callback times each epoch
(median reported). The `fit` call time also counts the up-front id checks
and the copy of the arrays to the GPU, which happen once per call.

Usage (on a GPU machine):

    KERAS_BACKEND=jax python benchmarks/gpu.py

It prints a markdown table and writes `benchmarks/results/gpu.{md,json}`.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import _timing  # noqa: E402
import throughput  # noqa: E402


def peak_gpu_bytes():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_263)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[65536, 16384, 4096]
    )
    parser.add_argument(
        "--stock-batch-sizes", type=int, nargs="+", default=[65536]
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "gpu"))
    args = parser.parse_args(argv)

    import keras

    x, y = throughput.synthetic(args.rows)
    x_stock = {k: v.reshape(-1, 1) for k, v in x.items()}
    runs = [("stock", b) for b in args.stock_batch_sizes]
    runs += [("RatingModel SparseAdam", b) for b in args.batch_sizes]
    runs += [("RatingModel Adam", args.batch_sizes[0])]
    results = []
    for name, batch_size in runs:
        keras.utils.clear_session()
        model = throughput.MODELS[name]()
        inputs = x_stock if name == "stock" else x
        model.fit(inputs, y, batch_size=batch_size, epochs=1, verbose=0)
        timer = _timing.epoch_timer(from_epoch_begin=True)
        start = time.perf_counter()
        model.fit(
            inputs,
            y,
            batch_size=batch_size,
            epochs=args.epochs,
            verbose=0,
            callbacks=[timer],
        )
        call = time.perf_counter() - start
        result = {
            "backend": keras.backend.backend(),
            "model": name,
            "batch_size": batch_size,
            "epoch_seconds": statistics.median(timer.seconds),
            "epoch_times": timer.seconds,
            "fit_call_seconds": call,
            "epochs": args.epochs,
            "peak_gpu_bytes": peak_gpu_bytes(),
        }
        print(result, flush=True)
        results.append(result)
    table = markdown(results)
    print(table)
    import jax

    machine = _results.machine_info(
        rows=args.rows, device=str(jax.devices()[0].device_kind)
    )
    _results.write(args.out, table, results, machine)


def markdown(results):
    stock = min(r["epoch_seconds"] for r in results if r["model"] == "stock")
    lines = [
        "| model | batch size | epoch (s, median) | speed-up vs stock "
        "at its best batch | fit call incl. checks and copy (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['batch_size']} | "
            f"{r['epoch_seconds']:.3f} | "
            f"{stock / r['epoch_seconds']:.1f}x | "
            f"{r['fit_call_seconds']:.2f} ({r['epochs']} epochs) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
