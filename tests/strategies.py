"""Shared Hypothesis strategies: the library's own, re-exported."""

from keras_catembed.testing import entity_embedding_cases
from keras_catembed.testing import entity_embedding_kwargs
from keras_catembed.testing import known_ids
from keras_catembed.testing import rating_model_cases
from keras_catembed.testing import unknown_ids

__all__ = [
    "entity_embedding_cases",
    "entity_embedding_kwargs",
    "known_ids",
    "rating_model_cases",
    "unknown_ids",
]
