"""bfloat16 pair products: `RatingModel(pair_dtype="bfloat16")`.

The pairs are held in bfloat16 and every target's sum is computed at
once; the results must match the float32 layer's to bfloat16 rounding,
forward and backward, keep the left-out-own-rating rule, and survive a
save.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import _pair_dtype
from keras_catembed import presets
from keras_catembed._implicit import ImplicitFeedback

TARGETS, SOURCES, DIM = 30, 20, 8
# bfloat16 keeps 8 bits of mantissa: each weight and table value enters
# the products with a relative error of at most 2**-9, and a sum of them
# differs from float32's by about that much of its largest terms.
TOLERANCE = 2e-2


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), "float64")


def pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, TARGETS - 1, n)  # the last target: no pairs
    sources = rng.integers(0, SOURCES, n)
    ratings = rng.integers(1, 6, n).astype("float32")
    return targets, sources, ratings


def reference(table, targets, sources, ratings, rated, query_t, query_s):
    """The float64 sums of `ImplicitFeedback`'s docstring."""
    mean = ratings.mean()
    out = np.zeros((len(query_t), table.shape[1]))
    for row, (t, own) in enumerate(zip(query_t, query_s, strict=True)):
        seen = np.unique(sources[targets == t])
        for s in seen:
            if rated and s == own:
                continue
            pair = (targets == t) & (sources == s)
            weight = ratings[pair].mean() - mean if rated else 1.0
            out[row] += weight * table[s]
        if seen.size:
            out[row] /= np.sqrt(seen.size)
    return out


def model_inputs():
    """The pairs as a `RatingModel`'s inputs (users described by movies)."""
    targets, sources, ratings = pairs()
    x = {
        "user_id": targets.astype("int32"),
        "movie_id": sources.astype("int32"),
    }
    return x, ratings


def layer(rated, pair_dtype="bfloat16", seed=1):
    keras.utils.set_random_seed(seed)
    result = ImplicitFeedback(
        TARGETS,
        SOURCES,
        DIM,
        embeddings_initializer="normal",
        rated=rated,
        pair_dtype=pair_dtype,
    )
    result.adapt(*pairs())
    return result


@pytest.mark.parametrize("rated", [False, True])
def test_sums_match_the_float32_reference(rated):
    targets, sources, ratings = pairs()
    bf16 = layer(rated)
    assert bf16.pair_weights.dtype == "bfloat16"
    assert tuple(bf16.pair_weights_t.shape) == (SOURCES, TARGETS)
    query_t = np.arange(TARGETS, dtype="int32")
    query_s = (query_t * 7) % SOURCES
    got = _np(bf16(ops.convert_to_tensor(query_t), query_s.astype("int32")))
    want = reference(
        _np(bf16.embeddings), targets, sources, ratings, rated, query_t, query_s
    )
    assert got.dtype == np.float64 and got.shape == (TARGETS, DIM)
    scale = np.abs(want).max()
    assert scale > 0.1
    np.testing.assert_allclose(got, want, atol=TOLERANCE * scale)
    # The target without pairs sums to exactly zero.
    np.testing.assert_array_equal(got[-1], 0.0)


def test_a_training_rating_does_not_describe_its_own_row():
    """The own pair is left out exactly, whatever the rounding."""
    targets, sources, _ = pairs()
    bf16 = layer(rated=True)
    t = np.array([targets[0]], "int32")
    listed = np.unique(sources[targets == t[0]])
    assert listed.size >= 2
    own = listed[:1].astype("int32")
    other = listed[1:2].astype("int32")
    before = np.abs(_np(bf16.sums(t))).max()
    left_out = _np(bf16(t, own))
    kept = _np(bf16(t, other))
    moved = _np(bf16.embeddings)
    moved[own[0]] += 1.0
    bf16.embeddings.assign(moved.astype("float32"))
    # Moving the own source's vector changes its own row's sum by no
    # more than the rounding of the whole sums (float32 on JAX, bfloat16
    # on TensorFlow and torch): each of the two calls rounds its whole
    # sum once, by at most 2**-8 of it...
    after = np.abs(_np(bf16.sums(t))).max()
    change = np.abs(_np(bf16(t, own)) - left_out).max()
    assert change <= 2**-8 * (before + after) + 1e-6
    # ...and moves the sum of a row of the same target with another by
    # the own pair's whole term.
    assert np.abs(_np(bf16(t, other)) - kept).max() > 100 * (change + 1e-6)


def _one_sgd_step(pair_dtype, neighborhood):
    x, ratings = model_inputs()
    keras.utils.set_random_seed(3)
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES},
        hidden_units=[8],
        implicit=True,
        neighborhood=neighborhood,
        pair_dtype=pair_dtype,
    )
    model.adapt(x, ratings)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.predict(x, verbose=0)  # builds every weight
    before = {w.path: _np(w) for w in model.trainable_weights}
    model.fit(x, ratings, batch_size=len(ratings), epochs=1, verbose=0)
    changes = {w.path: _np(w) - before[w.path] for w in model.trainable_weights}
    return model, changes


