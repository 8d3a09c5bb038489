"""`catembed evaluate --ranking`: ranking metrics beside most-popular."""

import re

import numpy as np
import pytest

from keras_catembed import cli
from keras_catembed.datasets.movielens import inputs
from tests.synthetic_movielens import write_synthetic_100k

pytest.importorskip("keras_rs")

NAMES = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_100k(str(tmp_path_factory.mktemp("movielens")))


@pytest.fixture(scope="module")
def model_path(data_dir, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("trained") / "model.keras")
    status = cli.main(
        [
            "train",
            "--data-dir",
            data_dir,
            "--preset",
            "course",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--verbose",
            "0",
            "--save",
            path,
        ],
        out=_Discard(),
    )
    assert status == 0
    return path


class _Discard:
    def write(self, text):
        pass


def _run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _ranking_rows(output, k):
    """The rows of the ranking table: name -> 7 numbers."""
    lines = output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"Top-{k} "))
    assert lines[start + 1].split() == [
        "model",
        f"P@{k}",
        f"R@{k}",
        f"NDCG@{k}",
        f"MAP@{k}",
        f"MRR@{k}",
        f"HR@{k}",
        "coverage",
    ]
    rows = {}
    for line in lines[start + 2 :]:
        match = re.fullmatch(r"(.+?)((?:\s+\d\.\d{4}){7})", line)
        assert match, line
        rows[match[1]] = [float(v) for v in match[2].split()]
    return rows


def _most_popular_by_hand(train, test, k):
    """The baseline's metrics with plain NumPy: lists, then averages."""
    from tests.test_ranking import reference

    counts = np.bincount(train.movie_id, minlength=train.num_movies)
    ranked = np.lexsort((np.arange(train.num_movies), -counts))
    lists, relevant = [], []
    for user in np.unique(test.user_id[test.rating >= 4]):
        seen = set(train.movie_id[train.user_id == user].tolist())
        lists.append([m for m in ranked if m not in seen][:k])
        mine = (test.user_id == user) & (test.rating >= 4)
        relevant.append(set(test.movie_id[mine].tolist()))
    metrics = reference(lists, relevant, k)
    metrics["hit_rate"] = np.mean(
        [bool(set(row) & r) for row, r in zip(lists, relevant, strict=True)]
    )
    metrics["coverage"] = np.unique(lists).size / train.num_movies
    return metrics, len(lists)


def test_evaluate_ranking_prints_model_and_most_popular(
    model_path, data_dir, capsys
):
    import keras

    from keras_catembed.datasets import movielens
    from keras_catembed.evaluation import ranking_metrics

    status, out, err = _run(
        [
            "evaluate",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--ranking",
            "-k",
            "5",
        ],
        capsys,
    )
    assert status == 0, err
    # The rating errors come first, as without --ranking.
    assert "ml-100k, u1 split, 800 ratings" in out
    rows = _ranking_rows(out, 5)
    assert list(rows) == ["most popular", "model"]

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    train, test = ratings.official_split("u1")
    expected, num_users = _most_popular_by_hand(train, test, 5)
    assert f"Top-5 lists of {num_users:,} test users" in out
    assert "relevant: test ratings >= 4" in out
    for name, value in zip(NAMES, rows["most popular"], strict=True):
        assert value == pytest.approx(expected[name], abs=6e-5), name

    model = keras.saving.load_model(model_path)
    direct = ranking_metrics(
        model,
        inputs(test),
        test.rating,
        k=5,
        exclude=inputs(train),
        candidates=np.arange(ratings.num_movies),
    )
    assert direct["users"] == num_users
    for name, value in zip(NAMES, rows["model"], strict=True):
        assert value == pytest.approx(direct[name], abs=6e-5), name


def test_relevance_threshold_and_default_k(model_path, data_dir, capsys):
    from keras_catembed.datasets import movielens

    status, out, err = _run(
        [
            "evaluate",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--ranking",
            "--relevance-threshold",
            "5",
        ],
        capsys,
    )
    assert status == 0, err
    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    _, test = ratings.official_split("u1")
    users = np.unique(test.user_id[test.rating >= 5]).size
    assert f"Top-10 lists of {users:,} test users" in out
    assert "relevant: test ratings >= 5;" in out
    assert set(_ranking_rows(out, 10)) == {"most popular", "model"}


def test_evaluate_without_ranking_prints_no_ranking_table(
    model_path, data_dir, capsys
):
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert "Top-" not in out and "NDCG" not in out


def _error(argv, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--ranking", "-k", "0"],
            "-k must be a positive integer. Received: 0",
        ),
        (["-k", "5"], "-k is used with --ranking only"),
        (
            ["--ranking", "--relevance-threshold", "nan"],
            "--relevance-threshold must be a finite number. Received: nan",
        ),
        (["--ranking", "-k", "x"], "argument -k: invalid int value: 'x'"),
    ],
)
def test_bad_ranking_options_stop_before_loading(
    tmp_path, capsys, extra, message
):
    missing = str(tmp_path / "no-data")
    error = _error(
        ["evaluate", "--model", "m.keras", "--data-dir", missing, *extra],
        capsys,
    )
    assert message in error
    assert "no-data" not in error and "m.keras" not in error


def test_k_larger_than_the_catalogue_is_one_line(model_path, data_dir, capsys):
    error = _error(
        [
            "evaluate",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--ranking",
            "-k",
            "61",
        ],
        capsys,
    )
    assert "`k` must be at most the number of candidates (60)" in error


@pytest.mark.one_backend
def test_missing_keras_rs_is_named_before_loading(
    monkeypatch, tmp_path, capsys
):
    import sys

    monkeypatch.setitem(sys.modules, "keras_rs", None)
    error = _error(
        ["evaluate", "--model", "m.keras", "--ranking"]
        + ["--data-dir", str(tmp_path / "no-data")],
        capsys,
    )
    assert 'pip install "keras-catembed[ranking]"' in error


@pytest.mark.one_backend
def test_help_describes_every_ranking_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, words in (
        ("--ranking", "NDCG, MAP, MRR and hit rate"),
        ("-k K", "length of each recommendation list"),
        ("--relevance-threshold", "relevant to its user when rated"),
    ):
        assert option in text and words in text
