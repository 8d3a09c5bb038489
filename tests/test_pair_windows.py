"""`pairs_per_step`: training steps read a moving window of each pair list."""

import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import _pair_windows
from keras_catembed import optimizers
from keras_catembed._implicit import ImplicitFeedback

TARGETS, SOURCES = 4, 12


def _np(x):
    return ops.convert_to_numpy(x)


def adapted_layer(rated=False, pairs_per_step=2, seed=0):
    """Target t occurs with 3 + 2t sources (t=0..2); target 3 with none."""
    rng = np.random.default_rng(seed)
    targets, sources = [], []
    for t in range(TARGETS - 1):
        chosen = rng.choice(SOURCES, 3 + 2 * t, replace=False)
        targets += [t] * chosen.size
        sources += chosen.tolist()
    layer = ImplicitFeedback(
        TARGETS,
        SOURCES,
        3,
        embeddings_initializer="normal",
        rated=rated,
        max_pairs_per_id=8,
        pairs_per_step=pairs_per_step,
    )
    ratings = 1 + 4 * rng.random(len(targets)) if rated else None
    layer.adapt(np.array(targets), np.array(sources), ratings)
    return layer, np.array(targets), np.array(sources)


def test_a_step_reads_its_window_against_the_anchor():
    layer, targets, sources = adapted_layer()
    lists, counts = _np(layer.pair_sources), _np(layer.pair_counts)
    np.testing.assert_array_equal(counts, [3, 5, 7, 0])
    rows = ops.convert_to_tensor(np.arange(TARGETS, dtype="int32"))

    def whole_sums(table):
        out = np.zeros((TARGETS, 3))
        for t, n in enumerate(counts[:3]):
            out[t] = table[sources[targets == t]].sum(0) / np.sqrt(n)
        return out

    # Prediction reads every listed pair and leaves the counter alone.
    table = _np(layer.embeddings)
    np.testing.assert_allclose(_np(layer(rows)), whole_sums(table), rtol=1e-5)
    assert int(_np(layer.sample_step)) == 0
    # Right after `refresh_anchor`, a step computes the whole sums.
    layer.refresh_anchor()
    np.testing.assert_array_equal(_np(layer.anchor), table)
    np.testing.assert_allclose(
        _np(layer(rows, training=True)), whole_sums(table), rtol=1e-5
    )
    # Once the table moves, a step adds its window's moves, scaled n / m.
    moved = table + np.random.default_rng(1).normal(size=table.shape)
    moved[-1] = 0  # the padding row
    layer.embeddings.assign(moved)
    for step in (1, 2, 3):
        assert int(_np(layer.sample_step)) == step
        out = _np(layer(rows, training=True))
        expected = whole_sums(table)
        for t, n in enumerate(counts[:3]):
            start = (step * 2 + t) % n
            window = lists[t, [(start + j) % n for j in range(2)]]
            change = (moved - table)[window].sum(0) / np.sqrt(n) * n / 2
            expected[t] += change
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert int(_np(layer.sample_step)) == 4


def moved_window_layer(rated, picked, seed):
    """A window layer anchored, then its table moved; rows to read.

    Returns the layer, its moved table, the `picked` target rows and the
    first source of each (0 for target 3, which has none).
    """
    layer, targets, sources = adapted_layer(rated=rated, pairs_per_step=2)
    layer.refresh_anchor()
    table = _np(layer.embeddings)
    table[:-1] += np.random.default_rng(seed).normal(size=table[:-1].shape)
    layer.embeddings.assign(table)
    own = [sources[targets == t][0] if t < 3 else 0 for t in picked]
    return (
        layer,
        table,
        ops.convert_to_tensor(np.asarray(picked, "int32")),
        ops.convert_to_tensor(np.asarray(own, "int32")),
    )


def _assert_windows_average_to_the_whole_sum(layer, args, steps):
    """`steps` training calls (a whole cycle of every list's windows)
    average to the inference call; returns the latter."""
    whole = _np(layer(*args))
    windows = np.mean(
        [_np(layer(*args, training=True)) for _ in range(steps)], axis=0
    )
    np.testing.assert_allclose(windows, whole, rtol=1e-4, atol=1e-5)
    return whole


