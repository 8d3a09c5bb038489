"""RatingModel's implicit feedback: ids described by the ids they occur with."""

import functools

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import _implicit
from keras_catembed import optimizers

USERS, MOVIES = 7, 5


@pytest.fixture(autouse=True, params=["dense", "lists"])
def layout(request, monkeypatch):
    """Runs every test with both layouts of the pairs."""
    if request.param == "lists":
        monkeypatch.setattr(_implicit, "DENSE_LIMIT", 0)
    return request.param


def _np(x):
    return ops.convert_to_numpy(x)


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS - 1, n).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, n).astype("int32"),
    }
    # The last user never occurs: its implicit vector must be zero.
    y = (1 + 4 * rng.random(n)).astype("float32")
    return x, y


def make_model(implicit=True, **kwargs):
    return keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES},
        hidden_units=[8],
        bias_terms=True,
        rating_range=(0.5, 5.5),
        implicit=implicit,
        **kwargs,
    )


def reference(table, targets, sources, num_targets):
    """`|N(t)| ** -0.5 * sum(table[s] for s in N(t))`, pairs deduplicated."""
    out = np.zeros((num_targets, table.shape[1]))
    for t in range(num_targets):
        seen = np.unique(sources[targets == t])
        if seen.size:
            out[t] = table[seen].sum(0) / np.sqrt(seen.size)
    return out


def implicit_vectors(model, column, num_rows):
    layer = model.implicit_layers[column]
    return _np(layer(ops.convert_to_tensor(np.arange(num_rows, dtype="int32"))))


def test_implicit_vectors_match_the_svdpp_sum():
    x, _ = data()
    # Repeated pairs count once.
    x = {k: np.concatenate([v, v[:30]]) for k, v in x.items()}
    model = make_model()
    model.build()
    model.adapt(x)
    for target, source, n in (
        ("user_id", "movie_id", USERS),
        ("movie_id", "user_id", MOVIES),
    ):
        table = _np(model.implicit_layers[target].embeddings)
        expected = reference(table, x[target], x[source], n)
        np.testing.assert_allclose(
            implicit_vectors(model, target, n), expected, atol=1e-6
        )
    assert np.all(implicit_vectors(model, "user_id", USERS)[-1] == 0)


def test_embed_adds_the_implicit_vector_to_the_column_vector():
    x, _ = data()
    model = make_model(implicit={"user_id": "movie_id"})
    model.build()
    model.adapt(x)
    ids = {k: v[:10] for k, v in x.items()}
    embedded = model.embed(
        {k: ops.convert_to_tensor(v) for k, v in ids.items()}
    )
    own = _np(model.embedding_layers["user_id"](ids["user_id"]))
    implicit = implicit_vectors(model, "user_id", USERS)[ids["user_id"]]
    np.testing.assert_allclose(
        _np(embedded["user_id"]), own + implicit, atol=1e-6
    )
    np.testing.assert_allclose(
        _np(embedded["movie_id"]),
        _np(model.embedding_layers["movie_id"](ids["movie_id"])),
        atol=1e-6,
    )
    assert "movie_id" not in model.implicit_layers


def test_implicit_tables_follow_the_column_embedding():
    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(
                USERS,
                6,
                embeddings_regularizer=keras.regularizers.L2(0.5),
            ),
            "movie_id": MOVIES,
        },
        implicit={"user_id": "movie_id"},
    )
    model.build()
    layer = model.implicit_layers["user_id"]
    # The lists layout adds a zero padding row.
    assert tuple(layer.embeddings.shape) == (MOVIES + (not layer.dense), 6)
    if not layer.dense:
        assert not np.any(_np(layer.embeddings)[-1])
    assert layer.embeddings_regularizer.l2 == pytest.approx(0.5)


def test_fit_predict_and_evaluate_after_adapt():
    x, y = data()
    model = make_model()
    model.adapt(x)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0]
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (len(y), 1)
    assert np.all((predictions > 0.5) & (predictions < 5.5))
    evaluated = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(
        evaluated, np.mean((predictions[:, 0] - y) ** 2), rtol=1e-4
    )


