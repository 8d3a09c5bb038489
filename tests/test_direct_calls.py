"""Steps that call RatingModel's layers' `call` directly train the same."""

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import _forward
from keras_catembed import _step
from keras_catembed import optimizers

USERS, MOVIES = 14, 11


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS, n).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, n).astype("int32"),
    }
    y = (1 + 4 * rng.integers(0, 5, n)).astype("float32") / 4 + 0.75
    return x, y


class Crossed(keras_catembed.RatingModel):
    """An interaction of its own: the vectors and their product."""

    def interact(self, embedded):
        user, movie = embedded["user_id"], embedded["movie_id"]
        return keras.ops.concatenate([user, movie, user * movie], axis=-1)


def make_model(
    optimizer="sparse", seed=3, cls=None, regularized=True, **kwargs
):
    """Dropout, entity dropout, biases, L2 rows, implicit, neighbourhood.

    With `regularized=False` the tables have no L2 penalty, so no layer
    adds a loss as it runs.
    """
    keras.utils.set_random_seed(seed)

    def table(n):
        return keras_catembed.EntityEmbedding(
            n,
            4,
            dropout=0.2,
            embeddings_regularizer=keras.regularizers.L2(0.01)
            if regularized
            else None,
        )

    model = (cls or keras_catembed.RatingModel)(
        {"user_id": table(USERS), "movie_id": table(MOVIES)},
        hidden_units=[8, 4],
        dropout=0.3,
        bias_terms=True,
        rating_range=(0.5, 5.5),
        implicit=True,
        neighborhood=True,
        **kwargs,
    )
    x, y = data()
    model.adapt(x, y)
    model.build()
    model.compile(
        optimizer=optimizers.SparseAdam(0.01)
        if optimizer == "sparse"
        else keras.optimizers.Adam(0.01),
        loss="mse",
    )
    return model


def losses(model):
    return [float(keras.ops.convert_to_numpy(v)) for v in model.losses]


def weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.mark.parametrize("training", [False, True])
def test_a_direct_forward_pass_equals_the_layered_one(training):
    x, _ = data(n=40, seed=1)
    # Twin models: the same weights and dropout seeds.
    model = make_model()
    layered = keras.ops.convert_to_numpy(model(x, training=training))
    layered_losses = losses(model)
    model = make_model()
    with _step.direct_calls(model):
        direct = keras.ops.convert_to_numpy(model(x, training=training))
        direct_losses = losses(model)
    np.testing.assert_allclose(direct, layered, rtol=1e-6)
    # The penalties of the looked-up rows are added as before: a direct
    # call passes `training` to each layer itself.
    assert len(direct_losses) == len(layered_losses) > 0
    assert direct_losses == pytest.approx(layered_losses)


torch_only = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the eager torch loop"
)


@torch_only
@pytest.mark.parametrize(
    "optimizer, cls",
    [("sparse", None), ("adam", None), ("sparse", Crossed)],
)
def test_torch_loop_trains_alike_with_and_without_direct_calls(
    optimizer, cls, monkeypatch
):

    x, y = data()
    direct = make_model(optimizer, cls=cls)
    assert _forward.calls_layers_directly(direct)
    start = weights(direct)
    keras.utils.set_random_seed(11)
    direct.fit(x, y, batch_size=16, epochs=3, verbose=0, fast=True)

    monkeypatch.setattr(_forward, "DIRECT_CALLS", False)
    layered = make_model(optimizer, cls=cls)
    assert not _forward.calls_layers_directly(layered)
    keras.utils.set_random_seed(11)
    layered.fit(x, y, batch_size=16, epochs=3, verbose=0, fast=True)
    moved = max(
        np.abs(a - b).max() for a, b in zip(weights(direct), start, strict=True)
    )
    assert moved > 1e-2
    for a, b in zip(weights(direct), weights(layered), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@torch_only
def test_layers_needing_their_bookkeeping_are_called_as_layers():

    model = make_model()
    assert _forward.calls_layers_directly(model)
    # An activity regularizer is added by `Layer.__call__` only.
    model.hidden_layers[0].activity_regularizer = keras.regularizers.L2(0.1)
    assert not _forward.calls_layers_directly(model)

    # A torch hook runs in `__call__` only.
    model = make_model()
    handle = model.output_layer.register_forward_hook(lambda *args: None)
    assert not _forward.calls_layers_directly(model)
    handle.remove()
    assert _forward.calls_layers_directly(model)

    class Scaled(keras.layers.Dense):
        pass

    model = make_model()
    model.hidden_layers[1] = Scaled(4)
    assert not _forward.calls_layers_directly(model)

    # Mixed precision: `__call__` casts the inputs and autocasts.
    model = make_model(dtype="mixed_float16")
    assert not _forward.calls_layers_directly(model)

    # A `call` or `embed` of its own may call RatingModel's without
    # `training`, which a direct call would not fill in.
    class OwnCall(keras_catembed.RatingModel):
        def call(self, inputs, training=None):
            return super().call(inputs) * 1.0

    class OwnEmbed(keras_catembed.RatingModel):
        def embed(self, inputs, training=None):
            return super().embed(inputs)

    for cls in (OwnCall, OwnEmbed):
        own = cls(
            {
                "user_id": keras_catembed.EntityEmbedding(USERS, 4),
                "movie_id": keras_catembed.EntityEmbedding(MOVIES, 4),
            }
        )
        own.build()
        assert not _forward.calls_layers_directly(own)
    # An `interact` of its own gets no `training`.
    assert _forward.calls_layers_directly(make_model(cls=Crossed))


@torch_only
def test_torch_loops_skip_the_layer_bookkeeping_and_agree(monkeypatch):

    x, y = data()
    calls = []
    layer_call = keras.layers.Dense.__call__

    def counted(self, *args, **kwargs):
        calls.append(self)
        return layer_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Dense, "__call__", counted)
    results = {}
    for direct in (True, False):
        monkeypatch.setattr(_forward, "DIRECT_CALLS", direct)
        model = make_model()
        keras.utils.set_random_seed(5)
        # The first call builds the loop's state (one forward pass).
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        calls.clear()
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        # Keras's own loop (as for datasets).
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, fast=False)
        predicted = model.predict(x, batch_size=8, verbose=0)
        evaluated = model.evaluate(x, y, batch_size=8, verbose=0)
        # Direct: no Dense is called as a layer in either `fit`, `predict`
        # or `evaluate`; layered: each of the three Dense layers per batch.
        assert len(calls) == (0 if direct else 3 * (8 + 8 + 15 + 15))
        results[direct] = predicted, evaluated
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-5)
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-5)


