"""Time and accuracy of the training fingerprint `fit` records.

`fit` hashes every training row and keeps a bottom-k sketch of the hashes
(`keras_catembed._provenance`). This measures, on synthetic two-column
ratings (all rows distinct, and many repeats of a few rows), the
seconds `sketch` takes (NumPy only: no backend involved) for
several training sizes, and the overlap estimate of a test set of which
30% are training rows.

    python benchmarks/fingerprint_cost.py [--sizes 100000 1000000 10000000]

Writes benchmarks/results/fingerprint_cost.{json,md}.
"""

import argparse
import os
import sys
import time

import numpy as np

from keras_catembed import _provenance

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402


def measure(num_rows, distinct=None, repeats=3):
    """Rows drawn from `distinct` different rows (all distinct if None)."""
    rng = np.random.default_rng(0)
    num_distinct = num_rows if distinct is None else distinct
    x = {
        "user_id": rng.integers(0, 2**31 - 1, num_distinct),
        "movie_id": rng.integers(0, 2**31 - 1, num_distinct),
    }
    y = rng.integers(1, 6, num_distinct).astype("float32")
    if distinct is not None:
        # Each row repeated about num_rows / distinct times (as a data set
        # of many repeated ratings, or one listed once per epoch).
        rows = rng.integers(0, distinct, num_rows)
        x = {column: values[rows] for column, values in x.items()}
        y = y[rows]
    columns = list(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fingerprint = _provenance.sketch(columns, x, y)
        times.append(time.perf_counter() - start)
    # A test set of 20% the training size, 30% of it training rows.
    num_test = max(num_rows // 5, 10)
    seen = rng.choice(num_rows, int(0.3 * num_test), replace=False)
    fresh = num_test - seen.size
    test_x = {
        column: np.concatenate(
            [x[column][seen], rng.integers(0, 2**31 - 1, fresh)]
        )
        for column in columns
    }
    test_y = np.concatenate([y[seen], rng.integers(1, 6, fresh)])
    estimate, sampled = _provenance.overlap(fingerprint, test_x, test_y)
    return {
        "rows": num_rows,
        "distinct_rows": (
            num_rows if distinct is None else int(np.unique(rows).size)
        ),
        "sketch_seconds": min(times),
        "test_rows": num_test,
        "true_overlap": seen.size / num_test,
        "estimated_overlap": estimate,
        "sampled_test_rows": sampled,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument(
        "--repeated",
        type=int,
        nargs=2,
        action="append",
        metavar=("ROWS", "DISTINCT"),
        default=None,
        help="also ROWS rows drawn from DISTINCT different rows "
        "(default: 1000000 20000)",
    )
    args = parser.parse_args()
    repeated = args.repeated or [(1_000_000, 20_000)]
    results = [measure(n) for n in args.sizes]
    results += [measure(n, distinct) for n, distinct in repeated]
    lines = [
        "| training rows | distinct | sketch (s) | test rows | true overlap | "
        "estimate | sampled test rows |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['distinct_rows']:,} | "
            f"{r['sketch_seconds']:.3f} | "
            f"{r['test_rows']:,} | {r['true_overlap']:.3f} | "
            f"{r['estimated_overlap']:.3f} | {r['sampled_test_rows']:,} |"
        )
    table = "\n".join(lines)
    print(table)
    _results.write(
        os.path.join(HERE, "results", "fingerprint_cost"),
        table,
        results,
        _results.machine_info(
            sketch_size=_provenance.SKETCH_SIZE, load_average=os.getloadavg()
        ),
    )


if __name__ == "__main__":
    main()
