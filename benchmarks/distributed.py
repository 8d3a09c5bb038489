"""Training on several devices: stock Keras `fit` vs the device loop.

On the JAX backend, with `--devices` virtual CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count`, set by this script),
a RatingModel (8-dim user and movie tables, Dense 32-4-1, MSE) trains on
synthetic ratings shaped like MovieLens-20M (the throughput benchmark's
Zipf-drawn ids; the user table is rounded up to 138,496 rows so that 4
devices divide it) under three layouts:

- one device: no distribution;
- `DataParallel`: every device holds the whole model, each batch is split
  over all devices;
- `ModelParallel`: a `(devices / 4, 4)` `("batch", "model")` mesh, every
  table split by rows over the 4 devices of the "model" axis
  (`keras_catembed.distribution.layout_map`), each batch over "batch".

and three training paths: the stock `keras.Model.fit` (`fit(fast=False)`,
`keras.optimizers.Adam`), the device loop with the same Adam, and the
device loop with `keras_catembed.optimizers.SparseAdam`.

For each (layout, path), a new model's whole `fit` call of `--whole-epochs`
epochs is timed (compilation included, what a user waits for), then
`--repeats` one-epoch calls (steady state, median). Ratios are to the stock
`fit` under the same layout, in the same process. Virtual devices share the
machine's cores, so the figures show what the paths cost under a
distribution, not how they scale with real devices.

Every `fit` call here waits for each compiled call to finish before the
next starts (a callback reads the logs of each batch): XLA's virtual CPU
devices meet at each all-reduce on a shared pool of threads, and Keras's
own loop, which queues steps ahead, otherwise stalls there for good when
8 devices share 2 cores. The device loop does the same by itself on CPU
devices.

Usage:

    python benchmarks/distributed.py --rows 200000 --batch-size 4096

It prints a markdown table and writes
`benchmarks/results/distributed.{md,json}`.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

NUM_USERS = 138_496  # 138,493 rounded up to a multiple of 4
NUM_MOVIES = 26_744
MODEL_AXIS = 4

PATHS = {
    "stock fit, Adam": ("adam", False),
    "device loop, Adam": ("adam", "auto"),
    "device loop, SparseAdam": ("sparse", "auto"),
}


def synchronous():
    """A callback that waits for each batch's (or call's) logs."""
    import jax
    import keras

    class Synchronous(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            jax.block_until_ready(logs)

    return Synchronous()


def make_model(optimizer):
    import keras

    import keras_catembed

    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(NUM_USERS, 8),
            "movie_id": keras_catembed.EntityEmbedding(NUM_MOVIES, 8),
        }
    )
    return model, (
        keras_catembed.optimizers.SparseAdam(0.005)
        if optimizer == "sparse"
        else keras.optimizers.Adam(0.005)
    )


def layouts(devices):
    """(name, distribution or None) of each layout.

    The model is made under the distribution (Keras's own loop needs the
    model's metrics on the devices too); `ModelParallel`'s layout map is
    made from an unbuilt model of the same layers.
    """
    import keras

    import keras_catembed

    def model_parallel(model):
        mesh = keras.distribution.DeviceMesh(
            shape=(devices // MODEL_AXIS, MODEL_AXIS),
            axis_names=("batch", "model"),
        )
        return keras.distribution.ModelParallel(
            layout_map=keras_catembed.distribution.layout_map(model, mesh),
            batch_dim_name="batch",
        )

    return [
        ("one device", None),
        (f"DataParallel ({devices})", keras.distribution.DataParallel()),
        (
            f"ModelParallel ({devices // MODEL_AXIS}x{MODEL_AXIS})",
            model_parallel(make_model("adam")[0]),
        ),
    ]


def measure(rows, batch_size, repeats, whole_epochs, devices):
    import contextlib

    import jax
    import keras
    from throughput import synthetic

    assert len(jax.devices()) == devices, jax.devices()
    x, y = synthetic(rows)
    # Every `fit` call waits for each batch (see the module docstring).
    callbacks = [synchronous()]
    results = []
    for layout, distribution in layouts(devices):
        whole = {}
        steady = {}
        for path, (optimizer, fast) in PATHS.items():
            print(f"{layout}: {path}", file=sys.stderr, flush=True)
            keras.utils.set_random_seed(0)
            scope = (
                contextlib.nullcontext()
                if distribution is None
                else distribution.scope()
            )
            with scope:
                model, optimizer = make_model(optimizer)
                model.build()
                model.compile(optimizer=optimizer, loss="mse")
                start = time.perf_counter()
                model.fit(
                    x,
                    y,
                    batch_size=batch_size,
                    epochs=whole_epochs,
                    verbose=0,
                    fast=fast,
                    callbacks=callbacks,
                )
                whole[path] = time.perf_counter() - start
                seconds = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model.fit(
                        x,
                        y,
                        batch_size=batch_size,
                        verbose=0,
                        fast=fast,
                        callbacks=callbacks,
                    )
                    seconds.append(time.perf_counter() - start)
                steady[path] = seconds
                ran_loop = bool(model.__dict__.get("_fast_fit_runners"))
            results.append(
                {
                    "layout": layout,
                    "path": path,
                    "device_loop_ran": ran_loop,
                    "whole_fit_epochs": whole_epochs,
                    "whole_fit_seconds": whole[path],
                    "seconds": seconds,
                    "samples_per_second": rows / statistics.median(seconds),
                }
            )
        stock = "stock fit, Adam"
        for result in results[-len(PATHS) :]:
            path = result["path"]
            result["whole_fit_ratio"] = whole[stock] / whole[path]
            result["ratio_to_stock"] = statistics.median(
                steady[stock]
            ) / statistics.median(steady[path])
    return results


def markdown(results, epochs):
    lines = [
        "| layout | path | whole `fit` call "
        f"({epochs} epochs) s | its ratio to stock | one-epoch samples/s "
        "| its ratio to stock |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['layout']} | {r['path']} | {r['whole_fit_seconds']:.1f} | "
            f"{r['whole_fit_ratio']:.2f} | {r['samples_per_second']:,.0f} | "
            f"{r['ratio_to_stock']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole-epochs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "distributed")
    )
    args = parser.parse_args(argv)
    if args.devices % MODEL_AXIS or args.batch_size % args.devices:
        parser.error(
            f"--devices must be a multiple of {MODEL_AXIS} and divide "
            "--batch-size"
        )
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={args.devices}"
    )
    results = measure(
        args.rows,
        args.batch_size,
        args.repeats,
        args.whole_epochs,
        args.devices,
    )
    table = markdown(results, args.whole_epochs)
    print(table)
    machine = _results.machine_info(
        backend="jax",
        rows=args.rows,
        batch_size=args.batch_size,
        repeats=args.repeats,
        devices=args.devices,
        data="synthetic, ML-20M-shaped ids (Zipf)",
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