def test_device_loop_trains_like_stock_fit_with_implicit_feedback():
    x, y = data()
    stock, fast = make_model(), make_model()
    for model in (stock, fast):
        model.build()
        model.adapt(x)
        model.compile(keras.optimizers.Adam(0.01), "mse")
    fast.set_weights(stock.get_weights())
    args = dict(batch_size=20, epochs=3, shuffle=False, verbose=0)
    stock.fit(x, y, fast=False, **args)
    fast.fit(x, y, fast=True, **args)
    for left, right in zip(stock.weights, fast.weights, strict=True):
        np.testing.assert_allclose(_np(left), _np(right), rtol=1e-4, atol=1e-5)


def test_sparse_adam_trains_the_implicit_tables():
    x, y = data()
    model = make_model()
    model.adapt(x)
    model.compile(optimizers.SparseAdam(0.02), "mse")
    model.build()
    before = _np(model.implicit_layers["user_id"].embeddings).copy()
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    after = _np(model.implicit_layers["user_id"].embeddings)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # Every movie occurs with some user, so every row is updated; the
    # padding row of the lists layout stays zero.
    assert np.all(np.abs(after - before)[:MOVIES].max(axis=1) > 0)
    assert not np.any(after[MOVIES:])


@pytest.mark.parametrize("kind", ["implicit", "neighborhood"])
def test_sparse_steps_update_only_the_rows_a_batch_reads(kind):
    # One step of the device loop with SparseAdam equals one step of stock
    # `fit` with it (on JAX and torch stock `fit` passes whole-table
    # gradients, which SparseAdam applies as Adam: with zero moments,
    # untouched rows do not move either), and rows the batch never reads
    # keep their values. (Stock Adam on TensorFlow squares the gradient of
    # each repeated row separately, so it is not the reference.)
    # Sparse data, so that two batches read different rows.
    rng = np.random.default_rng(5)
    x = {
        "user_id": rng.integers(0, 30, 60).astype("int32"),
        "movie_id": rng.integers(0, 40, 60).astype("int32"),
    }
    y = rng.integers(1, 6, 60).astype("float32")
    batch = {k: v[:12] for k, v in x.items()}
    pairs = {"implicit": None, kind: True}
    stock, fast = (
        keras_catembed.RatingModel(
            {"user_id": 30, "movie_id": 40}, hidden_units=[8], **pairs
        )
        for _ in range(2)
    )
    for model, optimizer in (
        # A large epsilon keeps steps of near-zero gradients well defined.
        (stock, optimizers.SparseAdam(0.05, epsilon=1e-3)),
        (fast, optimizers.SparseAdam(0.05, epsilon=1e-3)),
    ):
        model.build()
        model.adapt(x, y)
        model.compile(optimizer, "mse")
    fast.set_weights(stock.get_weights())
    stock.fit(batch, y[:12], batch_size=12, epochs=1, fast=False, verbose=0)
    before = {w.path: _np(w).copy() for w in fast.weights}
    fast.fit(batch, y[:12], batch_size=12, epochs=1, fast=True, verbose=0)
    for left, right in zip(stock.weights, fast.weights, strict=True):
        np.testing.assert_allclose(
            _np(left), _np(right), rtol=1e-4, atol=1e-5, err_msg=left.path
        )
    layers = getattr(fast, f"{kind}_layers")
    table = layers["user_id"].embeddings
    moved = np.abs(_np(table) - before[table.path]).max(axis=1) > 0
    read = set(batch["movie_id"].tolist())
    if not layers["user_id"].dense:
        lists = _np(layers["user_id"].pair_sources)[batch["user_id"]]
        counts = _np(layers["user_id"].pair_counts)[batch["user_id"]]
        read = {
            int(s)
            for row, n in zip(lists, counts, strict=True)
            for s in row[:n]
        }
        # Left-out own pairs are read too (with zero net weight).
        if kind == "neighborhood":
            read |= set(batch["movie_id"].tolist())
        assert {int(i) for i in np.flatnonzero(moved)} <= read
        # A second step on other rows leaves the rows only the first
        # step read where they were: the update is lazy, moments included.
        other = {k: v[12:14] for k, v in x.items()}
        lists = _np(layers["user_id"].pair_sources)[other["user_id"]]
        counts = _np(layers["user_id"].pair_counts)[other["user_id"]]
        read_again = {
            int(s)
            for row, n in zip(lists, counts, strict=True)
            for s in row[:n]
        } | set(other["movie_id"].tolist())
        after_first = _np(table).copy()
        fast.fit(other, y[12:14], batch_size=2, epochs=1, verbose=0)
        kept = sorted(read - read_again)
        assert kept, "the two batches read the same rows"
        np.testing.assert_array_equal(_np(table)[kept], after_first[kept])


