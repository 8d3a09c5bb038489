"""Training a `RatingModel` across devices, and the `layout_map` helper.

The multi-device cases run `tests/_distribution_worker.py` in a fresh
process, since device counts are fixed when the backend starts. Each runs
only on its own backend, so that the suite (once per backend) runs it once.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed.distribution import layout_map

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The helper never touches the devices of a mesh, so any names will do.
MESH = keras.distribution.DeviceMesh(
    shape=(2, 2),
    axis_names=("batch", "model"),
    devices=[f"cpu:{i}" for i in range(4)],
)


def _model(**kwargs):
    return keras_catembed.RatingModel(
        {
            "user": 16,
            "movie": keras_catembed.EntityEmbedding(
                vocabulary=[10, 20, 30],
                output_dim=3,
                num_oov_indices=1,
                name="movie_table",
            ),
        },
        bias_terms=True,
        **kwargs,
    )


def _assert_tables_sharded(layouts, model):
    tables = {
        layer.embeddings.path
        for layers in (model.embedding_layers, model.bias_layers)
        for layer in layers.values()
    }
    assert len(tables) == 4
    for variable in model.weights:
        layout = layouts[variable.path]
        if variable.path in tables:
            assert layout.axes == ("model", None), variable.path
            assert layout.device_mesh is MESH
        else:
            assert layout is None, variable.path


# The helper ----------------------------------------------------------------


def test_layout_map_of_a_built_model_uses_its_table_paths():
    model = _model(name="ratings")
    model.build()
    layouts = layout_map(model, MESH)
    assert sorted(layouts) == sorted(
        "(?:.*/)?" + re.escape(path)
        for path in (
            "user_embedding/embeddings",
            "user_bias/embeddings",
            "movie_table/embeddings",
            "movie_bias/embeddings",
        )
    )
    _assert_tables_sharded(layouts, model)
    # A model from the config (or a file) gets the same layouts, although
    # it builds the user-given layer outside its name scope.
    clone = keras_catembed.RatingModel.from_config(model.get_config())
    clone.build()
    assert clone.embedding_layers["movie"].embeddings.path == (
        "movie_table/embeddings"
    )
    _assert_tables_sharded(layouts, clone)


def test_layout_map_of_an_unbuilt_model_matches_the_paths_after_build():
    model = _model(name="ratings")
    layouts = layout_map(model, MESH)
    model.build()
    _assert_tables_sharded(layouts, model)
    # An enclosing model adds a prefix; other variables do not match.
    nested = layouts["outer/ratings/movie_table/embeddings"]
    assert nested.axes == ("model", None)
    assert layouts["ratings/other_table/embeddings"] is None
    assert layouts["ratings/movie_table/embeddings_momentum"] is None
    assert layouts["adam/ratings_movie_table_embeddings_momentum"] is None


def test_layout_map_uses_the_given_axis():
    mesh = keras.distribution.DeviceMesh(
        (2,), ["shard"], devices=["cpu:0", "cpu:1"]
    )
    model = _model()
    layouts = layout_map(model, mesh, model_axis="shard")
    model.build()
    layout = layouts[model.embedding_layers["user"].embeddings.path]
    assert layout.axes == ("shard", None)


def test_layout_map_rejects_a_model_that_is_not_a_rating_model():
    model = keras.Sequential([keras.layers.Embedding(4, 2)])
    with pytest.raises(ValueError, match=r"`model` must be a keras_catembed"):
        layout_map(model, MESH)


def test_layout_map_rejects_a_device_mesh_that_is_not_a_mesh():
    with pytest.raises(
        ValueError, match=r"`device_mesh` must be a keras.distribution"
    ):
        layout_map(_model(), (2, 2))


def test_layout_map_rejects_an_axis_missing_from_the_mesh():
    with pytest.raises(
        ValueError,
        match=r"`model_axis` must name an axis of `device_mesh`, one of "
        r"\['batch', 'model'\]. Received: model_axis='tables'",
    ):
        layout_map(_model(), MESH, model_axis="tables")


def test_layout_map_rejects_tables_the_axis_does_not_divide():
    model = keras_catembed.RatingModel({"user": 16, "movie": 15})
    with pytest.raises(
        ValueError,
        match=r"EntityEmbedding 'movie_embedding' \(column 'movie'\) has 15 "
        r"rows, which the mesh axis 'model' of size 2 does not divide",
    ):
        layout_map(model, MESH)


# Training across devices -----------------------------------------------------


def _run_worker(case, tmp_path, optimizer="adam"):
    """Runs the worker for `case` on this backend; returns its results."""
    out = tmp_path / f"{case}_{optimizer}.npz"
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=BACKEND,
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_PLATFORMS="cpu",
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests._distribution_worker",
            case,
            str(out),
            optimizer,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


def _assert_matches_single_device(results, num_weights=8):
    """The distributed run trained like the single-device one.

    The worker's model has 8 weights (4 tables, 2 Dense kernels and 2
    biases), and the weights of its implicit and neighbourhood layers.
    """
    paths = [str(path) for path in results["paths"]]
    assert len(paths) == num_weights
    assert len([k for k in results if k.startswith("single_weight_")]) == (
        num_weights
    )
    for index, path in enumerate(paths):
        single = results[f"single_weight_{index}"]
        dist = results[f"dist_weight_{index}"]
        np.testing.assert_allclose(
            dist, single, atol=1e-4, rtol=1e-4, err_msg=path
        )
    # Training moved the weights, so the comparison is not vacuous.
    moved = np.abs(results["dist_weight_0"] - results["initial_weight_0"])
    assert moved.max() > 1e-2
    np.testing.assert_allclose(
        results["dist_predictions"],
        results["single_predictions"],
        atol=1e-4,
        rtol=1e-4,
    )
    assert results["dist_predictions"].shape == (256, 1)
    assert np.isfinite(results["dist_loss"])
    np.testing.assert_allclose(
        results["dist_loss"], results["single_loss"], rtol=1e-4
    )


OPTIMIZERS = ["adam", "sparse_adam"]


@pytest.mark.skipif(BACKEND != "jax", reason="runs on the JAX backend")
def test_a_bad_streamed_id_under_model_parallel_raises_and_keeps_the_model(
    tmp_path,
):
    # A step failing on one device would leave the other seven waiting in
    # its reductions until XLA ended the process: each batch is checked on
    # the host first, and every call raises the layer's own error.
    results = _run_worker("model_parallel_bad_streams", tmp_path, "sparse_adam")
    messages = [str(message) for message in results["messages"]]
    assert len(messages) == 6
    for message in messages:
        assert re.search(
            r"Column 'user' \(EntityEmbedding 'user_embedding'\) received "
            r"the unknown id 16 at position 5 .*Expected an integer id in "
            r"\[0, 15\]",
            message,
        ), message
    assert results["unchanged"].all()
    np.testing.assert_allclose(
        results["streamed"], results["arrays"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.skipif(BACKEND != "jax", reason="runs on the JAX backend")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_data_parallel_on_eight_devices_matches_one_device(tmp_path, optimizer):
    results = _run_worker("data_parallel", tmp_path, optimizer)
    assert int(results["num_devices"]) == 8
    # The device loop ran, with each batch split over the devices.
    assert results["dist_fast_loop"]
    # Every variable is replicated whole on each of the eight devices.
    shapes = json.loads(str(results["shard_shapes"]))
    assert shapes["distributed/user_embedding/embeddings"] == [[16, 8]] * 8
    assert shapes["distributed/hidden_0/kernel"] == [[12, 8]] * 8
    _assert_matches_single_device(results)
    # Ids given as arrays split over the devices predict the same.
    np.testing.assert_allclose(
        results["sharded_input_predictions"],
        results["dist_predictions"],
        atol=1e-6,
    )


@pytest.mark.skipif(BACKEND != "jax", reason="runs on the JAX backend")
def test_data_parallel_with_implicit_feedback_matches_one_device(tmp_path):
    # SparseAdam's step gathers the pair lists of each batch's rows too.
    results = _run_worker("data_parallel_implicit", tmp_path, "sparse_adam")
    assert results["dist_fast_loop"]
    paths = [str(path) for path in results["paths"]]
    assert any("neighborhood" in path for path in paths)
    # Two implicit and two neighbourhood layers in the lists layout, each
    # a table, its pairs' sources, weights and counts.
    _assert_matches_single_device(results, num_weights=8 + 4 * 4)
    moved = [
        np.abs(
            results[f"dist_weight_{i}"] - results[f"initial_weight_{i}"]
        ).max()
        for i, path in enumerate(paths)
        if path.endswith("implicit/embeddings")
    ]
    assert len(moved) == 2 and min(moved) > 1e-3


@pytest.mark.skipif(BACKEND != "jax", reason="runs on the JAX backend")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_model_parallel_shards_tables_by_rows_and_matches_one_device(
    tmp_path, optimizer
):
    results = _run_worker("model_parallel", tmp_path, optimizer)
    # The device loop ran and left every table split as it was.
    assert results["dist_fast_loop"]
    shapes = json.loads(str(results["shard_shapes"]))
    # On a 2x4 ("batch", "model") mesh each device holds a quarter of the
    # rows of every table (and of its Adam slots); the dense layers are
    # whole.
    quarter_rows = {
        "user_embedding": [4, 8],
        "user_bias": [4, 1],
        "movie_table": [3, 4],
        "movie_bias": [3, 1],
    }
    for layer, shard in quarter_rows.items():
        assert shapes[f"distributed/{layer}/embeddings"] == [shard] * 8
        slots = [
            path
            for path in shapes
            if f"distributed_{layer}_embeddings_" in path
        ]
        assert len(slots) == 2, slots  # momentum and velocity
        for path in slots:
            assert shapes[path] == [shard] * 8, path
    assert shapes["distributed/hidden_0/kernel"] == [[12, 8]] * 8
    assert shapes["distributed/hidden_0/bias"] == [[8]] * 8
    assert shapes["distributed/rating/kernel"] == [[8, 1]] * 8
    _assert_matches_single_device(results)
    # Loaded under the distribution, the model is sharded alike and
    # predicts alike.
    loaded = json.loads(str(results["loaded_shard_shapes"]))
    assert loaded["movie_table/embeddings"] == [[3, 4]] * 8
    assert loaded["distributed/user_embedding/embeddings"] == [[4, 8]] * 8
    assert loaded["distributed/hidden_0/kernel"] == [[12, 8]] * 8
    np.testing.assert_allclose(
        results["loaded_predictions"], results["dist_predictions"], atol=1e-6
    )


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="runs on the TensorFlow backend"
)
def test_mirrored_strategy_on_two_cpus_matches_one_device(tmp_path):
    results = _run_worker("mirrored", tmp_path)
    assert int(results["num_devices"]) == 2
    devices = [str(d) for d in results["replica_devices"]]
    assert [d.rsplit(":", 2)[-2:] for d in devices] == [
        ["CPU", "0"],
        ["CPU", "1"],
    ]
    shapes = json.loads(str(results["shard_shapes"]))
    assert shapes["distributed/user_embedding/embeddings"] == [[16, 8]] * 2
    # A strategy runs the stock Keras loop; one device, the device loop.
    assert not results["dist_fast_loop"]
    assert results["single_fast_loop"]
    _assert_matches_single_device(results)


@pytest.mark.skipif(
    BACKEND == "torch", reason="keras.distribution has no torch devices"
)
def test_fit_under_a_distribution_runs_the_device_loop_on_jax_only():
    """On this process's devices; JAX's loop trains as without one."""
    rng = np.random.default_rng(0)
    x = {
        "user": rng.integers(0, 16, 64).astype("int32"),
        "movie": rng.integers(0, 12, 64).astype("int32"),
    }
    y = rng.normal(3.0, 1.0, 64).astype("float32")

    def train(distribution):
        keras.utils.set_random_seed(0)
        model = keras_catembed.RatingModel(
            {"user": 16, "movie": 12}, hidden_units=(4,)
        )
        model.build()
        weights = model.get_weights()
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        args = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
        if distribution is None:
            model.fit(x, y, fast=True, **args)
            return model, weights
        with distribution.scope():
            if BACKEND != "jax":
                with pytest.raises(
                    ValueError,
                    match=r"`fast=True`.*a keras.distribution distribution "
                    r"is set",
                ):
                    model.fit(x, y, fast=True, **args)
                # The refused call left the model as it was.
                for before, after in zip(
                    weights, model.get_weights(), strict=True
                ):
                    np.testing.assert_array_equal(after, before)
                return None, weights
            model.fit(x, y, fast=True, **args)
        return model, weights

    plain, initial = train(None)
    distributed, _ = train(keras.distribution.DataParallel())
    if distributed is None:
        return
    trained = plain.get_weights()
    assert np.abs(trained[0] - initial[0]).max() > 1e-2
    for got, expected in zip(distributed.get_weights(), trained, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