@pytest.mark.parametrize("rated", [False, True])
def test_windows_average_to_the_whole_sum(rated):
    # Over n steps every slot of a list of n pairs is read m times, so the
    # mean of the steps is the whole sum, own pair left out too, however
    # far the table moved from its anchor.
    layer, _, rows, own = moved_window_layer(rated, [0, 1, 2, 1], seed=2)
    args = (rows, own) if rated else (rows,)
    whole = _assert_windows_average_to_the_whole_sum(layer, args, 3 * 5 * 7)
    # One window alone is not the whole sum.
    assert np.abs(_np(layer(*args, training=True)) - whole).max() > 1e-3


@pytest.mark.parametrize("rated", [False, True])
def test_new_pairs_leave_no_stale_anchor(rated):
    # Anchored on one set of pairs, then adapted to another: the windows
    # still average to the whole sum of the new pairs.
    layer, _, _ = adapted_layer(rated=rated, pairs_per_step=2)
    layer.refresh_anchor()
    rng = np.random.default_rng(7)
    targets = np.repeat(np.arange(TARGETS - 1), [4, 6, 8])
    sources = np.concatenate(
        [rng.choice(SOURCES, n, replace=False) for n in (4, 6, 8)]
    )
    layer.adapt(targets, sources, 1 + 4 * rng.random(targets.size))
    rows = ops.convert_to_tensor(np.array([0, 1, 2, 1], "int32"))
    own = ops.convert_to_tensor(
        np.array([sources[targets == t][0] for t in (0, 1, 2, 1)], "int32")
    )
    args = (rows, own) if rated else (rows,)
    _assert_windows_average_to_the_whole_sum(layer, args, 2 * 3 * 4)


@pytest.mark.parametrize("rated", [False, True])
def test_a_sparse_step_subtracts_the_anchor_once_per_distinct_row(rated):
    # A sparse step passes the rows it gathered, their positions and
    # which table row each is; the window then subtracts the anchor from
    # the distinct rows before reading them by position. Same sums as
    # reading the variable, as gathered rows without their indices, and
    # as the whole table passed as the gathered rows.
    layer, table, rows, own = moved_window_layer(rated, [2, 0, 1, 2, 3], seed=4)
    args = (rows, own) if rated else (rows,)
    # The rows of the window at step 3, which each call below reads.
    layer.sample_step.assign(3)
    needed = _np(layer.rows_needed(rows, own))
    unique, positions = np.unique(needed, return_inverse=True)
    if keras.backend.backend() == "jax":
        # JAX's steps pad the distinct rows with one past the table's end.
        unique = np.append(unique, SOURCES + 1)
    gathered_rows = np.concatenate([table, np.zeros_like(table[:1])])[unique]
    triple = (
        ops.convert_to_tensor(gathered_rows),
        ops.convert_to_tensor(positions.astype("int32")),
        ops.convert_to_tensor(unique.astype("int32")),
    )
    # Or the whole table, row i at i (no indices): JAX's way when a step
    # reads at least as many rows as the table has.
    whole_table = (
        ops.convert_to_tensor(table),
        ops.convert_to_tensor(needed.astype("int32")),
        None,
    )
    outputs = []
    for gathered in (None, triple[:2], triple, whole_table):
        layer.sample_step.assign(3)
        outputs.append(_np(layer(*args, training=True, gathered=gathered)))
    whole = _np(layer(*args))
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], rtol=1e-5, atol=1e-6)
    # The table has moved: the window's estimate is not the whole sum.
    assert np.abs(outputs[0] - whole).max() > 1e-3


