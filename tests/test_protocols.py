"""Tests for `keras_catembed.evaluation.protocols` on tiny made-up data."""

import numpy as np
import pytest

from keras_catembed.datasets import movielens
from keras_catembed.evaluation import protocols
from tests import movielens_fixtures as fx

# Backend-independent: runs on one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

# Three users; row i has timestamp STAMPS[i].
USERS = np.array([0, 1, 0, 2, 1, 0, 2, 0, 1, 1])
STAMPS = np.array([50, 10, 20, 30, 40, 60, 5, 20, 70, 15])


def make_data(n=10):
    return {
        "user_id": USERS[:n],
        "movie_id": np.arange(n),
        "rating": np.arange(n, dtype="float32") % 5 + 1,
        "timestamp": STAMPS[:n],
    }


def make_ratings():
    data = make_data()
    return movielens.Ratings.from_arrays(
        data["user_id"] + 1,
        data["movie_id"] + 1,
        data["rating"],
        data["timestamp"],
    )


def check_partition(train, test, n):
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(n))
    for part in (train, test):
        assert part.dtype == np.int64
        np.testing.assert_array_equal(part, np.sort(part))


def test_kfold_exact_folds_cover_every_row_once():
    splits = list(protocols.KFold(3, seed=0).split(make_data()))
    order = np.random.default_rng(0).permutation(10)
    expected = [order[:4], order[4:7], order[7:]]
    assert len(splits) == 3
    for (train, test), fold in zip(splits, expected, strict=True):
        check_partition(train, test, 10)
        np.testing.assert_array_equal(test, np.sort(fold))
    tests = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tests), np.arange(10))


def test_kfold_is_seeded():
    data = make_data()
    first = [t for _, t in protocols.KFold(5, seed=3).split(data)]
    again = [t for _, t in protocols.KFold(5, seed=3).split(data)]
    other = [t for _, t in protocols.KFold(5, seed=4).split(data)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(first, other, strict=True)
    )


def test_holdout_matches_random_split():
    ratings = make_ratings()
    (train, test), *rest = protocols.HoldOut(0.3, seed=7).split(ratings)
    assert rest == []
    check_partition(train, test, 10)
    order = np.random.default_rng(7).permutation(10)
    np.testing.assert_array_equal(test, np.sort(order[:3]))
    expected_train, expected_test = ratings.random_split(0.3, seed=7)
    (got_train, got_test), *_ = protocols.HoldOut(0.3, seed=7).split_data(
        ratings
    )
    np.testing.assert_array_equal(got_test.movie_id, expected_test.movie_id)
    np.testing.assert_array_equal(got_train.movie_id, expected_train.movie_id)


def test_leave_last_n_holds_out_each_users_latest():
    # User 0: rows 2 (t=20), 7 (t=20), 0 (t=50), 5 (t=60).
    # User 1: rows 1 (10), 9 (15), 4 (40), 8 (70). User 2: rows 6 (5), 3 (30).
    (train, test), *rest = protocols.LeaveLastN(1).split(make_data())
    assert rest == []
    np.testing.assert_array_equal(test, [3, 5, 8])
    check_partition(train, test, 10)
    (train, test), *_ = protocols.LeaveLastN(2).split(make_data())
    # User 2 has two ratings: the earliest stays in train.
    np.testing.assert_array_equal(test, [0, 3, 4, 5, 8])
    # A tie at t=20: the later row (7) counts as later.
    (_, test), *_ = protocols.LeaveLastN(3).split(make_data())
    np.testing.assert_array_equal(test, [0, 3, 4, 5, 7, 8, 9])


def test_leave_last_n_matches_temporal_split():
    ratings = make_ratings()
    for n in (1, 2, 3):
        (_, test), *_ = protocols.LeaveLastN(n).split_data(ratings)
        _, expected = ratings.temporal_split(n)
        np.testing.assert_array_equal(test.movie_id, expected.movie_id)


def test_time_protocols_need_timestamps():
    data = make_data()
    del data["timestamp"]
    for protocol in (protocols.LeaveLastN(), protocols.TimeCut(at=20)):
        with pytest.raises(ValueError, match="needs timestamps.*'timestamp'"):
            list(protocol.split(data))
    ratings = movielens.Ratings.from_arrays([1, 2], [1, 1], [3, 4])
    with pytest.raises(ValueError, match="LeaveLastN. splits by time"):
        list(protocols.LeaveLastN().split(ratings))


