"""`DotRatingModel`: a rating from dot products of the column vectors."""

import collections.abc
import itertools
import numbers
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_catembed import _checks
from keras_catembed import _recommend
from keras_catembed import _retrieval
from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.rating_model import RatingModel


@keras.saving.register_keras_serializable(package="keras_catembed")
class DotRatingModel(RatingModel):
    """A `RatingModel` whose interaction is the dot product of its columns.

    `interact` returns the sum of the dot products of every pair of column
    vectors, `sum(dot(v[a], v[b]) for a < b)` (the second-order term of a
    factorization machine; with two columns, the dot product of the user
    and item vectors). With the default `hidden_units=()` the output unit
    scales it, and with `bias_terms=True` this is biased matrix
    factorization.

    Declaring the interaction by its class lets `recommend` rank by
    exact brute-force retrieval: with no hidden layers a user's rating of
    an item is a dot product of a query vector (the user side's vectors,
    scaled, plus its constant terms) with a candidate vector (the item's
    vector plus its bias), and a rating range is increasing in it, so
    `keras_rs.layers.BruteForceRetrieval` returns the same top items and
    scores as scoring every pair (install the `ranking` extra; without
    keras-rs, with hidden layers, a `neighborhood`, or a subclass that
    overrides `interact`, `embed` or `call`, every pair is scored).

    Every column's vector must have one width (a `neighborhood` column's
    vector is twice its embedding's width).

    Args:
        embeddings: As for `RatingModel`.
        hidden_units: Sequence of integers. Hidden layers after the dot
            products. Defaults to `()`, which allows retrieval.
        embedding_dim: Optional positive integer. The embedding size of
            the columns given as a cardinality (instead of each one's
            `"auto"` size, which differ). Defaults to `None`.
        **kwargs: The other arguments of `RatingModel`.

    Example:

    ```python
    model = keras_catembed.DotRatingModel(
        {"user_id": 943, "movie_id": 1682},
        embedding_dim=32,
        bias_terms=True,
        rating_range=(0.5, 5.5),
    )
    ```
    """

    def __init__(
        self,
        embeddings: Mapping[str, int | EntityEmbedding],
        hidden_units: int | Sequence[int] = (),
        *,
        embedding_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        if embedding_dim is not None:
            embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
            if isinstance(embeddings, collections.abc.Mapping):
                embeddings = {
                    column: (
                        EntityEmbedding(
                            input_dim=int(spec),
                            output_dim=embedding_dim,
                            name=f"{column}_embedding",
                        )
                        if isinstance(spec, numbers.Integral)
                        else spec
                    )
                    for column, spec in embeddings.items()
                }
        super().__init__(embeddings, hidden_units, **kwargs)
        widths = {
            column: layer.output_dim * (2 if column in self.neighborhood else 1)
            for column, layer in self.embedding_layers.items()
        }
        if len(set(widths.values())) > 1:
            raise ValueError(
                "DotRatingModel takes dot products of the column vectors, "
                "so every column's vector must have one width. Received "
                f"the widths {widths} (pass `embedding_dim`, or "
                "`EntityEmbedding`s of one `output_dim`)"
            )

    def _recommend_scorers(
        self,
    ) -> dict[str, tuple[type[_recommend.Scorer], type]]:
        # Exact keras-rs retrieval of the dot product first.
        return {
            "retrieval": (_retrieval.DotRetrieval, DotRatingModel),
            **super()._recommend_scorers(),
        }

    def interact(self, embedded: Mapping[str, Any]) -> Any:
        """The sum of the dot products of every pair of column vectors.

        Args:
            embedded: Dict of tensors of shape `(batch, dim)` from `embed`.

        Returns:
            A tensor of shape `(batch, 1)`.
        """
        dots = [
            ops.sum(embedded[a] * embedded[b], axis=-1, keepdims=True)
            for a, b in itertools.combinations(self.columns, 2)
        ]
        total = dots[0]
        for dot in dots[1:]:
            total = total + dot
        return total
