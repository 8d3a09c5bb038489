"""JAX: models whose device loops are the same program compile it once."""

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import optimizers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX's compiled programs"
)

# Shapes that no other test uses, so that only this module's models can
# have compiled these programs.
USERS, MOVIES, ROWS, BATCH = 17, 23, 131, 19


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS, ROWS).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, ROWS).astype("int32"),
    }
    return x, (1 + 4 * rng.random(ROWS)).astype("float32")


def make_model(optimizer="adam", learning_rate=0.01, hidden_units=(8,)):
    model = keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES},
        hidden_units=list(hidden_units),
        bias_terms=True,
        rating_range=(0.5, 5.5),
    )
    model.build()
    if optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate)
    else:
        optimizer = optimizers.SparseAdam(learning_rate)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def fit(model, x, y):
    return model.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, fast=True, verbose=0
    ).history["loss"]


@pytest.fixture
def programs(monkeypatch):
    from keras_catembed.backend import jax_programs

    jax_programs.clear()
    monkeypatch.setattr(jax_programs, "counts", {"shared": 0, "compiled": 0})
    yield jax_programs
    jax_programs.clear()


@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_a_second_model_of_the_same_program_trains_with_the_first_compiled(
    optimizer, programs, monkeypatch
):
    # Each fit compiles two block lengths (a block of steps and the
    # epoch's last, shorter block). The second model, another learning
    # rate and other initial weights, shares both: the learning rate is
    # an optimizer variable, an argument of the program. Its training is
    # that of the same model compiling its own program.
    x, y = data()
    fit(make_model(optimizer), x, y)
    first = dict(programs.counts)
    assert first["compiled"] >= 1 and first["shared"] == 0
    second = make_model(optimizer, learning_rate=0.03)
    alone = make_model(optimizer, learning_rate=0.03)
    alone.set_weights(second.get_weights())
    losses = fit(second, x, y)
    assert programs.counts == {
        "shared": first["compiled"],
        "compiled": first["compiled"],
    }
    monkeypatch.setattr(programs, "LIMIT", 0)
    alone_losses = fit(alone, x, y)
    assert programs.counts["compiled"] == 2 * first["compiled"]
    for a, b in zip(second.get_weights(), alone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(losses, alone_losses)
    # The learning rate is the second model's own: the first model's,
    # from the same weights, trains elsewhere.
    slower = make_model(optimizer, learning_rate=0.01)
    slower.set_weights(alone.get_weights())
    reference = make_model(optimizer, learning_rate=0.03)
    reference.set_weights(alone.get_weights())
    monkeypatch.setattr(programs, "LIMIT", 16)
    before = dict(programs.counts)
    fit(slower, x, y)
    fit(reference, x, y)
    assert programs.counts == {
        "shared": before["shared"] + 2 * first["compiled"],
        "compiled": before["compiled"],
    }
    assert not np.allclose(
        slower.get_weights()[0], reference.get_weights()[0], atol=1e-4
    )


def test_another_architecture_compiles_its_own_program(programs):
    x, y = data()
    fit(make_model(), x, y)
    first = programs.counts["compiled"]
    fit(make_model(hidden_units=(16,)), x, y)
    assert programs.counts == {"shared": 0, "compiled": 2 * first}


def test_programs_that_call_back_into_python_are_never_shared(programs):
    import jax

    seen = []

    def traced(tag):
        def function(value):
            jax.debug.callback(lambda v: seen.append((tag, float(v))), value)
            return value * 2.0

        return jax.jit(function)

    one = programs.compiled(traced("one"), np.float32(1.0))
    two = programs.compiled(traced("two"), np.float32(1.0))
    assert programs.counts == {"shared": 0, "compiled": 2}
    one(np.float32(3.0))
    two(np.float32(4.0))
    jax.effects_barrier()
    assert seen == [("one", 3.0), ("two", 4.0)]


def test_identical_functions_share_and_the_oldest_program_is_dropped(
    programs, monkeypatch
):
    import jax

    monkeypatch.setattr(programs, "LIMIT", 2)

    def scaled(factor):
        return jax.jit(lambda value: value * factor)

    args = (np.ones(3, "float32"),)
    double = programs.compiled(scaled(2.0), *args)
    np.testing.assert_array_equal(double(*args), [2.0, 2.0, 2.0])
    again = programs.compiled(scaled(2.0), *args)
    assert again is double
    # Another constant is another program.
    triple = programs.compiled(scaled(3.0), *args)
    np.testing.assert_array_equal(triple(*args), [3.0, 3.0, 3.0])
    assert programs.counts == {"shared": 1, "compiled": 2}
    programs.compiled(scaled(4.0), *args)  # Drops the doubling.
    assert programs.compiled(scaled(2.0), *args) is not double
    assert programs.counts == {"shared": 1, "compiled": 4}


def test_the_members_of_an_ensemble_of_one_architecture_share_the_loop(
    programs,
):
    x, y = data(seed=1)
    members = [make_model(), make_model()]
    for member in members:
        member.recipe = keras_catembed.training.Recipe(
            optimizer="adam",
            learning_rate=0.01,
            schedule="constant",
            batch_size=BATCH,
            epochs=2,
            ema_momentum=None,
        )
    ensemble = keras_catembed.RatingEnsemble(members)
    ensemble.compile(loss="mse")
    ensemble.fit(x, y, verbose=0)
    assert programs.counts["shared"] >= 1
    assert programs.counts["shared"] == programs.counts["compiled"]
    first, second = (
        keras.ops.convert_to_numpy(m.predict(x, verbose=0)) for m in members
    )
    assert not np.allclose(first, second)


class Lowering:
    """A stand-in for `jax.jit(...)`: its lowering reads `text`."""

    def __init__(self, text):
        self.text = text

    def lower(self, *args):
        return self

    def as_text(self):
        return self.text

    in_tree = out_tree = "tree"

    def compile(self):
        return object()


TEXT = "func.func public @main(%arg0: tensor<16xf32>) -> tensor<16xf32>"


def test_the_same_text_with_arguments_placed_otherwise_is_not_shared(
    programs,
):
    import jax

    on_device = jax.device_put(np.zeros(16, "float32"), jax.devices()[0])
    first = programs.compiled(Lowering(TEXT), np.zeros(16, "float32"))
    assert programs.compiled(Lowering(TEXT), np.ones(16, "float32")) is first
    assert programs.compiled(Lowering(TEXT), on_device) is not first
    assert programs.counts == {"shared": 1, "compiled": 2}
    # The real lowerings differ too: a committed argument is annotated.
    loose = jax.jit(lambda value: value * 2.0).lower(jax.numpy.ones(16))
    placed = jax.jit(lambda value: value * 2.0).lower(on_device)
    assert loose.as_text() != placed.as_text()


@pytest.mark.parametrize(
    "mark",
    [
        # A constant hoisted into an argument the compiled program holds
        # (JAX's `jax_use_simplified_jaxpr_constants`).
        "%arg1: tensor<16xf32> {jax.const = true}",
        # A host callback on TPU: host transfers, no custom call.
        "stablehlo.send %0 {is_host_transfer = true}",
        "stablehlo.custom_call @xla_ffi_python_cpu_callback(%0)",
    ],
)
def test_texts_that_do_not_show_everything_are_never_shared(programs, mark):
    args = (np.zeros(16, "float32"),)
    first = programs.compiled(Lowering(TEXT + mark), *args)
    assert programs.compiled(Lowering(TEXT + mark), *args) is not first
    assert programs.counts == {"shared": 0, "compiled": 2}


def test_programs_with_other_array_constants_are_not_shared(programs):
    import jax

    def adding(k):
        constant = np.arange(16, dtype="float32") * k
        return jax.jit(lambda value: value + constant, keep_unused=True)

    args = (np.zeros(16, "float32"),)
    one = programs.compiled(adding(1.0), *args)
    two = programs.compiled(adding(2.0), *args)
    np.testing.assert_array_equal(one(*args), np.arange(16))
    np.testing.assert_array_equal(two(*args), 2 * np.arange(16))
    assert programs.counts == {"shared": 0, "compiled": 2}
