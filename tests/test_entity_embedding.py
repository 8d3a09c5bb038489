import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

import keras_catembed
from keras_catembed.entity_embedding import auto_output_dim
from tests import strategies
from tests.layer_checks import run_layer_checks

BACKEND = keras.backend.backend()


def _table(layer):
    return ops.convert_to_numpy(layer.embeddings)


def _np(x):
    return ops.convert_to_numpy(x)


# Harness -------------------------------------------------------------------


def test_layer_checks_input_dim():
    run_layer_checks(
        keras_catembed.EntityEmbedding,
        {"input_dim": 10, "output_dim": 3},
        np.array([[1, 2], [9, 0], [3, 3]], dtype="int32"),
        expected_output_shape=(3, 2, 3),
        expected_num_trainable_weights=1,
    )


def test_layer_checks_vocabulary_with_oov_and_dropout():
    run_layer_checks(
        keras_catembed.EntityEmbedding,
        {
            "vocabulary": [100, -5, 42, 7],
            "output_dim": 4,
            "num_oov_indices": 2,
            "dropout": 0.25,
            "embeddings_regularizer": "l2",
        },
        np.array([100, 42, 8, -5, 999], dtype="int32"),
        expected_output_shape=(5, 4),
        expected_num_trainable_weights=1,
    )


# Sizes and config -----------------------------------------------------------


@pytest.mark.parametrize(
    "num_rows, expected",
    [(1, 2), (2, 2), (10, 6), (100, 21), (943, 74), (1682, 102), (10**7, 600)],
)
def test_auto_output_dim_follows_fastai_rule(num_rows, expected):
    assert auto_output_dim(num_rows) == expected
    assert auto_output_dim(num_rows) == min(600, round(1.6 * num_rows**0.56))


def test_auto_output_dim_counts_oov_rows():
    layer = keras_catembed.EntityEmbedding(100, num_oov_indices=10)
    assert layer.num_rows == 110
    assert layer.output_dim == auto_output_dim(110)


def test_config_stores_resolved_output_dim():
    layer = keras_catembed.EntityEmbedding(vocabulary=[3, 1, 2])
    config = layer.get_config()
    assert config["output_dim"] == auto_output_dim(3)
    assert config["vocabulary"] == [3, 1, 2]
    assert config["input_dim"] is None


def test_initializer_objects_round_trip():
    layer = keras_catembed.EntityEmbedding(
        5,
        2,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.3),
        embeddings_constraint=keras.constraints.NonNeg(),
    )
    revived = keras_catembed.EntityEmbedding.from_config(layer.get_config())
    assert isinstance(
        revived.embeddings_initializer, keras.initializers.RandomNormal
    )
    assert revived.embeddings_initializer.stddev == 0.3
    assert isinstance(revived.embeddings_constraint, keras.constraints.NonNeg)


# Values ---------------------------------------------------------------------


def test_output_rows_match_table():
    layer = keras_catembed.EntityEmbedding(6, 3)
    ids = np.array([[5, 0], [2, 2]])
    out = _np(layer(ids))
    np.testing.assert_array_equal(out, _table(layer)[ids])


def _vocabulary_model(vocabulary):
    model = keras_catembed.RatingModel(
        {
            "user_id": 4,
            "movie_id": keras_catembed.EntityEmbedding(
                vocabulary=vocabulary, output_dim=4
            ),
        },
        hidden_units=[4],
        bias_terms=True,
    )
    model.build()
    return model


