"""Exporting a `RatingModel` for serving (`RatingModel.export`)."""

import keras

from keras_catembed import _checks
from keras_catembed import _fast_fit

# Formats whose exporter takes a Keras input signature.
_SIGNED_FORMATS = ("tf_saved_model", "onnx", "openvino")


def input_signature(model, dtype="int64"):
    """The serving signature: one dict of integer id vectors by column.

    Each column takes a `(batch,)` vector of the ids the model is called
    with: raw ids for a column with a `vocabulary`, table rows `0..n-1`
    otherwise.
    """
    return [
        {
            column: keras.InputSpec(shape=(None,), dtype=dtype, name=column)
            for column in model.columns
        }
    ]


def export(model, filepath, format, verbose, signature, **kwargs):
    """Runs `keras.Model.export` with the model's own signature."""
    if (
        keras.backend.backend() == "torch"
        and format == "tf_saved_model"
        and signature is None
    ):
        raise ValueError(
            "Exporting a RatingModel to a SavedModel needs the TensorFlow "
            "or JAX backend (Keras exports torch models only through "
            "torch_xla, with flat inputs). Save the model with "
            "`model.save('model.keras')`, load it with "
            "KERAS_BACKEND=tensorflow or jax, and export it there."
        )
    if not model.built:
        model.build()
    if signature is None and format in _SIGNED_FORMATS:
        signature = input_signature(model)
    # The exported graph checks ids itself (graph assertions on
    # TensorFlow); on JAX, an unknown id gives NaN, since a SavedModel
    # cannot hold the host callback that raises in a compiled step.
    with _checks.without_host_callbacks(), _fast_fit.trusted_ids(model, False):
        return keras.Model.export(
            model,
            filepath,
            format=format,
            verbose=verbose,
            input_signature=signature,
            **kwargs,
        )