def test_time_cut_at_a_timestamp_and_a_quantile():
    (train, test), *_ = protocols.TimeCut(at=40).split(make_data())
    np.testing.assert_array_equal(test, [0, 4, 5, 8])
    check_partition(train, test, 10)
    # Sorted stamps 5 10 15 20 20 30 40 50 60 70: position ceil(0.7 * 9)
    # = 7 holds 50.
    protocol = protocols.TimeCut(quantile=0.7)
    assert protocol.cut(make_data()) == 50
    (train, test), *_ = protocol.split(make_data())
    np.testing.assert_array_equal(test, [0, 5, 8])
    with pytest.raises(ValueError, match="empty test part"):
        list(protocols.TimeCut(at=71).split(make_data()))
    with pytest.raises(ValueError, match="exactly one of"):
        protocols.TimeCut(at=1, quantile=0.5)


def test_official_folds_from_a_label_column():
    data = make_data()
    data["fold"] = np.array([2, 1, 2, 3, 1, 3, 2, 1, 3, 1])
    splits = list(protocols.OfficialFolds(fold_column="fold").split(data))
    expected = [[1, 4, 7, 9], [0, 2, 6], [3, 5, 8]]
    assert len(splits) == 3
    for (train, test), fold in zip(splits, expected, strict=True):
        np.testing.assert_array_equal(test, fold)
        check_partition(train, test, 10)
    (_, test), *rest = protocols.OfficialFolds(
        [3], fold_column=data["fold"]
    ).split(data)
    assert rest == []
    np.testing.assert_array_equal(test, [3, 5, 8])
    with pytest.raises(ValueError, match="Fold 4 of `folds` labels no row"):
        list(protocols.OfficialFolds([4], fold_column="fold").split(data))
    with pytest.raises(ValueError, match="lacks"):
        list(protocols.OfficialFolds(fold_column="split").split(data))


def test_official_folds_of_ml_100k_files(tmp_path):
    fx.write_release(tmp_path, "ml-100k")
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    splits = list(protocols.OfficialFolds().split(ratings))
    assert len(splits) == 5
    # The fixture's fold k tests the rows i with i % 5 == k.
    for k, (train, test) in enumerate(splits):
        check_partition(train, test, len(ratings))
        np.testing.assert_array_equal(test, np.arange(k, len(ratings), 5))
    for fold, (train, test) in zip(
        ("u1", "u2"),
        protocols.OfficialFolds(["u1", "u2"]).split_data(ratings),
        strict=True,
    ):
        expected_train, expected_test = ratings.official_split(fold)
        np.testing.assert_array_equal(test.rating, expected_test.rating)
        np.testing.assert_array_equal(train.user_id, expected_train.user_id)
    with pytest.raises(ValueError, match="needs `fold_column`"):
        list(protocols.OfficialFolds().split(make_data()))


def test_split_data_of_a_dict_keeps_every_column():
    data = make_data()
    (train, test), *_ = protocols.TimeCut(at=40).split_data(data)
    assert sorted(train) == sorted(data)
    np.testing.assert_array_equal(test["timestamp"], [50, 40, 60, 70])
    np.testing.assert_array_equal(train["movie_id"], [1, 2, 3, 6, 7, 9])


def test_get_turns_specs_into_protocols():
    assert protocols.get(4).n_splits == 4
    assert protocols.get(0.25).test_fraction == 0.25
    assert isinstance(protocols.get("official"), protocols.OfficialFolds)
    leave = protocols.LeaveLastN(2)
    assert protocols.get(leave) is leave
    with pytest.raises(ValueError, match="Received: 'random'"):
        protocols.get("random")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: protocols.KFold(1), "n_splits` must be an integer of at"),
        (lambda: protocols.KFold(3, seed=0.5), "`seed` must be an integer"),
        (lambda: protocols.HoldOut(1.0), r"`test_fraction` must be a float"),
        (lambda: protocols.LeaveLastN(0), "`n` must be a positive integer"),
        (lambda: protocols.TimeCut(quantile=1.5), "`quantile` must be"),
        (
            lambda: protocols.OfficialFolds("u1"),
            "`folds` must be a non-empty seq",
        ),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data_is_named():
    with pytest.raises(ValueError, match="Column 'movie_id' of the data has"):
        list(protocols.KFold(2).split({"user_id": [1, 2], "movie_id": [1]}))
    with pytest.raises(ValueError, match="needs at least 5 rows"):
        list(protocols.KFold(5).split({"user_id": np.arange(3)}))
    with pytest.raises(ValueError, match="Received: list"):
        list(protocols.KFold(2).split([1, 2, 3]))
