"""`recommend`'s grid scorers of `ItemAutoencoder` and `RatingEnsemble`.

An item autoencoder's rating of `(user, item)` is the dot product of the
item's code (the encoder over its stored ratings) and the user's decoder
vector, plus the user's bias: each candidate's code is computed once and
the grid is one matrix product. An ensemble's grid is the weighted sum
of its members' grids, each scored by the member's own fastest scorer
that scores blocks of users, then its range.
"""

from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from keras_catembed import _recommend
from keras_catembed._recommend import Scorer

# Candidate items encoded at once (each reads a row of every user).
ENCODE_BLOCK = 1024


def _keeps(model: Any, base: type, names: tuple[str, ...]) -> bool:
    """Whether `model` is a `base` whose class keeps `base`'s `names`."""
    cls = type(model)
    return isinstance(model, base) and all(
        getattr(cls, name) is getattr(base, name) for name in names
    )


def _numpy(value: Any) -> NDArray[np.float32]:
    return np.asarray(keras.ops.convert_to_numpy(value), "float32")


class AutoencoderGrid(Scorer):
    """An `ItemAutoencoder`'s grid: the candidates' codes, computed once."""

    @staticmethod
    def applies(model: Any, base: type) -> bool:
        """True when the class keeps `base`'s `call` and `__call__`.

        And when the model computes in float32: under a narrower policy
        `call` rounds each rating to its compute dtype, which the grid's
        float32 product would not, so such a model scores by `predict`.
        """
        return (
            _keeps(model, base, ("call", "__call__"))
            and model.compute_dtype == "float32"
        )

    def prepare(self) -> None:
        model = self.model
        # An ensemble may rank the autoencoder's users for its items.
        self.reversed = self.user_column != model.user_column
        asked = self.users[self.user_column]
        items, users = (
            (asked, self.candidates)
            if self.reversed
            else (self.candidates, asked)
        )
        codes = []
        for start in range(0, items.size, ENCODE_BLOCK):
            block = items[start : start + ENCODE_BLOCK]
            codes.append(_numpy(model.encoder(model.item_ratings(block))))
        self.codes = np.concatenate(codes)
        self.vectors = _numpy(model.user_vectors(users))
        self.bias = _numpy(model.user_bias(users)).reshape(-1)
        user_rows = model._rows(model.user_column, {model.user_column: users})
        item_rows = model._rows(model.item_column, {model.item_column: items})
        self.known_users = _numpy(model.known_users)[user_rows] > 0
        self.known_items = _numpy(model.known_items)[item_rows] > 0
        self.mean_rating = float(_numpy(model.mean_rating))

    def scores(
        self, start: int, stop: int, seen: NDArray[np.bool_]
    ) -> NDArray[np.float32]:
        if self.reversed:
            block = self.codes[start:stop] @ self.vectors.T
            block += self.bias[None, :]
            known = self.known_items[start:stop, None] & self.known_users[None]
        else:
            block = self.vectors[start:stop] @ self.codes.T
            block += self.bias[start:stop, None]
            known = self.known_users[start:stop, None] & self.known_items[None]
        block = np.where(known, block, np.float32(self.mean_rating))
        if self.model.rating_range is not None:
            block = np.clip(block, *self.model.rating_range)
        return block.astype("float32")


class EnsembleGrid(Scorer):
    """A `RatingEnsemble`'s grid: the weighted sum of its members' grids."""

    @staticmethod
    def applies(model: Any, base: type) -> bool:
        """True when the class keeps `base`'s `call` and `__call__`."""
        return _keeps(model, base, ("call", "__call__"))

    def prepare(self) -> None:
        self.parts = []
        for member, weight in zip(
            self.model.members, self.model.member_weights, strict=True
        ):
            users = _recommend.member_users(member, self.users)
            kind = _recommend.scorer_kind(member, blocks=True)
            columns = (self.user_column, self.item_column)
            scorer = kind(member, users, self.candidates, *columns)
            self.parts.append((weight, scorer))
        self.rows_per_call = min(part.rows_per_call for _, part in self.parts)

    def scores(
        self, start: int, stop: int, seen: NDArray[np.bool_]
    ) -> NDArray[np.float32]:
        total = np.zeros((stop - start, self.candidates.size), "float32")
        for weight, part in self.parts:
            total += np.float32(weight) * part.scores(start, stop, seen)
        if self.model.rating_range is not None:
            total = np.clip(total, *self.model.rating_range)
        return total.astype("float32")
