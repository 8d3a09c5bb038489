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

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_catembed.testing needs Hypothesis. Install it with: "
        'pip install "keras-catembed[test]"'
    ) from error

import numpy as np
from numpy.typing import NDArray

from keras_catembed import _checks

__all__ = [
    "entity_embedding_cases",
    "entity_embedding_kwargs",
    "known_ids",
    "rating_model_cases",
    "rating_model_inputs",
    "unknown_ids",
]


@st.composite
def entity_embedding_kwargs(
    draw: st.DrawFn,
    *,
    max_ids: int = 50,
    max_output_dim: int = 8,
    allow_oov: bool = True,
) -> dict[str, Any]:
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
    _checks.positive_int("max_ids", max_ids)
    _checks.positive_int("max_output_dim", max_output_dim)
    kwargs: dict[str, Any] = {}
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


def _known(kwargs: Mapping[str, Any]) -> NDArray[np.int64]:
    if kwargs.get("vocabulary") is not None:
        return np.asarray(kwargs["vocabulary"], dtype=np.int64)
    return np.arange(kwargs["input_dim"], dtype=np.int64)


@st.composite
def known_ids(
    draw: st.DrawFn, init_kwargs: Mapping[str, Any], shape: tuple[int, ...]
) -> NDArray[np.int32]:
    """Draws an int32 array of ids the layer knows, of the given shape.

    Args:
        init_kwargs: Dict. `EntityEmbedding` constructor arguments.
        shape: Tuple of integers. Shape of the id array.

    Returns:
        A strategy of NumPy int32 arrays.
    """
    known = _known(init_kwargs)
    positions: NDArray[np.int64] = draw(
        hnp.arrays(np.int64, shape, elements=st.integers(0, len(known) - 1))
    )
    return known[positions].astype(np.int32)


@st.composite
def unknown_ids(
    draw: st.DrawFn, init_kwargs: Mapping[str, Any], shape: tuple[int, ...]
) -> NDArray[np.int32]:
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
def entity_embedding_cases(
    draw: st.DrawFn,
    *,
    max_rank: int = 3,
    max_dim: int = 5,
    allow_oov: bool = True,
) -> tuple[dict[str, Any], NDArray[np.int32]]:
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
def rating_model_inputs(
    draw: st.DrawFn, embeddings: Mapping[str, int], *, max_batch: int = 16
) -> dict[str, NDArray[np.int32]]:
    """Draws a valid inputs dict for a `RatingModel` of these columns.

    Args:
        embeddings: Dict mapping each column name to its cardinality (ids
            `0..n-1`), as given to `RatingModel`.
        max_batch: Integer. Largest batch size. Defaults to `16`.

    Returns:
        A strategy of dicts of int32 arrays of one shape, `(batch,)` or
        `(batch, 1)`, keyed by column.

    Example:

    ```python
    @given(testing.rating_model_inputs({"user_id": 943, "movie_id": 1682}))
    def test_predicts_in_range(inputs):
        assert model.predict(inputs, verbose=0).shape[1] == 1
    ```
    """
    batch = draw(st.integers(1, max_batch))
    column_shape = draw(st.sampled_from([(batch,), (batch, 1)]))
    return {
        column: draw(
            hnp.arrays(np.int32, column_shape, elements=st.integers(0, n - 1))
        )
        for column, n in embeddings.items()
    }


@st.composite
def rating_model_cases(
    draw: st.DrawFn,
    *,
    columns: Sequence[str] | Mapping[str, int] | None = None,
    max_columns: int = 4,
    max_cardinality: int = 50,
    max_batch: int = 16,
) -> tuple[dict[str, Any], dict[str, NDArray[np.int32]]]:
    """Draws `(init_kwargs, inputs)` for `keras_catembed.RatingModel`.

    The columns are yours (`columns`) or named `c0`, `c1`, ...; drawn
    cardinalities are in `1..max_cardinality`; `inputs` is a dict of int32
    arrays of shape `(batch,)` or `(batch, 1)` holding valid ids.

    Args:
        columns: Optional column names (a list, whose cardinalities are
            drawn) or dict mapping each name to a fixed cardinality, so
            that a subclass with its own columns can be property-tested.
            Defaults to `None` (1 to `max_columns` columns `c0`, ...).
        max_columns: Integer. Largest number of columns when `columns` is
            `None`. Defaults to `4`.
        max_cardinality: Integer. Largest drawn cardinality. Defaults to
            `50`.
        max_batch: Integer. Largest batch size. Defaults to `16`.

    Returns:
        A strategy of pairs (dict of keyword arguments, dict of arrays).

    Example:

    ```python
    @given(testing.rating_model_cases(columns=["user_id", "movie_id"]))
    def test_my_subclass(case):
        init_kwargs, inputs = case
        model = MyRatingModel(**init_kwargs)
        assert model(inputs).shape == (len(inputs["user_id"]), 1)
    ```
    """
    for name, value in (
        ("max_columns", max_columns),
        ("max_cardinality", max_cardinality),
        ("max_batch", max_batch),
    ):
        _checks.positive_int(name, value)
    if columns is None:
        num_columns = draw(st.integers(1, max_columns))
        names = [f"c{i}" for i in range(num_columns)]
    elif isinstance(columns, str):
        raise ValueError(
            "`columns` must be a list of column names or a dict of their "
            f"cardinalities, not one string. Received: columns={columns!r}"
        )
    else:
        names = list(columns)
    if not names or len(set(names)) != len(names):
        raise ValueError(
            "`columns` must name at least one column, each once. Received: "
            f"columns={columns!r}"
        )
    embeddings: dict[str, int] = {}
    for name in names:
        if isinstance(columns, Mapping):
            embeddings[name] = _checks.positive_int(
                f"columns[{name!r}]", columns[name]
            )
        else:
            embeddings[name] = draw(st.integers(1, max_cardinality))
    hidden_units = draw(st.lists(st.integers(1, 8), min_size=0, max_size=2))
    init_kwargs = {
        "embeddings": embeddings,
        "hidden_units": hidden_units,
        "bias_terms": draw(st.booleans()),
        "rating_range": draw(st.sampled_from([None, (0.5, 5.5)])),
    }
    inputs = draw(rating_model_inputs(embeddings, max_batch=max_batch))
    return init_kwargs, inputs