@pytest.mark.parametrize("neighborhood", [False, True])
def test_a_training_step_moves_the_tables_as_float32_does(neighborhood):
    _, want = _one_sgd_step(None, neighborhood)
    model, got = _one_sgd_step("bfloat16", neighborhood)
    pair_tables = [
        layer.embeddings.path
        for layer in [
            *model.implicit_layers.values(),
            *model.neighborhood_layers.values(),
        ]
    ]
    assert len(pair_tables) == (4 if neighborhood else 2)
    for path in pair_tables:
        scale = np.abs(want[path]).max()
        # The gradient reaches the pair tables...
        assert scale > 1e-6, path
        # ...and equals float32's to bfloat16 rounding.
        np.testing.assert_allclose(
            got[path], want[path], atol=5 * TOLERANCE * scale, err_msg=path
        )


def test_fit_predict_save_and_load(tmp_path):
    x, ratings = model_inputs()
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES},
        hidden_units=[8],
        bias_terms=True,
        implicit=True,
        neighborhood=True,
        pair_dtype="bfloat16",
    )
    model.adapt(x, ratings)
    model.compile(
        optimizer=keras_catembed.optimizers.SparseAdam(0.02), loss="mse"
    )
    history = model.fit(x, ratings, batch_size=64, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    prediction = _np(model.predict(x, verbose=0))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.pair_dtype == "bfloat16"
    assert loaded.get_config()["pair_dtype"] == "bfloat16"
    for layer_ in loaded.implicit_layers.values():
        assert layer_.pair_weights.dtype == "bfloat16"
        np.testing.assert_array_equal(
            _np(layer_.pair_weights_t), _np(layer_.pair_weights).T
        )
    np.testing.assert_allclose(
        _np(loaded.predict(x, verbose=0)), prediction, atol=1e-6
    )


def test_float32_configs_are_unchanged():
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES}, implicit=True
    )
    assert model.pair_dtype == "float32"
    assert "pair_dtype" not in model.get_config()
    layer_ = model.implicit_layers["user_id"]
    layer_.build()
    assert not hasattr(layer_, "pair_weights_t")
    assert layer_.pair_weights.dtype == "float32"


def test_column_encoder_and_layer_configs_round_trip():
    movies = keras_catembed.ColumnEncoder(SOURCES, column="movie_id")
    users = keras_catembed.ColumnEncoder(
        TARGETS, column="user_id", implicit=movies, pair_dtype="bfloat16"
    )
    again = keras_catembed.ColumnEncoder.from_config(users.get_config())
    assert again.pair_dtype == "bfloat16"
    assert again.implicit_layer.pair_dtype == "bfloat16"
    copy = ImplicitFeedback.from_config(users.implicit_layer.get_config())
    assert copy.pair_dtype == "bfloat16"


def test_a_preset_can_set_the_pair_dtype():
    config = presets.load("recommended")
    config["model"]["pair_dtype"] = "bfloat16"
    model = presets.build_model(config, {"user_id": 50, "movie_id": 40})
    assert model.pair_dtype == "bfloat16"
    assert model.implicit_layers["movie_id"].pair_dtype == "bfloat16"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"implicit": True, "pair_dtype": "float16"},
            "`pair_dtype` expects None, 'float32', 'bfloat16' or 'auto'. "
            "Received: pair_dtype='float16'",
        ),
        (
            {"implicit": True, "pair_dtype": "bfloat16", "max_pairs_per_id": 4},
            "pair_dtype='bfloat16'.*lists layout",
        ),
        (
            {"pair_dtype": "bfloat16"},
            "this model has neither",
        ),
    ],
)
def test_bad_pair_dtype_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_catembed.RatingModel(
            {"user_id": TARGETS, "movie_id": SOURCES}, **kwargs
        )


def test_an_encoder_without_sources_refuses_narrow_pairs():
    # As a model without pairs does; a model's own encoders keep its dtype.
    with pytest.raises(ValueError, match="this encoder has neither"):
        keras_catembed.ColumnEncoder(
            SOURCES, column="movie_id", pair_dtype="bfloat16"
        )
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES},
        implicit={"user_id": "movie_id"},
        pair_dtype="bfloat16",
    )
    assert {c: e.pair_dtype for c, e in model.encoders.items()} == {
        "user_id": "bfloat16",
        "movie_id": "bfloat16",
    }


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"dense": False}, "(dense=False)"),
        ({"max_pairs_per_id": 4}, "(max_pairs_per_id=4)"),
        ({"pairs_per_step": 8}, "(pairs_per_step=8)"),
        (
            {"num_targets": 10_000, "num_sources": 8_000},
            "(10,000 x 8,000 = 80,000,000 target-source pairs, more than "
            "the dense matrix's 67,108,864)",
        ),
    ],
)
def test_narrow_pairs_refusal_names_what_picked_the_lists_layout(
    kwargs, reason
):
    sizes = {"num_targets": TARGETS, "num_sources": SOURCES}
    sizes.update({k: kwargs.pop(k) for k in list(kwargs) if k in sizes})
    with pytest.raises(ValueError) as info:
        ImplicitFeedback(
            sizes["num_targets"],
            sizes["num_sources"],
            DIM,
            pair_dtype="bfloat16",
            name="users_implicit",
            **kwargs,
        )
    message = str(info.value)
    assert message.startswith("users_implicit: `pair_dtype='bfloat16'`")
    assert reason in message
    # The same settings in float32 build the lists layout.
    float32 = ImplicitFeedback(
        sizes["num_targets"], sizes["num_sources"], DIM, **kwargs
    )
    assert not float32.dense and not float32.narrow_pairs
    # "auto" builds the same lists layout, in float32, and refuses nothing.
    auto = ImplicitFeedback(
        sizes["num_targets"],
        sizes["num_sources"],
        DIM,
        pair_dtype="auto",
        **kwargs,
    )
    assert not auto.dense and auto.pair_dtype == "float32"


