"""Torch: stock Keras and RatingModel beside a hand-written PyTorch loop.

How fast can the course model train on the torch backend at all? This
script trains it four ways in one process, on the synthetic ratings of
`throughput.py` (shaped like MovieLens-20M):

- `stock`: the course model in plain Keras, trained by `keras.Model.fit`
  with `keras.optimizers.Adam(0.005)`;
- `RatingModel SparseAdam`: the same architecture as a `RatingModel`,
  trained by its device loop with `keras_catembed.optimizers.SparseAdam`;
- `PyTorch SparseAdam`: the same model written in PyTorch alone, as a
  careful PyTorch user would: `torch.nn.Embedding(sparse=True)` tables
  updated by `torch.optim.SparseAdam`, the Dense layers by
  `torch.optim.Adam(foreach=True)`, batches taken with `index_select`
  from tensors shuffled by `torch.randperm`, no Keras at all;
- `PyTorch Adam`: the same with dense tables and one dense Adam.

The PyTorch models use Keras's initializers (uniform tables in
[-0.05, 0.05], Glorot-uniform kernels, zero biases), Keras's Adam epsilon
(1e-7) and learning rate 0.005. Each runs eagerly: `torch.compile` is
left out, as the library leaves it out on torch (a compiled layer would
skip its id checks).

Timing follows `throughput.py`: after an untimed warm-up of the backend,
each model's first call of `--whole-epochs` epochs is timed from its
construction; then the models alternate over `--repeats` one-epoch calls
and the median gives samples per second. The training loss of each
first call's last epoch is recorded beside it: the four train the same
model on the same ratings, so these should be close.

With `--model-called-as-layer` a fifth model runs, alternated with the
others: the RatingModel whose sparse steps call the model as a layer
(Keras's `Layer.__call__`), as they all did before a step came to run
the model's own `call` where nothing needs that bookkeeping
(`keras_catembed._forward.calls_model_directly`).

Usage:

    python benchmarks/torch_reference.py --rows 1000000 --batch-sizes 1024 16384

It prints a markdown table and writes
`benchmarks/results/torch_reference.{md,json}`.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import throughput  # noqa: E402

LEARNING_RATE = 0.005
# Keras's Adam epsilon (PyTorch's default is 1e-8).
EPSILON = 1e-7
EMBEDDING_DIM = 8


class TorchCourseModel:
    """The course model and its optimizers, in PyTorch alone.

    `sparse=True` gives `torch.nn.Embedding(sparse=True)` tables trained
    by `torch.optim.SparseAdam`; otherwise dense tables and one Adam.
    """

    def __init__(self, sparse, seed=0):
        import torch

        torch.manual_seed(seed)
        self.tables = torch.nn.ModuleList(
            [
                torch.nn.Embedding(rows, EMBEDDING_DIM, sparse=sparse)
                for rows in (throughput.NUM_USERS, throughput.NUM_MOVIES)
            ]
        )
        self.head = torch.nn.Sequential(
            torch.nn.Linear(2 * EMBEDDING_DIM, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 4),
            torch.nn.ReLU(),
            torch.nn.Linear(4, 1),
        )
        with torch.no_grad():
            for table in self.tables:
                torch.nn.init.uniform_(table.weight, -0.05, 0.05)
            for layer in self.head:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.xavier_uniform_(layer.weight)
                    torch.nn.init.zeros_(layer.bias)
        if sparse:
            self.optimizers = [
                torch.optim.SparseAdam(
                    list(self.tables.parameters()),
                    lr=LEARNING_RATE,
                    eps=EPSILON,
                ),
                torch.optim.Adam(
                    self.head.parameters(),
                    lr=LEARNING_RATE,
                    eps=EPSILON,
                    foreach=True,
                ),
            ]
        else:
            self.optimizers = [
                torch.optim.Adam(
                    [*self.tables.parameters(), *self.head.parameters()],
                    lr=LEARNING_RATE,
                    eps=EPSILON,
                    foreach=True,
                )
            ]

    def forward(self, users, movies):
        import torch

        features = torch.cat(
            [self.tables[0](users), self.tables[1](movies)], dim=1
        )
        return self.head(features).squeeze(1)

    def fit(self, x, y, batch_size, epochs=1):
        """Trains on host arrays; returns each epoch's mean training loss."""
        import torch

        users = torch.as_tensor(x["user_id"]).long()
        movies = torch.as_tensor(x["movie_id"]).long()
        ratings = torch.as_tensor(y).float()
        count = ratings.shape[0]
        losses = []
        for _ in range(epochs):
            order = torch.randperm(count)
            total = torch.zeros(())
            for start in range(0, count, batch_size):
                index = order[start : start + batch_size]
                predicted = self.forward(
                    torch.index_select(users, 0, index),
                    torch.index_select(movies, 0, index),
                )
                loss = torch.nn.functional.mse_loss(
                    predicted, torch.index_select(ratings, 0, index)
                )
                for optimizer in self.optimizers:
                    optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for optimizer in self.optimizers:
                    optimizer.step()
                total += loss.detach() * index.shape[0]
            losses.append(float(total) / count)
        return losses