@torch_only
def test_a_model_whose_layers_add_no_loss_skips_its_own_layer_call():
    model = make_model(regularized=False)
    assert _forward.calls_model_directly(model)
    # Penalties of the looked-up rows are `add_loss`es, which the
    # model's `Layer.__call__` clears before each step.
    assert _forward.calls_layers_directly(make_model())
    assert not _forward.calls_model_directly(make_model())
    # An `interact` of its own may call layers that read `training` from
    # the model's call.
    assert not _forward.calls_model_directly(
        make_model(cls=Crossed, regularized=False)
    )
    handle = model.register_forward_pre_hook(lambda *args: None)
    assert not _forward.calls_model_directly(model)
    handle.remove()
    assert _forward.calls_model_directly(model)
    # A loss of the model's own, added by its `Layer.__call__`.
    model.activity_regularizer = keras.regularizers.L2(0.1)
    assert not _forward.calls_model_directly(model)
    model.activity_regularizer = None
    assert _forward.calls_model_directly(model)
    model.hidden_layers[0].activity_regularizer = keras.regularizers.L2(0.1)
    assert not _forward.calls_model_directly(model)

    class OwnLayerCall(keras_catembed.RatingModel):
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **kwargs)

    own = make_model(cls=OwnLayerCall, regularized=False)
    assert _forward.calls_layers_directly(own)
    assert not _forward.calls_model_directly(own)


@torch_only
def test_torch_sparse_steps_without_the_model_call_train_alike(monkeypatch):
    x, y = data()
    calls = []
    layer_call = keras.layers.Layer.__call__

    def counted(self, *args, **kwargs):
        # The model's `Layer.__call__` (a RatingModel's own `__call__`
        # stays, so that the model qualifies).
        if isinstance(self, keras_catembed.RatingModel):
            calls.append(kwargs.get("training"))
        return layer_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counted)
    trained = {}
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(
                _forward, "calls_model_directly", lambda model: False
            )
        model = make_model(regularized=False)
        start = weights(model)
        keras.utils.set_random_seed(11)
        calls.clear()
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, fast=True)
        # Skipped: only the first call's build runs the model as a layer
        # (one forward pass), not the 24 steps; kept: every step too.
        steps = [training for training in calls if training is True]
        assert len(steps) == (0 if skip else 3 * 8)
        moved = max(
            np.abs(a - b).max()
            for a, b in zip(weights(model), start, strict=True)
        )
        assert moved > 1e-2
        trained[skip] = weights(model)
    # Dropout and entity dropout ran in both (the same draws): equal.
    for a, b in zip(trained[True], trained[False], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@torch_only
def test_the_torch_step_size_follows_the_step_and_the_learning_rate():
    from keras_catembed.backend import torch as torch_backend

    optimizer = optimizers.SparseAdam(0.01)
    optimizer.build([keras.Variable(np.zeros((2, 2), "float32"))])

    def expected():
        t = float(optimizer.iterations.numpy()) + 1
        rate = float(optimizer.learning_rate.numpy())
        return (
            rate * np.sqrt(1 - optimizer.beta_2**t) / (1 - optimizer.beta_1**t)
        )

    def step_size_tensor():
        return torch_backend._step_size(
            optimizer, optimizer._learning_rate, torch_backend.torch.float32
        )

    def step_size():
        return float(step_size_tensor())

    # Computed once for a step: the same tensor again.
    assert step_size_tensor() is step_size_tensor()
    first = step_size()
    assert first == pytest.approx(expected(), rel=1e-4)
    optimizer.iterations.assign_add(1)
    second = step_size()
    assert second == pytest.approx(expected(), rel=1e-4)
    assert second != pytest.approx(first, rel=1e-3)
    # A new rate, assigned in place, at the same step.
    optimizer.learning_rate = 0.5
    assert step_size() == pytest.approx(50 * second, rel=1e-5)


def test_only_a_backend_running_layers_eagerly_calls_them_directly():
    model = make_model()
    eager = keras.backend.backend() == "torch"
    assert _forward.calls_layers_directly(model) == eager
