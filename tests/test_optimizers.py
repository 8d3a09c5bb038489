"""SparseAdam: lazy row updates against a NumPy reference."""

import keras
import numpy as np
import pytest

from keras_catembed import optimizers

BETA_1, BETA_2, EPSILON, LR = 0.9, 0.999, 1e-7, 0.1


def lazy_adam_reference(table, steps, decay=0.0):
    """NumPy lazy Adam: `steps` is a list of (row indices, row grads).

    With `decay`, every row is first multiplied by `1 - LR * decay` at
    every step (AdamW's decoupled weight decay).
    """
    table = table.astype(np.float64).copy()
    m = np.zeros_like(table)
    v = np.zeros_like(table)
    for t, (rows, grads) in enumerate(steps, start=1):
        table *= 1 - LR * decay
        summed = np.zeros_like(table)
        np.add.at(summed, rows, grads)
        rows = np.unique(rows)
        g = summed[rows]
        m[rows] = BETA_1 * m[rows] + (1 - BETA_1) * g
        v[rows] = BETA_2 * v[rows] + (1 - BETA_2) * g**2
        alpha = LR * np.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
        table[rows] -= alpha * m[rows] / (np.sqrt(v[rows]) + EPSILON)
    return table


def sparse_gradient(rows, grads):
    """A row-sparse gradient as the backend produces it."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.IndexedSlices(
            tf.constant(grads, tf.float32), tf.constant(rows, tf.int32)
        )
    unique, inverse = np.unique(rows, return_inverse=True)
    summed = np.zeros((len(unique), grads.shape[1]), np.float32)
    np.add.at(summed, inverse, grads)
    return optimizers.RowGradient(
        keras.ops.convert_to_tensor(unique.astype(np.int32)),
        keras.ops.convert_to_tensor(summed),
    )


def test_sparse_adam_matches_lazy_adam_reference():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    # Row 5 appears twice in the first step (its gradients add up); row 0
    # only in the first step, so it must not move afterwards.
    steps = [
        (np.array([0, 5, 5, 2]), rng.normal(size=(4, 3)).astype(np.float32)),
        (np.array([2, 7]), rng.normal(size=(2, 3)).astype(np.float32)),
        (np.array([5, 2, 1]), rng.normal(size=(3, 3)).astype(np.float32)),
    ]
    table = keras.Variable(initial)
    optimizer = optimizers.SparseAdam(LR, epsilon=EPSILON)
    optimizer.build([table])
    after_first = None
    for rows, grads in steps:
        optimizer.apply([sparse_gradient(rows, grads)], [table])
        if after_first is None:
            after_first = keras.ops.convert_to_numpy(table).copy()
    result = keras.ops.convert_to_numpy(table)
    np.testing.assert_allclose(
        result, lazy_adam_reference(initial, steps), rtol=1e-5, atol=1e-6
    )
    # Untouched rows keep their initial values, row 0 its first-step value.
    np.testing.assert_array_equal(result[[3, 4, 6]], initial[[3, 4, 6]])
    np.testing.assert_array_equal(result[0], after_first[0])
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 3


def test_sparse_adam_first_step_equals_adam_and_later_steps_are_lazy():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(6, 2)).astype(np.float32)
    dense_steps = [np.zeros((6, 2), np.float32) for _ in range(2)]
    dense_steps[0][[1, 4]] = rng.normal(size=(2, 2))
    dense_steps[1][[1]] = rng.normal(size=(1, 2))
    lazy, adam = keras.Variable(initial), keras.Variable(initial)
    sparse_opt = optimizers.SparseAdam(LR)
    adam_opt = keras.optimizers.Adam(LR)
    for step, grad in enumerate(dense_steps):
        rows = np.flatnonzero(np.any(grad != 0, axis=1))
        sparse_opt.apply([sparse_gradient(rows, grad[rows])], [lazy])
        adam_opt.apply([keras.ops.convert_to_tensor(grad)], [adam])
        lazy_now = keras.ops.convert_to_numpy(lazy)
        adam_now = keras.ops.convert_to_numpy(adam)
        if step == 0:
            np.testing.assert_allclose(lazy_now, adam_now, rtol=1e-6)
    # In step 2 row 4 has no gradient: Adam moves it on momentum, lazy
    # Adam leaves it where step 1 put it.
    assert not np.allclose(adam_now[4], lazy_now[4])
    np.testing.assert_allclose(lazy_now[1], adam_now[1], rtol=1e-6)


@pytest.mark.parametrize("shapes", [[(4, 3)], [(4, 3), (3,), (3, 2)]])
def test_sparse_adam_updates_dense_gradients_like_adam(shapes):
    # One variable, or several (which torch updates all at once).
    rng = np.random.default_rng(2)
    initial = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    a = [keras.Variable(value) for value in initial]
    b = [keras.Variable(value) for value in initial]
    sparse_opt, adam_opt = optimizers.SparseAdam(LR), keras.optimizers.Adam(LR)
    for _ in range(3):
        grads = [
            keras.ops.convert_to_tensor(
                rng.normal(size=shape).astype(np.float32)
            )
            for shape in shapes
        ]
        sparse_opt.apply(grads, a)
        adam_opt.apply(grads, b)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(left),
            keras.ops.convert_to_numpy(right),
            rtol=1e-6,
        )
    # The moments too (up to the order of float32 rounding).
    for left, right in zip(
        sparse_opt.variables, adam_opt.variables, strict=True
    ):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(left),
            keras.ops.convert_to_numpy(right),
            rtol=1e-5,
            atol=1e-8,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amsgrad": True},
        {"clipnorm": 1.0},
        {"global_clipnorm": 1.0},
        {"gradient_accumulation_steps": 2},
    ],
)
def test_sparse_adam_rejects_dense_options(kwargs):
    (key,) = kwargs
    with pytest.raises(ValueError, match=f"`{key}`.*Received: {key}="):
        optimizers.SparseAdam(**kwargs)


def test_sparse_adam_config_round_trip():
    optimizer = optimizers.SparseAdam(0.01, beta_1=0.8, epsilon=1e-6)
    config = keras.saving.serialize_keras_object(optimizer)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, optimizers.SparseAdam)
    assert restored.beta_1 == 0.8
    assert restored.epsilon == 1e-6
    assert float(keras.ops.convert_to_numpy(restored.learning_rate)) == (
        pytest.approx(0.01)
    )


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="runs on the JAX backend"
)
@pytest.mark.parametrize("scratch", [True, False])
@pytest.mark.parametrize("num_rows", [50, 500, 1000])
def test_jax_unique_rows_matches_a_sorted_unique(
    scratch, num_rows, monkeypatch
):
    import jax.numpy as jnp

    from keras_catembed.backend import jax_rows

    if not scratch:
        # Tables beyond the scratch limit take the sort.
        monkeypatch.setattr(jax_rows, "_SCRATCH_ROWS", -(10**9))
    rng = np.random.default_rng(0)
    rows = (rng.zipf(1.3, 300) % num_rows).astype("int32")
    rows[:3] = [7, 7, 49]
    unique, positions = jax_rows.unique_rows(jnp.asarray(rows), num_rows)
    # A table of at most twice as many rows as the step's lookups (300
    # into 50 or 500 rows) keeps every row at its own slot.
    assert isinstance(unique, jax_rows.EveryRow) == (num_rows <= 600)
    if num_rows <= 600:
        # The rows read are marked; each lookup is its own row.
        assert unique.read.shape == (num_rows,)
        np.testing.assert_array_equal(
            np.asarray(unique.read), np.isin(np.arange(num_rows), rows)
        )
        np.testing.assert_array_equal(np.asarray(positions), rows)
        return
    unique, positions = np.asarray(unique), np.asarray(positions)
    assert positions.shape == rows.shape
    assert unique.shape == (len(rows),)
    np.testing.assert_array_equal(unique[positions], rows)
    distinct = np.unique(rows)
    real = unique[unique < num_rows]
    # Each distinct row once, then only the past-the-end padding.
    np.testing.assert_array_equal(np.sort(real), distinct)
    assert np.all(unique[len(distinct) :] == num_rows)
    if scratch:
        # First occurrences come first, in order.
        _, first = np.unique(rows, return_index=True)
        np.testing.assert_array_equal(real, rows[np.sort(first)])


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="runs on the JAX backend"
)
@pytest.mark.parametrize("how", ["set", "sub"])
def test_jax_writes_at_every_row_keep_the_rows_not_read(how):
    import jax.numpy as jnp

    from keras_catembed.backend import jax_rows

    value = np.arange(12, dtype="float32").reshape(6, 2)
    rows = np.full((6, 2), 100.0, "float32")
    # Rows 1 and 4 read (twice and once), the others not.
    unique, positions = jax_rows.unique_rows(
        jnp.asarray([4, 1, 1, 4, 1, 1, 4], "int32"), 6
    )
    np.testing.assert_array_equal(np.asarray(positions), [4, 1, 1, 4, 1, 1, 4])
    # Gathering every row is the array itself.
    gathered = jax_rows.gather_rows(jnp.asarray(value), unique)
    np.testing.assert_array_equal(np.asarray(gathered), value)
    written = np.asarray(
        jax_rows.scatter_rows(jnp.asarray(value), unique, rows, how)
    )
    expected = value.copy()
    expected[[1, 4]] = 100.0 if how == "set" else value[[1, 4]] - 100.0
    np.testing.assert_array_equal(written, expected)
    # As a write at the distinct rows does.
    at = jnp.asarray(value).at[jnp.asarray([1, 4])]
    distinct = at.set(100.0) if how == "set" else at.add(-100.0)
    np.testing.assert_array_equal(written, np.asarray(distinct))


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="runs on the torch backend"
)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("num_rows", [50, 100_000])
def test_torch_unique_rows_matches_torch_unique(num_rows, dtype):
    import torch

    from keras_catembed.backend import torch as torch_backend

    rng = np.random.default_rng(0)
    # 300 ids: a table of 50 rows takes the scratch array, one of 100,000
    # rows the sort.
    rows = (rng.zipf(1.3, 300) % num_rows).astype(dtype)
    rows[:3] = [7, 7, 49]
    rows = torch.as_tensor(rows)
    unique, positions = torch_backend.unique_rows(rows, num_rows)
    expected_unique, expected_positions = torch.unique(
        rows, return_inverse=True
    )
    np.testing.assert_array_equal(unique.numpy(), expected_unique.numpy())
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())
    np.testing.assert_array_equal(unique[positions].numpy(), rows.numpy())
    assert unique.dtype == rows.dtype


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="runs on the torch backend"
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(300,), (9000,), (1500, 8)])
def test_torch_gathered_rows_have_index_selects_gradient(dtype, shape):
    # From 8192 lookups the gradient is summed by `bincount`: the same
    # sums as `index_select`'s own gradient, row by row.
    import torch

    from keras_catembed import backend

    rng = np.random.default_rng(1)
    table = rng.normal(size=(40, 5)).astype(dtype)
    indices = torch.as_tensor(rng.integers(0, 37, shape))  # 3 rows unread
    upstream = torch.as_tensor(rng.normal(size=(*shape, 5)).astype(dtype))

    def gradient(gather):
        value = torch.tensor(table, requires_grad=True)
        rows = gather(value)
        assert tuple(rows.shape) == (*shape, 5)
        (rows * upstream).sum().backward()
        return rows.detach().numpy(), value.grad.numpy()

    rows, grad = gradient(lambda v: backend.current.gather_rows(v, indices))
    expected_rows, expected_grad = gradient(
        lambda v: torch.index_select(v, 0, indices.reshape(-1)).reshape(
            *shape, 5
        )
    )
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-5)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad[37:], 0.0)
    assert np.abs(grad[:37]).min() > 0


@pytest.mark.parametrize("decay", [None, 0.5])
def test_eager_row_update_equals_the_keras_ops_one(monkeypatch, decay):
    # Where the backend does Adam's arithmetic itself (torch), its row
    # update gives the tables and moments of SparseAdam's Keras ops.
    from keras_catembed import backend

    if not backend.current.EAGER_ADAM:
        pytest.skip("only an eager backend does Adam in its own operations")
    rng = np.random.default_rng(4)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = [
        (rows, rng.normal(size=(len(rows), 3)).astype(np.float32))
        for rows in ([0, 5, 5, 2], [2, 7], [5, 2, 1])
    ]

    def train(eager):
        monkeypatch.setattr(backend.current, "EAGER_ADAM", eager)
        table = keras.Variable(initial)
        optimizer = optimizers.SparseAdam(
            keras.optimizers.schedules.ExponentialDecay(LR, 1, 0.5),
            epsilon=EPSILON,
            weight_decay=decay,
        )
        optimizer.build([table])
        for rows, grads in steps:
            optimizer.apply([sparse_gradient(np.array(rows), grads)], [table])
        return [
            keras.ops.convert_to_numpy(v) for v in [table, *optimizer.variables]
        ]

    keras_ops, eager = train(False), train(True)
    # Rows 0, 1, 2, 5 and 7 moved; 3, 4 and 6 did not.
    moved = np.any(eager[0] != initial, axis=1)
    np.testing.assert_array_equal(np.flatnonzero(moved), [0, 1, 2, 5, 7])
    for got, expected in zip(eager, keras_ops, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