def test_lists_no_longer_than_the_window_are_read_whole():
    layer, targets, sources = adapted_layer(pairs_per_step=5)
    table = _np(layer.embeddings)
    rows = ops.convert_to_tensor(np.arange(TARGETS, dtype="int32"))
    whole = _np(layer(rows))
    # Targets 0 and 1 hold 3 and 5 pairs: every step reads them whole
    # (against the zero anchor); the repeated slots read the zero padding
    # row.
    for t in (0, 1):
        seen = sources[targets == t]
        np.testing.assert_allclose(
            whole[t], table[seen].sum(0) / np.sqrt(seen.size), rtol=1e-5
        )
    for _ in range(3):
        out = _np(layer(rows, training=True))
        np.testing.assert_allclose(out[:2], whole[:2], rtol=1e-5, atol=1e-6)
    # A window as wide as the lists is no window at all.
    wide, _, _ = adapted_layer(pairs_per_step=8)
    assert not wide.sampled
    assert "sample_step" not in [w.name for w in wide.weights]


def make_model(**kwargs):
    kwargs.setdefault("pairs_per_step", 3)
    return keras_catembed.RatingModel(
        {"user_id": 30, "movie_id": 40},
        hidden_units=[8],
        max_pairs_per_id=16,
        **kwargs,
    )


def data(n=200, seed=3):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, 30, n).astype("int32"),
        "movie_id": rng.integers(0, 40, n).astype("int32"),
    }
    return x, rng.integers(1, 6, n).astype("float32")


@pytest.mark.parametrize(
    "kind, pairs_per_step",
    [
        ("implicit", 3),
        ("neighborhood", 3),
        ("implicit", {"user_id": 2, "movie_id": 5}),
    ],
)
@pytest.mark.parametrize("optimizer", ["adam", "sparse_adam"])
def test_device_loop_reads_the_same_windows_as_stock_fit(
    kind, pairs_per_step, optimizer, monkeypatch
):
    # The device loop (with SparseAdam: a sparse step that gathers only
    # the rows of each window) trains exactly as stock `fit`. Stock `fit`
    # applies SparseAdam to whole-table gradients, like Adam: the same as
    # lazy updates for one step only, so SparseAdam takes one step (from
    # a counter past zero) and Adam two epochs.
    x, y = data()
    if optimizer == "sparse_adam":
        x, y = {k: v[:64] for k, v in x.items()}, y[:64]
    # Stock `fit` calls one step at a time, the device loop several: the
    # anchors are refreshed at the start of each epoch only, alike.
    monkeypatch.setattr(_pair_windows, "REFRESH_AFTER_READS", 1e9)
    models = [
        make_model(**{kind: True}, pairs_per_step=pairs_per_step)
        for _ in range(2)
    ]
    for model in models:
        model.build()
        model.adapt(x, y)
        model.compile(
            keras.optimizers.Adam(0.02, epsilon=1e-3)
            if optimizer == "adam"
            else optimizers.SparseAdam(0.02, epsilon=1e-3),
            "mse",
        )
    stock, fast = models
    layers = [getattr(m, f"{kind}_layers")["user_id"] for m in models]
    layers[0].sample_step.assign(5)
    fast.set_weights(stock.get_weights())
    steps = 14 if optimizer == "adam" else 1
    args = dict(
        batch_size=32 if optimizer == "adam" else 64,
        epochs=2 if optimizer == "adam" else 1,
        shuffle=False,
        verbose=0,
    )
    stock.fit(x, y, fast=False, **args)
    fast.fit(x, y, fast=True, **args)
    for left, right in zip(stock.weights, fast.weights, strict=True):
        np.testing.assert_allclose(
            _np(left), _np(right), rtol=1e-4, atol=1e-5, err_msg=left.path
        )
    # Adam: 7 steps an epoch (200 rows, batch 32), 2 epochs.
    assert int(_np(layers[1].sample_step)) == 5 + steps


