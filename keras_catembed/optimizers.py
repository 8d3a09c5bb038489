"""Optimizers that update only the embedding rows a batch touches."""

import math
from typing import Any

import keras
from keras import ops

from keras_catembed import _sparse_average
from keras_catembed import _sparse_decay
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

    `weight_decay` is the decoupled weight decay of
    `keras.optimizers.AdamW`: each step multiplies every variable by
    `1 - learning_rate * weight_decay` before its Adam update. For the rows
    a step does not touch, that product is applied lazily: the optimizer
    keeps the running product of the factors (as a sum of logarithms) and,
    per table row, where it stood when the row was last decayed; a row
    takes the factors of the steps it missed when a step next updates it,
    and every row takes them when training ends (`finalize_variable_values`,
    which `fit` calls), at the cost of one extra float per table row.
    This is not quite decaying every row at every step: the step that next
    reads a row computes the loss and the gradient from the row as it was
    last written, before the factors it owes, so a row read rarely enters
    those steps larger than it would under per-step decay (by
    `1 / (1 - learning_rate * weight_decay) ** n` after `n` skipped steps).
    A row no step reads again ends exactly as per-step decay leaves it. Exclude
    variables with `exclude_from_weight_decay`, as with any Keras
    optimizer. With `use_ema`, the average sees each row as it was last
    written.

    With `use_ema=True` (Keras's moving average of the weights, which
    Keras updates for every row at every step), the device loop of
    `RatingModel.fit` has the optimizer average a table's rows as a step
    writes them: a row that skipped `n` steps kept its value, so its
    average first takes those steps in closed form (`m ** n` times the
    old average plus `1 - m ** n` times the row, `m` the momentum), then
    this step's value. The loop settles every row's average at the end of
    each epoch and of the call (`settle_moving_average`), so validation,
    `keras.callbacks.SwapEMAWeights` and the final weights see the
    averages of Keras's update. Keras's own loops, and
    `ema_overwrite_frequency`, keep Keras's update.

    Args:
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Float. Decay of the first-moment estimates. Defaults to
            `0.9`.
        beta_2: Float. Decay of the second-moment estimates. Defaults to
            `0.999`.
        epsilon: Float. Added to the denominator. Defaults to `1e-7`, as in
            `keras.optimizers.Adam`.
        weight_decay: Optional float >= 0. Decoupled weight decay, applied
            lazily to skipped rows (see above). Defaults to `None` (none).
        exclude_from_weight_decay_paths: Optional list of variable paths
            (`variable.path`) that the decay skips. The variables passed
            to `exclude_from_weight_decay(var_list=...)` are recorded here,
            so that the config, and a saved model's optimizer, keep them.
        **kwargs: Base optimizer arguments (`name`, `loss_scale_factor`,
            `use_ema`, ...). `amsgrad`, gradient clipping and gradient
            accumulation are not supported: each would touch every row.

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
        weight_decay: float | None = None,
        name: str = "sparse_adam",
        exclude_from_weight_decay_paths: Any = None,
        **kwargs: Any,
    ) -> None:
        for key in (
            "amsgrad",
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
        if weight_decay is not None and not (
            isinstance(weight_decay, (int, float))
            and not isinstance(weight_decay, bool)
            and math.isfinite(weight_decay)
            and weight_decay >= 0
        ):
            raise ValueError(
                "`weight_decay` must be None or a finite number >= 0. "
                f"Received: weight_decay={weight_decay!r}"
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        # The paths of the variables excluded from the decay, kept in the
        # config so that a loaded model's optimizer excludes them too.
        self._excluded_paths = sorted(exclude_from_weight_decay_paths or [])
        # Set by `RatingModel.fit`'s device loop while it runs (it brings
        # the averages up to date wherever they are read): the moving
        # average of a table then follows the rows each step writes.
        self._lazy_average = False
        self._rows_averaged: set[int] = set()
        # Per row of each matrix, when its average was last brought up to
        # date (see `_sparse_average`), and when it was last decayed (see
        # `_sparse_decay`); set by `build`.
        self._average_marks: list[Any] = []
        self._decay_marks: list[Any] = []

    def exclude_from_weight_decay(
        self, var_list: Any = None, var_names: Any = None
    ) -> None:
        super().exclude_from_weight_decay(var_list, var_names)
        self._excluded_paths = sorted(v.path for v in var_list or [])
        self._excluded_names = list(var_names or [])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        if self._excluded_paths:
            config["exclude_from_weight_decay_paths"] = self._excluded_paths
        return config

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        if self._excluded_paths and not getattr(
            self, "_exclude_from_weight_decay", None
        ):
            # Exclusions from the config (a loaded model): the variables
            # are known now.
            paths = set(self._excluded_paths)
            self.exclude_from_weight_decay(
                var_list=[v for v in variables if v.path in paths],
                var_names=getattr(self, "_excluded_names", None),
            )
        super().build(variables)
        self._average_marks = _sparse_average.build_marks(self, variables)
        _sparse_decay.build(self, variables)

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        # Keras would multiply every row of every variable each step: the
        # decay is applied in `update_step` instead, lazily for the rows a
        # step skips.
        return

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        self._rows_averaged = set()
        if self.weight_decay is None:
            return super().apply(grads, trainable_variables)
        # This step's factor, at the rate of this step.
        step_log = _sparse_decay.step_log(self, self.learning_rate)
        result = super().apply(grads, trainable_variables)
        _sparse_decay.advance(self, step_log)
        return result

    def update_step(
        self, gradient: Any, variable: Any, learning_rate: Any
    ) -> Any:
        rows: tuple[Any, Any] | None
        current = None
        if isinstance(gradient, RowGradient):
            rows = gradient.indices, gradient.values
            current = gradient.rows
        else:
            rows = backend.current.sparse_gradient(gradient)
        decayed = self.weight_decay is not None and self._use_weight_decay(
            variable
        )
        if rows is None:
            if decayed:
                _sparse_decay.decay_all(self, variable, learning_rate)
            return super().update_step(gradient, variable, learning_rate)
        indices, values = rows
        stored = None
        if _sparse_average.averages_rows(self, variable):
            if current is None:
                current = _gather(variable, indices)
            # The rows as last written: what the average saw since.
            stored = current
        if decayed:
            if current is None:
                current = _gather(variable, indices)
            current = _sparse_decay.decay_rows(
                self, variable, indices, current, learning_rate
            )
        written = self._sparse_update(
            indices, values, variable, learning_rate, current
        )
        if stored is not None:
            _sparse_average.average_rows(
                self, variable, indices, stored, written
            )
        return None

    def _backend_update_step(
        self, grads: Any, trainable_variables: Any, learning_rate: Any
    ) -> None:
        # Keras's loop over `update_step`, except that on a backend that
        # runs eagerly (torch), where one `update_step` per variable costs
        # more than its arithmetic, the dense gradients' Adam updates run
        # together.
        pairs = list(zip(grads, trainable_variables, strict=True))
        dense = [
            (gradient, variable)
            for gradient, variable in pairs
            if gradient is not None and not isinstance(gradient, RowGradient)
        ]
        if (
            not backend.current.EAGER_ADAM
            or self.weight_decay is not None
            or len(dense) < 2
        ):
            super()._backend_update_step(
                grads, trainable_variables, learning_rate
            )
            return
        backend.current.adam_together(
            self, [g for g, _ in dense], [v for _, v in dense], learning_rate
        )
        for gradient, variable in pairs:
            if isinstance(gradient, RowGradient):
                self.update_step(gradient, variable, learning_rate)

    def _sparse_update(
        self,
        indices: Any,
        values: Any,
        variable: Any,
        learning_rate: Any,
        current: Any = None,
    ) -> Any:
        """Adam on the `indices` rows; `current`: their values, if known.

        Returns the rows written when `current` is given, else `None`.
        """
        if backend.current.EAGER_ADAM:
            step = backend.current.adam_rows(
                self, variable, indices, values, learning_rate
            )
        else:
            step = self._adam_rows(variable, indices, values, learning_rate)
        if current is None:
            _scatter(self, variable, indices, step, "sub")
            return None
        # One write of the rows, decay and step together.
        written = current - step
        _scatter(self, variable, indices, written, "set")
        return written

    def _adam_rows(
        self, variable: Any, indices: Any, values: Any, learning_rate: Any
    ) -> Any:
        """Updates the `indices` rows' moments; returns the rows' step.

        (`backend.current.adam_rows` does the same on an eager backend.)
        """
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
        _scatter(self, m, indices, m_rows, "set")
        _scatter(self, v, indices, v_rows, "set")
        return alpha * m_rows / (ops.sqrt(v_rows) + self.epsilon)

    def _update_model_variables_moving_average(
        self, trainable_variables: Any
    ) -> None:
        if not any(mark is not None for mark in self._average_marks):
            super()._update_model_variables_moving_average(trainable_variables)
            return
        _sparse_average.average_the_rest(self, trainable_variables)

    def settle_moving_average(self, var_list: list[Any]) -> None:
        """Brings the average of every row up to the last step.

        Within `RatingModel.fit`'s device loop, a table's moving average
        (`use_ema=True`) takes the steps a row skipped when the row is
        next written; this gives every row the average of averaging all
        rows at every step. `apply_owed_decay` and
        `finalize_variable_values` call it first, so that the device loop
        settles the averages at the end of every epoch, before validation
        and the callbacks (`keras.callbacks.SwapEMAWeights`). Without
        `use_ema` it does nothing.

        Args:
            var_list: The variables whose averages to settle.
        """
        _sparse_average.settle(self, var_list)

    def load_own_variables(self, store: Any) -> None:
        if not _sparse_average.load_without_marks(self, store):
            super().load_own_variables(store)

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        """Applies the decay that skipped rows still owe, then Keras's own."""
        self.apply_owed_decay(var_list)
        super().finalize_variable_values(var_list)

    def apply_owed_decay(self, var_list: list[Any]) -> None:
        """Decays every row by the factors of the steps it skipped.

        Afterwards each row holds its last written value times every
        factor since. `finalize_variable_values` (called when `fit` ends)
        calls it, and so does the device loop of `RatingModel.fit` at the
        end of each epoch, before validation and the epoch-end callbacks.
        Without `weight_decay` it does nothing, except that it first
        settles the moving average (`settle_moving_average`), which saw
        each row as it was last written.

        Args:
            var_list: The variables to settle (those not decayed lazily
                are left as they are).
        """
        self.settle_moving_average(var_list)
        if self.weight_decay is None or not self.built:
            return
        _sparse_decay.settle_all(self, var_list)


def _value(variable: Any) -> Any:
    return variable.value if isinstance(variable, keras.Variable) else variable


def _gather(variable: Any, indices: Any) -> Any:
    return backend.current.gather_rows(_value(variable), indices)


def _scatter(
    optimizer: Any, variable: Any, indices: Any, rows: Any, how: str
) -> None:
    """Sets or subtracts `rows` at `indices` of `variable`, in place."""
    backend.current.scatter_rows(optimizer, variable, indices, rows, how)
