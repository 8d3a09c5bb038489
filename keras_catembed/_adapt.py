"""`RatingModel.adapt`: the pairs of its implicit and neighbourhood layers."""

import collections.abc
from typing import Any

from keras_catembed import _adapt_rows
from keras_catembed import _frames
from keras_catembed._model_base import ModelBase


def adapt(model: Any, x: Any, y: Any = None) -> None:
    """Checks `x` (and `y`) and adapts each pair layer of `model`.

    Every column is checked before any layer changes.
    """
    if not model.implicit and not model.neighborhood:
        raise ValueError(
            "`adapt` records pairs for implicit feedback, but this "
            "RatingModel has none: pass `implicit=` or `neighborhood=` "
            "to the constructor."
        )
    if model.neighborhood and y is None:
        raise ValueError(
            "This RatingModel weighs its `neighborhood` pairs by their "
            "ratings: call `adapt(x, y)` with the training ratings."
        )
    if _frames.is_dataframe(x):
        x = _frames.known_columns(x, model.columns)
    y = _frames.values(y)
    if not isinstance(x, collections.abc.Mapping):
        raise ValueError(
            "`adapt` expects a dict of id arrays keyed by column name. "
            f"Received: {type(x).__name__}"
        )
    needed = sorted(
        set(model.implicit)
        | set(model.implicit.values())
        | set(model.neighborhood)
        | set(model.neighborhood.values())
    )
    missing = [column for column in needed if column not in x]
    if missing:
        raise ValueError(
            f"`adapt` needs the columns {needed}. Missing: {missing}"
        )
    rows = _adapt_rows.rows_by_column(
        x, {column: model.embedding_layers[column] for column in needed}
    )
    # Checked whole (finite, one per row) before any layer changes.
    ratings = None
    if model.neighborhood:
        ratings = _adapt_rows.ratings(y, len(rows[needed[0]]))
    for encoder in model._encoders.values():
        encoder._adapt_rows(rows, ratings)


class PairAdapting(ModelBase):
    """`RatingModel.adapt`."""

    def adapt(self, x: Any, y: Any = None) -> None:
        """Records which ids occur together, for the `implicit` columns.

        For each `target: source` pair of `implicit`, each target id is then
        described, besides its own vector, by the normalized sum of learned
        vectors of the source ids it occurs with in `x`; for those of
        `neighborhood`, by the sum weighted by the ratings `y`. Call it
        once with the training data, before `fit`; calling it again
        replaces the pairs. The pairs are saved with the model.

        Args:
            x: Dict of id arrays keyed by column name (or a pandas
                `DataFrame`), like the inputs of `fit` (every column of
                `implicit` and `neighborhood` is needed).
            y: Array of the ratings of `x`'s rows. Required with
                `neighborhood`, unused otherwise.

        Raises:
            ValueError: if the model has no `implicit` or `neighborhood`
                columns, a column is missing, an id is one the column
                cannot embed, or `y` is missing, of another length or not
                finite.
        """
        adapt(self, x, y)
        # Compiled functions hold the previous pairs as constants.
        self._reset_compiled()
