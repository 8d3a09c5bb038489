"""Cross-validates a preset on ml-100k's official folds u1..u5.

Each fold's model trains on `<fold>.base` only and is scored on
`<fold>.test`; nothing is chosen on any rating, since the preset's
settings are fixed. This is the example of `docs/evaluation.md`.

Usage:

    KERAS_BACKEND=torch python benchmarks/cross_validation.py \\
        --data-dir ../shared/data/movielens --preset course

It prints the per-fold table and writes
`benchmarks/results/cross_validation_<preset>.{md,json}`.
"""

import argparse
import contextlib
import io
import os
import sys

import keras

from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate
from keras_catembed.evaluation.protocols import OfficialFolds

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="course")
    args = parser.parse_args()
    ratings = movielens.load_ratings("ml-100k", data_dir=args.data_dir)
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        results = cross_validate(
            args.preset, ratings, protocol=OfficialFolds(), verbose=True
        )
    print(table.getvalue())
    figures = {
        key: (value.tolist() if hasattr(value, "tolist") else value)
        for key, value in results.items()
    }
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        dataset="ml-100k",
        protocol="OfficialFolds(u1..u5)",
        preset=args.preset,
    )
    out = os.path.join(HERE, "results", f"cross_validation_{args.preset}")
    _results.write(out, table.getvalue().rstrip(), figures, machine)


if __name__ == "__main__":
    main()
