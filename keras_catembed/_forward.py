"""The forward pass of `RatingModel`: ids -> vectors -> features -> rating.

`embed` looks each column's ids up in its `EntityEmbedding` and adds its
implicit-feedback and neighbourhood terms, `interact` combines the
vectors, `call` runs the MLP head, the per-id biases and the rating
range. The step context (`_step`) of the loop running the model reaches
the layers as explicit arguments: whether the ids were checked, and the
rows a sparse step has gathered; `calls_layers_directly` says when the
loop may call the layers' `call` itself (on torch).
"""

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_catembed import _inputs
from keras_catembed import _sparse_rows
from keras_catembed import _step
from keras_catembed import backend
from keras_catembed._implicit import ImplicitFeedback
from keras_catembed._model_base import ModelBase
from keras_catembed._sparse_rows import builtin_forward
from keras_catembed.entity_embedding import EntityEmbedding

# Whether the steps of an eager backend call the layers' `call` directly
# where they may (`calls_layers_directly`); off only to measure the
# difference.
DIRECT_CALLS = True
# Whether a sparse step on torch runs the model's own `call` where it may
# (`calls_model_directly`); off only to measure the difference.
DIRECT_MODEL_CALLS = True
# The layers whose `call` needs none of `Layer.__call__`'s bookkeeping once
# they are built, compute in their variables' dtype, are unquantized and
# have no activity regularizer or torch hook (exact types: a subclass may
# rely on `__call__`).
_DIRECT_TYPES = (
    keras.layers.Dense,
    keras.layers.Dropout,
    EntityEmbedding,
    ImplicitFeedback,
)
_TORCH_HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def calls_layers_directly(model: Any) -> bool:
    """Whether the steps of `model` may call its layers' `call` directly.

    On a backend that runs layers eagerly (torch), `Layer.__call__`
    (input conversion, build, training and mask arguments, autocast)
    costs more than a small layer's arithmetic at every step.
    `RatingModel`'s own `embed` and `call` pass `training` and the ids'
    context to each layer they call, so a step may skip that bookkeeping
    when the model keeps both methods (an `interact` of its own is fine:
    it gets no `training`, and any layer it calls is called as a layer),
    every one of their layers is built, of a known type, computes in its
    variables' dtype, is not quantized or rematerialized and has no
    activity regularizer or torch hook, and no distribution is set. The
    model itself is called as a layer (that clears the losses of the last
    step), except in a torch sparse step where `calls_model_directly`
    allows its own `call`. The loops set `_step.direct_calls` from this.
    """
    if not (DIRECT_CALLS and backend.current.EAGER_LAYERS):
        return False
    if keras.distribution.distribution() is not None:
        return False
    if not _sparse_rows.own_methods(model, ("embed", "call")):
        return False
    layers = [
        *model.embedding_layers.values(),
        *model.bias_layers.values(),
        *_sparse_rows.pair_layers(model),
        *model.hidden_layers,
        *model.dropout_layers,
        model.output_layer,
    ]
    return model.compute_dtype == model.variable_dtype and all(
        type(layer) in _DIRECT_TYPES
        and layer.built
        and layer.dtype_policy.quantization_mode is None
        and layer.compute_dtype == layer.variable_dtype
        and layer.activity_regularizer is None
        and getattr(layer, "_remat_mode", None) is None
        and not any(getattr(layer, hook, None) for hook in _TORCH_HOOKS)
        for layer in layers
    )


def calls_model_directly(model: Any) -> bool:
    """Whether a sparse step may run `model.call` instead of `model(...)`.

    Besides its layers' bookkeeping (`calls_layers_directly`), the
    model's own `Layer.__call__` does two things a step may need: it
    clears the losses its layers added in the step before (the penalties
    of the looked-up rows, `add_loss`), and it tells any layer an
    `interact` of the model's own calls that the model trains. So a step
    skips it only for a model none of whose tables adds a loss as it
    runs and that has no activity regularizer of its own (a loss
    `Layer.__call__` adds), that keeps RatingModel's `interact` and
    `__call__`, and that has no torch hook of its own. Its inputs are the
    loop's tensors already.
    """
    from keras_catembed._trainer import RatingTrainer

    if not (DIRECT_MODEL_CALLS and calls_layers_directly(model)):
        return False
    if not _sparse_rows.own_methods(model, ("interact",)):
        return False
    if type(model).__call__ is not RatingTrainer.__call__:
        return False
    if model.activity_regularizer is not None:
        return False
    if any(getattr(model, hook, None) for hook in _TORCH_HOOKS):
        return False
    tables = [
        *_sparse_rows.table_layers(model),
        *_sparse_rows.pair_layers(model),
    ]
    return not any(
        getattr(layer, "embeddings_regularizer", None) is not None
        for layer in tables
    )


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
