"""Scores a user x item grid from each column's vector, computed once.

`RatingModel.call` is `head(interact(embed(inputs)))` plus per-id biases
and the output range. In the base `embed`, a column's vector depends only
on its own id (its embedding and implicit-feedback sum), with one
exception: a `neighborhood` column leaves the pair of the row being
predicted out of its sum. So for a model whose class keeps the base
`embed` and `call`, each user's and each candidate's vectors are computed
once, and only `interact`, the hidden layers, the output unit, the biases
and the range run over the grid. The neighbourhood sums are taken whole,
and the few grid pairs whose own pair is in the adapted data (where the
model would leave it out) are scored through `model.predict` instead.
"""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed._recommend import Scorer
from keras_catembed._requests import Users

# Rows of the user x item grid run through the head at once.
ROWS_PER_CALL = 2**18
# Rows per batch of the compiled head.
HEAD_BATCH = 65536
# Ids embedded at once.
EMBED_BLOCK = 4096


class VectorGrid(Scorer):
    """The head over the grid of per-column vectors computed once."""

    rows_per_call = ROWS_PER_CALL

    @staticmethod
    def applies(model: Any, base: type) -> bool:
        """Whether this scorer is proven equal to scoring through `model`.

        True when the model's class does not override the `embed`, `call`
        or `__call__` of `base` (`RatingModel`'s; an overridden `interact`
        is fine: it runs over the grid).
        """
        cls = type(model)
        return isinstance(model, base) and all(
            getattr(cls, name) is getattr(base, name)
            for name in ("embed", "call", "__call__")
        )

    def prepare(self) -> None:
        model, users, candidates = self.model, self.users, self.candidates
        user_column, item_column = self.user_column, self.item_column
        self.user_side = [c for c in model.columns if c != item_column]
        first = {c: users[c][:1] for c in self.user_side}
        dummy_users = {
            c: np.repeat(v, candidates.size) for c, v in first.items()
        }
        dummy_items = np.repeat(candidates[:1], len(users[user_column]))
        self.user_vectors = _embed(model, {**users, item_column: dummy_items})
        self.user_vectors = {c: self.user_vectors[c] for c in self.user_side}
        self.item_vectors = _embed(
            model, {**dummy_users, item_column: candidates}
        )[item_column]
        # Neighbourhood columns described across the grid: whole sums.
        self.crossing: list[tuple[str, str, NDArray[np.int64]]] = []
        for target, source in getattr(model, "neighborhood", {}).items():
            if (target == item_column) == (source == item_column):
                continue
            layer = model.neighborhood_layers[target]
            width = model.embedding_layers[target].output_dim
            ids = candidates if target == item_column else users[target]
            sums = _whole_sums(layer, _rows(model, target, ids))
            if target == item_column:
                self.item_vectors[:, width:] = sums
            else:
                self.user_vectors[target][:, width:] = sums
            self.crossing.append((target, source, _pair_keys(layer)))
        self.user_bias = np.zeros(len(users[user_column]), "float32")
        self.item_bias = np.zeros(candidates.size, "float32")
        if model.bias_terms:
            for column in self.user_side:
                self.user_bias = self.user_bias + _bias(
                    model, column, users[column]
                )
            self.item_bias = _bias(model, item_column, candidates)
        self.candidate_rows = _rows(model, item_column, candidates)

    def scores(
        self, start: int, stop: int, seen: NDArray[np.bool_]
    ) -> NDArray[np.float32]:
        """Scores `(stop - start, candidates)`; `seen` pairs may be -inf."""
        size = stop - start
        count = self.candidates.size
        grid = {
            c: np.repeat(v[start:stop], count, axis=0)
            for c, v in self.user_vectors.items()
        }
        grid[self.item_column] = np.tile(self.item_vectors, (size, 1))
        logits = _head(self.model, grid).reshape(size, count)
        logits = logits + self.user_bias[start:stop, None]
        logits = logits + self.item_bias[None, :]
        block = _output_range(self.model, logits)
        self._rescore_own_pairs(block, start, stop, seen)
        return block

    def _rescore_own_pairs(
        self,
        block: NDArray[np.float32],
        start: int,
        stop: int,
        seen: NDArray[np.bool_],
    ) -> None:
        """Scores through the model the pairs whose own pair is adapted."""
        own = np.zeros(block.shape, dtype=bool)
        for target, source, keys in self.crossing:
            if not keys.size:
                continue
            user_column = source if target == self.item_column else target
            user_rows = _rows(
                self.model, user_column, self.users[user_column][start:stop]
            )
            if target == self.item_column:
                pairs = (
                    self.candidate_rows[None, :]
                    * (self.model.neighborhood_layers[target].num_sources)
                    + user_rows[:, None]
                )
            else:
                pairs = (
                    user_rows[:, None]
                    * (self.model.neighborhood_layers[target].num_sources)
                    + self.candidate_rows[None, :]
                )
            where = np.minimum(np.searchsorted(keys, pairs), keys.size - 1)
            own |= keys[where] == pairs
        own &= ~seen
        if not own.any():
            return
        rows, columns = np.nonzero(own)
        inputs = {c: self.users[c][start:stop][rows] for c in self.user_side}
        inputs[self.item_column] = self.candidates[columns]
        predicted = self.model.predict(inputs, batch_size=65536, verbose=0)
        block[rows, columns] = np.asarray(predicted, "float32").reshape(-1)


