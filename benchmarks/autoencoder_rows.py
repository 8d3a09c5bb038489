"""What scoring (user, item) rows costs an `ItemAutoencoder`, by batch size.

A batch of fewer rows than half the items encodes each row's item on its
own (`num_users * hidden_units` multiplications a row); a larger batch
encodes every item once and gathers the codes. `predict` and `evaluate`
take 65536 rows per batch by default, as does the validation after each
epoch of `fit` (which chooses `training.blend`'s epochs), so a whole
evaluation encodes every item a few times instead of once per row.

The data: the training part of ml-1m's fold 1 (folds 2-5 of the file's
fold column), a seed-7 tenth of it as the rows scored, the rest as the
stored ratings. The model is fitted for one epoch (the weights do not
change the cost). Each batch size is timed twice in the same process:
the first call compiles, the second is the steady cost. One epoch of
`fit` without validation is timed beside them, for scale.

Usage:

    KERAS_BACKEND=jax python benchmarks/autoencoder_rows.py \\
        --data-dir ../shared/data/movielens

It prints a table and writes `benchmarks/results/autoencoder_rows.{md,json}`
(or `--out`'s path).
"""

import argparse
import os
import sys
import time

import keras

from keras_catembed import ItemAutoencoder
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
from blend_validation import tenth  # noqa: E402
from blend_validation import training_part  # noqa: E402

# 1024 rows: each row's item encoded (2 x 1024 < ml-1m's 3706 items);
# 4096: every item per batch; 65536: the default.
BATCH_SIZES = (1024, 4096, 65536)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or os.path.join(HERE, "results", "autoencoder_rows")

    part = training_part("ml-1m", args.data_dir, "fold1")
    fit_rows, val_rows = tenth(len(part.rating), 7)
    fit, validation = part.subset(fit_rows), part.subset(val_rows)
    keras.utils.set_random_seed(0)
    model = ItemAutoencoder(
        {"user_id": part.num_users, "movie_id": part.num_movies},
        rating_range=(1.0, 5.0),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    x_fit = movielens.inputs(fit, model.columns)
    model.fit(x_fit, fit.rating, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x_fit, fit.rating, epochs=1, verbose=0)
    epoch = time.perf_counter() - start

    x_val = movielens.inputs(validation, model.columns)
    rows = []
    for batch_size in BATCH_SIZES:
        seconds, scores = [], None
        for _ in range(2):
            start = time.perf_counter()
            scores = model.evaluate(
                x_val,
                validation.rating,
                batch_size=batch_size,
                verbose=0,
                return_dict=True,
            )
            seconds.append(time.perf_counter() - start)
        rows.append(
            {
                "batch_size": batch_size,
                "every_item": 2 * batch_size >= model.num_items,
                "first_s": seconds[0],
                "steady_s": seconds[1],
                "rmse": float(scores["rmse"]),
            }
        )
    results = {
        "num_stored": int(fit_rows.size),
        "num_scored": int(val_rows.size),
        "num_items": model.num_items,
        "num_users": model.num_users,
        "hidden_units": model.hidden_units,
        "fit_epoch_s": epoch,
        "evaluate": rows,
        "speedup_default_over_each_row": rows[0]["steady_s"]
        / rows[-1]["steady_s"],
    }
    lines = [
        f"ItemAutoencoder.evaluate of {val_rows.size} ml-1m rows "
        f"({model.num_items} items x {model.num_users} users, "
        f"{model.hidden_units} hidden units); one epoch of fit: {epoch:.1f} s",
        "",
        "| rows per batch | items encoded | first call s | steady s | RMSE |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        how = "every item, per batch" if row["every_item"] else "each row's"
        lines.append(
            f"| {row['batch_size']} | {how} | {row['first_s']:.2f} | "
            f"{row['steady_s']:.2f} | {row['rmse']:.4f} |"
        )
    lines += [
        "",
        "Default (65536) over each row's item (1024), steady: "
        f"{results['speedup_default_over_each_row']:.1f}x faster",
    ]
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(backend=keras.backend.backend())
    _results.write(out, table, results, machine)


if __name__ == "__main__":
    main()
