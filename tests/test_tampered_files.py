"""Saved files that were damaged or tampered with fail before allocating."""

import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras_catembed

_X = {"user": np.arange(12) % 6, "movie": np.arange(12) % 5}


def _saved(tmp_path, **kwargs):
    model = keras_catembed.RatingModel({"user": 6, "movie": 5}, **kwargs)
    model.compile(optimizer="adam", loss="mse")
    if kwargs.get("implicit") or kwargs.get("neighborhood"):
        model.adapt(_X, np.linspace(1.0, 5.0, 12))
    model.fit(_X, np.linspace(1.0, 5.0, 12), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path


def _rewrite(path, out, config=None, weights=None):
    """Copies a `.keras` file, changing its config or its weights file."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    if config is not None:
        saved = json.loads(files["config.json"])
        config(saved["config"])
        files["config.json"] = json.dumps(saved).encode()
    if weights is not None:
        h5_path = out.parent / "weights.h5"
        h5_path.write_bytes(files["model.weights.h5"])
        with h5py.File(h5_path, "r+") as store:
            weights(store)
        files["model.weights.h5"] = h5_path.read_bytes()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out


def _find(store, suffix):
    """The h5 dataset path of the layer variable ending with `suffix`."""
    found = []
    store.visititems(
        lambda name, item: (
            found.append(name)
            if isinstance(item, h5py.Dataset) and name.endswith(suffix)
            else None
        )
    )
    assert found, f"no saved variable ends with {suffix}"
    return found[0]


def test_an_untampered_file_loads_and_predicts_alike(tmp_path):
    model, path = _saved(tmp_path, implicit=True, max_pairs_per_id=2)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(_X, verbose=0), model.predict(_X, verbose=0), 1e-6
    )


@pytest.mark.parametrize(
    "units", [[10**12, 4], [4, 10**12]], ids=["first", "second"]
)
def test_huge_hidden_layers_fail_before_allocating(tmp_path, units):
    _, path = _saved(tmp_path)

    def grow(config):
        config["hidden_units"] = units

    bad = _rewrite(path, tmp_path / "bad.keras", config=grow)
    with pytest.raises(ValueError, match=r"GiB of weights.*hidden layer"):
        keras.saving.load_model(bad)


def test_huge_embedding_fails_before_allocating(tmp_path):
    _, path = _saved(tmp_path)

    def grow(config):
        config["embeddings"]["user"] = 10**12

    bad = _rewrite(path, tmp_path / "bad.keras", config=grow)
    with pytest.raises(ValueError, match=r"the embedding of 'user'"):
        keras.saving.load_model(bad)


def test_a_new_model_too_big_for_memory_is_a_clear_error():
    model = keras_catembed.RatingModel(
        {"user": 10**12, "movie": 5}, hidden_units=[4]
    )
    with pytest.raises(ValueError, match=r"'user'.*nothing was allocated"):
        model.build()
    layer = keras_catembed.EntityEmbedding(10**12, 8)
    with pytest.raises(ValueError, match="GiB of weights"):
        layer.build()


@pytest.mark.parametrize(
    "value, slot, message",
    [
        (99, 0, r"pair_sources\[0, 0\]` is 99, expected an id in \[0, 4\]"),
        (-3, 0, r"pair_sources\[0, 0\]` is -3"),
        (2, 1, r"pair_sources\[0, 1\]` is 2, expected the padding row 5"),
    ],
)
def test_pair_indices_outside_the_tables_are_refused(
    tmp_path, value, slot, message
):
    _, path = _saved(tmp_path, implicit=True, max_pairs_per_id=2)

    def corrupt(store):
        # The user column's pair_sources and pair_counts.
        name = _find(store, "implicit_layers/implicit_feedback/vars/1")
        sources = store[name][...]
        counts_name = name.replace("vars/1", "vars/3")
        counts = store[counts_name][...]
        assert counts[0] == 2, "user 0 rated two movies"
        if slot == 1:
            # Slot 1 becomes padding: it must then point at the zero row.
            counts[0] = 1
            store[counts_name][...] = counts
        sources[0, slot] = value
        store[name][...] = sources

    bad = _rewrite(path, tmp_path / "bad.keras", weights=corrupt)
    with pytest.raises(ValueError, match=message):
        keras.saving.load_model(bad)


def test_pair_counts_past_the_lists_are_refused(tmp_path):
    _, path = _saved(tmp_path, neighborhood=True, max_pairs_per_id=2)

    def corrupt(store):
        name = _find(store, "layers/implicit_feedback/vars/3")  # pair_counts
        counts = store[name][...]
        counts[4] = 7
        store[name][...] = counts

    bad = _rewrite(path, tmp_path / "bad.keras", weights=corrupt)
    with pytest.raises(ValueError, match=r"pair_counts` of row 4 is 7"):
        keras.saving.load_model(bad)


def test_rejected_weights_leave_a_model_unchanged(tmp_path):
    model, path = _saved(tmp_path, implicit=True, max_pairs_per_id=2)

    def corrupt(store):
        name = _find(store, "implicit_layers/implicit_feedback/vars/1")
        sources = store[name][...]
        sources[0, 0] = 99
        store[name][...] = sources

    bad = _rewrite(path, tmp_path / "bad.keras", weights=corrupt)
    target = keras.saving.load_model(path)
    before = [np.array(w) for w in target.get_weights()]
    layer = target.get_layer("user_implicit")
    with pytest.raises(ValueError, match="damaged"):
        target.load_weights(bad)
    # The implicit layer checks its pairs before assigning any of them.
    for variable in layer.weights:
        index = [id(w) for w in target.weights].index(id(variable))
        np.testing.assert_array_equal(np.array(variable.numpy()), before[index])
    assert np.all(np.isfinite(target.predict(_X, verbose=0)))
