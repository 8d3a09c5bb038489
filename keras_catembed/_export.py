"""Exporting a model for serving (`RatingModel.export`, `RatingEnsemble`)."""

from typing import Any

import keras

from keras_catembed import _checks
from keras_catembed import _pair_dtype
from keras_catembed import _step
from keras_catembed import backend
from keras_catembed._model_base import ModelBase

# Formats whose exporter takes a Keras input signature.
_SIGNED_FORMATS = ("tf_saved_model", "onnx", "openvino")


def input_signature(model: Any, dtype: str = "int64") -> list[dict[str, Any]]:
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


def export(
    model: Any,
    filepath: Any,
    format: str,
    verbose: bool | None,
    signature: Any,
    **kwargs: Any,
) -> Any:
    """Runs `keras.Model.export` with the model's own signature.

    Every model in the tree (an ensemble's members, at any depth) that
    reads stored ratings must hold them: such a member refuses before
    anything is written.
    """
    tree = _checks.model_tree(model)
    for member in tree:
        ready = getattr(member, "_require_adapted", None)
        if ready is not None:
            ready("export")
    error = backend.current.export_error(format, signature)
    if error is not None:
        raise ValueError(error)
    if not model.built:
        model.build()
    if signature is None and format in _SIGNED_FORMATS:
        signature = input_signature(model)
    narrow = any(
        _pair_dtype.is_narrow(getattr(m, "pair_dtype", "float32")) for m in tree
    )
    if keras.backend.backend() == "jax" and narrow:
        # jax2tf cannot trace the gradient of the bfloat16 pair products'
        # custom gradient for the SavedModel; serving needs none.
        options = dict(kwargs.get("jax2tf_kwargs") or {})
        options.setdefault("with_gradient", False)
        kwargs["jax2tf_kwargs"] = options
    # The exported graph checks ids itself (graph assertions on
    # TensorFlow); on JAX, an unknown id gives NaN, since a SavedModel
    # cannot hold the host callback that raises in a compiled step.
    with _checks.without_host_callbacks(), _step.checked_ids(model, False):
        return keras.Model.export(
            model,
            filepath,
            format=format,
            verbose=verbose,
            input_signature=signature,
            **kwargs,
        )


class Exportable(ModelBase):
    """`RatingModel.export`, with the model's own serving signature."""

    def export(
        self,
        filepath: Any,
        format: str = "tf_saved_model",
        verbose: bool | None = None,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Exports the model for inference; see `keras.Model.export`.

        Without `input_signature`, the served function takes one dict of
        int64 id vectors of shape `(batch,)`, keyed by column name (raw ids
        for a column with a `vocabulary`), and returns the ratings, shape
        `(batch, 1)`. It works after `fit`, `predict` or loading, and on
        JAX too (through `jax2tf`; TensorFlow must be installed). The
        served graph checks ids: from TensorFlow an unknown id fails the
        call; from JAX its rating is NaN (and ids are read as int32). On
        torch, a SavedModel export raises: export from TensorFlow or JAX.
        From JAX, a model with `pair_dtype="bfloat16"` is exported without
        gradients (`jax2tf_kwargs={"with_gradient": False}` unless given).

        Example:

        ```python
        model.export("rating_model")
        served = tf.saved_model.load("rating_model")
        served.serve({"user_id": users, "movie_id": movies})
        ```
        """
        return export(
            self, filepath, format, verbose, input_signature, **kwargs
        )
