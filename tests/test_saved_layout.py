"""Saved files keep their layout, so files of earlier versions load.

Keras saves a subclassed model's weights under paths made from its
attribute names and its layers' variables. `data/saved_layouts.json` is
the listing of such files as the package wrote them before its model
code was split into modules; a model built today must save the same
paths and shapes.
"""

import json
import os
import pathlib

import keras
import numpy as np
import pytest

from tests import saved_models

FROZEN = json.loads(
    (pathlib.Path(__file__).parent / "data" / "saved_layouts.json").read_text()
)
# Files saved by the earlier version, when present (see saved_models).
EARLIER = pathlib.Path(os.environ.get("CATEMBED_EARLIER_FILES", "/nonexistent"))


@pytest.mark.parametrize("name", saved_models.NAMES)
def test_saved_weight_paths_are_unchanged(name, tmp_path):
    model = saved_models.build(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    layout = saved_models.layout(path)
    # Added since: a layer with a vocabulary records it beside its
    # variables (files without the record load as before).
    records = {
        key: shape
        for key, shape in layout.items()
        if key.endswith("/vars/vocabulary")
    }
    expected = (
        {
            "bias_layers/entity_embedding_1/vars/vocabulary": [7],
            "embedding_layers/entity_embedding_1/vars/vocabulary": [7],
        }
        if name == "vocabulary"
        else {}
    )
    assert records == expected
    kept = {key: shape for key, shape in layout.items() if key not in records}
    assert kept == FROZEN[name]


@pytest.mark.parametrize("name", saved_models.NAMES)
def test_saved_model_predicts_the_same_after_loading(name, tmp_path):
    model = saved_models.build(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    x, _ = saved_models.data(name)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


@pytest.mark.parametrize("name", saved_models.NAMES)
def test_files_of_the_earlier_version_load(name):
    path = EARLIER / f"{name}.keras"
    if not path.exists():
        pytest.skip("no files of the earlier version here")
    loaded = keras.saving.load_model(path)
    x, _ = saved_models.data(name)
    expected = np.load(EARLIER / f"{name}_pred.npy")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )
