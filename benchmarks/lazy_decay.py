"""Can sparse updates keep dense Adam's accuracy? An experiment on ml-100k.

The `recommended` preset trains with dense Adam and an L2 penalty on the
embedding tables: every step moves every row. `SparseAdam` touches only
the rows of the batch, and then applies the penalty once per occurrence,
which loses accuracy. This script compares, on the same data:

- `adam`: the preset as published (dense Adam, L2 2e-3 on the tables);
- `sparse-l2`: `SparseAdam`, the L2 penalty applied to the batch's rows;
- `lazy-decay-<d>`: `SparseAdam(weight_decay=d)` without the penalty:
  a decoupled weight decay of the tables (as in AdamW: each step
  multiplies every row by `1 - d * learning_rate`), applied lazily: a row
  skipped for a while takes the factors of the steps it missed when it
  is next touched (or at the end of each epoch), which gives the values
  of the dense decay. The biases, the hidden layers and the output unit
  are excluded from the decay;
- `catchup-l2` and `catchup-decay-<d>`: the same, plus a catch-up of the
  moves that dense Adam's momentum would have made on skipped rows
  (`CatchUpAdam`, an experiment kept here).

Protocol: the decay rate is chosen on a validation part (a random tenth of
u1.base, seed 0) carved from the training part; only the chosen rate and
the preset are then trained on the whole of u1.base and scored on u1.test.

Usage:

    KERAS_BACKEND=jax python benchmarks/lazy_decay.py \\
        --data-dir ../shared/data/movielens

It writes `benchmarks/results/lazy_decay.{md,json}`.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
from keras import ops

from keras_catembed import RatingModel
from keras_catembed import optimizers
from keras_catembed import presets
from keras_catembed.datasets import movielens
from keras_catembed.datasets.movielens import inputs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

TABLES = ("_embedding/", "_implicit/", "_neighborhood/")


class CatchUpAdam(optimizers.SparseAdam):
    """Lazy Adam that catches up on the steps a row missed.

    Dense Adam keeps moving a row after its batch has passed: its first
    moment decays by `beta_1` a step, its second by `beta_2`, and each
    step moves the row by `alpha * m / (sqrt(v) + epsilon)`. With no new
    gradient in between, those moves sum to a geometric series, so a row
    skipped for `k` steps gets them all at once when it is next touched
    (and at the end of training), with its moments decayed by
    `beta_1 ** k` and `beta_2 ** k`. Only the learning rate of the
    catch-up step stands in for those of the missed steps.
    """

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._steps = [
            self.add_variable((v.shape[0],), name=f"step_{i}")
            if _is_table(v)
            else None
            for i, v in enumerate(variables)
        ]
        self._lazy = set()

    def _sparse_update(self, indices, values, variable, learning_rate):
        index = self._get_variable_index(variable)
        if self._steps[index] is None:
            return super()._sparse_update(
                indices, values, variable, learning_rate
            )
        self._lazy.add(index)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        alpha = self._alpha(learning_rate, step, dtype)
        m, v, marks = (
            self._momentums[index],
            self._velocities[index],
            self._steps[index],
        )
        m_rows = optimizers._gather(m, indices)
        v_rows = optimizers._gather(v, indices)
        last = optimizers._gather(marks, indices)
        missed = ops.maximum(step - last - 1, 0)
        move, m_rows, v_rows = self._catch_up(alpha, missed, m_rows, v_rows)
        values = ops.cast(values, dtype)
        m_rows = m_rows + (values - m_rows) * (1 - self.beta_1)
        v_rows = v_rows + (ops.square(values) - v_rows) * (1 - self.beta_2)
        move = move + alpha * m_rows / (ops.sqrt(v_rows) + self.epsilon)
        optimizers._scatter(self, m, indices, m_rows, "set")
        optimizers._scatter(self, v, indices, v_rows, "set")
        optimizers._scatter(self, variable, indices, move, "sub")
        optimizers._scatter(
            self, marks, indices, ops.broadcast_to(step, ops.shape(last)), "set"
        )

    def _alpha(self, learning_rate, step, dtype):
        lr = ops.cast(learning_rate, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), step)
        return lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

    def _catch_up(self, alpha, missed, m_rows, v_rows):
        ratio = self.beta_1 / self.beta_2**0.5
        series = ratio * (1 - ops.power(ratio, missed)) / (1 - ratio)
        move = (
            alpha * series[:, None] * m_rows / (ops.sqrt(v_rows) + self.epsilon)
        )
        m_rows = m_rows * ops.power(self.beta_1, missed)[:, None]
        v_rows = v_rows * ops.power(self.beta_2, missed)[:, None]
        return move, m_rows, v_rows

    def finalize_variable_values(self, variables):
        for variable in variables:
            index = self._get_variable_index(variable)
            if index not in self._lazy:
                continue
            dtype = variable.dtype
            step = ops.cast(self.iterations, dtype)
            alpha = self._alpha(self.learning_rate, step, dtype)
            m, v, marks = (
                self._momentums[index],
                self._velocities[index],
                self._steps[index],
            )
            missed = ops.maximum(step - marks, 0)
            move, m_rows, v_rows = self._catch_up(
                alpha, missed, m.value, v.value
            )
            variable.assign(variable - move)
            m.assign(m_rows)
            v.assign(v_rows)
            marks.assign(ops.broadcast_to(step, ops.shape(marks)))
        super().finalize_variable_values(variables)


def _is_table(variable):
    return len(variable.shape) == 2 and any(t in variable.path for t in TABLES)


def train(variant, train_part, test_part, num_users, num_movies, seed=0):
    keras.utils.set_random_seed(seed)
    recipe = presets.recipe("recommended")
    embeddings = {"user_id": num_users, "movie_id": num_movies}
    overrides = {}
    if "-decay-" in variant:
        overrides["embeddings_regularizer"] = None
    model = RatingModel.from_preset("recommended", embeddings, **overrides)
    x = inputs(train_part)
    y = train_part.rating
    model.adapt(x)
    rate = recipe.learning_rate_for(len(train_part))
    if variant == "adam":
        optimizer = keras.optimizers.Adam(rate)
    elif variant == "sparse-l2":
        optimizer = optimizers.SparseAdam(rate)
    elif variant == "catchup-l2":
        optimizer = CatchUpAdam(rate)
    elif variant.startswith("catchup-decay-"):
        optimizer = CatchUpAdam(
            rate, weight_decay=float(variant.split("-")[-1])
        )
    else:
        optimizer = optimizers.SparseAdam(
            rate, weight_decay=float(variant.split("-")[-1])
        )
    if getattr(optimizer, "weight_decay", None):
        # The decay stands in for the tables' L2 penalty: the biases, the
        # hidden layers and the output unit are not decayed.
        model.build()
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if not _is_table(v)]
        )
    model.compile(
        optimizer=optimizer,
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    start = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        verbose=0,
    )
    fit_time = time.perf_counter() - start
    prediction = model.predict(inputs(test_part), batch_size=8192)
    error = np.asarray(prediction).reshape(-1) - test_part.rating
    return float(np.sqrt(np.mean(error**2))), fit_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--decays", nargs="*", type=float, default=[0.3, 1.0, 3.0]
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=["adam", "sparse-l2"],
        help="Variants besides the decays to train on the validation part.",
    )
    parser.add_argument(
        "--test-baselines",
        nargs="*",
        default=["adam", "sparse-l2"],
        help="Variants trained on u1.base and scored on u1.test besides "
        "the one chosen on validation.",
    )
    parser.add_argument("--out", default="lazy_decay")
    args = parser.parse_args()
    ratings = movielens.load_ratings("ml-100k", data_dir=args.data_dir)
    base, test = ratings.official_split("u1")
    fit_part, validation = base.random_split(0.1, seed=0)
    sizes = (ratings.num_users, ratings.num_movies)
    out = os.path.join(HERE, "results", args.out)
    validation_rows = []
    variants = args.baselines + [f"lazy-decay-{d:g}" for d in args.decays]
    for variant in variants:
        rmse, seconds = train(variant, fit_part, validation, *sizes)
        validation_rows.append(
            {"variant": variant, "validation_rmse": rmse, "fit_time": seconds}
        )
        print(json.dumps(validation_rows[-1]), flush=True)
    # The choice is among the sparse variants with a decay or a catch-up.
    candidates = [
        r for r in validation_rows if r["variant"] not in ("adam", "sparse-l2")
    ]
    chosen = min(candidates, key=lambda r: r["validation_rmse"])["variant"]
    test_rows = []
    for variant in [*args.test_baselines, chosen]:
        rmse, seconds = train(variant, base, test, *sizes)
        test_rows.append(
            {"variant": variant, "test_rmse": rmse, "fit_time": seconds}
        )
        print(json.dumps(test_rows[-1]), flush=True)
    lines = [
        "ml-100k, preset 'recommended' (25 epochs, batch 256, warm-up + "
        "cosine); validation: a random tenth of u1.base (trained on the "
        "rest); test: u1.test (trained on u1.base); whole fit call time",
        "",
        "| variant | validation RMSE | fit time |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['validation_rmse']:.4f} | "
        f"{r['fit_time']:.0f} s |"
        for r in validation_rows
    ]
    lines += ["", f"Chosen on validation: {chosen}", ""]
    lines += ["| variant | u1 test RMSE | fit time |", "|---|---:|---:|"]
    lines += [
        f"| {r['variant']} | {r['test_rmse']:.4f} | {r['fit_time']:.0f} s |"
        for r in test_rows
    ]
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        load_average=list(os.getloadavg()),
    )
    _results.write(
        out,
        table,
        {"validation": validation_rows, "chosen": chosen, "test": test_rows},
        machine,
    )


if __name__ == "__main__":
    main()
