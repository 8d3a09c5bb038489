"""Every measured figure in the README and the docs comes from a result file.

A figure is a decimal number in prose or a table (`0.8941`, `12.3x`,
`276.5 s`). Each must appear, at the precision shown, in a JSON or markdown
result written by a script under `benchmarks/` (`benchmarks/results/`), or
be listed below with its reason. Code blocks, inline code,
links and bounds (`<= 0.845`, targets) are not figures.
"""

import json
import pathlib
import re

import pytest

# Backend-independent: runs on one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# Numbers of a page that are not measurements, or are computed from
# result figures that the page does not show, each with its reason.
EXPLAINED = {
    "index.md": {
        "0.56": "the exponent of fastai's size rule",
        "0.022": "u1 RMSE of mlp minus recommended, movielens_accuracy.json",
    },
    "movielens.md": {
        "0.0328": "SVD++'s ml-100k mean minus the first fast blend's, "
        "surprise_comparison_ml-100k_fast_blend.json (0.9194 - 0.8866)",
        "0.0356": "SVD++'s ml-100k mean minus the fast blend's, "
        "surprise_comparison_ml-100k_fast_blend_2.json (0.9194 - 0.8838)",
        "0.0358": "SVD++'s ml-100k mean minus the nested blend's, "
        "surprise_comparison_ml-100k_nested_blend.json (0.9194 - 0.8836)",
        "0.0022": "the un-nested blend's u4 minus the nested one's, "
        "surprise_comparison_ml-100k_{fast_blend_2,nested_blend}.json "
        "(0.883735 - 0.881579)",
        "0.0013": "the nested blend's u3 minus the un-nested one's, "
        "surprise_comparison_ml-100k_{nested_blend,fast_blend_2}.json "
        "(0.882735 - 0.881438)",
        "0.0015": "the one-autoencoder blend's ml-100k mean minus the "
        "defaults', surprise_comparison_ml-100k_blend{,_5}.json "
        "(0.8837 - 0.8822)",
        "0.0044": "the one-autoencoder blend's mean minus the five's, "
        "surprise_comparison_ml-1m_holdout_blend{,_5}.json (0.8223 - 0.8179)",
        "0.824": "Sparse FC's published ml-1m 90/10 RMSE (literature)",
        "0.832": "GC-MC's published ml-1m 90/10 RMSE (literature)",
        "1.1": "the five-autoencoder blend's time over the one's, "
        "surprise_comparison_ml-1m_holdout_blend{,_5}.json (3734 s / 3338 s)",
        "0.0265": "the first autoencoder minus the mean of six, "
        "blend_autoencoders_ml-1m_6.json (0.858010 - 0.831552)",
        "0.0005": "a threshold of the rule that chose the autoencoders",
        "0.001": "a threshold: the defaults' distance to the best cells",
        "0.031": "mean SVDpp minus mean recommended RMSE, "
        "surprise_comparison_ml-100k.json (0.9194 - 0.8888)",
        "0.0347": "mean SVDpp minus mean blend RMSE, "
        "surprise_comparison_ml-1m_blend.json (0.8635 - 0.8288)",
        "0.8227": "GLocal-K's published ml-1m 90/10 RMSE (literature)",
        "0.0342": "mean SVDpp minus mean fast-blend RMSE, "
        "surprise_comparison_ml-1m_fast_blend.json (0.863468 - 0.829261)",
        "0.0004": "the fast blend's mean minus the recommended-large "
        "blend's, surprise_comparison_ml-1m{_fast,}_blend.json "
        "(0.829261 - 0.828829)",
        "0.0003": "blend mean minus the 0.822 target, "
        "surprise_comparison_ml-1m_holdout_blend.json (0.8223 - 0.822)",
    },
    "performance.md": {
        "0.0145": "mlp-large minus exact, implicit_cap_accuracy.json",
        "1.4": "XLA's compilation over the graph's at 16384, "
        "tensorflow_xla_avx512.json ((3.26 - 3 x 0.342) - (2.74 - 3 x 0.633))",
    },
    "tuning.md": {
        "0.99": "a value of the ema_momentum search space",
        "10.5": "an example rating_range for a 1-10 scale",
    },
}