def _rows(model: Any, column: str, ids: ArrayLike) -> NDArray[Any]:
    layer = model.embedding_layers[column]
    tensor = ops.convert_to_tensor(np.asarray(ids).astype("int32"))
    return np.asarray(ops.convert_to_numpy(layer._clipped_rows(tensor)))


def _embed(model: Any, inputs: Users) -> dict[str, NDArray[Any]]:
    """`model.embed` of every row of `inputs`, as NumPy (compiled)."""
    embed = _function(model, ("embed",), lambda: _embed_model(model))
    inputs = {c: np.asarray(v).astype("int32") for c, v in inputs.items()}
    embedded = embed.predict(inputs, batch_size=EMBED_BLOCK, verbose=0)
    return {c: np.array(v) for c, v in embedded.items()}


def _function(
    model: Any, key: tuple[Any, ...], build: Callable[[], Any]
) -> Any:
    """A functional model sharing `model`'s layers, built once per model.

    Its `predict` is compiled once per input shape, whereas eager calls
    compile every operation for each new shape on JAX.
    """
    cache = model.__dict__.setdefault("_recommend_functions", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _embed_model(model: Any) -> Any:
    inputs = {
        c: keras.Input(shape=(), dtype="int32", name=c) for c in model.columns
    }
    return keras.Model(inputs, model.embed(inputs, training=False))


def _head_model(
    model: Any, specs: tuple[tuple[str, tuple[int, str]], ...]
) -> Any:
    inputs = {
        c: keras.Input(shape=(width,), dtype=dtype, name=c)
        for c, (width, dtype) in specs
    }
    features = model.interact(inputs)
    for index, dense in enumerate(model.hidden_layers):
        features = dense(features)
        if model.dropout_layers:
            features = model.dropout_layers[index](features, training=False)
    return keras.Model(inputs, model.output_layer(features))


def _whole_sums(layer: Any, rows: NDArray[Any]) -> NDArray[Any]:
    """The neighbourhood sums of `rows` with nothing left out."""
    parts = []
    for start in range(0, len(rows), EMBED_BLOCK):
        block = ops.convert_to_tensor(rows[start : start + EMBED_BLOCK])
        sums = ops.cast(layer.sums(block), layer.compute_dtype)
        parts.append(np.asarray(ops.convert_to_numpy(sums)))
    return np.concatenate(parts)


def _pair_keys(layer: Any) -> NDArray[np.int64]:
    """Sorted `target_row * num_sources + source_row` of non-zero pairs.

    Only these pairs are left out of their own sum with an effect.
    """
    weights = np.asarray(ops.convert_to_numpy(layer.pair_weights))
    if layer.dense:
        targets, sources = np.nonzero(weights)
    else:
        lists = np.asarray(ops.convert_to_numpy(layer.pair_sources))
        targets, slots = np.nonzero(weights)
        sources = lists[targets, slots]
    return np.sort(
        targets.astype("int64") * layer.num_sources + sources.astype("int64")
    )


def _bias(model: Any, column: str, ids: ArrayLike) -> NDArray[np.float32]:
    tensor = ops.convert_to_tensor(np.asarray(ids).astype("int32"))
    bias = model.bias_layers[column](tensor)
    return np.asarray(ops.convert_to_numpy(bias), "float32").reshape(-1)


def _head(model: Any, embedded: dict[str, NDArray[Any]]) -> NDArray[np.float32]:
    """`interact`, the hidden layers and the output unit, as NumPy logits."""
    specs = tuple(
        (c, (v.shape[-1], str(v.dtype))) for c, v in sorted(embedded.items())
    )
    head = _function(model, ("head", specs), lambda: _head_model(model, specs))
    logits = head.predict(embedded, batch_size=HEAD_BATCH, verbose=0)
    return np.asarray(logits, "float32").reshape(-1)


def _output_range(model: Any, logits: NDArray[Any]) -> NDArray[np.float32]:
    if model.rating_range is None:
        return logits.astype("float32")
    low, high = model.rating_range
    sigmoid = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    scores: NDArray[np.float32] = (low + (high - low) * sigmoid).astype(
        "float32"
    )
    return scores
