import importlib.util
import os

import keras
import numpy as np
import pytest

from tests.synthetic_movielens import write_synthetic_100k

# Backend-independent: runs on one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_example(name):
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_movielens_example_runs_end_to_end(tmp_path):
    data_dir = write_synthetic_100k(str(tmp_path))
    example = _load_example("movielens")
    map_path = str(tmp_path / "map.png")
    results = example.main(
        ["--data-dir", data_dir, "--epochs", "2", "--map", map_path]
    )
    for name in (
        "global mean",
        "per-movie mean",
        "course model",
        "recommended",
    ):
        assert np.isfinite(results[name]["rmse"])
        assert 0 < results[name]["mae"] <= results[name]["rmse"]
    assert results["recommended"]["rmse"] < results["global mean"]["rmse"]
    assert len(results["neighbours"]) == 5
    assert os.path.getsize(map_path) > 5000


def test_movielens_example_load_data_keeps_the_first_rows(tmp_path):
    data_dir = write_synthetic_100k(str(tmp_path))
    example = _load_example("movielens")
    _, full, _ = example.load_data(data_dir)
    _, train, test = example.load_data(data_dir, max_rows=40)
    assert len(train) == 40
    np.testing.assert_array_equal(train.rating, full.rating[:40])
    np.testing.assert_array_equal(train.user_id, full.user_id[:40])
    assert len(test) > 0


def test_functional_encoders_example_trains_svdpp(tmp_path):
    data_dir = write_synthetic_100k(str(tmp_path))
    example = _load_example("functional_encoders")
    results = example.main(["--data-dir", data_dir, "--epochs", "2"])
    assert 0 < results["rmse"] < 2.0
    model = results["model"]
    users = model.get_layer("user_id_encoder")
    assert users.implicit_layer.adapted
    assert users.source_columns == {"implicit": "movie_id"}
    # The biases and the implicit table trained (they start at zeros and
    # random values; one step of Adam moves every read row).
    assert np.any(
        np.abs(keras.ops.convert_to_numpy(users.bias_layer.embeddings)) > 0
    )