@pytest.fixture
def native(monkeypatch):
    """Sets whether this machine multiplies bfloat16 natively."""

    def set_native(value):
        monkeypatch.setattr(_pair_dtype, "native_bfloat16", lambda: value)

    return set_native


@pytest.mark.parametrize("is_native", [True, False])
def test_auto_picks_bfloat16_where_it_is_native(native, is_native):
    native(is_native)
    expected = "bfloat16" if is_native else "float32"
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES},
        implicit=True,
        neighborhood=True,
        pair_dtype="auto",
    )
    assert model.pair_dtype == expected
    layers = [*model.implicit_layers.values()]
    layers += model.neighborhood_layers.values()
    assert len(layers) == 4
    assert all(layer_.pair_dtype == expected for layer_ in layers)
    movies = keras_catembed.ColumnEncoder(SOURCES, column="movie_id")
    users = keras_catembed.ColumnEncoder(
        TARGETS, column="user_id", implicit=movies, pair_dtype="auto"
    )
    assert users.pair_dtype == users.implicit_layer.pair_dtype == expected
    assert layer(False, pair_dtype="auto").pair_dtype == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"implicit": True, "max_pairs_per_id": 4},
        # One side windowed: the whole model keeps float32, so that its
        # saved config rebuilds every layer as it was.
        {"implicit": True, "pairs_per_step": {"user_id": 8}},
        {},
    ],
)
def test_auto_keeps_float32_where_a_layer_is_not_dense(native, kwargs):
    native(True)
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES}, pair_dtype="auto", **kwargs
    )
    assert model.pair_dtype == "float32"
    for layer_ in model.implicit_layers.values():
        assert layer_.pair_dtype == "float32"
    assert "pair_dtype" not in model.get_config()


def test_a_model_keeps_the_dtype_auto_picked_when_loaded(native, tmp_path):
    native(True)
    x, ratings = model_inputs()
    model = keras_catembed.RatingModel(
        {"user_id": TARGETS, "movie_id": SOURCES},
        implicit=True,
        pair_dtype="auto",
    )
    model.adapt(x, ratings)
    prediction = _np(model.predict(x, verbose=0))
    path = str(tmp_path / "model.keras")
    model.save(path)
    # Loaded where bfloat16 is not native, it keeps its bfloat16 pairs:
    # the weights it was saved with.
    native(False)
    loaded = keras.saving.load_model(path)
    assert loaded.pair_dtype == "bfloat16"
    assert loaded.implicit_layers["user_id"].pair_dtype == "bfloat16"
    np.testing.assert_allclose(
        _np(loaded.predict(x, verbose=0)), prediction, atol=1e-6
    )


@pytest.mark.parametrize(
    "flags, accelerator, expected",
    [
        ({"avx2", "amx_bf16", "amx_tile"}, False, True),
        ({"avx2", "avx512f", "avx512_bf16"}, False, True),
        ({"avx2", "avx512f"}, False, False),
        (set(), False, False),
        ({"amx_bf16"}, True, False),
    ],
)
def test_native_bfloat16_reads_the_cpu_flags(
    monkeypatch, flags, accelerator, expected
):
    from keras_catembed import backend

    monkeypatch.setattr(_pair_dtype, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(
        backend.current, "on_accelerator", lambda tensor: accelerator
    )
    assert _pair_dtype.native_bfloat16() is expected


def test_cpu_flags_are_those_linux_lists(tmp_path, monkeypatch):
    import builtins

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: spectre\n"
        "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n"
    )
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            return real_open(cpuinfo, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    _pair_dtype.cpu_flags.cache_clear()
    monkeypatch.setattr(builtins, "open", fake_open)
    try:
        assert _pair_dtype.cpu_flags() == {"fpu", "avx2", "amx_bf16"}
        _pair_dtype.cpu_flags.cache_clear()
        cpuinfo.unlink()
        # No such file (not Linux): no flags, so float32.
        assert _pair_dtype.cpu_flags() == frozenset()
    finally:
        _pair_dtype.cpu_flags.cache_clear()