def test_weights_load_only_into_the_vocabulary_they_were_trained_for(
    tmp_path,
):
    trained = _vocabulary_model([10, 20, 30])
    path = str(tmp_path / "model.weights.h5")
    trained.save_weights(path)
    twin = _vocabulary_model([10, 20, 30])
    twin.load_weights(path)
    for left, right in zip(
        twin.get_weights(), trained.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(left, right)
    for other, found in [
        ([30, 20, 10], r"whose row 0 is the id 10, where this layer's is 30"),
        ([10, 20], r"and this layer's has 2"),
        (None, r"and this layer has none"),
    ]:
        if other is None:
            reordered = keras_catembed.RatingModel(
                {"user_id": 4, "movie_id": 3}, hidden_units=[4], bias_terms=True
            )
            reordered.build()
        else:
            reordered = _vocabulary_model(other)
        with pytest.raises(
            ValueError,
            match=r"Column 'movie_id' \(EntityEmbedding .*\) cannot load "
            r"these weights: they were saved with a vocabulary of 3 ids, "
            + found,
        ):
            reordered.load_weights(path)


def test_weights_saved_without_a_vocabulary_record_load(tmp_path):
    # Files of earlier versions hold the variables only.
    import h5py

    trained = _vocabulary_model([10, 20, 30])
    path = str(tmp_path / "model.weights.h5")
    trained.save_weights(path)
    removed = []
    with h5py.File(path, "r+") as file:

        def drop(name, item):
            if name.endswith("/vars/vocabulary"):
                removed.append(name)

        file.visititems(drop)
        for name in removed:
            del file[name]
    # The table and the bias table each recorded it.
    assert len(removed) == 2
    twin = _vocabulary_model([30, 20, 10])
    twin.load_weights(path)
    for left, right in zip(
        twin.get_weights(), trained.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(left, right)


def test_vocabulary_maps_raw_ids_to_rows_in_order():
    layer = keras_catembed.EntityEmbedding(
        vocabulary=[30, 10, 20], output_dim=2
    )
    out = _np(layer(np.array([10, 20, 30])))
    np.testing.assert_array_equal(out, _table(layer)[[1, 2, 0]])


def test_whole_number_floats_are_accepted():
    layer = keras_catembed.EntityEmbedding(5, 2)
    np.testing.assert_array_equal(
        _np(layer(np.array([3.0, 1.0], dtype="float32"))),
        _np(layer(np.array([3, 1]))),
    )


def test_oov_rows_are_deterministic():
    layer = keras_catembed.EntityEmbedding(4, 2, num_oov_indices=3)
    out = _np(layer(np.array([7, -1, 4, 10**6])))
    table = _table(layer)
    # Unknown ids go to row 4 + (id mod 3).
    np.testing.assert_array_equal(out, table[[4 + 1, 4 + 2, 4 + 1, 4 + 1]])


def test_oov_rows_with_vocabulary():
    layer = keras_catembed.EntityEmbedding(
        vocabulary=[5, 9], output_dim=2, num_oov_indices=2
    )
    out = _np(layer(np.array([9, 6, 5, 3])))
    table = _table(layer)
    np.testing.assert_array_equal(out, table[[1, 2, 0, 3]])


def test_entity_dropout_drops_whole_vectors_in_training_only():
    layer = keras_catembed.EntityEmbedding(
        3, 16, dropout=0.5, embeddings_initializer="ones"
    )
    ids = np.zeros((400,), dtype="int32")
    out = _np(layer(ids, training=True))
    row_values = np.unique(out, axis=1)
    assert row_values.shape[1] == 1  # Each vector is all 0 or all 2.
    assert set(np.unique(out).tolist()) == {0.0, 2.0}
    dropped = np.mean(out[:, 0] == 0.0)
    assert 0.35 < dropped < 0.65
    np.testing.assert_array_equal(_np(layer(ids)), np.ones((400, 16)))


def test_works_inside_compiled_functional_model():
    layer = keras_catembed.EntityEmbedding(vocabulary=[7, 8, 9], output_dim=2)
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    ids = np.array([[9, 8, 7]])
    np.testing.assert_array_equal(
        model.predict(ids, verbose=0), _table(layer)[[[2, 1, 0]]]
    )


def test_vocabulary_id_beyond_table_size_with_oov_in_compiled_predict():
    layer = keras_catembed.EntityEmbedding(
        vocabulary=[7, 8], output_dim=2, num_oov_indices=1
    )
    inputs = keras.Input((2,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    out = model.predict(np.array([[8, 123456]]), verbose=0)
    np.testing.assert_array_equal(out, _table(layer)[[[1, 2]]])


# Properties -----------------------------------------------------------------


@given(strategies.entity_embedding_cases())
def test_property_shape_and_values_match_numpy(case):
    init_kwargs, ids = case
    layer = keras_catembed.EntityEmbedding(**init_kwargs)
    out = _np(layer(ids))
    assert out.shape == layer.compute_output_shape(ids.shape)
    assert out.shape == (*ids.shape, layer.output_dim)
    vocabulary = init_kwargs.get("vocabulary")
    if vocabulary is None:
        rows = ids
    else:
        position = {v: i for i, v in enumerate(vocabulary)}
        rows = np.vectorize(position.__getitem__)(ids)
    np.testing.assert_array_equal(out, _table(layer)[rows])


@given(strategies.entity_embedding_cases(max_rank=2), st.data())
def test_property_equal_ids_give_equal_vectors(case, data):
    init_kwargs, ids = case
    layer = keras_catembed.EntityEmbedding(**init_kwargs)
    flat = ids.reshape(-1)
    out = _np(layer(flat))
    i = data.draw(st.integers(0, len(flat) - 1))
    same = flat == flat[i]
    np.testing.assert_array_equal(
        out[same], np.broadcast_to(out[i], out[same].shape)
    )


@given(strategies.entity_embedding_kwargs(), st.data())
def test_property_unknown_ids_error_or_land_in_oov_rows(init_kwargs, data):
    layer = keras_catembed.EntityEmbedding(**init_kwargs)
    ids = data.draw(strategies.unknown_ids(init_kwargs, (3,)))
    k = init_kwargs["num_oov_indices"]
    if k == 0:
        with pytest.raises(ValueError, match="unknown id"):
            layer(ids)
    else:
        out = _np(layer(ids))
        num_ids = layer.num_ids
        expected_rows = num_ids + np.mod(ids.astype(np.int64), k)
        np.testing.assert_array_equal(out, _table(layer)[expected_rows])


@given(strategies.entity_embedding_cases(max_rank=2, allow_oov=False))
def test_property_symbolic_shape_matches_compute_output_shape(case):
    init_kwargs, ids = case
    layer = keras_catembed.EntityEmbedding(**init_kwargs)
    symbolic = keras.KerasTensor((None, *ids.shape[1:]), dtype="int32")
    out = layer(symbolic)
    assert out.shape == layer.compute_output_shape(symbolic.shape)


# Bad arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of `input_dim` and `vocabulary`"),
        ({"input_dim": 3, "vocabulary": [1]}, "exactly one"),
        ({"input_dim": 0}, r"`input_dim` must be a positive integer.*0"),
        ({"input_dim": 2.5}, "input_dim=2.5"),
        ({"input_dim": True}, "input_dim=True"),
        ({"input_dim": 3, "output_dim": 0}, "output_dim=0"),
        ({"input_dim": 3, "output_dim": "big"}, "output_dim='big'"),
        ({"input_dim": 3, "num_oov_indices": -1}, "num_oov_indices=-1"),
        ({"input_dim": 3, "dropout": 1.0}, r"`dropout` must be .*1.0"),
        ({"vocabulary": []}, "must not be empty"),
        ({"vocabulary": [1, 2, 1]}, "repeat an id.*1 2 times"),
        # The count of the id named, not the largest count.
        ({"vocabulary": [1, 1, 2, 2, 2]}, r"repeat an id.*the id 1 2 times"),
        ({"vocabulary": ["a", "b"]}, "integers only.*'a'"),
        ({"vocabulary": [2**40]}, "fit in int32"),
        ({"vocabulary": "abc"}, "sequence of distinct integers"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_catembed.EntityEmbedding(**kwargs)


# Bad ids, eager -------------------------------------------------------------


@pytest.mark.parametrize(
    "ids, match",
    [
        (np.array([0, 5]), r"unknown id 5 at position 1.*\[0, 4\]"),
        (np.array([[0], [-1]]), r"unknown id -1 at position \(1, 0\)"),
        (np.array([3.7], dtype="float32"), "non-integer id 3.7"),
        (np.array([np.nan], dtype="float32"), "non-integer id nan"),
        (np.array([True, False]), "dtype bool"),
    ],
)
def test_eager_bad_ids_raise_value_error(ids, match):
    layer = keras_catembed.EntityEmbedding(5, 2, name="store")
    with pytest.raises(ValueError, match=match) as info:
        layer(ids)
    assert "EntityEmbedding 'store'" in str(info.value)


def test_eager_unknown_vocabulary_id_raises():
    layer = keras_catembed.EntityEmbedding(vocabulary=[10, 20, 30])
    with pytest.raises(ValueError, match=r"unknown id 25.*\[10, 20, 30\]"):
        layer(np.array([10, 25]))


def test_fractional_ids_raise_even_with_oov_rows():
    layer = keras_catembed.EntityEmbedding(5, 2, num_oov_indices=1)
    with pytest.raises(ValueError, match="non-integer id 0.5"):
        layer(np.array([0.5]))


@pytest.mark.parametrize(
    "dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"]
)
def test_check_ids_of_every_integer_dtype(dtype):
    # Integer arrays are first checked by their smallest and largest ids;
    # a bad id anywhere still gets the full message, with its position.
    layer = keras_catembed.EntityEmbedding(100, name="store")
    layer.check_ids(np.arange(100, dtype=dtype))
    layer.check_ids(np.zeros((0,), dtype=dtype))
    with pytest.raises(ValueError, match=r"unknown id 100 at position 99"):
        layer.check_ids(np.arange(1, 101, dtype=dtype))
    if np.dtype(dtype).kind == "i":
        with pytest.raises(ValueError, match=r"unknown id -1 at position 0"):
            layer.check_ids(np.arange(-1, 99, dtype=dtype))


@pytest.mark.parametrize(
    "ids, bad",
    [
        (np.array([0, 2**31], dtype="int64"), 2**31),
        (np.array([0, -(2**31) - 1], dtype="int64"), -(2**31) - 1),
        (np.array([1, 2**31], dtype="uint32"), 2**31),
        (np.array([1, 2**64 - 1], dtype="uint64"), 2**64 - 1),
    ],
)
def test_check_ids_with_oov_rows_rejects_ids_beyond_int32(ids, bad):
    layer = keras_catembed.EntityEmbedding(5, num_oov_indices=1)
    layer.check_ids(np.array([-(2**31), 2**31 - 1], dtype="int64"))
    with pytest.raises(ValueError, match=f"unknown id {bad} at position 1"):
        layer.check_ids(ids)


def test_check_ids_reports_count_of_unknown_ids():
    layer = keras_catembed.EntityEmbedding(3)
    with pytest.raises(ValueError, match="3 unknown ids"):
        layer.check_ids([0, 3, 4, -2])


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="only TensorFlow tensors hold strings"
)
def test_string_tensor_ids_raise_on_tensorflow():
    import tensorflow as tf

    layer = keras_catembed.EntityEmbedding(5)
    with pytest.raises(ValueError, match="dtype string"):
        layer(tf.constant(["1", "2"]))


@pytest.mark.parametrize("ids", [np.array(["1", "2"]), ["a", "b"]])
def test_string_ids_name_the_layer_on_every_backend(ids):
    # Checked before Keras converts them, which JAX and torch cannot do.
    layer = keras_catembed.EntityEmbedding(5, name="genre")
    with pytest.raises(
        ValueError,
        match=r"EntityEmbedding 'genre' received ids of dtype <U1\. "
        "Expected integer ids",
    ):
        layer(ids)


def test_string_ids_rejected_by_check_ids():
    layer = keras_catembed.EntityEmbedding(5)
    with pytest.raises(ValueError, match="dtype <U1"):
        layer.check_ids(np.array(["1", "2"]))


# Bad ids inside a compiled graph ------------------------------------------

GRAPH_ERRORS = {
    # TensorFlow: an assertion op (the layer opts out of XLA).
    "tensorflow": "InvalidArgumentError",
    # JAX: a host callback raises; JAX re-raises it as a runtime error.
    "jax": "JaxRuntimeError",
    # torch runs eagerly: the plain ValueError.
    "torch": "ValueError",
}


def _functional(layer, width=1):
    inputs = keras.Input((width,), dtype="int32")
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(layer(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("method", ["fit", "predict"])
def test_unknown_id_in_compiled_graph_fails_loudly(method):
    layer = keras_catembed.EntityEmbedding(5, 2, name="zip_code")
    model = _functional(layer)
    ids = np.array([[1], [2], [7], [0]])
    with pytest.raises(Exception, match="unknown id") as info:
        if method == "fit":
            model.fit(ids, np.zeros(4), verbose=0)
        else:
            model.predict(ids, verbose=0)
    assert type(info.value).__name__ == GRAPH_ERRORS[BACKEND]
    assert "zip_code" in str(info.value)
    assert "[0, 4]" in str(info.value)


def test_unknown_vocabulary_id_in_compiled_graph_fails_loudly():
    layer = keras_catembed.EntityEmbedding(vocabulary=[3, 6, 9], output_dim=2)
    model = _functional(layer)
    with pytest.raises(Exception, match="unknown id") as info:
        model.predict(np.array([[3], [4]]), verbose=0)
    assert type(info.value).__name__ == GRAPH_ERRORS[BACKEND]


def test_layer_opts_out_of_compilers_that_drop_checks():
    # XLA drops TensorFlow assertions; torch.compile skips the eager check.
    for kwargs in ({}, {"num_oov_indices": 1}):
        layer = keras_catembed.EntityEmbedding(5, **kwargs)
        assert layer.supports_jit == (BACKEND == "jax")


def test_fractional_float_id_in_compiled_graph_is_named():
    layer = keras_catembed.EntityEmbedding(
        vocabulary=[10, 20, 30], output_dim=2, num_oov_indices=1
    )
    inputs = keras.Input((1,), dtype="float32")
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(Exception, match="non-integer id") as info:
        model.predict(np.array([[10.0], [20.5]], dtype="float32"), verbose=0)
    assert type(info.value).__name__ == GRAPH_ERRORS[BACKEND]
    if BACKEND != "tensorflow":  # TF prints the value as assert data.
        assert "20.5" in str(info.value)


def test_docstring_args_match_signature():
    import inspect
    import re

    for cls in (keras_catembed.EntityEmbedding, keras_catembed.RatingModel):
        doc = inspect.getdoc(cls)
        args_block = doc.split("Args:")[1].split("Call arguments:")[0]
        documented = re.findall(r"^    (\*\*\w+|\w+):", args_block, re.M)
        parameters = [
            ("**" + p.name) if p.kind == p.VAR_KEYWORD else p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self"
        ]
        assert documented == parameters, cls.__name__