@pytest.mark.parametrize("method", ["predict", "recommend"])
@pytest.mark.parametrize("neighborhood", [False, True])
def test_a_call_before_adapt_says_to_adapt(method, neighborhood):
    # A ValueError before any compiled call, on every backend.
    x, y = data()
    model = make_model(neighborhood=neighborhood)
    if method == "predict":
        call = functools.partial(model.predict, x, verbose=0)
    else:
        call = functools.partial(model.recommend, {"user_id": [0, 1]}, k=3)
    with pytest.raises(
        ValueError,
        match=r"call `adapt`.*ColumnEncoder.*model.adapt.*encoder.adapt",
    ):
        call()
    model.adapt(x, y)
    items, scores = model.recommend({"user_id": [0, 1]}, k=3)
    assert items.shape == scores.shape == (2, 3)


def test_pairs_given_through_set_weights_are_used():
    x, y = data()
    model = make_model()
    model.adapt(x)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    expected = model.predict(x, verbose=0)
    twin = keras_catembed.RatingModel.from_config(model.get_config())
    twin.build()
    twin.set_weights(model.get_weights())
    # Compiled from the start: never called eagerly before.
    np.testing.assert_allclose(
        twin.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )


def test_weights_of_no_pairs_given_through_set_weights_unadapt_the_model():
    # Resetting a model to weights taken before `adapt` (say, between
    # folds) takes its pairs away: it says so instead of predicting
    # without them.
    x, y = data()
    model = make_model()
    model.build()
    start = model.get_weights()
    model.adapt(x)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    layers = list(model.implicit_layers.values())
    assert layers and all(layer.adapted for layer in layers)
    model.set_weights(start)
    assert not any(layer.adapted for layer in layers)
    for call in (
        lambda: model.predict(x, verbose=0),
        lambda: model.evaluate(x, y, verbose=0),
        lambda: model.fit(x, y, epochs=1, verbose=0),
    ):
        with pytest.raises(ValueError, match=r"holds no pairs yet"):
            call()
    # Adapted again, it trains and predicts.
    model.adapt(x)
    assert all(layer.adapted for layer in layers)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


def _functional():
    """A functional model of two encoders (implicit feedback on users)."""
    movies = keras_catembed.ColumnEncoder(MOVIES, column="movie_id")
    users = keras_catembed.ColumnEncoder(
        keras_catembed.EntityEmbedding(USERS, output_dim=movies.output_dim),
        column="user_id",
        implicit=movies,
    )
    inputs = {
        column: keras.Input((), dtype="int32", name=column)
        for column in ("user_id", "movie_id")
    }
    outputs = ops.sum(users(inputs) * movies(inputs), axis=-1, keepdims=True)
    return keras.Model(inputs, outputs), users


def test_your_own_model_says_when_set_weights_took_its_pairs_away():
    # Keras's loops compile (and on JAX trace with the counts hidden): the
    # compiled graph checks the counts as it runs, also in a predict
    # function compiled while the pairs were there.
    x, _ = data()
    model, users = _functional()
    start = model.get_weights()
    users.adapt(x)
    expected = model.predict(x, verbose=0)
    adapted = model.get_weights()
    model.set_weights(start)
    assert not users.implicit_layer.adapted
    with pytest.raises(Exception, match=r"holds no pairs yet: call `adapt`"):
        model.predict(x, verbose=0)
    # Given its pairs back, it predicts as before.
    model.set_weights(adapted)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch's inference mode"
)
def test_a_model_loaded_in_torch_inference_mode_predicts(tmp_path):
    import torch

    x, y = data()
    model = make_model()
    model.adapt(x)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with torch.inference_mode():
        loaded = keras.saving.load_model(path)
        inside = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(inside, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )
    items, _ = loaded.recommend({"user_id": [0, 1]}, k=2)
    assert items.shape == (2, 2)


def test_rating_model_loops_check_the_pairs_once_per_call(monkeypatch):
    # Checked before each call, the pairs need no check inside the steps.
    x, y = data()
    model = make_model(neighborhood=True)
    model.adapt(x, y)
    model.compile(optimizer=optimizers.SparseAdam(0.01), loss="mse")
    in_graph = []
    graph_fail = _implicit._pairs._checks.graph_fail

    def recorded(bad, message):
        in_graph.append(message)
        return graph_fail(bad, message)

    monkeypatch.setattr(_implicit._pairs._checks, "graph_fail", recorded)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, fast=False)
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert [m for m in in_graph if "holds no pairs" in m] == []


