"""Optimizers that update only the embedding rows a batch touches."""

from typing import Any

import keras
from keras import ops

from keras_catembed import backend
from keras_catembed._step import RowGradient

__all__ = ["RowGradient", "SparseAdam"]


@keras.saving.register_keras_serializable(package="keras_catembed")
class SparseAdam(keras.optimizers.Adam):
    """Adam that updates embedding tables lazily, row by row.

    For an embedding table only the rows present in the batch are read and
    written: their first and second moments are updated with the batch's
    gradient and the rows move by the usual bias-corrected Adam step. Rows
    absent from the batch keep their value *and* their moments (the "lazy
    Adam" of TensorFlow Addons and of `torch.optim.SparseAdam`), so a step
    costs time proportional to the batch, not to the table. On the first
    step, and for rows seen in every step, this is exactly Adam; a row seen
    rarely does not drift on stale momentum between its appearances, which
    is the usual choice for recommender embeddings.

    Dense weights (the MLP, the output unit) get ordinary Adam.

    Sparse gradients arrive as `tf.IndexedSlices` on TensorFlow (what the
    gradient of an embedding lookup is) and as row gradients built by
    `keras_catembed.RatingModel.fit` on JAX and torch. A dense gradient
    (from a plain `keras.layers.Embedding` on JAX, say) gets the dense
    update, so the optimizer is always correct and fast where the gradient
    allows it.

    Under `RatingModel.fit`, embedding regularizers are then applied to the
    rows of each batch (once per occurrence, as in classic stochastic
    gradient matrix factorization) instead of to the whole table each step,
    which would make every step dense again.

    Args:
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Float. Decay of the first-moment estimates. Defaults to
            `0.9`.
        beta_2: Float. Decay of the second-moment estimates. Defaults to
            `0.999`.
        epsilon: Float. Added to the denominator. Defaults to `1e-7`, as in
            `keras.optimizers.Adam`.
        **kwargs: Base optimizer arguments (`name`, `loss_scale_factor`,
            `use_ema`, ...). `amsgrad`, `weight_decay`, gradient clipping
            and gradient accumulation are not supported: each would touch
            every row.

    Example:

    ```python
    model = keras_catembed.RatingModel({"user_id": 6040, "movie_id": 3706})
    model.compile(optimizer=keras_catembed.optimizers.SparseAdam(2e-3),
                  loss="mse")
    ```
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        name: str = "sparse_adam",
        **kwargs: Any,
    ) -> None:
        for key in (
            "amsgrad",
            "weight_decay",
            "clipnorm",
            "clipvalue",
            "global_clipnorm",
            "gradient_accumulation_steps",
        ):
            if kwargs.get(key):
                raise ValueError(
                    f"SparseAdam does not support `{key}` (it would touch "
                    f"every row of every table). Received: {key}="
                    f"{kwargs[key]!r}. Use an embeddings regularizer or "
                    "keras.optimizers.Adam instead."
                )
            kwargs.pop(key, None)
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name,
            **kwargs,
        )

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, RowGradient):
            return self._sparse_update(
                gradient.indices, gradient.values, variable, learning_rate
            )
        rows = backend.current.sparse_gradient(gradient)
        if rows is not None:
            return self._sparse_update(*rows, variable, learning_rate)
        return super().update_step(gradient, variable, learning_rate)

    def _sparse_update(self, indices, values, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        values = ops.cast(values, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        m_rows = _gather(m, indices)
        v_rows = _gather(v, indices)
        m_rows = m_rows + (values - m_rows) * (1 - self.beta_1)
        v_rows = v_rows + (ops.square(values) - v_rows) * (1 - self.beta_2)
        step = alpha * m_rows / (ops.sqrt(v_rows) + self.epsilon)
        _scatter(self, m, indices, m_rows, "set")
        _scatter(self, v, indices, v_rows, "set")
        _scatter(self, variable, indices, step, "sub")


def _value(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _gather(variable, indices):
    return backend.current.gather_rows(_value(variable), indices)


def _scatter(optimizer, variable, indices, rows, how):
    """Sets or subtracts `rows` at `indices` of `variable`, in place."""
    backend.current.scatter_rows(optimizer, variable, indices, rows, how)
