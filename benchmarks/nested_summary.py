"""One table of the nested variant choice over folds from several runs.

`nested_variants.py` writes one JSON per run; the ml-1m folds ran in
more than one (fold 1 in float32, folds 2 to 5 with bfloat16 pairs).
This script reads those runs and the per-fold Surprise scores of
another run on the same folds (`surprise_comparison.py`), and writes
each fold's choice and test RMSE beside SVD++'s, the margin, the final
model's fit-and-test time beside SVD++'s, and the means over the folds.
It computes nothing new: every figure is read from the named JSON
files.

```bash
R=benchmarks/results
python benchmarks/nested_summary.py $R/nested_variants_ml-1m.json \
    $R/nested_variants_ml-1m_bfloat16.json \
    $R/nested_variants_ml-1m_bfloat16_folds345.json \
    --surprise $R/surprise_comparison_ml-1m_5fold_bfloat16.json \
    --out $R/nested_variants_ml-1m_summary
```
"""

import argparse
import json
import pathlib

import _results
import numpy as np

SVDPP = "Surprise SVDpp"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="nested_variants JSON files")
    parser.add_argument(
        "--surprise",
        required=True,
        help="a surprise_comparison JSON whose folds are those of the runs",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    surprise = json.loads(pathlib.Path(args.surprise).read_text())
    folds = [int(f) for f in _folds(surprise["machine"])]
    svdpp = surprise["results"][SVDPP]
    rows = []
    for path in args.runs:
        run = json.loads(pathlib.Path(path).read_text())
        dtype = run["machine"].get("pair_dtype") or "float32"
        for result in run["results"]:
            fold = result["fold"]
            if any(row["fold"] == fold for row in rows):
                raise ValueError(f"Fold {fold} is in more than one run.")
            index = folds.index(fold)
            svdpp_seconds = svdpp["fit_time"][index] + svdpp["test_time"][index]
            rows.append(
                {
                    "fold": fold,
                    "run": pathlib.Path(path).name,
                    "pair_dtype": dtype,
                    "chosen": result["chosen"],
                    "test_rmse": result["test_rmse"],
                    "svdpp_test_rmse": svdpp["test_rmse"][index],
                    "margin": svdpp["test_rmse"][index] - result["test_rmse"],
                    "fit_and_test_seconds": result["fit_and_test_seconds"],
                    "svdpp_seconds": svdpp_seconds,
                    "search_seconds": result["search_seconds"],
                }
            )
    rows.sort(key=lambda row: row["fold"])
    summary = {
        key: float(np.mean([row[key] for row in rows]))
        for key in ("test_rmse", "svdpp_test_rmse", "margin")
    }
    summary["folds"] = len(rows)
    summary["smallest_margin"] = min(row["margin"] for row in rows)
    lines = [
        f"{surprise['machine']['dataset']}: the variant chosen per fold on a "
        "validation tenth of its training part (nested_variants.py), "
        f"beside SVD++ on the same folds ({pathlib.Path(args.surprise).name})",
        "",
        "| fold | pairs | chosen | test RMSE | SVD++ | margin | final fit and "
        "test s | SVD++ fit and test s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fold']} | {row['pair_dtype']} | {row['chosen']} | "
            f"{row['test_rmse']:.4f} | {row['svdpp_test_rmse']:.4f} | "
            f"{row['margin']:.4f} | {row['fit_and_test_seconds']:.0f} | "
            f"{row['svdpp_seconds']:.0f} |"
        )
    lines.append(
        f"| mean | | | {summary['test_rmse']:.4f} | "
        f"{summary['svdpp_test_rmse']:.4f} | {summary['margin']:.4f} | | |"
    )
    table = "\n".join(lines) + "\n"
    print(table)
    _results.write(
        args.out,
        table,
        {"folds": rows, "summary": summary},
        _results.machine_info(
            runs=[pathlib.Path(p).name for p in args.runs],
            surprise=pathlib.Path(args.surprise).name,
        ),
    )


def _folds(machine):
    """The fold labels of a Surprise run, in its order.

    Its `splits`, or in runs that predate them, those its protocol names
    (`"OfficialFolds([1, 2, 3, 4, 5])"`).
    """
    if "splits" in machine:
        return machine["splits"]
    protocol = machine["protocol"]
    inside = protocol[protocol.index("[") + 1 : protocol.index("]")]
    return [part.strip() for part in inside.split(",")]


if __name__ == "__main__":
    main()
