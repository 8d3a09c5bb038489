"""`RatingTrainer`: the training and inference loops of `RatingModel`.

As Keras composes `keras.Model` from a per-backend `Trainer`,
`RatingModel` inherits its loops from this class: `compile`, `fit` (the
device loop of `_fast_fit` for in-memory arrays, Keras's `fit`
otherwise), `evaluate`, `predict` and the `*_on_batch` methods. Each
checks its inputs first (`_inputs`), runs checked arrays without the
per-step id checks, and leaves the model as it was when it fails.
"""

import collections.abc
import functools
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_catembed import _auto
from keras_catembed import _checks
from keras_catembed import _epoch_order
from keras_catembed import _fast_fit
from keras_catembed import _forward
from keras_catembed import _frames
from keras_catembed import _inputs
from keras_catembed import _pair_windows
from keras_catembed import _provenance
from keras_catembed import _sparse_rows
from keras_catembed import _step
from keras_catembed import _streams
from keras_catembed import backend
from keras_catembed import optimizers
from keras_catembed._model_base import ModelBase


class RatingTrainer(ModelBase):
    """The loops of `RatingModel`; mixed in before `keras.Model`.

    The model provides `columns` and `embedding_layers`.
    """

    def _reset_compiled(self) -> None:
        self.train_function = None
        self.test_function = None
        self.predict_function = None
        self.__dict__["_fast_fit_runners"] = {}
        self.__dict__["_step_functions"] = {}
        self.__dict__["_step_modes"] = {}

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        # Keras converts NumPy inputs to tensors before `call` (int64 ids
        # would wrap to 32 bits on JAX): check them as they are first.
        checked = _step.current(self).ids_checked
        if isinstance(inputs, collections.abc.Mapping) and not checked:
            for column, layer in self.embedding_layers.items():
                value = inputs.get(column)
                if isinstance(value, (np.ndarray, np.generic, list)):
                    layer.check_ids(value)
        return super().__call__(inputs, *args, **kwargs)

    @_step.own_method
    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """`keras.Model.compute_loss`; streamed batches' `y` checked too.

        Arrays are checked whole before a loop. A dataset's or a
        generator's batches are seen only as they run: a NaN target
        would turn every weight into NaN after one step, so the loss of
        such a step waits on a check of its targets and sample weights
        (the step then fails, and the loop restores the model).
        """
        loss = super().compute_loss(
            x, y, y_pred, sample_weight, training=training
        )
        if _step.current(self).ids_checked:
            return loss
        for value in keras.tree.flatten(y) if y is not None else ():
            loss = _checks.finite_batch(loss, value, "y", "target", "Targets")
        if sample_weight is not None:
            for value in keras.tree.flatten(sample_weight):
                loss = _checks.finite_batch(
                    loss, value, "sample_weight", "weight", "Sample weights"
                )
        return loss

    def compile(
        self, optimizer: Any = "rmsprop", *args: Any, **kwargs: Any
    ) -> None:
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = _auto.auto_optimizer(self)
        # `jit_compile` is Keras's eighth argument; the layers' id checks
        # make Keras's own steps run without XLA whatever it says, but the
        # device loop honours an explicit False (see `_fast_fit._use_xla`).
        jit_compile = kwargs.get(
            "jit_compile", args[6] if len(args) > 6 else "auto"
        )
        self.__dict__["_xla_allowed"] = jit_compile is not False
        super().compile(optimizer, *args, **kwargs)
        # Compiled steps belong to this compilation.
        self._reset_compiled()
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        sparse = isinstance(inner, optimizers.SparseAdam)
        for layer in _sparse_rows.table_layers(self):
            layer.set_row_regularization(sparse)
        for layer in _sparse_rows.list_layers(self):
            layer.set_row_regularization(sparse)

    def compile_from_config(self, config: Any) -> None:
        # `compile` above only adds to `keras.Model.compile`, so a saved
        # compile config restores as `keras.Model` restores it (Keras skips
        # that for a model with its own `compile`).
        self.compile(**keras.saving.deserialize_keras_object(config))
        # Keras saves `jit_compile` as it resolved it, False here whatever
        # was asked: the loop keeps its own rule (see `_fast_fit._use_xla`).
        self.__dict__["_xla_allowed"] = True
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: Any = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        *,
        fast: bool | str = "auto",
    ) -> keras.callbacks.History:
        """Trains the model; see `keras.Model.fit` for the arguments.

        Arrays are checked before training (see the class docstring). With
        a dict of in-memory arrays, `fit` then runs a device loop: the data
        stays on the device, each epoch is shuffled there, many steps run
        per compiled call (the model's `steps_per_execution`, or, when that
        is 1, a twentieth of the epoch in the first epoch, which is timed,
        then about a second of steps, at most half the epoch and about
        2**20 samples), and the per-step id checks are skipped. With
        `keras_catembed.optimizers.SparseAdam` each step touches only the
        table rows of its batch. Callbacks, the History, the progress bar
        and validation behave as in `keras.Model.fit` with that
        `steps_per_execution`: the bar and `on_train_batch_end` (with the
        index of each call's last step) advance after every call.

        Args:
            fast: `"auto"` (default) uses the device loop where it applies:
                array inputs without `sample_weight`, `class_weight` or
                `steps_per_epoch`, no eager mode, no `tf.distribute`
                strategy, and no `keras.distribution` except on JAX in one
                process (`DataParallel`, `ModelParallel`); other calls run
                the stock `keras.Model.fit`. `True` requires the device
                loop (a `ValueError` says why it cannot run); `False`
                always runs the stock `fit`.
        """
        # Before the input checks, which could build the model.
        _checks.require_compiled(self)
        _inputs.check_batch_size("batch_size", batch_size)
        _inputs.check_batch_size("validation_batch_size", validation_batch_size)
        _checks.rate("validation_split", validation_split)
        x, y, sample_weight = self._check_labelled("fit", x, y, sample_weight)
        validation_data = _streams.checked(
            self, _inputs.check_validation_data(self, validation_data)
        )
        kwargs = dict(
            batch_size=batch_size,
            epochs=epochs,
            verbose=verbose,
            callbacks=_pair_windows.with_refresh(
                _sparse_rows.pair_layers(self), callbacks, batch_size
            ),
            validation_split=validation_split,
            validation_data=validation_data,
            shuffle=shuffle,
            initial_epoch=initial_epoch,
            validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
        )
        slow = dict(
            class_weight=class_weight,
            sample_weight=sample_weight,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
        )
        if not (fast is True or fast is False or fast == "auto"):
            raise ValueError(
                f'`fast` must be "auto", True or False. Received: fast={fast!r}'
            )
        reason = None if fast is False else _fast_fit.blocker(self, x, y, slow)
        if fast is True and reason is not None:
            raise ValueError(
                f"`fast=True` needs in-memory array inputs and a plain "
                f"training set-up, but {reason}."
            )
        # The rows are fingerprinted in a thread while the model trains.
        start_hashing = functools.partial(
            _provenance.start, self, x, y, validation_split, validation_data
        )
        # Validation batches from a dataset or generator are checked only
        # as they run, after training: a failure then restores the state.
        streamed = validation_data is not None and not isinstance(
            validation_data, (tuple, list)
        )
        if fast is False or reason is not None:
            pending = start_hashing()
            # On TensorFlow, arrays in a new order every epoch.
            data, targets, options = _epoch_order.stock_fit_data(
                self, x, y, {**kwargs, **slow}
            )
            history = self._run(
                "train",
                x,
                super().fit,
                data,
                targets,
                copy_state=streamed,
                **options,
            )
        else:
            # Once the first epoch's order is drawn: until then the thread
            # drawing it has the spare core to itself.
            started: list[Any] = []
            saved = backend.current.save_state(
                self, copy=streamed, training=True
            )
            try:
                history = _fast_fit.fit(
                    self,
                    x,
                    y,
                    **kwargs,
                    on_order_drawn=lambda: started.append(start_hashing()),
                )
            except BaseException:
                backend.current.restore_state(self, saved)
                raise
            pending = started[0] if started else start_hashing()
        backend.current.unshare_ema_buffers(self)
        _provenance.finish(self, pending)
        return history

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        sample_weight: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _checks.require_compiled(self)
        _inputs.check_batch_size("batch_size", batch_size)
        x, y, sample_weight = self._check_labelled(
            "evaluate", x, y, sample_weight
        )
        _provenance.warn_overlap(self, x, y)
        return self._run(
            "test",
            x,
            super().evaluate,
            x,
            y,
            batch_size,
            verbose,
            sample_weight,
            *args,
            **kwargs,
        )

    def predict(
        self, x: Any, batch_size: int | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        _inputs.check_batch_size("batch_size", batch_size)
        x = _streams.checked(self, _inputs.check_x(self, x, "predict"))
        return self._run(
            "predict", x, super().predict, x, batch_size, *args, **kwargs
        )

    def predict_on_batch(self, x: Any) -> Any:
        x = _inputs.check_x(self, x, "predict_on_batch")
        return self._run("predict", x, super().predict_on_batch, x)

    def _check_labelled(
        self, method: str, x: Any, y: Any, sample_weight: Any
    ) -> tuple[Any, Any, Any]:
        """`x`, `y` and `sample_weight` of the loop `method`, checked."""
        x = _streams.checked(self, _inputs.check_x(self, x, method))
        if y is None and _inputs.checked(self.columns, x):
            # A dataset or generator may carry the ratings; arrays cannot.
            raise ValueError(
                f"`{method}` needs the ratings `y` with array inputs "
                "(one per row). Received: y=None"
            )
        y = _frames.values(y)
        sample_weight = _frames.values(sample_weight, "sample_weight")
        _inputs.check_y(y)
        _inputs.check_sample_weight(sample_weight)
        _inputs.check_labelled_rows(self, x, y, sample_weight)
        return x, y, sample_weight

    def _on_batch(
        self,
        method: str,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Keras's `train_on_batch` or `test_on_batch`, inputs checked."""
        _checks.require_compiled(self)
        x, y, sample_weight = self._check_labelled(method, x, y, sample_weight)
        kind = "train" if method == "train_on_batch" else "test"
        run = getattr(super(), method)
        return self._run(kind, x, run, x, y, sample_weight, *args, **kwargs)

    # Keras's loops over one batch, their inputs checked first.
    train_on_batch = functools.partialmethod(_on_batch, "train_on_batch")
    test_on_batch = functools.partialmethod(_on_batch, "test_on_batch")

    def _run(
        self,
        kind: str,
        x: Any,
        method: Callable[..., Any],
        *args: Any,
        copy_state: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Runs a Keras loop, without per-step id checks for checked arrays.

        Keras caches one compiled function per kind (`train`, `test`,
        `predict`); this keeps two, one traced with the in-graph id checks
        (for datasets and generators, which `check_x` cannot see) and one
        without (for arrays `check_x` has checked), and installs the one
        the input needs.

        A call that fails leaves the model as it was. Keras's JAX trainer
        detaches the variables' values while its loop runs and donates them
        to each compiled step, so an error inside a step (an in-graph id
        check, say) would otherwise leave every variable empty. Inputs that
        were not checked up front can fail in the graph, so their call
        first copies the variables (and restores them on failure, on every
        backend: a stream that fails at its tenth batch trains nothing).
        `copy_state` copies them for checked inputs too (a `fit` whose
        validation data is a stream).
        """
        trusted = _inputs.checked(self.columns, x)
        attribute = f"{kind}_function"
        functions = self.__dict__.setdefault("_step_functions", {})
        modes = self.__dict__.setdefault("_step_modes", {})
        if modes.get(kind, trusted) != trusted:
            functions[(kind, modes[kind])] = getattr(self, attribute)
            setattr(self, attribute, functions.pop((kind, trusted), None))
        modes[kind] = trusted
        # JAX caches traces by function, and Keras jits the bound step
        # method: build the unchecked variant from a distinct function.
        step = f"{kind}_step"
        override = (
            trusted
            and backend.current.DISTINCT_STEP_FUNCTIONS
            and getattr(self, attribute) is None
        )
        if override:
            self.__dict__[step] = functools.partial(
                getattr(type(self), step), self
            )
        saved = backend.current.save_state(
            self, copy=copy_state or not trusted, training=kind == "train"
        )
        direct = _forward.calls_layers_directly(self)
        try:
            with (
                _step.checked_ids(self, trusted),
                _step.direct_calls(self, direct),
            ):
                return method(*args, **kwargs)
        except BaseException:
            backend.current.restore_state(self, saved)
            raise
        finally:
            if override:
                del self.__dict__[step]
