"""keras_catembed.testing: strategies for users' own property tests."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings

import keras_catembed
from keras_catembed import testing
from tests.custom_models import DotRatingModel


@given(testing.rating_model_cases(columns=["user_id", "movie_id"]))
def test_cases_use_the_given_column_names(case):
    init_kwargs, inputs = case
    assert list(init_kwargs["embeddings"]) == ["user_id", "movie_id"]
    assert list(inputs) == ["user_id", "movie_id"]
    for column, n in init_kwargs["embeddings"].items():
        assert 1 <= n <= 50
        assert inputs[column].min() >= 0 and inputs[column].max() < n


@given(testing.rating_model_cases(columns={"user_id": 3, "movie_id": 700}))
def test_cases_keep_given_cardinalities(case):
    init_kwargs, inputs = case
    assert init_kwargs["embeddings"] == {"user_id": 3, "movie_id": 700}
    assert inputs["user_id"].max() < 3 and inputs["movie_id"].max() < 700


@settings(max_examples=5)
@given(testing.rating_model_cases(columns={"user_id": 6, "movie_id": 9}))
def test_a_two_column_subclass_can_be_property_tested(case):
    # The docs' own DotRatingModel needs vectors of one size.
    init_kwargs, inputs = case
    embeddings = {
        column: keras_catembed.EntityEmbedding(n, 4)
        for column, n in init_kwargs["embeddings"].items()
    }
    model = DotRatingModel(**dict(init_kwargs, embeddings=embeddings))
    outputs = keras.ops.convert_to_numpy(model(inputs))
    assert outputs.shape == (len(inputs["user_id"]), 1)
    assert np.all(np.isfinite(outputs))


@given(testing.rating_model_inputs({"a": 2, "b": 5}, max_batch=4))
def test_inputs_hold_valid_ids_of_one_shape(inputs):
    assert set(inputs) == {"a", "b"}
    assert inputs["a"].shape == inputs["b"].shape
    assert 1 <= inputs["a"].shape[0] <= 4
    assert inputs["a"].dtype == np.int32
    assert inputs["a"].max() < 2 and inputs["b"].max() < 5


@pytest.mark.parametrize("columns", [[], ["a", "a"]])
def test_bad_columns_are_rejected(columns):
    with pytest.raises(ValueError, match=r"`columns` must name"):
        testing.rating_model_cases(columns=columns).example()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"columns": "user_id"}, r"`columns` must be a list .* not one string"),
        ({"columns": {"u": 0, "m": 4}}, r"`columns\['u'\]` must be a positive"),
        ({"columns": {"u": 2.5}}, r"`columns\['u'\]` must be a positive"),
        ({"max_cardinality": 0}, r"`max_cardinality` must be a positive"),
        ({"max_batch": 0}, r"`max_batch` must be a positive"),
    ],
)
def test_bad_case_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        testing.rating_model_cases(**kwargs).example()


def test_any_mapping_fixes_the_cardinalities():
    from types import MappingProxyType

    columns = MappingProxyType({"u": 3, "m": 4})
    init_kwargs, _ = testing.rating_model_cases(columns=columns).example()
    assert init_kwargs["embeddings"] == {"u": 3, "m": 4}


def test_bad_embedding_arguments_are_named():
    with pytest.raises(ValueError, match=r"`max_ids` must be a positive"):
        testing.entity_embedding_kwargs(max_ids=0).example()
