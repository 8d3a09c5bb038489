"""A user's first `fit` call, each in a fresh Python process.

`throughput.py` times a new model's whole first call in a process that
has already trained other models: programs of the same shapes (the
initializers' draws, for one) are compiled by then, and the models that
run later in the process find more of them ready. A user's first model
in a new Python session finds none. Here every timed call runs in a
process of its own:

1. `import keras` and `import keras_catembed` (both timed, reported
   apart: stock Keras users do not pay the second);
2. synthetic ratings shaped like MovieLens-20M (`throughput.synthetic`)
   and a tiny unrelated model trained once, so that the backend's own
   start-up is not in the timed call (untimed, as in `throughput.py`);
3. timed: the model's construction and compilation and its whole `fit`
   call of `--epochs` epochs (3 by default), as a user waits for it.
   On JAX, a listener of `jax.monitoring` also sums the time the call
   spent in XLA's compilation of programs and counts them (the JSON
   also has the tracing and lowering events, whose spans may nest).

The models are those of `throughput.py`: the Kaggle course model in
stock Keras, and the same architecture as `RatingModel` with
`SparseAdam` and with Keras's dense Adam. The processes alternate
between the models, `--repeats` rounds, and the script reports the median
seconds and the ratio of stock's median to each model's.

Usage:

    python benchmarks/first_call.py --rows 1000000 --batch-sizes 1024 16384

It prints a markdown table and writes
`benchmarks/results/first_call.{md,json}`.
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

MODELS = ("stock", "RatingModel SparseAdam", "RatingModel Adam")

# JAX's events for the stages of making a program: tracing to a jaxpr,
# lowering to MLIR, and XLA's compilation (one per program compiled).
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileTime:
    """Sums JAX's tracing, lowering and compilation events while active."""

    def __init__(self):
        self.active = False
        self.seconds = {TRACE_EVENT: 0.0, LOWER_EVENT: 0.0, COMPILE_EVENT: 0.0}
        self.programs = 0

    def __call__(self, event, duration, **kwargs):
        if self.active and event in self.seconds:
            self.seconds[event] += duration
            self.programs += event == COMPILE_EVENT

    def figures(self):
        return {
            "jax_trace_seconds": self.seconds[TRACE_EVENT],
            "jax_lower_seconds": self.seconds[LOWER_EVENT],
            "jax_compile_seconds": self.seconds[COMPILE_EVENT],
            "jax_programs_compiled": self.programs,
        }


def worker(model_name, rows, batch_size, epochs):
    """One timed first call in this (fresh) process; returns its figures."""
    start = time.perf_counter()
    import keras

    keras_seconds = time.perf_counter() - start
    start = time.perf_counter()
    import keras_catembed  # noqa: F401

    catembed_seconds = time.perf_counter() - start
    import throughput

    x, y = throughput.synthetic(rows)
    if model_name == "stock":
        x = {column: values.reshape(-1, 1) for column, values in x.items()}
    throughput.warm_up_backend()
    compile_time = None
    if keras.backend.backend() == "jax":
        import jax

        compile_time = CompileTime()
        jax.monitoring.register_event_duration_secs_listener(compile_time)
        compile_time.active = True
    start = time.perf_counter()
    if model_name == "stock":
        model = throughput.stock_model()
    else:
        optimizer = "sparse" if model_name.endswith("SparseAdam") else "adam"
        model = throughput.rating_model(optimizer)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    result = {
        "backend": keras.backend.backend(),
        "model": model_name,
        "batch_size": batch_size,
        "seconds": seconds,
        "import_keras_seconds": keras_seconds,
        "import_keras_catembed_seconds": catembed_seconds,
    }
    if compile_time is not None:
        compile_time.active = False
        result.update(compile_time.figures())
    return result


def measure(backend, rows, batch_sizes, repeats, epochs):
    """Alternates fresh processes over the models; one result per model."""
    results = []
    for batch_size in batch_sizes:
        runs = {name: [] for name in MODELS}
        for _ in range(repeats):
            for name in MODELS:
                arguments = [
                    "--model",
                    name,
                    "--rows",
                    rows,
                    "--batch-sizes",
                    batch_size,
                    "--epochs",
                    epochs,
                ]
                runs[name].append(
                    _results.run_worker(__file__, backend, arguments)
                )
        stock = statistics.median(run["seconds"] for run in runs["stock"])
        for name in MODELS:
            # Each run's figures (seconds, imports, JAX's compilation),
            # listed over the rounds.
            figures = {
                key: [run[key] for run in runs[name]]
                for key in runs[name][0]
                if key not in ("backend", "model", "batch_size")
            }
            median = statistics.median(figures["seconds"])
            results.append(
                {
                    "backend": backend,
                    "batch_size": batch_size,
                    "model": name,
                    "epochs": epochs,
                    "median_seconds": median,
                    "ratio_to_stock": stock / median,
                    **figures,
                }
            )
    return results


def markdown(results):
    epochs = results[0]["epochs"]
    lines = [
        f"| backend | batch size | model | first `fit` call ({epochs} "
        "epochs) in a fresh process, median s | ratio to stock | "
        "`import keras_catembed`, median s | JAX: XLA compilation in the "
        "call, median s | JAX: programs compiled |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        compiling = programs = "-"
        if "jax_compile_seconds" in r:
            compiling = f"{statistics.median(r['jax_compile_seconds']):.2f}"
            programs = f"{statistics.median(r['jax_programs_compiled']):.0f}"
        lines.append(
            f"| {r['backend']} | {r['batch_size']} | {r['model']} | "
            f"{r['median_seconds']:.2f} | {r['ratio_to_stock']:.2f} | "
            f"{statistics.median(r['import_keras_catembed_seconds']):.2f} | "
            f"{compiling} | {programs} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1024, 16384]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "first_call")
    )
    args = parser.parse_args(argv)
    for name in ("rows", "repeats", "epochs"):
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name} must be at least 1; got {value}")
    if args.worker:
        (batch_size,) = args.batch_sizes
        result = worker(args.model, args.rows, batch_size, args.epochs)
        print("RESULTS " + json.dumps(result))
        return result
    results = []
    for backend in args.backends:
        results.extend(
            measure(
                backend, args.rows, args.batch_sizes, args.repeats, args.epochs
            )
        )
    table = markdown(results)
    print(table)
    machine = _results.machine_info(
        rows=args.rows,
        repeats=args.repeats,
        load_average=list(os.getloadavg()),
    )
    _results.write(args.out, table, results, machine)
    return results


if __name__ == "__main__":
    main()
