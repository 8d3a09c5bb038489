"""Exact top-k by keras-rs brute-force retrieval, for dot-product models."""

import itertools
from types import ModuleType
from typing import Any

import numpy as np
from keras import ops

from keras_catembed import _grid
from keras_catembed._recommend import Ranked
from keras_catembed._recommend import Scorer
from keras_catembed._requests import Excluded

# Users whose queries are scored at once.
QUERIES_PER_CALL = 4096


def _keras_rs() -> ModuleType | None:
    try:
        import keras_rs
    except ImportError:
        return None
    module: ModuleType = keras_rs
    return module


class DotRetrieval(Scorer):
    """Ranks with `keras_rs.layers.BruteForceRetrieval` on exact scores.

    For a `DotRatingModel` with no hidden layers and no `neighborhood`, the
    logit of `(user, item)` is `w * sum(v[a] . v[b])` over pairs of columns
    plus the output bias and the per-id biases. With `U` the user's
    columns, that is `q . c` with the query `q = [w * sum(v[U]), 1, w *
    sum(v[a] . v[b] for a < b in U) + biases of U]` and the candidate `c =
    [v[item], b + bias of item, 1]`. The rating range is increasing in the
    logit, so the top items are the same.
    """

    rows_per_call = _grid.ROWS_PER_CALL

    @staticmethod
    def applies(model: Any, base: Any) -> bool:
        # `base` (`DotRatingModel`) keeps RatingModel's `embed` and `call`.
        return (
            _keras_rs() is not None
            and _grid.VectorGrid.applies(model, base)
            and type(model).interact is base.interact
            and not model.hidden_layers
            and not model.neighborhood
            and model.output_layer.use_bias
        )

    def prepare(self) -> None:
        model, users, candidates = self.model, self.users, self.candidates
        user_column, item_column = self.user_column, self.item_column
        self.user_ids = users[user_column]
        grid = _grid.VectorGrid(
            model, users, candidates, user_column, item_column
        )
        weight = float(
            np.asarray(ops.convert_to_numpy(model.output_layer.kernel)).reshape(
                ()
            )
        )
        bias = float(
            np.asarray(ops.convert_to_numpy(model.output_layer.bias)).reshape(
                ()
            )
        )
        vectors = grid.user_vectors
        side = grid.user_side
        constant = grid.user_bias.astype("float64")
        for a, b in itertools.combinations(side, 2):
            constant = constant + weight * np.sum(
                vectors[a].astype("float64") * vectors[b], axis=-1
            )
        total = sum(vectors[c].astype("float64") for c in side)
        ones = np.ones((len(self.user_ids), 1))
        self.queries = np.concatenate(
            [weight * total, ones, constant[:, None]], axis=-1
        ).astype("float32")
        self.items = np.concatenate(
            [
                grid.item_vectors.astype("float64"),
                (bias + grid.item_bias.astype("float64"))[:, None],
                np.ones((candidates.size, 1)),
            ],
            axis=-1,
        ).astype("float32")

    def top_k(self, k: int, excluded: Excluded) -> Ranked:
        keras_rs = _keras_rs()
        if keras_rs is None:  # `applies` said it is installed.
            raise ImportError("DotRetrieval needs keras-rs")
        count = self.candidates.size
        position = {int(item): i for i, item in enumerate(self.candidates)}
        item_ids = np.full((len(self.user_ids), k), -1, self.candidates.dtype)
        scores = np.full((len(self.user_ids), k), np.nan, "float32")
        for start in range(0, len(self.user_ids), QUERIES_PER_CALL):
            stop = min(start + QUERIES_PER_CALL, len(self.user_ids))
            seen = [
                {position[i] for i in excluded.get(int(u), ()) if i in position}
                for u in self.user_ids[start:stop].tolist()
            ]
            wanted = min(count, k + max(len(s) for s in seen))
            retrieval = keras_rs.layers.BruteForceRetrieval(
                candidate_embeddings=ops.convert_to_tensor(self.items),
                k=wanted,
            )
            top_scores, top = retrieval(
                ops.convert_to_tensor(self.queries[start:stop])
            )
            top = np.asarray(ops.convert_to_numpy(top))
            top_scores = np.asarray(ops.convert_to_numpy(top_scores))
            for row in range(stop - start):
                keep = [
                    j
                    for j in range(wanted)
                    if int(top[row, j]) not in seen[row]
                ][:k]
                item_ids[start + row, : len(keep)] = self.candidates[
                    top[row, keep]
                ]
                scores[start + row, : len(keep)] = _grid._output_range(
                    self.model, top_scores[row, keep]
                )
        return item_ids, scores
