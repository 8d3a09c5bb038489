"""The TensorFlow device loop with and without XLA, against stock `fit`.

On the TensorFlow backend, the course-shaped RatingModel (8-dim tables,
Dense 32-4-1) trains with dense `keras.optimizers.Adam(0.005)` on
synthetic ratings shaped like MovieLens-20M (the throughput benchmark's
data), three ways, each a new model in the same process: the stock
course model in plain Keras (`keras.Model.fit`), and RatingModel's device
loop forced to run as a plain `tf.function` graph or compiled by XLA
(`keras_catembed._fast_fit.XLA_MIN_STEPS` set to never or always).

After an untimed warm-up of the backend (a tiny unrelated model: its
start-up is paid by none of the three), for each a whole `fit` call of
`--epochs` epochs is timed from the model's construction (compilation
included, what a user waits for), then two one-epoch calls (steady
state, the faster kept). The loop compiles with XLA by itself only for
calls of at least `XLA_MIN_STEPS` steps; this benchmark is what that
threshold rests on.

Usage:

    python benchmarks/tensorflow_xla.py --rows 1000000 --batch-sizes 1024 16384

It prints a markdown table and writes
`benchmarks/results/tensorflow_xla.{md,json}`.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402


def measure(rows, batch_sizes, epochs):
    from throughput import rating_model
    from throughput import stock_model
    from throughput import synthetic
    from throughput import warm_up_backend

    from keras_catembed import _fast_fit

    x, y = synthetic(rows)
    x_stock = {k: v.reshape(-1, 1) for k, v in x.items()}
    warm_up_backend()
    ways = {
        "stock fit": (stock_model, x_stock, None),
        "device loop, graph": (lambda: rating_model("adam"), x, 2**62),
        "device loop, XLA": (lambda: rating_model("adam"), x, 0),
    }
    results = []
    for batch_size in batch_sizes:
        steps = epochs * -(-rows // batch_size)
        whole = {}
        for way, (make, inputs, threshold) in ways.items():
            if threshold is not None:
                _fast_fit.XLA_MIN_STEPS = threshold
            start = time.perf_counter()
            model = make()
            model.fit(
                inputs, y, batch_size=batch_size, epochs=epochs, verbose=0
            )
            whole[way] = time.perf_counter() - start
            epoch = []
            for _ in range(2):
                start = time.perf_counter()
                model.fit(inputs, y, batch_size=batch_size, verbose=0)
                epoch.append(time.perf_counter() - start)
            results.append(
                {
                    "batch_size": batch_size,
                    "way": way,
                    "steps": steps,
                    "whole_fit_epochs": epochs,
                    "whole_fit_seconds": whole[way],
                    "whole_fit_ratio": whole["stock fit"] / whole[way],
                    "epoch_seconds": min(epoch),
                }
            )
        stock_epoch = results[-len(ways)]["epoch_seconds"]
        for result in results[-len(ways) :]:
            result["epoch_ratio"] = stock_epoch / result["epoch_seconds"]
    return results


def markdown(results):
    epochs = results[0]["whole_fit_epochs"]
    lines = [
        f"| batch size | steps ({epochs} epochs) | way | whole `fit` call s "
        "| its ratio to stock | one epoch s | its ratio to stock |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['batch_size']} | {r['steps']:,} | {r['way']} | "
            f"{r['whole_fit_seconds']:.2f} | {r['whole_fit_ratio']:.2f} | "
            f"{r['epoch_seconds']:.3f} | {r['epoch_ratio']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1024, 16384]
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "tensorflow_xla")
    )
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    results = measure(args.rows, args.batch_sizes, args.epochs)
    table = markdown(results)
    print(table)
    machine = _results.machine_info(
        backend="tensorflow",
        rows=args.rows,
        optimizer="Adam(0.005)",
        data="synthetic, ML-20M-shaped ids (Zipf)",
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
