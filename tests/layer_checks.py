"""A layer-test harness in the spirit of Keras's `run_layer_test`.

It repeats the stages of Keras's own harness with public API only, for
layers that take one id tensor and for models that take a dict of ids.
"""

import json
import os
import tempfile

import keras
import numpy as np
from keras import ops


def _symbolic(data):
    if isinstance(data, dict):
        return {k: _symbolic(v) for k, v in data.items()}
    data = np.asarray(data)
    return keras.KerasTensor((None, *data.shape[1:]), dtype=str(data.dtype))


def _shape(data):
    if isinstance(data, dict):
        return {k: _shape(v) for k, v in data.items()}
    return tuple(np.shape(data))


def _wrap(obj, input_data):
    """Returns a keras.Model around a layer (or the model itself)."""
    if isinstance(obj, keras.Model):
        return obj
    data = np.asarray(input_data)
    inputs = keras.Input(shape=data.shape[1:], dtype=str(data.dtype))
    return keras.Model(inputs, obj(inputs))


def _float_dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def run_layer_checks(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    *,
    expected_num_non_trainable_weights=0,
    mixed_output_dtype="bfloat16",
    own_dtype_layers=(),
):
    """Runs config, shape, training, mixed-precision and saving checks.

    Args:
        layer_cls: The class under test.
        init_kwargs: Dict of constructor arguments.
        input_data: An id array (layers) or a dict of id arrays (models).
        expected_output_shape: The eager output shape.
        expected_num_trainable_weights: Count after `build`.
        expected_num_non_trainable_weights: Count after `build`.
        mixed_output_dtype: Output dtype under `mixed_bfloat16`.
        own_dtype_layers: Names of sublayers that keep their own dtype
            policy under `mixed_bfloat16` (the output unit, layers the
            caller passed in ready-made).
    """
    # 1. Config round trips, through JSON both ways.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    json_config = json.loads(json.dumps(config))
    revived = layer_cls.from_config(json_config)
    assert revived.get_config() == config
    serialized = json.loads(
        json.dumps(keras.saving.serialize_keras_object(layer))
    )
    assert serialized["registered_name"] == (
        f"keras_catembed>{layer_cls.__name__}"
    )
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls
    assert revived.get_config() == config

    # 2. An explicit build creates every weight.
    layer = layer_cls(**init_kwargs)
    layer.build(_shape(input_data))
    assert layer.built
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert (
        len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    )

    # 3. Symbolic call.
    symbolic_output = layer(_symbolic(input_data))
    assert isinstance(symbolic_output, keras.KerasTensor)
    assert tuple(symbolic_output.shape)[1:] == tuple(expected_output_shape)[1:]

    # 4. Eager call.
    output = layer(input_data)
    assert tuple(output.shape) == tuple(expected_output_shape)
    assert _float_dtype(output) == "float32"

    # 5. One compiled training step changes the trainable weights.
    model = _wrap(layer, input_data)
    before = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    target = np.ones(tuple(expected_output_shape), dtype="float32")
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    history = model.fit(input_data, target, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(
        not np.allclose(b, a) for b, a in zip(before, after, strict=True)
    )

    # 6. Mixed precision: bfloat16 compute, float32 weights.
    mixed = layer_cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
    mixed_output = mixed(input_data)
    assert _float_dtype(mixed_output) == mixed_output_dtype
    assert all(_float_dtype(w) == "float32" for w in mixed.weights)
    sublayers = mixed.layers if isinstance(mixed, keras.Model) else []
    for sublayer in sublayers:
        if sublayer.name in own_dtype_layers:
            continue
        assert sublayer.compute_dtype == "bfloat16", sublayer.name

    # 7. Save and reload a .keras file: same class, same outputs.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    expected = ops.convert_to_numpy(model(input_data))
    actual = ops.convert_to_numpy(loaded(input_data))
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
    if isinstance(layer, keras.Model):
        assert type(loaded) is layer_cls
    else:
        assert any(type(sub) is layer_cls for sub in loaded.layers)
    return layer