def test_a_cloned_functional_model_uses_the_pairs_it_is_given():
    x, _ = data()
    model, users = _functional()
    users.adapt(x)
    expected = model.predict(x, verbose=0)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        clone.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )
    # One never given pairs still says so, inside Keras's compiled loop.
    empty = keras.models.clone_model(model)
    with pytest.raises(Exception, match=r"holds no pairs yet: call `adapt`"):
        empty.predict(x, verbose=0)


def _assert_adapt_alike(loaded, model, x):
    """Adapted to `x`, the two models predict alike."""
    loaded.adapt(x)
    model.adapt(x)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_model_saved_before_adapt_loads_and_adapts(tmp_path):
    x, _ = data()
    model = make_model()
    model.build()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    with pytest.raises(ValueError, match=r"holds no pairs yet"):
        loaded.predict(x, verbose=0)
    _assert_adapt_alike(loaded, model, x)


def test_weights_saved_before_adapt_by_earlier_versions_load(tmp_path):
    # Earlier versions filled an unadapted layer's pair slots with zeros
    # rather than the padding row.
    import h5py

    model = make_model()
    model.build()
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    layer = model.implicit_layers["user_id"]
    if layer.dense:
        pytest.skip("the dense layout has no pair slots")
    index = [v.path for v in layer.weights].index(layer.pair_sources.path)
    with h5py.File(path, "r+") as file:
        group = file["implicit_layers"]
        assert len(group) == 2
        for name in group:
            slots = group[name]["vars"][str(index)]
            # Each slot holds its layer's padding row (one past its ids).
            assert np.unique(slots[...]).tolist() in ([USERS], [MOVIES])
            slots[...] = 0
    twin = make_model()
    twin.build()
    twin.load_weights(path)
    assert not twin.implicit_layers["user_id"].adapted
    _assert_adapt_alike(twin, model, data()[0])


def test_readapt_replaces_the_pairs_in_compiled_functions():
    x, _ = data()
    model = make_model()
    model.adapt(x)
    before = model.predict(x, verbose=0)
    few = {k: v[:10] for k, v in x.items()}
    model.adapt(few)
    after = model.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-4
    twin = make_model()
    twin.build()
    twin.set_weights(model.get_weights())
    twin.adapt(few)
    np.testing.assert_allclose(
        twin.predict(x, verbose=0), after, rtol=1e-5, atol=1e-6
    )


def test_save_and_load_keep_the_pairs(tmp_path, layout):
    x, y = data()
    model = make_model()
    assert model.implicit_layers["user_id"].dense == (layout == "dense")
    model.adapt(x)
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "implicit.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.implicit == {"user_id": "movie_id", "movie_id": "user_id"}
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_config_round_trip():
    model = make_model(implicit={"movie_id": "user_id"})
    config = model.get_config()
    assert config["implicit"] == {"movie_id": "user_id"}
    clone = keras_catembed.RatingModel.from_config(config)
    assert clone.implicit == {"movie_id": "user_id"}
    assert list(clone.implicit_layers) == ["movie_id"]
    assert make_model(implicit=None).get_config()["implicit"] is None


def test_raw_id_vocabularies_and_unknown_ids():
    vocabulary = [100, 205, 310, 999]
    users = keras_catembed.EntityEmbedding(
        vocabulary=vocabulary, output_dim=3, num_oov_indices=1
    )
    model = keras_catembed.RatingModel(
        {"user_id": users, "movie_id": MOVIES}, implicit=True
    )
    x = {
        "user_id": np.array([205, 205, 999, 310], dtype="int32"),
        "movie_id": np.array([0, 1, 1, 4], dtype="int32"),
    }
    model.build()
    model.adapt(x)
    table = _np(model.implicit_layers["user_id"].embeddings)
    rows = _np(users._rows(ops.convert_to_tensor(x["user_id"]))[0])
    got = implicit_vectors(model, "user_id", users.num_rows)
    expected = reference(table, rows, x["movie_id"], users.num_rows)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # An id outside the vocabulary goes to the OOV row, which no pair has.
    oov = {"user_id": np.array([7], dtype="int32"), "movie_id": np.array([0])}
    embedded = model.embed(
        {k: ops.convert_to_tensor(v) for k, v in oov.items()}
    )
    np.testing.assert_allclose(
        _np(embedded["user_id"]), _np(users(oov["user_id"])), atol=1e-6
    )