@pytest.mark.parametrize(
    "implicit, pairs_per_step",
    [
        ({"user_id": "movie_id"}, 3),
        (True, {"user_id": 2, "movie_id": 4}),
    ],
)
def test_sparse_steps_move_only_the_rows_of_the_windows(
    implicit, pairs_per_step
):
    x, y = data()
    model = make_model(implicit=implicit, pairs_per_step=pairs_per_step)
    model.adapt(x)
    model.compile(optimizers.SparseAdam(0.05, epsilon=1e-3), "mse")
    model.build()
    batch = {k: v[:4] for k, v in x.items()}
    layers = model.implicit_layers
    lists = {c: _np(layer.pair_sources) for c, layer in layers.items()}
    counts = {c: _np(layer.pair_counts) for c, layer in layers.items()}
    before = {c: _np(layer.embeddings).copy() for c, layer in layers.items()}
    model.fit(batch, y[:4], batch_size=4, epochs=1, verbose=0)
    for column, layer in layers.items():
        # Each column's window: its own number of pairs per step.
        m = layer.pairs_per_step
        expected = (
            pairs_per_step
            if isinstance(pairs_per_step, int)
            else pairs_per_step[column]
        )
        assert m == expected == model.encoders[column].pairs_per_step
        read = set()
        for t in batch[column]:
            n = counts[column][t]
            start = int(t) % n
            read |= {
                int(lists[column][t, (start + j) % n]) for j in range(min(m, n))
            }
        change = np.abs(_np(layer.embeddings) - before[column]).max(1)
        moved = set(np.flatnonzero(change))
        assert moved and moved <= read
        assert len(read) < len(
            {
                int(s)
                for t in batch[column]
                for s in lists[column][t, : counts[column][t]]
            }
        )


