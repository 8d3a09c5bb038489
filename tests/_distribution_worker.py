"""Trains a `RatingModel` on one device and across devices; saves both.

Usage: python -m tests._distribution_worker CASE OUT.npz [OPTIMIZER]

CASE is `data_parallel`, `data_parallel_implicit` (with implicit feedback
and a neighbourhood, at most 8 pairs per id) or `model_parallel` (JAX, with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`) or `mirrored`
(TensorFlow, two logical CPUs), or `model_parallel_bad_streams` (JAX:
streams with an unknown id; see `bad_streams`). OPTIMIZER is `adam` (the
default) or `sparse_adam`. Device counts are fixed when the backend
starts, hence a fresh process. OUT.npz holds, for the single-device run
(`single_*`) and the distributed run (`dist_*`), the trained weights, the
predictions, the evaluation loss and whether `fit` ran the device loop;
for JAX also the shard shapes of each
variable (and of the optimizer's table slots, and of the variables of the
model saved and loaded under the distribution), as JSON. The test compares them.
"""

import json
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["mirrored"]:
    # Split the CPU before anything initializes TensorFlow.
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_catembed  # noqa: E402

NUM_USERS = 16
NUM_MOVIES = 12
# `fit` trains on eight batches of 32 and a last one of 4, which 8 devices
# do not divide; Keras's `predict` and `evaluate` under `DataParallel`
# need batches the devices divide, so they read the first 256 rows.
NUM_ROWS = 260
NUM_PREDICTED = 256
BATCH_SIZE = 32
EPOCHS = 3


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, NUM_USERS, NUM_ROWS).astype("int32")
    movies = rng.integers(0, NUM_MOVIES, NUM_ROWS).astype("int32")
    user_factors = rng.normal(size=(NUM_USERS, 2))
    movie_factors = rng.normal(size=(NUM_MOVIES, 2))
    ratings = 3.0 + (user_factors[users] * movie_factors[movies]).sum(1)
    return {"user": users, "movie": movies}, ratings.astype("float32")


def make_model(name, implicit=False):
    # One table named by default, one user layer with its own name.
    model = keras_catembed.RatingModel(
        {
            "user": NUM_USERS,
            "movie": keras_catembed.EntityEmbedding(
                NUM_MOVIES, 4, name="movie_table"
            ),
        },
        hidden_units=(8,),
        bias_terms=True,
        implicit=implicit,
        neighborhood=implicit,
        max_pairs_per_id=8 if implicit else None,
        name=name,
    )
    if implicit:
        model.adapt(*make_data())
    return model


def make_optimizer(name):
    if name == "adam":
        return keras.optimizers.Adam(0.01)
    if name == "sparse_adam":
        return keras_catembed.optimizers.SparseAdam(0.01)
    raise ValueError(f"Unknown optimizer {name!r}")


def train(model, initial_weights, x, y, optimizer):
    model.build()
    model.set_weights(initial_weights)
    model.compile(optimizer=make_optimizer(optimizer), loss="mse")
    model.fit(
        x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0
    )
    return {
        # The device loop keeps its compiled steps on the model.
        "fast_loop": bool(model.__dict__.get("_fast_fit_runners")),
        "weights": [np.asarray(w) for w in model.get_weights()],
        "predictions": model.predict(head(x), batch_size=BATCH_SIZE, verbose=0),
        "loss": model.evaluate(
            head(x), y[:NUM_PREDICTED], batch_size=BATCH_SIZE, verbose=0
        ),
    }


def head(x):
    return {column: ids[:NUM_PREDICTED] for column, ids in x.items()}


def shard_shapes(model):
    """Maps each variable path to the shapes of its shards on this host."""
    return {
        v.path: [list(s.data.shape) for s in v.value.addressable_shards]
        for v in model.weights
    }


def model_parallel(model):
    """`ModelParallel` over 2 x 4 devices, `model`'s tables split by rows."""
    mesh = keras.distribution.DeviceMesh(
        shape=(2, 4), axis_names=("batch", "model")
    )
    return keras.distribution.ModelParallel(
        layout_map=keras_catembed.distribution.layout_map(model, mesh),
        batch_dim_name="batch",
    )