class KerasModel:
    """A Keras model behind the same `fit` as `TorchCourseModel`.

    With `model_called_as_layer`, its sparse steps call the model as a
    layer (`keras_catembed._forward.DIRECT_MODEL_CALLS = False`) during
    its own `fit` calls; the setting is restored after each.
    """

    def __init__(
        self, model, column_vectors=False, model_called_as_layer=False
    ):
        self.model = model
        self.column_vectors = column_vectors
        self.model_called_as_layer = model_called_as_layer

    def fit(self, x, y, batch_size, epochs=1):
        from keras_catembed import _forward

        if self.column_vectors:
            x = {column: ids.reshape(-1, 1) for column, ids in x.items()}
        default = _forward.DIRECT_MODEL_CALLS
        _forward.DIRECT_MODEL_CALLS = not self.model_called_as_layer
        try:
            history = self.model.fit(
                x, y, batch_size=batch_size, epochs=epochs, verbose=0
            )
        finally:
            _forward.DIRECT_MODEL_CALLS = default
        return history.history["loss"]


MODELS = {
    "stock": lambda: KerasModel(throughput.stock_model(), column_vectors=True),
    "RatingModel SparseAdam": lambda: KerasModel(
        throughput.rating_model("sparse")
    ),
    "PyTorch SparseAdam": lambda: TorchCourseModel(sparse=True),
    "PyTorch Adam": lambda: TorchCourseModel(sparse=False),
}
# With `--model-called-as-layer`, the RatingModel once more, its sparse
# steps calling the model as a layer (see `KerasModel`).
AS_LAYER = "RatingModel SparseAdam, model called as a layer"


def measure(rows, batch_sizes, repeats, whole_epochs=3, as_layer=False):
    """Returns one result dict per batch size and model."""
    makers = dict(MODELS)
    if as_layer:
        makers[AS_LAYER] = lambda: KerasModel(
            throughput.rating_model("sparse"), model_called_as_layer=True
        )
    x, y = throughput.synthetic(rows)
    throughput.warm_up_backend()
    results = []
    for batch_size in batch_sizes:
        models, whole, last_loss = {}, {}, {}
        for name, make in makers.items():
            start = time.perf_counter()
            model = models[name] = make()
            losses = model.fit(x, y, batch_size, epochs=whole_epochs)
            whole[name] = time.perf_counter() - start
            last_loss[name] = losses[-1]
        times = {name: [] for name in models}
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.fit(x, y, batch_size)
                times[name].append(time.perf_counter() - start)
        stock = statistics.median(times["stock"])
        for name in models:
            median = statistics.median(times[name])
            results.append(
                {
                    "batch_size": batch_size,
                    "model": name,
                    "samples_per_second": rows / median,
                    "ratio": stock / median,
                    "seconds": times[name],
                    "whole_fit_epochs": whole_epochs,
                    "whole_fit_seconds": whole[name],
                    "whole_fit_ratio": whole["stock"] / whole[name],
                    "whole_fit_last_epoch_loss": last_loss[name],
                }
            )
    return results


def markdown(results):
    epochs = results[0]["whole_fit_epochs"]
    lines = [
        "| batch size | model | train samples/s | ratio to stock "
        f"| whole `fit` call ({epochs} epochs) s | its ratio to stock "
        "| last epoch's training loss |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['batch_size']} | {r['model']} "
            f"| {r['samples_per_second']:,.0f} | {r['ratio']:.2f} "
            f"| {r['whole_fit_seconds']:.1f} | {r['whole_fit_ratio']:.2f} "
            f"| {r['whole_fit_last_epoch_loss']:.4f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1024, 16384]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole-epochs", type=int, default=3)
    parser.add_argument(
        "--model-called-as-layer",
        action="store_true",
        help="Adds the RatingModel with its sparse steps calling the model "
        "as a layer (Keras's `Layer.__call__`), alternated with the others.",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "results", "torch_reference"),
        help="Output path without extension.",
    )
    args = parser.parse_args(argv)
    import keras
    import torch

    if keras.backend.backend() != "torch":
        parser.error(
            "torch_reference.py compares against PyTorch: run it with "
            f"KERAS_BACKEND=torch (got {keras.backend.backend()!r})."
        )
    results = measure(
        args.rows,
        args.batch_sizes,
        args.repeats,
        args.whole_epochs,
        as_layer=args.model_called_as_layer,
    )
    table = markdown(results)
    print(table)
    machine = _results.machine_info(
        rows=args.rows,
        repeats=args.repeats,
        keras=keras.__version__,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    _results.write(args.out, table, results, machine)


if __name__ == "__main__":
    main()
