"""recommend's fast paths score exactly as the model does."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import _recommend

USERS, MOVIES, AGES = 7, 11, 3


@keras.saving.register_keras_serializable(package="keras_catembed_tests")
class ProductModel(keras_catembed.RatingModel):
    """Overrides `interact` only: the grid path still applies."""

    def interact(self, embedded):
        user, movie = embedded["user_id"], embedded["movie_id"]
        cross = ops.sum(user, axis=-1, keepdims=True) * ops.sum(
            movie, axis=-1, keepdims=True
        )
        return ops.concatenate([user, movie, cross], axis=-1)


@keras.saving.register_keras_serializable(package="keras_catembed_tests")
class ShiftedEmbedModel(keras_catembed.RatingModel):
    """Overrides `embed`: every pair is scored through the model."""

    def embed(self, inputs, training=None):
        embedded = super().embed(inputs, training=training)
        shift = ops.cast(ops.expand_dims(inputs["movie_id"], -1), "float32")
        embedded["user_id"] = embedded["user_id"] + 0.01 * shift
        return embedded


def ratings_data(seed=0, size=40):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS, size),
        "movie_id": rng.integers(0, MOVIES, size),
        "age": rng.integers(0, AGES, size),
    }
    return x, rng.integers(1, 6, size).astype("float32")


def build(kind, **kwargs):
    columns = {"user_id": USERS, "movie_id": MOVIES}
    if kind == "extra":
        columns["age"] = AGES
    cls = {
        "product": ProductModel,
        "shifted": ShiftedEmbedModel,
        "dot": keras_catembed.DotRatingModel,
    }.get(kind, keras_catembed.RatingModel)
    if kind == "dot":
        kwargs.setdefault("embedding_dim", 4)
    else:
        kwargs.setdefault("hidden_units", [8])
    keras.utils.set_random_seed(1)
    model = cls(columns, **kwargs)
    model.build()
    # Visible biases and output weights, not the zeros they start at.
    for weight in model.weights:
        if weight.trainable:
            rng = np.random.default_rng(len(weight.path))
            weight.assign(rng.normal(0, 0.3, weight.shape))
    if kwargs.get("implicit") or kwargs.get("neighborhood"):
        x, y = ratings_data()
        model.adapt({c: x[c] for c in model.columns}, y)
    return model


def grid_predictions(model, users, extra=None):
    x = {
        "user_id": np.repeat(users, MOVIES),
        "movie_id": np.tile(np.arange(MOVIES), len(users)),
    }
    for column, values in (extra or {}).items():
        x[column] = np.repeat(values, MOVIES)
    return model.predict(x, verbose=0).reshape(len(users), MOVIES)


CASES = {
    "plain": ("plain", {}),
    "bias_terms": ("plain", {"bias_terms": True}),
    "implicit": ("plain", {"implicit": True}),
    "neighborhood": ("plain", {"neighborhood": True}),
    "neighborhood_lists": (
        "plain",
        {"neighborhood": True, "max_pairs_per_id": 3},
    ),
    # The grid's sums are the model's bfloat16 product, not a float32 one.
    "pairs_bfloat16": (
        "plain",
        {"implicit": True, "neighborhood": True, "pair_dtype": "bfloat16"},
    ),
    "rating_range": ("plain", {"rating_range": (0.5, 5.5)}),
    "extra_columns": (
        "extra",
        {"bias_terms": True, "implicit": {"user_id": "movie_id"}},
    ),
    "interact_override": ("product", {"bias_terms": True}),
    "embed_override": ("shifted", {}),
    "dot": ("dot", {"bias_terms": True, "rating_range": (0.5, 5.5)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recommend_scores_equal_predict(case):
    kind, kwargs = CASES[case]
    model = build(kind, **kwargs)
    users = np.array([0, 3, 3, 6, 2])
    extra = {"age": np.array([1, 0, 2, 2, 0])} if kind == "extra" else None
    given = {"user_id": users, **(extra or {})}
    columns = {}
    if kind == "extra":
        columns = {"user_id": users, "movie_id": None}
        columns = {"user_column": "user_id", "item_column": "movie_id"}
    expected = grid_predictions(model, users, extra)
    items, scores = model.recommend(given, k=MOVIES, **columns)
    assert items.shape == (len(users), MOVIES)
    np.testing.assert_allclose(
        np.take_along_axis(expected, items, axis=1),
        scores,
        rtol=1e-5,
        atol=1e-6,
    )
    # Best first, and the best really is the best.
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    np.testing.assert_allclose(scores[:, 0], expected.max(axis=1), rtol=1e-5)


@pytest.mark.parametrize(
    "case, path",
    [
        ("plain", "grid"),
        ("neighborhood", "grid"),
        ("extra_columns", "grid"),
        ("interact_override", "grid"),
        ("embed_override", "predict"),
        ("dot", "retrieval"),
    ],
)
def test_the_fastest_proven_path_is_chosen(case, path):
    kind, kwargs = CASES[case]
    model = build(kind, **kwargs)
    assert _recommend.scorer_kind(model) is _recommend.scorer_kind(model, path)


def test_a_path_that_does_not_apply_is_refused():
    model = build("shifted")
    with pytest.raises(ValueError, match=r"`path` must be one of \['predict'"):
        _recommend.recommend(model, [0], k=2, path="grid")


def test_retrieval_returns_the_grid_items_and_scores():
    model = build("dot", bias_terms=True, rating_range=(1.0, 5.0))
    users = np.arange(USERS)
    rated = {
        "user_id": np.array([0, 0, 0, 2, 5, 5]),
        "movie_id": np.array([1, 4, 9, 0, 10, 3]),
    }
    got = {
        path: _recommend.recommend(model, users, k=6, exclude=rated, path=path)
        for path in ("retrieval", "grid", "predict")
    }
    for path in ("grid", "predict"):
        np.testing.assert_array_equal(got["retrieval"][0], got[path][0])
        np.testing.assert_allclose(
            got["retrieval"][1], got[path][1], rtol=1e-5, atol=1e-6
        )
    assert not {1, 4, 9} & set(got["retrieval"][0][0].tolist())


def test_retrieval_pads_like_the_grid_when_few_items_remain():
    model = build("dot")
    rated = {
        "user_id": np.zeros(MOVIES - 2, "int32"),
        "movie_id": np.arange(2, MOVIES),
    }
    items, scores = _recommend.recommend(
        model, [0], k=4, exclude=rated, path="retrieval"
    )
    assert set(items[0, :2].tolist()) == {0, 1}
    np.testing.assert_array_equal(items[0, 2:], [-1, -1])
    assert np.all(np.isnan(scores[0, 2:])) and np.all(
        np.isfinite(scores[0, :2])
    )


def test_dot_model_needs_one_vector_width():
    with pytest.raises(ValueError, match="one width.*embedding_dim"):
        keras_catembed.DotRatingModel({"user_id": 7, "movie_id": 500})


def test_dot_model_saves_and_loads(tmp_path):
    model = build("dot", bias_terms=True)
    # A model that has recommended (and keeps its compiled scorers)
    # saves as before.
    expected = model.recommend([1, 2], k=3)
    path = str(tmp_path / "dot.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is keras_catembed.DotRatingModel
    got = loaded.recommend([1, 2], k=3)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_recommend_follows_the_weights_after_a_change():
    model = build("plain", implicit=True, bias_terms=True)
    users = np.array([0, 4])
    model.recommend(users, k=3)  # Builds and keeps the compiled scorers.
    for weight in model.trainable_weights:
        weight.assign(weight + 0.25)
    items, scores = model.recommend(users, k=MOVIES)
    expected = grid_predictions(model, users)
    np.testing.assert_allclose(
        np.take_along_axis(expected, items, axis=1),
        scores,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("term", ["implicit", "neighborhood"])
def test_raw_id_vocabularies_with_pair_terms(term):
    # Ids given as raw values (a vocabulary) reach the implicit and
    # neighbourhood tables through the grid's compiled embedding model.
    user_ids = np.arange(USERS) + 100
    movie_ids = np.arange(MOVIES) + 5000
    keras.utils.set_random_seed(2)
    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(
                vocabulary=user_ids.tolist(), output_dim=4
            ),
            "movie_id": keras_catembed.EntityEmbedding(
                vocabulary=movie_ids.tolist(), output_dim=4
            ),
        },
        hidden_units=[8],
        **{term: True},
    )
    x, y = ratings_data()
    raw = {
        "user_id": user_ids[x["user_id"]],
        "movie_id": movie_ids[x["movie_id"]],
    }
    model.adapt(raw, y)
    model.compile(optimizer="adam", loss="mse")
    model.fit(raw, y, epochs=2, batch_size=8, verbose=0)
    users = user_ids[[0, 3, 6]]
    grid = {
        "user_id": np.repeat(users, MOVIES),
        "movie_id": np.tile(movie_ids, len(users)),
    }
    expected = model.predict(grid, verbose=0).reshape(len(users), MOVIES)
    items, scores = model.recommend(users, k=MOVIES, exclude=None)
    assert np.all(np.isin(items, movie_ids))
    np.testing.assert_allclose(
        np.take_along_axis(expected, items - 5000, axis=1),
        scores,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(scores[:, 0], expected.max(axis=1), rtol=1e-5)


class _Switch(keras.layers.Layer):
    """Identity; raises while `failing` is set (a failing compiled call)."""

    failing = False

    def call(self, x):
        if _Switch.failing:
            raise RuntimeError("the scoring call failed")
        return x


@keras.saving.register_keras_serializable(package="keras_catembed_tests")
class SwitchModel(keras_catembed.RatingModel):
    """`interact` passes through `_Switch`: the grid path still applies."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.switch = _Switch()

    def interact(self, embedded):
        return self.switch(super().interact(embedded))


def test_a_failed_recommend_leaves_the_model_usable():
    keras.utils.set_random_seed(1)
    model = SwitchModel(
        {"user_id": USERS, "movie_id": MOVIES}, hidden_units=[8]
    )
    model.compile(optimizer="adam", loss="mse")
    x, y = ratings_data()
    x = {c: x[c] for c in model.columns}
    model.fit(x, y, epochs=1, verbose=0)
    before = model.predict(x, verbose=0)
    first = model.recommend(np.array([0, 1]), k=3)
    # A call of new shapes compiles the scoring models again, and fails.
    _Switch.failing = True
    try:
        with pytest.raises(RuntimeError, match="the scoring call failed"):
            model.recommend(np.array([0, 1, 2]), k=3)
    finally:
        _Switch.failing = False
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    again = model.recommend(np.array([0, 1]), k=3)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_allclose(again[1], first[1], rtol=1e-6)
    model.fit(x, y, epochs=1, verbose=0)
