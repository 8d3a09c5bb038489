"""The forward pass of `RatingModel`: ids -> vectors -> features -> rating.

`embed` looks each column's ids up in its `EntityEmbedding` and adds its
implicit-feedback and neighbourhood terms, `interact` combines the
vectors, `call` runs the MLP head, the per-id biases and the rating
range. The step context (`_step`) of the loop running the model reaches
the layers as explicit arguments: whether the ids were checked, and the
rows a sparse step has gathered.
"""

from collections.abc import Mapping
from typing import Any

from keras import ops

from keras_catembed import _inputs
from keras_catembed import _step
from keras_catembed._model_base import ModelBase
from keras_catembed._sparse_rows import builtin_forward


class RatingForward(ModelBase):
    """`embed`, `interact` and `call` of `RatingModel`."""

    @property
    def encoders(self) -> Mapping[str, Any]:
        """The `keras_catembed.ColumnEncoder` of each column, in order.

        A read-only mapping. Each encodes its column as `embed` does (its
        table, implicit feedback and neighbourhood term; with
        `bias_terms`, its `bias_layer` is the column's per-id bias). They
        share this model's layers, so training one trains the other.
        """
        return self._encoders

    @builtin_forward
    def embed(
        self, inputs: Mapping[str, Any], training: bool | None = None
    ) -> dict[str, Any]:
        """Looks up the vector of each column.

        Args:
            inputs: Dict of id tensors of shape `(batch,)`, keyed by column.
            training: Python boolean. Whether entity dropout is active.

        Each column's `ColumnEncoder` (`encoders`) computes its vector.

        Returns:
            Dict of tensors of shape `(batch, output_dim)`, keyed by column.
            A column with implicit feedback gets the sum of its own vector
            and its implicit-feedback vector; a column with a
            `neighborhood` is followed by its neighbourhood vector (shape
            `(batch, 2 * output_dim)`).
        """
        step = _step.current(self)
        return {
            column: self._encoders[column].encode(
                inputs, training=training, step=step
            )
            for column in self.columns
        }

    @builtin_forward
    def interact(self, embedded: Mapping[str, Any]) -> Any:
        """Combines the per-column vectors into one feature tensor.

        The default concatenates them in the order of `embeddings`.
        Override it to build other interactions (dot products, crosses).

        Args:
            embedded: Dict of tensors of shape `(batch, dim)` from `embed`.

        Returns:
            A tensor of shape `(batch, features)`.
        """
        return ops.concatenate(
            [embedded[column] for column in self.columns], axis=-1
        )

    @builtin_forward
    def call(
        self, inputs: Mapping[str, Any], training: bool | None = None
    ) -> Any:
        inputs = _inputs.standardize_structure(self.columns, inputs)
        features = self.interact(self.embed(inputs, training=training))
        step = _step.current(self)
        for index, dense in enumerate(self.hidden_layers):
            features = step.invoke(dense, features)
            if self.dropout_layers:
                features = step.invoke(
                    self.dropout_layers[index], features, training=training
                )
        logits = step.invoke(self.output_layer, features)
        if self.bias_terms:
            for column in self.columns:
                layer = self.bias_layers[column]
                bias = step.invoke(
                    layer,
                    inputs[column],
                    training=training,
                    ids_checked=step.ids_checked,
                    gathered=step.rows_of(layer),
                )
                logits = logits + ops.cast(bias, logits.dtype)
        if self.rating_range is not None:
            low, high = self.rating_range
            logits = low + (high - low) * ops.sigmoid(logits)
        return logits

    def compute_output_shape(
        self, input_shape: Mapping[str, Any]
    ) -> tuple[Any, int]:
        first = input_shape[self.columns[0]]
        return (first[0], 1)