@pytest.mark.parametrize(
    "implicit, match",
    [
        ("users", r"`implicit` must be None, True or a dict.*'users'"),
        ({"user_id": "genre"}, r"column 'genre', which is not one"),
        ({"user_id": "user_id"}, r"two different columns.*'user_id'"),
    ],
)
def test_bad_implicit_arguments(implicit, match):
    with pytest.raises(ValueError, match=match):
        make_model(implicit=implicit)


def test_implicit_true_needs_two_columns():
    with pytest.raises(ValueError, match=r"two-column model.*'a', 'b', 'c'"):
        keras_catembed.RatingModel({"a": 3, "b": 3, "c": 3}, implicit=True)


def test_adapt_errors_name_the_problem():
    x, _ = data()
    with pytest.raises(ValueError, match="has none: pass `implicit=`"):
        make_model(implicit=None).adapt(x)
    model = make_model()
    with pytest.raises(ValueError, match=r"Missing: \['user_id'\]"):
        model.adapt({"movie_id": x["movie_id"]})
    bad = dict(x, user_id=np.where(np.arange(len(x["user_id"])) == 3, 40, 0))
    with pytest.raises(ValueError, match=r"'user_id'.*40"):
        model.adapt(bad)
    with pytest.raises(ValueError, match="columns of one length"):
        model.adapt({"user_id": x["user_id"], "movie_id": x["movie_id"][:5]})
    with pytest.raises(ValueError, match="expects a dict"):
        model.adapt(x["user_id"])
    empty = np.zeros((0,), "int32")
    with pytest.raises(ValueError, match="received no rows"):
        model.adapt({"user_id": empty, "movie_id": empty})


def test_a_cap_keeps_a_fixed_sample_of_each_ids_pairs():
    x, _ = data()
    model = make_model(max_pairs_per_id=2)
    model.build()
    model.adapt(x)
    layer = model.implicit_layers["user_id"]
    assert not layer.dense and layer.width == 2
    table = _np(layer.embeddings)
    sources = _np(layer.pair_sources)
    counts = _np(layer.pair_counts)
    vectors = implicit_vectors(model, "user_id", USERS)
    for user in range(USERS):
        seen = np.unique(x["movie_id"][x["user_id"] == user])
        assert counts[user] == min(seen.size, 2)
        kept = sources[user, : counts[user]]
        # Distinct ids the user was seen with, normalized by their count.
        assert np.unique(kept).size == kept.size
        assert set(kept) <= set(seen)
        expected = table[kept].sum(0) / np.sqrt(kept.size) if kept.size else 0.0
        np.testing.assert_allclose(vectors[user], expected, atol=1e-6)
    # The same data and seed keep the same sample.
    again = make_model(max_pairs_per_id=2)
    again.build()
    again.adapt(x)
    np.testing.assert_array_equal(
        _np(again.implicit_layers["user_id"].pair_sources), sources
    )


def test_a_cap_at_least_the_largest_count_is_exact():
    x, _ = data()
    exact, capped = make_model(), make_model(max_pairs_per_id=USERS)
    exact.build()
    capped.build()
    for mine, theirs in zip(
        capped.trainable_weights, exact.trainable_weights, strict=True
    ):
        # The lists layout's tables have a zero padding row more.
        theirs = _np(theirs)
        padding = np.zeros((mine.shape[0] - theirs.shape[0], *theirs.shape[1:]))
        mine.assign(np.concatenate([theirs, padding]).astype("float32"))
    exact.adapt(x)
    capped.adapt(x)
    for column, n in (("user_id", USERS), ("movie_id", MOVIES)):
        np.testing.assert_allclose(
            implicit_vectors(capped, column, n),
            implicit_vectors(exact, column, n),
            atol=1e-6,
        )


def test_lists_warn_when_the_default_width_leaves_pairs_out(
    layout, monkeypatch
):
    monkeypatch.setattr(_implicit, "DEFAULT_MAX_PAIRS_PER_ID", 2)
    x, _ = data()
    model = make_model()
    if layout == "dense":
        model.adapt(x)  # The dense matrix keeps every pair.
        assert _np(model.implicit_layers["user_id"].pair_counts).max() > 2
        return
    with pytest.warns(UserWarning, match=r"at most 2 pairs per id"):
        model.adapt(x)
    assert _np(model.implicit_layers["user_id"].pair_counts).max() == 2


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "8"])
def test_bad_max_pairs_per_id(value):
    with pytest.raises(ValueError, match=r"`max_pairs_per_id` must be None"):
        make_model(max_pairs_per_id=value)