def test_a_column_left_out_of_pairs_per_step_reads_every_pair(tmp_path):
    x, y = data()
    model = make_model(implicit=True, pairs_per_step={"user_id": 2})
    users, movies = (model.implicit_layers[c] for c in ("user_id", "movie_id"))
    assert users.sampled and users.pairs_per_step == 2
    assert not movies.sampled and movies.pairs_per_step is None
    assert model.encoders["movie_id"].pairs_per_step is None
    model.adapt(x)
    model.compile(optimizers.SparseAdam(0.02), "mse")
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    # Only the windowed layer has (and refreshed) an anchor.
    assert np.any(_np(users.anchor))
    assert not hasattr(movies, "anchor")
    path = str(tmp_path / "per_column.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.pairs_per_step == {"user_id": 2}
    assert loaded.implicit_layers["user_id"].pairs_per_step == 2
    assert loaded.implicit_layers["movie_id"].pairs_per_step is None
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_save_and_load_keep_the_windows(tmp_path):
    x, y = data()
    model = make_model(neighborhood=True)
    model.adapt(x, y)
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    path = str(tmp_path / "windows.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.pairs_per_step == 3
    assert loaded.get_config()["pairs_per_step"] == 3
    layer = loaded.neighborhood_layers["user_id"]
    assert layer.pairs_per_step == 3
    assert int(_np(layer.sample_step)) == 4
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    encoder = loaded.encoders["user_id"]
    assert encoder.pairs_per_step == 3
    assert encoder.get_config()["pairs_per_step"] == 3


@pytest.mark.parametrize("value", [0, -2, 1.5, "4", True])
def test_bad_pairs_per_step(value):
    with pytest.raises(ValueError, match=r"`pairs_per_step` must be None"):
        keras_catembed.RatingModel(
            {"user_id": 3, "movie_id": 4}, implicit=True, pairs_per_step=value
        )


@pytest.mark.parametrize(
    "value, message",
    [
        (
            {"zip": 4},
            r"names the column 'zip', which no `implicit` or "
            r"`neighborhood` term describes. Expected one of "
            r"\['user_id'\]",
        ),
        (
            {"movie_id": 4},
            r"names the column 'movie_id'.*Expected one of \['user_id'\]",
        ),
        (
            {"user_id": 0},
            r"`pairs_per_step\['user_id'\]` must be None or a positive "
            r"integer. Received: pairs_per_step\['user_id'\]=0",
        ),
        (
            {"user_id": 2.5},
            r"`pairs_per_step\['user_id'\]` must be None",
        ),
    ],
)
def test_bad_pairs_per_step_of_a_column(value, message):
    with pytest.raises(ValueError, match=message):
        keras_catembed.RatingModel(
            {"user_id": 3, "movie_id": 4, "zip": 5},
            implicit={"user_id": "movie_id"},
            pairs_per_step=value,
        )


def test_the_dense_layout_has_no_windows():
    with pytest.raises(ValueError, match=r"dense=True, pairs_per_step=2"):
        ImplicitFeedback(3, 4, 2, dense=True, pairs_per_step=2)
    # Asking for windows picks the lists layout.
    assert not ImplicitFeedback(3, 4, 2, pairs_per_step=2).dense


def test_a_column_encoder_refreshes_its_anchors():
    x, _ = data()
    movies = keras_catembed.ColumnEncoder(40, column="movie_id")
    users = keras_catembed.ColumnEncoder(
        30,
        column="user_id",
        implicit=movies,
        max_pairs_per_id=16,
        pairs_per_step=3,
    )
    users.adapt(x)
    layer = users.implicit_layer
    assert layer.sampled
    assert not np.any(_np(layer.anchor))
    users.refresh_anchor()
    np.testing.assert_array_equal(_np(layer.anchor), _np(layer.embeddings))
    # Right after the refresh a training step encodes as prediction does.
    inputs = {k: ops.convert_to_tensor(v[:20]) for k, v in x.items()}
    np.testing.assert_allclose(
        _np(users(inputs, training=True)), _np(users(inputs)), atol=1e-6
    )


class _CountingLayer:
    def __init__(self, listed, pairs_per_step):
        self.listed, self.pairs_per_step = listed, pairs_per_step
        self.refreshed = 0

    def listed_pairs(self):
        return self.listed


def test_anchors_are_refreshed_each_epoch_and_as_reads_add_up(monkeypatch):
    # 2 layers list 1000 + 600 pairs; a step of 20 rows reads 20 * (3 + 5)
    # pairs: a refresh is due after 10 steps when due after reading the
    # listed pairs once, 20 steps when twice.
    layers = [_CountingLayer(1000, 3), _CountingLayer(600, 5)]
    built = []
    monkeypatch.setattr(_pair_windows, "on_host", lambda layer: True)
    monkeypatch.setattr(
        _pair_windows, "host_pairs", lambda layer: built.append(layer) or "m"
    )

    def count(layer, pairs=None):
        assert pairs == "m"
        layer.refreshed += 1

    monkeypatch.setattr(_pair_windows, "refresh", count)
    monkeypatch.setattr(_pair_windows, "REFRESH_AFTER_READS", 2.0)
    assert _pair_windows.RefreshAnchors(layers, batch_size=20).interval == 20
    monkeypatch.setattr(_pair_windows, "REFRESH_AFTER_READS", 1.0)
    refresh = _pair_windows.RefreshAnchors(layers, batch_size=20)
    assert refresh.interval == 10
    refreshed_at = []
    for epoch in range(2):
        refresh.on_epoch_begin(epoch)
        # Calls of 4 steps (the device loop), then a last one of 1.
        for step in (0, 4, 8, 12, 16, 20, 24):
            before = layers[0].refreshed
            refresh.on_train_batch_begin(step)
            if layers[0].refreshed > before:
                refreshed_at.append((epoch, step))
    assert refreshed_at == [(0, 0), (0, 12), (0, 24), (1, 0), (1, 12), (1, 24)]
    assert layers[1].refreshed == layers[0].refreshed == 6
    # Each layer's sparse matrix was written once, for all 6 refreshes.
    assert built == layers


@pytest.mark.parametrize("host", [True, False])
def test_a_fit_call_writes_the_sparse_pairs_once_and_the_next_anew(
    host, monkeypatch
):
    # Host refreshes reuse the sparse matrix within one `fit` call; a
    # later call after `adapt` on other data sums the new pairs. Without
    # the host product, no matrix is written at all.
    monkeypatch.setattr(_pair_windows, "HOST_PRODUCT", host)
    calls = []
    original = _pair_windows.host_pairs

    def counted(layer):
        calls.append(layer.name)
        return original(layer)

    monkeypatch.setattr(_pair_windows, "host_pairs", counted)
    model = make_model(implicit={"user_id": "movie_id"})
    layer = model.implicit_layers["user_id"]
    for seed, batches in ((3, 8), (4, 4)):
        x, y = data(seed=seed)
        model.adapt(x)
        model.compile("adam", "mse")
        calls.clear()
        model.fit(x, y, batch_size=200 // batches, epochs=2, verbose=0)
        if host and _pair_windows.on_host(layer):
            assert calls == [layer.name]
        else:
            assert calls == []
        lists, weights = _np(layer.pair_sources), _np(layer.pair_weights)
        anchor = _np(layer.anchor)
        expected = np.einsum("tj,tjd->td", weights, anchor[lists])
        np.testing.assert_allclose(
            _np(layer.anchor_sums), expected, rtol=1e-5, atol=1e-6
        )
        # The anchor's own sums: the pairs of this call's data.
        counts = _np(layer.pair_counts)
        users = np.unique(x["user_id"])
        assert np.all(counts[users] > 0)
        assert not np.any(np.delete(counts, users))


def test_the_refresh_writes_the_sparse_pairs_again_after_adapt(monkeypatch):
    # The callback reuses a layer's sparse matrix until `adapt` (or
    # loading) writes its pairs again; the anchors' sums then follow the
    # new pairs.
    layer, _, _ = adapted_layer()
    if not _pair_windows.on_host(layer):
        pytest.skip("the table is not in host memory or SciPy is missing")
    built = []
    original = _pair_windows.host_pairs
    monkeypatch.setattr(
        _pair_windows,
        "host_pairs",
        lambda layer: built.append(layer.pairs_version) or original(layer),
    )
    refresh = _pair_windows.RefreshAnchors([layer], batch_size=2)

    def sums_match_the_pairs():
        lists, weights = _np(layer.pair_sources), _np(layer.pair_weights)
        expected = np.einsum("tj,tjd->td", weights, _np(layer.anchor)[lists])
        np.testing.assert_allclose(
            _np(layer.anchor_sums), expected, rtol=1e-5, atol=1e-6
        )

    version = layer.pairs_version
    for epoch in range(2):
        refresh.on_epoch_begin(epoch)
        refresh.on_train_batch_begin(0)
        sums_match_the_pairs()
    assert built == [version]
    # Other pairs: target 3 now lists 5 sources, target 0 none.
    layer.adapt(np.array([3, 3, 3, 3, 3, 1]), np.array([0, 2, 4, 6, 8, 1]))
    np.testing.assert_array_equal(_np(layer.pair_counts), [0, 1, 0, 5])
    refresh.on_epoch_begin(2)
    refresh.on_train_batch_begin(0)
    sums_match_the_pairs()
    assert built == [version, version + 1]
    assert np.any(_np(layer.anchor_sums)[3])
    # The matrix is not kept past the `fit` call.
    refresh.on_train_end()
    assert refresh.pairs == {}


def test_fit_refreshes_the_anchors():
    x, y = data()
    model = make_model(implicit={"user_id": "movie_id"})
    model.adapt(x)
    model.compile("adam", "mse")
    layer = model.implicit_layers["user_id"]
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    # `fit` anchored the table (the anchor starts as zeros), and the
    # anchor's sums are the whole sums over it.
    anchor = _np(layer.anchor)
    assert np.any(anchor)
    lists, weights = _np(layer.pair_sources), _np(layer.pair_weights)
    expected = np.einsum("tj,tjd->td", weights, anchor[lists])
    np.testing.assert_allclose(
        _np(layer.anchor_sums), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fast", [True, False])
def test_anchors_refresh_within_an_epoch_of_either_loop(fast, monkeypatch):
    # A refresh before every step: within an epoch, Keras's JAX loop holds
    # the variables' values apart until they are put back.
    monkeypatch.setattr(_pair_windows, "REFRESH_AFTER_READS", 1e-9)
    refreshed = []
    refresh = _pair_windows.refresh

    def counted(layer, pairs):
        refreshed.append(layer.name)
        refresh(layer, pairs)

    monkeypatch.setattr(_pair_windows, "refresh", counted)
    x, y = data()
    model = make_model(implicit={"user_id": "movie_id"}, pairs_per_step=2)
    model.adapt(x)
    model.compile("adam", "mse")
    layer = model.implicit_layers["user_id"]
    history = model.fit(x, y, batch_size=50, epochs=2, verbose=0, fast=fast)
    assert np.all(np.isfinite(history.history["loss"]))
    # 200 rows, batches of 50: one refresh before each step (stock) or
    # each compiled call (the device loop, at least one an epoch).
    if fast:
        assert 2 <= len(refreshed) <= 8
    else:
        assert len(refreshed) == 8
    lists, weights = _np(layer.pair_sources), _np(layer.pair_weights)
    anchor = _np(layer.anchor)
    np.testing.assert_allclose(
        _np(layer.anchor_sums),
        np.einsum("tj,tjd->td", weights, anchor[lists]),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("how", ["padded", "grouped", "host", "no scipy"])
def test_a_refresh_sums_every_listed_pair_of_lists_of_any_length(
    how, monkeypatch
):
    # Counts from 0 (nothing listed) to a full list of 64, unequal
    # weights; as one sparse product on the host (SciPy's), or gathered
    # in one pass over the padded lists or in 3 groups of rows (as when
    # SciPy is not installed).
    if how != "host":
        monkeypatch.setattr(_pair_windows, "HOST_PRODUCT", how == "no scipy")
    if how == "no scipy":
        monkeypatch.setitem(sys.modules, "scipy", None)
    if how == "grouped":
        monkeypatch.setattr(_pair_windows, "GROUPED_VALUES", 0)
        monkeypatch.setattr(_pair_windows, "GROUPS", 3)
    rng = np.random.default_rng(5)
    counts = [0, 1, 3, 4, 5, 17, 63, 64, 64, 2]
    targets = np.repeat(np.arange(len(counts)), counts)
    sources = np.concatenate([rng.choice(80, n, replace=False) for n in counts])
    layer = ImplicitFeedback(
        len(counts),
        80,
        3,
        embeddings_initializer="normal",
        rated=True,
        max_pairs_per_id=64,
        pairs_per_step=4,
    )
    layer.adapt(targets, sources, 1 + 4 * rng.random(targets.size))
    np.testing.assert_array_equal(_np(layer.pair_counts), counts)
    host = _pair_windows.host_sums(layer, layer.embeddings.value)
    assert (host is None) == (how != "host")
    layer.refresh_anchor()
    table = _np(layer.embeddings)
    lists, weights = _np(layer.pair_sources), _np(layer.pair_weights)
    expected = np.einsum("tj,tjd->td", weights, table[lists])
    assert not np.any(expected[0]) and np.all(np.any(expected[1:], axis=1))
    np.testing.assert_allclose(
        _np(layer.anchor_sums), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(_np(layer.anchor), table)


def test_row_groups_split_the_rows_with_fewest_slots():
    counts = np.array([0, 5, 1, 64, 3, 5, 2, 64, 17, 1, 40, 3])
    groups = _pair_windows.row_groups(counts, 3)
    rows = np.concatenate([r for r, _ in groups])
    np.testing.assert_array_equal(np.sort(rows), np.arange(counts.size))
    for r, width in groups:
        assert width == max(1, counts[r].max())
    slots = sum(len(r) * width for r, width in groups)
    # Against every split of the distinct counts into 3 runs.
    clipped = np.maximum(counts, 1)
    values = np.unique(clipped)

    def cost(highs):
        lows = (0, *highs[:-1])
        return sum(
            np.sum((clipped > low) & (clipped <= high)) * high
            for low, high in zip(lows, highs, strict=True)
        )

    best = min(
        cost((values[i], values[j], values[-1]))
        for i in range(len(values) - 2)
        for j in range(i + 1, len(values) - 1)
    )
    # Counts up to 5, 17 and 40, the two full lists.
    assert slots == best == 8 * 5 + 2 * 40 + 2 * 64
    # Fewer distinct counts than groups: one group each.
    groups = _pair_windows.row_groups(np.array([4, 4, 9]), 8)
    assert [(list(r), w) for r, w in groups] == [([0, 1], 4), ([2], 9)]


def test_windows_past_int32_indices_are_refused():
    with pytest.raises(ValueError, match=r"exceed int32 indices"):
        ImplicitFeedback(2**24, 1000, 2, max_pairs_per_id=256, pairs_per_step=8)


def test_fit_before_adapt_says_to_adapt():
    x, y = data()
    model = make_model(implicit=True)
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"call `adapt`"):
        model.fit(x, y, epochs=1, verbose=0)
