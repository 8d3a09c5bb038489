"""Sharding a `RatingModel` across devices with `keras.distribution`.

`layout_map` gives the layouts that `keras.distribution.ModelParallel`
needs to split the embedding tables of a `RatingModel` by rows over one
axis of a device mesh, while the dense layers are replicated. Data
parallelism (`keras.distribution.DataParallel`, or a `tf.distribute`
strategy) needs no layout map. See the "Multiple devices" guide.
"""

import re
from typing import Any

import keras

from keras_catembed.rating_model import RatingModel


def layout_map(
    model: RatingModel,
    device_mesh: keras.distribution.DeviceMesh,
    *,
    model_axis: str = "model",
) -> keras.distribution.LayoutMap:
    """Returns a `LayoutMap` that shards the embedding tables by rows.

    Every embedding table of `model` (the `embeddings` variable of each
    layer in `model.embedding_layers` and, with `bias_terms=True`,
    `model.bias_layers`) gets the layout `(model_axis, None)`: each device
    along `model_axis` holds an equal, contiguous block of rows, and the
    devices along the other mesh axes hold copies of it. Every other
    variable (the dense layers, the optimizer's step counter) matches no key
    and is replicated. The optimizer's slots (momenta, say) take the layout
    of their variable.

    The keys are regular expressions matched against `variable.path`: one
    per table, `(.*/)?<layer name>/embeddings`, with the layer name taken
    from the table's path when the model is built and from the layer when
    it is not. Any prefix is allowed because the path of a table depends on
    how the model was made: a table of a user-given layer is created outside
    the model's name scope when the model is loaded from a file or created
    from its config (`movie_table/embeddings` instead of
    `rating_model/movie_table/embeddings`), and an enclosing model adds its
    own prefix. So the map fits this model, a model loaded from its file or
    created from its config, and any variable elsewhere named `embeddings`
    in a layer of the same name.

    Layouts are applied when variables are created, so build the model
    (call it, `build()` it, or load it) under the `ModelParallel`
    distribution made from this map. Pass an unbuilt model here: a built
    one has already created its whole tables, unsharded.

    Args:
        model: A `keras_catembed.RatingModel` (or subclass), built or not.
        device_mesh: A `keras.distribution.DeviceMesh` with an axis named
            `model_axis`.
        model_axis: String. The mesh axis that splits the table rows.
            Defaults to `"model"`.

    Returns:
        A `keras.distribution.LayoutMap` on `device_mesh`.

    Raises:
        ValueError: if `model` is not a `RatingModel`, `device_mesh` is not
            a `DeviceMesh`, the mesh has no axis `model_axis`, or that axis's
            size does not divide the number of rows of a table (the message
            names the column and the table).

    Example:

    ```python
    mesh = keras.distribution.DeviceMesh(
        shape=(2, 4), axis_names=("batch", "model")
    )
    model = keras_catembed.RatingModel({"user_id": 944, "movie_id": 1684})
    distribution = keras.distribution.ModelParallel(
        layout_map=keras_catembed.distribution.layout_map(model, mesh),
        batch_dim_name="batch",
    )
    with distribution.scope():
        model.build()  # each device holds 1/4 of the rows of each table
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=256)
    ```
    """
    if not isinstance(model, RatingModel):
        raise ValueError(
            "`model` must be a keras_catembed.RatingModel. Received: "
            f"model={model!r} of type {type(model).__name__}"
        )
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise ValueError(
            "`device_mesh` must be a keras.distribution.DeviceMesh. "
            f"Received: device_mesh={device_mesh!r}"
        )
    axis_names = list(device_mesh.axis_names)
    if not isinstance(model_axis, str) or model_axis not in axis_names:
        raise ValueError(
            f"`model_axis` must name an axis of `device_mesh`, one of "
            f"{axis_names}. Received: model_axis={model_axis!r}"
        )
    shards = device_mesh.shape[axis_names.index(model_axis)]

    layouts = keras.distribution.LayoutMap(device_mesh)
    keys = set()
    tables = [
        (column, layer)
        for layers in (model.embedding_layers, model.bias_layers)
        for column, layer in layers.items()
    ]
    for column, layer in tables:
        if layer.num_rows % shards:
            raise ValueError(
                f"The table of EntityEmbedding '{layer.name}' (column "
                f"'{column}') has {layer.num_rows} rows, which the mesh axis "
                f"{model_axis!r} of size {shards} does not divide. Give the "
                "column a cardinality (`input_dim`) or `num_oov_indices` "
                f"that makes the rows a multiple of {shards}; the extra rows "
                "are never looked up."
            )
        key = _table_key(layer)
        # A layer shared by two columns has one table: add its key once.
        # (`key in layouts` would not do: a LayoutMap returns None for a
        # missing key instead of raising a KeyError.)
        if key not in keys:
            keys.add(key)
            layouts[key] = (model_axis, None)
    return layouts


def _table_key(layer: Any) -> str:
    """The regex matching the path of `layer`'s table, after any prefix."""
    variable = getattr(layer, "embeddings", None)
    if isinstance(variable, keras.Variable):
        # "<layer name>/<variable name>": the path without its scopes.
        suffix = "/".join(variable.path.split("/")[-2:])
    else:
        suffix = f"{layer.name}/embeddings"
    return "(?:.*/)?" + re.escape(suffix)
