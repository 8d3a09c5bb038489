"""MovieLens ratings parser: the NumPy byte parser vs `pyarrow.csv`.

Reads and parses a ratings file into int64 user ids, int64 movie ids,
float64 ratings and int64 timestamps (NumPy arrays) two ways:

- `numpy`: the loader's NumPy parser
  (`keras_catembed.datasets.movielens.parsing._parse_table_numpy`), reading the
  file's bytes and parsing them;
- `pyarrow`: `pyarrow.csv.read_csv` with the four column types given,
  then `to_numpy()` on each column; with its threads (`pyarrow`) and with
  one thread (`pyarrow_1_thread`). `pyarrow.csv` takes one-character
  delimiters only, so a `::`-separated `ratings.dat` is read as bytes and
  its `::` replaced by tabs first (inside the timing).

Files:

- `ml-1m ratings.dat`: the real ml-1m lines of users 1..2999 (487,650
  ratings in the `::` format, from `/work/shared/data/movielens`; skipped
  when absent);
- `ml-1m csv`: all 1,000,209 real ml-1m ratings, as a 4-column csv;
- `synthetic ratings.csv`: `--rows` rows (default 20,000,263, the size of
  ml-20m) in the format of ml-20m's `ratings.csv`, written to a temporary
  folder by `write_synthetic`.

Each timing is the best of `--repeats` rounds (default 3), in which the
three methods take turns. Both parsers are
checked to give the same arrays. pyarrow is installed with the `fast-csv`
extra (`pip install keras-catembed[fast-csv]`).

Usage:

    python benchmarks/loader.py --rows 2000000

It prints a markdown table and writes `benchmarks/results/loader.{md,json}`.
"""

import argparse
import gc
import os
import sys
import tempfile
import time

import numpy as np

# The parser needs no backend; numpy's imports fastest.
os.environ.setdefault("KERAS_BACKEND", "numpy")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _ml20m_shape  # noqa: E402
import _results  # noqa: E402

from keras_catembed.datasets.movielens import parsing  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data")
ML1M = os.path.join(DATA, "movielens", "ml-1m")
KINDS = ("int", "int", "float", "int")


def parse_numpy(path, separator, header):
    with open(path, "rb") as handle:
        data = handle.read()
    columns = ("user", "movie", "rating", "timestamp")
    return parsing._parse_table_numpy(
        data,
        separator=separator,
        columns=columns,
        kinds=KINDS,
        filename=path,
        header=header,
    )


def parse_pyarrow(path, separator, header, threads):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = ["user", "movie", "rating", "timestamp"]
    types = [pa.int64(), pa.int64(), pa.float64(), pa.int64()]
    source = path
    if len(separator) > 1:
        with open(path, "rb") as handle:
            source = pa.BufferReader(handle.read().replace(separator, b"\t"))
        separator = b"\t"
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=0 if header is None else 1,
            use_threads=threads,
        ),
        parse_options=pacsv.ParseOptions(delimiter=separator.decode()),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=True))
        ),
    )
    return [table.column(name).to_numpy() for name in names]


def write_synthetic(path, num_rows, seed=0):
    """Writes `num_rows` ratings in the layout of ml-20m's ratings.csv.

    Drawn in one pass (the parser's cost depends on the number of lines
    and digits, not on who rated what): users 1..138,493 in increasing
    order as in the file, each about `num_rows / 138,493` ratings; movie
    ids among 26,744 ids spread over 1..131,262 (ml-20m's range), drawn
    with a popularity of `1 / (rank + 300) ** 2`; half-star ratings written
    as ml-20m writes them (`4.0`, `3.5`); timestamps of 9 and 10 digits.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    num_users = _ml20m_shape.ML20M_USERS
    users = np.sort(rng.integers(1, num_users + 1, num_rows))
    ids = np.sort(rng.choice(131_262, _ml20m_shape.ML20M_MOVIES, False)) + 1
    popularity = 1.0 / (np.arange(ids.size) + 300.0) ** 2
    ranks = rng.choice(ids.size, num_rows, p=popularity / popularity.sum())
    movies = rng.permutation(ids)[ranks]
    labels = pa.array([f"{0.5 * (k + 1):.1f}" for k in range(10)])
    shares = np.array([1, 2, 3, 7, 14, 20, 27, 13, 8, 5]) / 100
    stars = rng.choice(10, num_rows, p=shares)
    stamps = rng.integers(789_652_009, 1_427_784_003, num_rows)
    table = pa.table(
        {
            "userId": users,
            "movieId": movies,
            "rating": labels.take(pa.array(stars)),
            "timestamp": stamps,
        }
    )
    pacsv.write_csv(
        table,
        path,
        write_options=pacsv.WriteOptions(quoting_style="none"),
    )
    return num_rows


def measure(label, path, separator, header, rows, repeats):
    size = os.path.getsize(path)
    print(f"{label}: {rows:,} rows, {size / 1e6:.0f} MB", flush=True)
    result = {"file": label, "rows": rows, "bytes": size}
    methods = {
        "numpy": lambda: parse_numpy(path, separator, header),
        "pyarrow": lambda: parse_pyarrow(path, separator, header, True),
        "pyarrow_1_thread": lambda: parse_pyarrow(
            path, separator, header, False
        ),
    }
    times = dict.fromkeys(methods, float("inf"))
    # The methods take turns in each round, so that a busy spell on a
    # shared machine does not favour one of them.
    for round_ in range(repeats):
        reference = None
        for method, function in methods.items():
            gc.collect()
            start = time.perf_counter()
            arrays = function()
            times[method] = min(times[method], time.perf_counter() - start)
            if round_ == 0:
                if reference is None:
                    reference = arrays
                else:
                    for got, want in zip(arrays, reference, strict=True):
                        np.testing.assert_array_equal(got, want)
            del arrays
        del reference
    for method, seconds in times.items():
        print(f"  {method}: {seconds:.2f} s", flush=True)
    result["seconds"] = times
    result["rows_per_second"] = {k: rows / v for k, v in times.items()}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=_ml20m_shape.ML20M_ROWS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "loader")
    )
    args = parser.parse_args()
    import pyarrow

    load_before = os.getloadavg()[0]
    results = []
    dat = os.path.join(ML1M, "ratings_users0001-2999_with_timestamps.dat")
    if os.path.isfile(dat):
        results.append(
            measure(
                "ml-1m ratings.dat", dat, b"::", None, 487_650, args.repeats
            )
        )
    csv = os.path.join(ML1M, "ratings_no_timestamp.csv")
    if os.path.isfile(csv):
        header = b"user_id,movie_id,rating,siren_fold"
        results.append(
            measure("ml-1m csv", csv, b",", header, 1_000_209, args.repeats)
        )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ratings.csv")
        start = time.perf_counter()
        rows = write_synthetic(path, args.rows)
        print(f"generated in {time.perf_counter() - start:.0f} s", flush=True)
        with open(path, "rb") as handle:
            header = handle.readline().strip()
        results.append(
            measure(
                "synthetic ratings.csv", path, b",", header, rows, args.repeats
            )
        )
    lines = [
        "| file | rows | NumPy parser (s) | pyarrow (s) | "
        "pyarrow, 1 thread (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        seconds = result["seconds"]
        lines.append(
            f"| {result['file']} | {result['rows']:,} | "
            f"{seconds['numpy']:.2f} | {seconds['pyarrow']:.2f} | "
            f"{seconds['pyarrow_1_thread']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        rows=args.rows,
        repeats=args.repeats,
        pyarrow=pyarrow.__version__,
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
    )
    _results.write(args.out, table, results, machine)


if __name__ == "__main__":
    main()
