"""Time and accuracy of the training fingerprint `fit` records.

`fit` hashes every training row and keeps a bottom-k sketch of the hashes
(`keras_catembed._provenance`). This measures, on synthetic two-column
ratings, the seconds `sketch` takes (NumPy only: no backend involved) for
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


def measure(num_rows, repeats=3):
    rng = np.random.default_rng(0)
    x = {
        "user_id": rng.integers(0, 2**31 - 1, num_rows),
        "movie_id": rng.integers(0, 2**31 - 1, num_rows),
    }
    y = rng.integers(1, 6, num_rows).astype("float32")
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
    args = parser.parse_args()
    results = [measure(n) for n in args.sizes]
    lines = [
        "| training rows | sketch (s) | test rows | true overlap | "
        "estimate | sampled test rows |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['sketch_seconds']:.3f} | "
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
