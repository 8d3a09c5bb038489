"""`RatingModel.export` and `RatingEnsemble.export`: SavedModels served in a
fresh process."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_catembed

BACKEND = keras.backend.backend()
ROOT = pathlib.Path(__file__).resolve().parent.parent
HAS_TF = importlib.util.find_spec("tensorflow") is not None
# Keras writes SavedModels from TensorFlow and JAX (through jax2tf, which
# needs TensorFlow); from torch only through torch_xla, with flat inputs.
needs_savedmodel = pytest.mark.skipif(
    not HAS_TF or BACKEND == "torch",
    reason="SavedModel export needs TensorFlow and the TF or JAX backend",
)

VOCABULARY = [1001, 1002, 1007, 1010, 1500, 2000, 3003, 4444]


def _data(rows=96, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, 12, rows).astype("int64"),
        "movie_id": rng.choice(VOCABULARY, rows).astype("int64"),
    }
    y = rng.uniform(1, 5, rows).astype("float32")
    return x, y


def _model(**kwargs):
    model = keras_catembed.RatingModel(
        {
            "user_id": 12,
            "movie_id": keras_catembed.EntityEmbedding(
                vocabulary=VOCABULARY, output_dim=4, name="movie_embedding"
            ),
        },
        hidden_units=(8,),
        bias_terms=True,
        rating_range=(0.5, 5.5),
        **kwargs,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _variants(tmp):
    """(exported directory, expected ratings) by case."""
    x, y = _data()
    variants = {}

    fast = _model()
    fast.fit(x, y, epochs=2, batch_size=16, verbose=0)
    variants["fast_fit"] = fast

    slow = _model()
    slow.fit(x, y, epochs=2, batch_size=16, verbose=0, fast=False)
    variants["stock_fit"] = slow

    variants["predict_only"] = _model()

    implicit = keras_catembed.RatingModel(
        {"user_id": 12, "movie_id": 8}, implicit=True, bias_terms=True
    )
    implicit.compile(optimizer="adam", loss="mse")
    rows = {"user_id": x["user_id"], "movie_id": x["user_id"] % 8}
    implicit.adapt(rows)
    implicit.fit(rows, y, epochs=1, batch_size=16, verbose=0)

    expected = {}
    for name, model in variants.items():
        expected[name] = (model.predict(x, verbose=0), x)
    expected["implicit"] = (implicit.predict(rows, verbose=0), rows)
    variants["implicit"] = implicit

    # bfloat16 pairs: every id's sums and a custom gradient in the graph.
    narrow = keras_catembed.RatingModel(
        {"user_id": 12, "movie_id": 8},
        implicit=True,
        neighborhood=True,
        bias_terms=True,
        pair_dtype="bfloat16",
    )
    narrow.compile(optimizer="adam", loss="mse")
    narrow.adapt(rows, y)
    narrow.fit(rows, y, epochs=1, batch_size=16, verbose=0)
    expected["implicit_bfloat16"] = (narrow.predict(rows, verbose=0), rows)
    variants["implicit_bfloat16"] = narrow

    # An ensemble of the bfloat16 model and an item autoencoder.
    autoencoder = keras_catembed.ItemAutoencoder(
        {"user_id": 12, "movie_id": 8}, hidden_units=6, rating_range=(1, 5)
    )
    autoencoder.compile(optimizer="adam", loss="mse")
    autoencoder.fit(rows, y, epochs=2, batch_size=4, verbose=0)
    ensemble = keras_catembed.RatingEnsemble(
        [narrow, autoencoder], weights=[0.7, 0.3], rating_range=(1, 5)
    )
    expected["ensemble"] = (ensemble.predict(rows, verbose=0), rows)
    variants["ensemble"] = ensemble

    # Loaded from a .keras file and exported without any call.
    fast.save(tmp / "fast.keras")
    variants["loaded"] = keras.saving.load_model(tmp / "fast.keras")
    expected["loaded"] = expected["fast_fit"]

    jobs = []
    for name, model in variants.items():
        path = tmp / name
        model.export(str(path), verbose=False)
        inputs = tmp / f"{name}_inputs.npz"
        np.savez(inputs, **expected[name][1])
        job = {"path": str(path), "inputs": str(inputs), "out": str(path)}
        if name == "fast_fit":
            unknown = tmp / "unknown.npz"
            np.savez(
                unknown,
                user_id=np.array([0, 1], "int64"),
                movie_id=np.array([1001, 999], "int64"),
            )
            job["unknown"] = str(unknown)
            expected["known_row"] = model.predict(
                {
                    "user_id": np.array([0], "int64"),
                    "movie_id": np.array([1001], "int64"),
                },
                verbose=0,
            )[0]
        job["out"] = str(tmp / f"{name}_served.npy")
        jobs.append(job)
    with open(tmp / "jobs.json", "w") as file:
        json.dump(jobs, file)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "tests._serve_exported", str(tmp / "jobs.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    served = {}
    for job, name in zip(jobs, variants, strict=True):
        with open(job["out"] + ".json") as file:
            report = json.load(file)
        served[name] = (np.load(job["out"]), report)
    return expected, served


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _variants(tmp_path_factory.mktemp("export"))


@needs_savedmodel
@pytest.mark.parametrize(
    "case",
    [
        "fast_fit",
        "stock_fit",
        "predict_only",
        "loaded",
        "implicit",
        "implicit_bfloat16",
        "ensemble",
    ],
)
def test_served_ratings_match_predict(exported, case):
    expected, served = exported
    ratings, report = served[case]
    assert ratings.shape == (96, 1)
    np.testing.assert_allclose(ratings, expected[case][0], rtol=0, atol=1e-5)
    # One int64 id vector per column, any batch size.
    assert report["signature"] == {
        "user_id": ["int64", [None]],
        "movie_id": ["int64", [None]],
    }


@needs_savedmodel
def test_served_model_takes_raw_ids_and_rejects_unknown_ones(exported):
    expected, served = exported
    # `movie_id` has a vocabulary of raw ids (1001, ...): the served model
    # took them as they are (compared above); an id outside the vocabulary
    # fails on TensorFlow and gives NaN from a JAX-exported graph.
    outcome = served["fast_fit"][1]["unknown"]
    if BACKEND == "tensorflow":
        assert isinstance(outcome, str)
        assert "movie_id" in outcome and "unknown id" in outcome
    else:
        values = np.asarray(outcome, dtype="float64")
        assert values.shape == (2, 1)
        np.testing.assert_allclose(
            values[0], expected["known_row"], rtol=0, atol=1e-5
        )
        assert np.isnan(values[1, 0])


def test_export_signature_is_built_from_the_columns():
    from keras_catembed import _export

    model = _model()
    (signature,) = _export.input_signature(model)
    assert list(signature) == ["user_id", "movie_id"]
    for column, spec in signature.items():
        assert spec.shape == (None,)
        assert spec.dtype == "int64"
        assert spec.name == column


@pytest.mark.skipif(BACKEND != "torch", reason="torch only")
def test_export_on_torch_says_which_backend_to_use(tmp_path):
    model = _model()
    x, _ = _data(8)
    before = model.predict(x, verbose=0)
    with pytest.raises(ValueError, match="TensorFlow or JAX backend"):
        model.export(str(tmp_path / "served"))
    assert not (tmp_path / "served").exists()
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_an_ensemble_exports_only_once_its_autoencoder_holds_ratings(tmp_path):
    trained = _model()
    empty = keras_catembed.ItemAutoencoder({"user_id": 12, "movie_id": 8})
    ensemble = keras_catembed.RatingEnsemble([trained, empty])
    with pytest.raises(ValueError, match=r"`export` needs the model's ratings"):
        ensemble.export(str(tmp_path / "served"))
    assert not (tmp_path / "served").exists()
    # One level down: the autoencoder inside an ensemble inside an ensemble.
    outer = keras_catembed.RatingEnsemble([_model(), ensemble])
    with pytest.raises(ValueError, match=r"`export` needs the model's ratings"):
        outer.export(str(tmp_path / "nested"))
    assert not (tmp_path / "nested").exists()


@pytest.mark.skipif(BACKEND != "torch", reason="torch only")
def test_ensemble_export_on_torch_says_which_backend_to_use(tmp_path):
    x, y = _data(8)
    rows = {"user_id": x["user_id"], "movie_id": x["user_id"] % 8}
    autoencoder = keras_catembed.ItemAutoencoder(
        {"user_id": 12, "movie_id": 8}, hidden_units=4
    )
    autoencoder.adapt(rows, y)
    first = keras_catembed.RatingModel({"user_id": 12, "movie_id": 8})
    ensemble = keras_catembed.RatingEnsemble([first, autoencoder])
    before = ensemble.predict(rows, verbose=0)
    with pytest.raises(ValueError, match="TensorFlow or JAX backend"):
        ensemble.export(str(tmp_path / "served"))
    assert not (tmp_path / "served").exists()
    np.testing.assert_array_equal(ensemble.predict(rows, verbose=0), before)