def test_a_rejected_adapt_leaves_the_pairs_unchanged():
    x, _ = data()
    model = make_model()
    model.adapt(x)
    before = [np.copy(w) for w in model.get_weights()]
    bad = dict(x, movie_id=np.full_like(x["movie_id"], MOVIES + 3))
    with pytest.raises(ValueError, match="movie_id"):
        model.adapt(bad)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_pairs_saved_by_the_former_sparse_layout_still_load(layout):
    x, _ = data()
    model = make_model(implicit={"user_id": "movie_id"})
    model.build()
    model.adapt(x)
    layer = model.implicit_layers["user_id"]
    expected = implicit_vectors(model, "user_id", USERS)
    # The former sparse layout saved the table and three pair arrays.
    pairs = np.unique(x["user_id"] * MOVIES + x["movie_id"])
    targets, sources = pairs // MOVIES, pairs % MOVIES
    counts = np.bincount(targets, minlength=USERS)
    store = {
        "0": _np(layer.embeddings)[:MOVIES],
        "targets": targets.astype("int32"),
        "sources": sources.astype("int32"),
        "weights": (1 / np.sqrt(counts[targets])).astype("float32"),
    }
    twin = make_model(implicit={"user_id": "movie_id"})
    twin.build()
    twin.implicit_layers["user_id"].load_own_variables(store)
    assert twin.implicit_layers["user_id"].adapted
    np.testing.assert_allclose(
        implicit_vectors(twin, "user_id", USERS), expected, atol=1e-6
    )


def regularized_model():
    """User vectors described by movies; the users' tables under L2."""
    return keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(
                USERS, 4, embeddings_regularizer=keras.regularizers.L2(0.5)
            ),
            "movie_id": MOVIES,
        },
        implicit={"user_id": "movie_id"},
    )


def test_sparse_adam_regularizes_the_rows_the_lists_read(layout):
    model = regularized_model()
    x, _ = data()
    model.build()
    model.adapt(x)
    layer = model.implicit_layers["user_id"]
    model.compile(optimizers.SparseAdam(0.01), "mse")
    if layer.dense:
        # The dense layout reads the whole table: its regularizer stays.
        assert layer.embeddings.regularizer is not None
        return
    assert layer.embeddings.regularizer is None
    batch = {k: ops.convert_to_tensor(v[:5]) for k, v in x.items()}
    model(batch, training=True)
    lists = _np(layer.pair_sources)[x["user_id"][:5]]
    table = _np(layer.embeddings)
    expected = 0.5 * np.sum(table[lists] ** 2)
    row_losses = [_np(loss) for loss in layer.losses]
    assert len(row_losses) == 1
    np.testing.assert_allclose(row_losses[0], expected, rtol=1e-5)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    assert layer.embeddings.regularizer is not None


@pytest.mark.parametrize("fast", [True, False])
def test_fit_adds_the_row_penalty_of_the_lists_to_the_loss(layout, fast):
    # Every `fit` path passes `training` down to the pair layers (JAX's
    # stateless calls have no call context to inherit it from), so the
    # loss of a SparseAdam step holds the penalty of the rows it reads.
    if layout == "dense":
        pytest.skip("the dense layout keeps the table's own regularizer")
    model = regularized_model()
    x, y = data()
    batch = {k: v[:5] for k, v in x.items()}
    model.build()
    model.adapt(x)
    model.compile(optimizers.SparseAdam(0.01), "mse")
    tensors = {k: ops.convert_to_tensor(v) for k, v in batch.items()}
    predictions = _np(model(tensors, training=True))[:, 0]
    penalties = {
        layer.name: float(sum(_np(loss) for loss in layer.losses))
        for layer in (
            model.embedding_layers["user_id"],
            model.implicit_layers["user_id"],
        )
    }
    assert all(value > 0 for value in penalties.values()), penalties
    expected = np.mean((predictions - y[:5]) ** 2) + sum(penalties.values())
    history = model.fit(
        batch, y[:5], batch_size=5, epochs=1, fast=fast, verbose=0
    )
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-4)
