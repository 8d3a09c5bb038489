"""Hypothesis strategies for property-testing entity-embedding models.

These strategies draw small, valid configurations of
`keras_catembed.EntityEmbedding` and `keras_catembed.RatingModel` together
with matching inputs, so that users can property-test their own layers and
`RatingModel` subclasses the way this library tests itself. They need the
`test` extra (`pip install "keras-catembed[test]"`).

Example:

```python
from hypothesis import given

import keras_catembed
from keras_catembed import testing


@given(testing.entity_embedding_cases())
def test_output_shape(case):
    init_kwargs, ids = case
    layer = keras_catembed.EntityEmbedding(**init_kwargs)
    assert layer(ids).shape == layer.compute_output_shape(ids.shape)
```
"""

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_catembed.testing needs Hypothesis. Install it with: "
        'pip install "keras-catembed[test]"'
    ) from error

import numpy as np

__all__ = [
    "entity_embedding_cases",
    "entity_embedding_kwargs",
    "known_ids",
    "rating_model_cases",
    "unknown_ids",
]


@st.composite
def entity_embedding_kwargs(
    draw, *, max_ids=50, max_output_dim=8, allow_oov=True
):
    """Draws constructor arguments for `keras_catembed.EntityEmbedding`.

    Half of the draws use `input_dim`, the other half a `vocabulary` of
    distinct raw ids (negative and large ids included).

    Args:
        max_ids: Integer. Largest number of known ids. Defaults to `50`.
        max_output_dim: Integer. Largest `output_dim`. Defaults to `8`.
        allow_oov: Boolean. Whether `num_oov_indices` may be above 0.
            Defaults to `True`.

    Returns:
        A strategy of dicts of keyword arguments.
    """
    kwargs = {}
    if draw(st.booleans()):
        kwargs["input_dim"] = draw(st.integers(1, max_ids))
    else:
        kwargs["vocabulary"] = draw(
            st.lists(
                st.integers(-1000, 10**6),
                min_size=1,
                max_size=max_ids,
                unique=True,
            )
        )
    kwargs["output_dim"] = draw(
        st.one_of(st.integers(1, max_output_dim), st.just("auto"))
    )
    kwargs["num_oov_indices"] = draw(st.integers(0, 3)) if allow_oov else 0
    return kwargs


def _known(kwargs):
    if kwargs.get("vocabulary") is not None:
        return np.asarray(kwargs["vocabulary"], dtype=np.int64)
    return np.arange(kwargs["input_dim"], dtype=np.int64)


@st.composite
def known_ids(draw, init_kwargs, shape):
    """Draws an int32 array of ids the layer knows, of the given shape.

    Args:
        init_kwargs: Dict. `EntityEmbedding` constructor arguments.
        shape: Tuple of integers. Shape of the id array.

    Returns:
        A strategy of NumPy int32 arrays.
    """
    known = _known(init_kwargs)
    positions = draw(
        hnp.arrays(np.int64, shape, elements=st.integers(0, len(known) - 1))
    )
    return known[positions].astype(np.int32)


@st.composite
def unknown_ids(draw, init_kwargs, shape):
    """Draws an int32 array of ids the layer does not know.

    Args:
        init_kwargs: Dict. `EntityEmbedding` constructor arguments.
        shape: Tuple of integers. Shape of the id array (at least one
            element).

    Returns:
        A strategy of NumPy int32 arrays, none of whose ids is known.
    """
    known = set(_known(init_kwargs).tolist())
    element = st.integers(-(10**7), 10**7).filter(lambda v: v not in known)
    return draw(hnp.arrays(np.int64, shape, elements=element)).astype(np.int32)


@st.composite
def entity_embedding_cases(draw, *, max_rank=3, max_dim=5, allow_oov=True):
    """Draws `(init_kwargs, ids)` for `EntityEmbedding` with known ids.

    Args:
        max_rank: Integer. Largest rank of the id array. Defaults to `3`.
        max_dim: Integer. Largest size of each id-array dimension. Defaults
            to `5`.
        allow_oov: Boolean. Whether OOV rows may be configured. Defaults to
            `True`.

    Returns:
        A strategy of pairs (dict of keyword arguments, int32 id array).
    """
    init_kwargs = draw(entity_embedding_kwargs(allow_oov=allow_oov))
    shape = draw(
        hnp.array_shapes(min_dims=1, max_dims=max_rank, max_side=max_dim)
    )
    return init_kwargs, draw(known_ids(init_kwargs, shape))


@st.composite
def rating_model_cases(
    draw, *, max_columns=4, max_cardinality=50, max_batch=16
):
    """Draws `(init_kwargs, inputs)` for `keras_catembed.RatingModel`.

    The columns are named `c0`, `c1`, ... with cardinalities in
    `1..max_cardinality`; `inputs` is a dict of int32 arrays of shape
    `(batch,)` or `(batch, 1)` holding valid ids.

    Args:
        max_columns: Integer. Largest number of columns. Defaults to `4`.
        max_cardinality: Integer. Largest cardinality. Defaults to `50`.
        max_batch: Integer. Largest batch size. Defaults to `16`.

    Returns:
        A strategy of pairs (dict of keyword arguments, dict of arrays).
    """
    num_columns = draw(st.integers(1, max_columns))
    cardinalities = draw(
        st.lists(
            st.integers(1, max_cardinality),
            min_size=num_columns,
            max_size=num_columns,
        )
    )
    embeddings = {f"c{i}": n for i, n in enumerate(cardinalities)}
    hidden_units = draw(st.lists(st.integers(1, 8), min_size=0, max_size=2))
    init_kwargs = {
        "embeddings": embeddings,
        "hidden_units": hidden_units,
        "bias_terms": draw(st.booleans()),
        "rating_range": draw(st.sampled_from([None, (0.5, 5.5)])),
    }
    batch = draw(st.integers(1, max_batch))
    column_shape = draw(st.sampled_from([(batch,), (batch, 1)]))
    inputs = {
        column: draw(
            hnp.arrays(np.int32, column_shape, elements=st.integers(0, n - 1))
        )
        for column, n in embeddings.items()
    }
    return init_kwargs, inputs
