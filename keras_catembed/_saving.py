"""How a `RatingModel` builds from its columns and saves as a config.

The config holds each column's cardinality (or its serialized
`EntityEmbedding`), the constructor's arguments and, once set, the
training fingerprint and data source (`_provenance`).
"""

from collections.abc import Mapping
from typing import Any

import keras

from keras_catembed import _checks
from keras_catembed import _inputs
from keras_catembed import _layers
from keras_catembed import _pair_dtype
from keras_catembed import _provenance
from keras_catembed._model_base import ModelBase


class RatingSaving(ModelBase):
    """`build`, `get_config` and `from_config` of `RatingModel`."""

    def build(self, input_shape: Any = None) -> None:
        """Builds every sublayer by tracing `call` on symbolic int ids.

        The input shapes follow from the columns, so `input_shape` may be
        omitted; a given one is checked against the columns.
        """
        if input_shape is not None:
            _inputs.standardize_structure(
                self.columns, input_shape, shapes=True
            )
        _checks.check_weight_bytes(
            f"RatingModel '{self.name}'", _layers.weight_sizes(self)
        )
        symbolic = {
            column: keras.KerasTensor((None,), dtype="int32", name=column)
            for column in self.columns
        }
        self.call(symbolic)

    def build_from_config(self, config: Any) -> None:
        # Keras's default turns a failed build into a warning and then
        # loads the weights that fit: a silently partial model. A saved
        # model is built from its columns alone, and a failure is raised.
        self.build()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        embeddings: dict[str, Any] = {}
        for column in self.columns:
            if column in self._cardinalities:
                embeddings[column] = self._cardinalities[column]
            else:
                embeddings[column] = keras.saving.serialize_keras_object(
                    self.embedding_layers[column]
                )
        config.update(
            {
                "embeddings": embeddings,
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "bias_terms": self.bias_terms,
                "rating_range": (
                    None
                    if self.rating_range is None
                    else list(self.rating_range)
                ),
                "implicit": dict(self.implicit) or None,
                "neighborhood": dict(self.neighborhood) or None,
                "max_pairs_per_id": self.max_pairs_per_id,
            }
        )
        # Saved only when set, so configs stay as they were.
        if self.pairs_per_step is not None:
            config["pairs_per_step"] = self.pairs_per_step
        if _pair_dtype.is_narrow(self.pair_dtype):
            config["pair_dtype"] = self.pair_dtype
        if self.training_fingerprint is not None:
            config["training_fingerprint"] = _provenance.to_config(
                self.training_fingerprint
            )
        if self.data_source is not None:
            config["data_source"] = dict(self.data_source)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        config = dict(config)
        config["embeddings"] = {
            column: (
                keras.saving.deserialize_keras_object(spec)
                if isinstance(spec, dict)
                else spec
            )
            for column, spec in config["embeddings"].items()
        }
        fingerprint = config.pop("training_fingerprint", None)
        data_source = config.pop("data_source", None)
        model = cls(**config)
        model.__dict__["_training_fingerprint"] = _provenance.from_config(
            fingerprint
        )
        model.data_source = data_source
        return model
