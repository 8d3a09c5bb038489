import warnings

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import _provenance
from keras_catembed import _row_hashes
from keras_catembed import optimizers


def _rows(num_users, num_movies, n, seed):
    """`n` distinct (user, movie) pairs with ratings, in random order."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(num_users * num_movies, n, replace=False)
    users, movies = np.divmod(pairs, num_movies)
    ratings = rng.integers(1, 6, n).astype("float32")
    return {"user": users, "movie": movies}, ratings


def _take(x, y, rows):
    return {c: v[rows] for c, v in x.items()}, y[rows]


def _model(num_users=50, num_movies=40, **kwargs):
    model = keras_catembed.RatingModel(
        {"user": num_users, "movie": num_movies}, **kwargs
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def _overlap_warnings(caught):
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning)
        and "this model was trained on" in str(w.message)
    ]


# Reproducible training ------------------------------------------------------


def _seeded_run(seed, fast, x, y):
    keras.utils.set_random_seed(seed)
    model = keras_catembed.RatingModel(
        {
            "user": keras_catembed.EntityEmbedding(50, 8, dropout=0.2),
            "movie": 40,
        },
        hidden_units=(16,),
        dropout=0.3,
        bias_terms=True,
        implicit=True,
        max_pairs_per_id=5,
    )
    model.adapt(x)
    model.compile(optimizer=optimizers.SparseAdam(0.01), loss="mse")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, fast=fast)
    return model.predict(x, verbose=0)


@pytest.mark.parametrize("fast", [True, False])
def test_same_seed_trains_the_same_model(fast):
    # Every source of randomness: initial weights, entity and hidden
    # dropout, the implicit-feedback sample, the shuffling, both loops.
    x, y = _rows(50, 40, 1500, seed=0)
    first = _seeded_run(3, fast, x, y)
    second = _seeded_run(3, fast, x, y)
    other = _seeded_run(4, fast, x, y)
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-7)
    assert np.max(np.abs(first - other)) > 1e-3


# Training fingerprint --------------------------------------------------------


def test_fit_records_an_exact_fingerprint_of_few_rows():
    x, y = _rows(50, 40, 1200, seed=1)
    train, train_y = _take(x, y, slice(0, 800))
    test, test_y = _take(x, y, slice(800, None))
    model = _model()
    assert model.training_fingerprint is None
    assert model.training_overlap(train, train_y) is None
    model.fit(train, train_y, epochs=1, verbose=0)
    fingerprint = model.training_fingerprint
    assert fingerprint["rows"] == 800 and fingerprint["exact"]
    assert fingerprint["hashes"].size == 800
    assert model.training_overlap(train, train_y) == 1.0
    assert model.training_overlap(test, test_y) == 0.0
    mixed = {c: np.concatenate([train[c][:100], test[c][:300]]) for c in x}
    mixed_y = np.concatenate([train_y[:100], test_y[:300]])
    assert model.training_overlap(mixed, mixed_y) == 0.25
    # A row is its ids and its rating: another rating is another row.
    changed = np.where(train_y == 5, 1, train_y + 1).astype("float32")
    assert model.training_overlap(train, changed) == 0.0


def test_overlap_estimate_of_many_rows():
    x, y = _rows(1000, 500, 60000, seed=2)
    train, train_y = _take(x, y, slice(0, 40000))
    model = _model(1000, 500)
    model.fit(train, train_y, batch_size=4096, epochs=1, verbose=0)
    fingerprint = model.training_fingerprint
    assert not fingerprint["exact"]
    assert fingerprint["hashes"].size == _provenance.SKETCH_SIZE
    assert fingerprint["rows"] == 40000
    # 30% of the test rows were training rows.
    rows = np.concatenate([np.arange(6000), np.arange(40000, 54000)])
    test, test_y = _take(x, y, rows)
    estimate = model.training_overlap(test, test_y)
    assert estimate == pytest.approx(0.3, abs=0.05)
    assert model.training_overlap(*_take(x, y, slice(40000, None))) == 0.0
    assert model.training_overlap(*_take(x, y, slice(0, 20000))) == 1.0


@pytest.mark.parametrize("copies", [1, 3, 40])
def test_sketch_keeps_the_smallest_distinct_hashes_of_repeated_rows(copies):
    # Rows repeated `copies` times: the partitioned head of the hashes has
    # too few distinct values at 40 copies and must be widened.
    x, y = _rows(1000, 500, 30000, seed=5)
    order = np.random.default_rng(0).permutation(30000 * copies) % 30000
    x, y = _take(x, y, order)
    hashes = _provenance.row_hashes(["user", "movie"], x, y)
    expected = np.unique(hashes)[: _provenance.SKETCH_SIZE]
    fingerprint = _provenance.sketch(["user", "movie"], x, y)
    np.testing.assert_array_equal(fingerprint["hashes"], expected)
    assert not fingerprint["exact"]
    # Merging the same rows again changes the hashes in no way.
    merged = _provenance.sketch(["user", "movie"], x, y, previous=fingerprint)
    np.testing.assert_array_equal(merged["hashes"], expected)
    assert merged["rows"] == 2 * y.size


def test_evaluate_warns_on_training_rows_only():
    x, y = _rows(50, 40, 1200, seed=3)
    train, train_y = _take(x, y, slice(0, 800))
    test, test_y = _take(x, y, slice(800, None))
    model = _model()
    model.fit(train, train_y, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match=r"About 100% of the evaluated rows"):
        model.evaluate(train, train_y, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.evaluate(test, test_y, verbose=0)
    assert _overlap_warnings(caught) == []
    # Below the threshold: one training row among 400 test rows.
    few = {c: np.concatenate([train[c][:1], test[c]]) for c in x}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.evaluate(few, np.concatenate([train_y[:1], test_y]), verbose=0)
    assert _overlap_warnings(caught) == []
    # Above it: 40 of 440.
    some = {c: np.concatenate([train[c][:40], test[c]]) for c in x}
    with pytest.warns(UserWarning, match=r"About 9% .*exactly"):
        model.evaluate(some, np.concatenate([train_y[:40], test_y]), verbose=0)


def test_fingerprint_leaves_out_validation_rows_and_adds_up_fits():
    x, y = _rows(50, 40, 1000, seed=4)
    model = _model()
    model.fit(x, y, validation_split=0.25, epochs=1, verbose=0)
    assert model.training_fingerprint["rows"] == 750
    assert model.training_overlap(*_take(x, y, slice(750, None))) == 0.0
    assert model.training_overlap(*_take(x, y, slice(0, 750))) == 1.0
    # A stock-loop fit on the held-out rows adds them.
    model.fit(*_take(x, y, slice(750, None)), epochs=1, verbose=0, fast=False)
    assert model.training_fingerprint["rows"] == 1000
    assert model.training_overlap(x, y) == 1.0


class _StopsTraining(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise RuntimeError("stopped on purpose")


@pytest.mark.parametrize("fast", [True, False])
def test_a_failed_fit_records_nothing(fast):
    # The rows are hashed while the model trains; only a fit that ends
    # adds them to the fingerprint.
    x, y = _rows(50, 40, 600, seed=5)
    first, first_y = _take(x, y, slice(0, 300))
    second, second_y = _take(x, y, slice(300, None))
    model = _model()
    model.fit(first, first_y, epochs=1, verbose=0, fast=fast)
    before = model.training_fingerprint
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        model.fit(
            second,
            second_y,
            epochs=1,
            verbose=0,
            fast=fast,
            callbacks=[_StopsTraining()],
        )
    after = model.training_fingerprint
    assert after["rows"] == before["rows"] == 300
    np.testing.assert_array_equal(after["hashes"], before["hashes"])
    assert model.training_overlap(second, second_y) == 0.0


@pytest.mark.parametrize("many", [False, True])
def test_fingerprint_and_data_source_survive_save_and_load(tmp_path, many):
    n = 20000 if many else 600
    x, y = _rows(400, 300, n + 400, seed=5)
    train, train_y = _take(x, y, slice(0, n))
    model = _model(400, 300)
    model.fit(train, train_y, batch_size=1024, epochs=1, verbose=0)
    model.data_source = {"dataset": "ml-100k", "split": "u1", "seed": 0}
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.data_source == {
        "dataset": "ml-100k",
        "split": "u1",
        "seed": 0,
    }
    saved, restored = model.training_fingerprint, loaded.training_fingerprint
    assert restored["rows"] == saved["rows"] == n
    assert restored["exact"] == (not many)
    np.testing.assert_array_equal(restored["hashes"], saved["hashes"])
    assert restored["hashes"].dtype == np.uint64
    assert loaded.training_overlap(train, train_y) == 1.0
    assert loaded.training_overlap(*_take(x, y, slice(n, None))) == 0.0
    with pytest.warns(UserWarning, match="this model was trained on"):
        loaded.evaluate(train, train_y, verbose=0)


def test_untrained_config_is_unchanged_and_data_source_is_checked():
    model = _model()
    config = model.get_config()
    assert "training_fingerprint" not in config
    assert "data_source" not in config
    with pytest.raises(ValueError, match="`data_source` must be None or"):
        model.data_source = {"dataset": ["ml-100k"]}
    assert model.data_source is None
    model.data_source = {"dataset": "ml-1m"}
    clone = keras_catembed.RatingModel.from_config(model.get_config())
    assert clone.data_source == {"dataset": "ml-1m"}


def test_row_hashes_ignore_the_id_dtype_and_layout():
    x = {"user": np.array([1, 2, 3]), "movie": np.array([4, 5, 6])}
    y = np.array([1, 2, 3])
    first = _provenance.row_hashes(["user", "movie"], x, y)
    second = _provenance.row_hashes(
        ["user", "movie"],
        {c: v.astype("int32").reshape(-1, 1) for c, v in x.items()},
        y.astype("float32").reshape(-1, 1),
    )
    np.testing.assert_array_equal(first, second)
    assert len(set(first.tolist())) == 3
    # The columns' order matters: (1, 4) is not (4, 1).
    swapped = _provenance.row_hashes(["movie", "user"], x, y)
    assert not set(first.tolist()) & set(swapped.tolist())


def test_row_hashes_are_those_saved_fingerprints_hold():
    # Saved models keep their sketch: a row's hash must never change.
    x = {"user": np.array([1, 2]), "movie": np.array([4, 5])}
    hashes = _provenance.row_hashes(["user", "movie"], x, np.array([1.0, 2.5]))
    assert hashes.tolist() == [7917537477524172106, 11170227080706692750]


def test_row_hashes_do_not_depend_on_the_block_a_row_is_hashed_in():
    # Rows are hashed a block at a time: across blocks of numbers and of
    # strings, each row's hash is the one it has on its own.
    rows = 2 * _row_hashes._BLOCK_ROWS + 123
    rng = np.random.default_rng(3)
    names = np.array(["a", "bb", "ccc", "dd"])
    x = {"user": rng.integers(0, 1000, rows), "genre": rng.choice(names, rows)}
    y = rng.integers(1, 6, rows).astype("float32")
    hashes = _provenance.row_hashes(["user", "genre"], x, y)
    picked = [0, _row_hashes._BLOCK_ROWS - 1, _row_hashes._BLOCK_ROWS, rows - 1]
    for row in picked:
        alone = _provenance.row_hashes(
            ["user", "genre"],
            {c: v[row : row + 1] for c, v in x.items()},
            y[row : row + 1],
        )
        assert hashes[row] == alone[0]
    # Equal rows in different blocks hash equally, different rows do not.
    keys = zip(x["user"].tolist(), x["genre"].tolist(), y.tolist(), strict=True)
    assert len(set(hashes.tolist())) == len(set(keys))