_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(?!\d|\.\d)")
_BOUND = re.compile(r"(<=|>=|≤|≥|<|>|at most|at least|target)\s*$")


def _result_numbers():
    numbers = set()

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.add(float(value))
        elif isinstance(value, str):
            numbers.update(float(x) for x in re.findall(r"\d+\.\d+", value))

    for path in RESULTS.glob("*.json"):
        walk(json.loads(path.read_text()))
    for path in RESULTS.glob("*.md"):
        numbers.update(
            float(x) for x in re.findall(r"\d+\.\d+", path.read_text())
        )
    return numbers


def _figures(text):
    """(line number, token) of each figure of a markdown page."""
    text = re.sub(
        r"```.*?```", lambda m: "\n" * m[0].count("\n"), text, flags=re.S
    )
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"`[^`]*`", "``", line)
        line = re.sub(r"\]\([^)]*\)|https?://\S+", "", line)
        for match in _NUMBER.finditer(line.replace(",", "")):
            if not _BOUND.search(line.replace(",", "")[: match.start()]):
                yield number, match[1]


def _matches(token, value):
    decimals = len(token.split(".")[1])
    return abs(value - float(token)) <= 0.5 * 10**-decimals + 1e-9


@pytest.fixture(scope="module")
def result_numbers():
    numbers = _result_numbers()
    assert len(numbers) > 100, "the result files are missing"
    return sorted(numbers)


def _known(token, numbers):
    import bisect

    value = float(token)
    decimals = len(token.split(".")[1])
    low = bisect.bisect_left(numbers, value - 10**-decimals)
    high = bisect.bisect_right(numbers, value + 10**-decimals)
    return any(_matches(token, x) for x in numbers[low:high])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_figure_comes_from_a_result_file(page, result_numbers):
    figures = list(_figures(page.read_text()))
    allowed = EXPLAINED.get(page.name, {})
    unknown = [
        f"line {line}: {token}"
        for line, token in figures
        if token not in allowed and not _known(token, result_numbers)
    ]
    assert not unknown, (
        f"{page.name} has figures that no file under benchmarks/results "
        f"holds: {unknown}"
    )


def test_the_check_finds_a_figure_of_no_result(result_numbers):
    text = "Training took 123.456789 s and scored 0.8941.\n`0.111` <= 0.845"
    figures = [token for _, token in _figures(text)]
    assert figures == ["123.456789", "0.8941"]
    assert not _known("123.456789", result_numbers)
    assert _known("0.8941", result_numbers)


def test_the_nested_ml1m_summary_is_made_from_the_committed_runs(tmp_path):
    """The summary's figures are those its script reads from the runs."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import nested_summary

    committed = json.loads(
        (RESULTS / "nested_variants_ml-1m_summary.json").read_text()
    )
    runs = [str(RESULTS / name) for name in committed["machine"]["runs"]]
    surprise = str(RESULTS / committed["machine"]["surprise"])
    out = tmp_path / "summary"
    nested_summary.main([*runs, "--surprise", surprise, "--out", str(out)])
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["results"] == committed["results"]
    folds = committed["results"]["folds"]
    assert [row["fold"] for row in folds] == [1, 2, 3, 4, 5]
    # A run that records its splits is read by them, not by its protocol.
    recorded = json.loads(pathlib.Path(surprise).read_text())
    recorded["machine"]["splits"] = [1, 2, 3, 4, 5]
    # No list left in the protocol's name to read folds from.
    recorded["machine"]["protocol"] = "official folds"
    newer = tmp_path / "surprise.json"
    newer.write_text(json.dumps(recorded))
    nested_summary.main([*runs, "--surprise", str(newer), "--out", str(out)])
    assert (
        json.loads(out.with_suffix(".json").read_text())["results"]
        == (committed["results"])
    )
    # A fold in two runs is refused rather than counted twice.
    with pytest.raises(ValueError, match="Fold 1 is in more than one run"):
        nested_summary.main(
            [runs[0], runs[0], "--surprise", surprise, "--out", str(out)]
        )