def bad_streams(out_path, optimizer):
    """Streams with an unknown id under `ModelParallel`: each call raises.

    Saves each call's error message, whether the weights stayed as they
    were, and the predictions of a good stream and of its arrays.
    """
    x, y = make_data()
    model = make_model("distributed")
    distribution = model_parallel(model)
    bad = {column: ids[:BATCH_SIZE].copy() for column, ids in x.items()}
    bad["user"][5] = NUM_USERS
    batches = [
        ({c: ids[:BATCH_SIZE] for c, ids in x.items()}, y[:BATCH_SIZE]),
        (bad, y[:BATCH_SIZE]),
    ]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index]

    def stream(kind):
        if kind == "generator":
            return (batch for batch in batches)
        return Batches()

    messages = []
    unchanged = []
    with distribution.scope():
        model.compile(optimizer=make_optimizer(optimizer), loss="mse")
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
        before = [np.array(w) for w in model.get_weights()]
        for kind in ("generator", "pydataset"):
            for method in ("predict", "evaluate", "fit"):
                try:
                    getattr(model, method)(stream(kind), verbose=0)
                except ValueError as error:
                    messages.append(f"{kind} {method}: {error}")
                else:
                    messages.append(f"{kind} {method}: no error")
                after = model.get_weights()
                unchanged.append(
                    all(
                        np.array_equal(a, b)
                        for a, b in zip(after, before, strict=True)
                    )
                )
        good = (batch for batch in batches[:1])
        streamed = model.predict(good, verbose=0)
        arrays = model.predict(batches[0][0], batch_size=BATCH_SIZE, verbose=0)
    np.savez(
        out_path,
        messages=np.array(messages),
        unchanged=np.array(unchanged),
        streamed=streamed,
        arrays=arrays,
    )


def main(case, out_path, optimizer="adam"):
    if case == "model_parallel_bad_streams":
        return bad_streams(out_path, optimizer)
    x, y = make_data()
    keras.utils.set_random_seed(0)
    implicit = case == "data_parallel_implicit"
    reference = make_model("single", implicit)
    reference.build()
    initial_weights = reference.get_weights()
    single = train(reference, initial_weights, x, y, optimizer)
    extra = {}

    if case in ("data_parallel", "data_parallel_implicit"):
        distribution = keras.distribution.DataParallel()
        with distribution.scope():
            model = make_model("distributed", implicit)
            dist = train(model, initial_weights, x, y, optimizer)
            # Ids already split over the devices pass the input checks.
            import jax

            batch_sharding = jax.sharding.NamedSharding(
                distribution.device_mesh.backend_mesh,
                jax.sharding.PartitionSpec("batch"),
            )
            sharded = {
                column: jax.device_put(ids, batch_sharding)
                for column, ids in head(x).items()
            }
            extra["sharded_input_predictions"] = model.predict(
                sharded, batch_size=BATCH_SIZE, verbose=0
            )
        extra["num_devices"] = len(distribution.device_mesh.devices.ravel())
        shapes = shard_shapes(model)
    elif case == "model_parallel":
        # Unbuilt: the tables are first created, sharded, under the scope.
        model = make_model("distributed")
        distribution = model_parallel(model)
        with distribution.scope():
            dist = train(model, initial_weights, x, y, optimizer)
        shapes = shard_shapes(model)
        # A model loaded under the distribution is sharded the same way,
        # although it builds the user-given layer outside its name scope.
        path = out_path[: -len(".npz")] + ".keras"
        model.save(path)
        with distribution.scope():
            loaded = keras.saving.load_model(path)
            extra["loaded_predictions"] = loaded.predict(
                head(x), batch_size=BATCH_SIZE, verbose=0
            )
        extra["loaded_shard_shapes"] = np.array(
            json.dumps(shard_shapes(loaded))
        )
        # The optimizer's slots of a table take the table's layout.
        shapes.update(
            (v.path, [list(s.data.shape) for s in v.value.addressable_shards])
            for v in model.optimizer.variables
            if "embeddings" in v.path
        )
    elif case == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = make_model("distributed")
            dist = train(model, initial_weights, x, y, optimizer)
        extra["num_devices"] = strategy.num_replicas_in_sync
        # Each variable is mirrored: one copy per replica device.
        shapes = {
            v.path: [list(c.shape) for c in v.value.values]
            for v in model.weights
        }
        extra["replica_devices"] = np.array(
            [c.device for c in model.weights[0].value.values]
        )
    else:
        raise ValueError(f"Unknown case {case!r}")

    arrays = dict(extra)
    for index, weight in enumerate(initial_weights):
        arrays[f"initial_weight_{index}"] = weight
    for prefix, result in (("single", single), ("dist", dist)):
        for index, weight in enumerate(result["weights"]):
            arrays[f"{prefix}_weight_{index}"] = weight
        arrays[f"{prefix}_predictions"] = result["predictions"]
        arrays[f"{prefix}_loss"] = np.float64(result["loss"])
        arrays[f"{prefix}_fast_loop"] = np.bool_(result["fast_loop"])
    arrays["paths"] = np.array([v.path for v in model.weights])
    arrays["shard_shapes"] = np.array(json.dumps(shapes))
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
