import json
import os
import warnings

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import cli
from keras_catembed import presets
from keras_catembed.training import Recipe
from tests.synthetic_movielens import write_synthetic_100k

HERE = os.path.dirname(os.path.abspath(__file__))


def _snapshots():
    # Each named preset's model config and training settings, as built
    # before presets became RatingModel / EntityEmbedding arguments.
    path = os.path.join(HERE, "data", "preset_snapshots.json")
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _plain(config):
    config = json.loads(json.dumps(config, default=list))
    config.pop("name", None)
    # What the model was trained on is no part of a preset.
    config.pop("training_fingerprint", None)
    return config


# The presets moved to the sparse path since the snapshots: SparseAdam with
# this decay of the tables in place of their L2 penalty
# (benchmarks/sparse_presets.py).
SPARSE = {
    "mlp": 3.0,
    "recommended": 3.0,
    "tuned-ml-100k": 3.0,
    "tuned-ml-100k-neighborhood": 3.0,
    "tuned-ml-100k-demographics": 3.0,
    "mlp-large": 1.0,
    "recommended-large": 1.0,
    "tuned-ml-1m": 1.0,
}


def _without_table_penalty(config):
    """`config` with every `embeddings_regularizer` set to None."""
    if isinstance(config, dict):
        return {
            key: None
            if key == "embeddings_regularizer"
            else _without_table_penalty(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_without_table_penalty(value) for value in config]
    return config


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_preset_builds_the_same_model_and_recipe_as_before(name):
    snapshot = _snapshots()[name]
    assert sorted(_snapshots()) == sorted(presets.PRESETS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model = keras_catembed.RatingModel.from_preset(
            name, snapshot["embeddings"]
        )
    config = keras.saving.serialize_keras_object(model)["config"]
    expected = _plain(snapshot["model"])
    before = {"ema_momentum": None, "optimizer": "adam"}
    before.update(snapshot["training"])
    if name in SPARSE:
        expected = _without_table_penalty(expected)
        before.update(optimizer="sparse_adam", table_decay=SPARSE[name])
    assert _plain(config) == expected
    assert model.recipe == Recipe.from_config(before)
    assert presets.recipe(name) == model.recipe
    assert (
        presets.get(name).get("user_features", [])
        == (snapshot["user_features"])
    )


def test_first_vocabulary_still_loads_with_a_warning(monkeypatch):
    old = {
        "description": "old",
        "model": {
            "embedding_dim": 8,
            "embeddings_l2": 0.0,
            "entity_dropout": 0.0,
            "embeddings_initializer_stddev": None,
            "hidden_units": [32, 4],
            "activation": "relu",
            "dropout": 0.0,
            "bias_terms": False,
            "rating_range": None,
            "implicit": False,
        },
        "training": {
            "learning_rate": 0.005,
            "batch_size": 1024,
            "epochs": 5,
            "schedule": "constant",
        },
    }
    monkeypatch.setitem(presets.PRESETS, "old", old)
    embeddings = {"user_id": 9, "movie_id": 7}
    with pytest.warns(DeprecationWarning, match="first preset vocabulary"):
        model = keras_catembed.RatingModel.from_preset("old", embeddings)
    course = keras_catembed.RatingModel.from_preset("course", embeddings)
    assert _plain(model.get_config()) == _plain(course.get_config())
    assert model.recipe == course.recipe
    with pytest.warns(DeprecationWarning, match=r"\['embedding_dim'\]"):
        model = keras_catembed.RatingModel.from_preset(
            "course", embeddings, embedding_dim=3
        )
    assert model.embedding_layers["movie_id"].output_dim == 3


def test_overrides_take_entity_embedding_arguments():
    model = keras_catembed.RatingModel.from_preset(
        "tuned-ml-100k",
        {"user_id": 9, "movie_id": 7},
        output_dim=5,
        hidden_units=[6],
        embeddings_regularizer=None,
    )
    for column in ("user_id", "movie_id"):
        layer = model.embedding_layers[column]
        assert layer.output_dim == 5
        assert layer.embeddings_regularizer is None
        assert layer.dropout == 0.1
    assert model.hidden_units == [6]


def _x(num_users=9, num_movies=7, n=40):
    rng = np.random.default_rng(0)
    x = {
        "user_id": rng.integers(0, num_users, n),
        "movie_id": rng.integers(0, num_movies, n),
    }
    return x, rng.uniform(1, 5, n).astype("float32")


@pytest.mark.parametrize("name", ["course", "tuned-ml-100k"])
def test_save_to_preset_round_trip(tmp_path, name):
    x, y = _x()
    model = keras_catembed.RatingModel.from_preset(
        name, {"user_id": 9, "movie_id": 7}
    )
    if model.implicit:
        model.adapt(x)
    recipe = model.recipe.replace(epochs=1, batch_size=8)
    recipe.fit(model, x, y, verbose=0)
    folder = str(tmp_path / "preset")
    presets.save_to_preset(model, folder, recipe, description="mine")
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["recipe"] == recipe.get_config()
    assert config["embeddings"] == {"user_id": 9, "movie_id": 7}
    assert config["description"] == "mine"

    restored = keras_catembed.RatingModel.from_preset(folder)
    assert restored.recipe == recipe
    assert _plain(restored.get_config()) == _plain(model.get_config())
    if restored.implicit:
        restored.adapt(x)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )
    fresh = keras_catembed.RatingModel.from_preset(
        folder, load_weights=False, hidden_units=[3]
    )
    assert not fresh.built and fresh.hidden_units == [3]
    with pytest.raises(ValueError, match="holds trained weights"):
        keras_catembed.RatingModel.from_preset(
            folder, {"user_id": 10, "movie_id": 7}
        )
    # A saved column left out of `embeddings` is an error, not a smaller
    # model, with or without the weights.
    for load_weights in (True, False):
        with pytest.raises(ValueError, match=r"leaves out \['movie_id'\]"):
            keras_catembed.RatingModel.from_preset(
                folder, {"user_id": 9}, load_weights=load_weights
            )
    assert fresh.columns == ["user_id", "movie_id"]


def test_a_trained_folder_keeps_vocabularies_dtype_and_fingerprint(tmp_path):
    # A column of raw ids (a vocabulary), a mixed dtype policy, and what the
    # weights were trained on come back with the weights.
    x, y = _x()
    raw = np.array([100, 200, 300, 400, 500, 600, 700, 800, 900])
    x = {**x, "user_id": raw[x["user_id"]]}
    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(
                vocabulary=raw.tolist(), output_dim=3
            ),
            "movie_id": keras_catembed.EntityEmbedding(7, 3),
        },
        dtype="mixed_bfloat16",
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.data_source = {"dataset": "synthetic"}
    folder = str(tmp_path / "preset")
    presets.save_to_preset(model, folder)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["embeddings"] == {"user_id": 9, "movie_id": 7}
    assert config["model"]["dtype"] == "mixed_bfloat16"

    restored = keras_catembed.RatingModel.from_preset(folder)
    assert restored.columns == ["user_id", "movie_id"]
    assert restored.dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert restored.training_overlap(x, y) == 1.0
    assert restored.data_source == {"dataset": "synthetic"}
    # Fresh weights carry no record of training.
    fresh = keras_catembed.RatingModel.from_preset(folder, load_weights=False)
    assert fresh.columns == ["user_id", "movie_id"]
    assert fresh.training_fingerprint is None and fresh.data_source is None

    # A folder written before vocabulary columns were recorded.
    config["embeddings"] = {"movie_id": 7}
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    older = keras_catembed.RatingModel.from_preset(folder)
    assert older.columns == ["user_id", "movie_id"]
    np.testing.assert_array_equal(
        older.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: presets.save_to_preset("model", p), "writes a RatingModel"),
        (lambda p: presets.load(p), "No preset in"),
        (
            lambda p: keras_catembed.RatingModel.from_preset("nope", {"a": 3}),
            r"Unknown preset 'nope'",
        ),
    ],
)
def test_preset_errors_name_what_is_wrong(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(str(tmp_path))


def test_train_reads_a_preset_folder(tmp_path, capsys):
    data_dir = write_synthetic_100k(str(tmp_path / "data"))
    folder = str(tmp_path / "preset")
    model = keras_catembed.RatingModel.from_preset(
        "course", {"user_id": 80, "movie_id": 60}, hidden_units=[5]
    )
    presets.save_to_preset(model, folder, model.recipe.replace(epochs=2))
    assert not os.path.exists(os.path.join(folder, "model.weights.h5"))
    saved = str(tmp_path / "model.keras")
    status = cli.main(
        ["train", "--data-dir", data_dir, "--preset", folder]
        + ["--verbose", "2", "--save", saved]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert f"preset {folder!r}" in out
    assert len([line for line in out.splitlines() if "test_rmse" in line]) == 2
    trained = keras.saving.load_model(saved)
    assert trained.hidden_units == [5]
    status = cli.main(["train", "--preset", str(tmp_path / "none")])
    assert status == 2
    assert "--preset must be 'auto', one of" in capsys.readouterr().err


def test_with_columns_adds_each_column_with_its_own_size():
    config = presets.with_columns("recommended", ["user_day", "age"])
    assert config["time_columns"] == ["user_day"]
    assert config["user_features"] == ["age"]
    assert config["model"]["embeddings"] == {
        "user_id": {},
        "movie_id": {},
        "user_day": {"output_dim": 8},
        "age": {"output_dim": 8},
    }
    # Two-sided implicit feedback, with its pairs named.
    assert config["model"]["implicit"] == {
        "user_id": "movie_id",
        "movie_id": "user_id",
    }
    assert presets.load("recommended")["model"]["implicit"] is True
    assert "time_columns" not in presets.PRESETS["recommended"]
    model = keras_catembed.RatingModel.from_preset(
        config, {"user_id": 5, "movie_id": 6, "user_day": 9, "age": 7}
    )
    assert model.columns == ["user_id", "movie_id", "user_day", "age"]
    layers = model.embedding_layers
    assert [layers[c].output_dim for c in model.columns] == [64, 64, 8, 8]
    assert [layers[c].input_dim for c in model.columns] == [5, 6, 9, 7]


def test_with_columns_keeps_the_preset_settings_by_column():
    name = "tuned-ml-100k-demographics"
    config = presets.with_columns(name, "user_day", output_dim=3)
    before = presets.load(name)
    assert config["user_features"] == before["user_features"]
    assert config["time_columns"] == ["user_day"]
    by_column = config["model"]["embeddings"]
    assert by_column == {
        **before["model"]["embeddings"],
        "user_day": {"output_dim": 3},
    }
    assert config["model"]["neighborhood"] == before["model"]["neighborhood"]
    # A column already listed is listed once.
    again = presets.with_columns(config, ["user_day", "gender"])
    assert again["time_columns"] == ["user_day"]
    assert again["user_features"] == ["age", "gender", "occupation"]


def test_with_columns_of_a_folder_leaves_its_weights(tmp_path):
    model = keras_catembed.RatingModel.from_preset(
        "course", {"user_id": 4, "movie_id": 5}
    )
    model.build()
    presets.save_to_preset(model, tmp_path)
    config = presets.with_columns(tmp_path, ["gender"])
    assert "weights" not in config and "embeddings" not in config
    assert config["user_features"] == ["gender"]
    assert sorted(config["model"]["embeddings"]) == [
        "gender",
        "movie_id",
        "user_id",
    ]
    # A preset with fresh weights: the saved ones were for two columns.
    rebuilt = keras_catembed.RatingModel.from_preset(
        config, {"user_id": 4, "movie_id": 5, "gender": 2}
    )
    assert rebuilt.columns == ["user_id", "movie_id", "gender"]


@pytest.mark.parametrize(
    "columns, kwargs, match",
    [
        (["movie_day"], {}, r"Received: \['movie_day'\]"),
        ([], {}, r"Received: \[\]"),
        (["age", "zip"], {}, r"time columns \['user_day'\].*'zip'"),
        (["age"], {"output_dim": 0}, "output_dim"),
        (None, {}, r"`columns` must be a list .*columns=None"),
        (5, {}, r"`columns` must be a list .*columns=5"),
        ([["user_day"]], {}, r"names \(strings\).*columns=\[\['user_day'\]\]"),
    ],
)
def test_with_columns_errors_name_the_bad_value(columns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        presets.with_columns("course", columns, **kwargs)


@pytest.mark.parametrize(
    "embeddings, lacking",
    [
        ({"user_id": 10, "movie_id": 20}, r"\['age', 'user_day'\]"),
        ({"user_id": 10, "movie_id": 20, "age": 7}, r"\['user_day'\]"),
        ({"user_id": 10, "movie_id": 20, "user_day": 30}, r"\['age'\]"),
    ],
)
def test_a_preset_refuses_to_build_without_a_column_it_names(
    embeddings, lacking
):
    # Built without them, the model would be scored as if it held them.
    config = presets.with_columns("course", ["user_day", "age"])
    with pytest.raises(
        ValueError,
        match=rf"Preset 'dict' embeds the columns {lacking}, but "
        r"`embeddings` sizes only",
    ):
        presets.build_model(config, embeddings, name="dict")
    model = presets.build_model(
        config, {"user_id": 10, "movie_id": 20, "user_day": 30, "age": 7}
    )
    assert model.columns == ["user_id", "movie_id", "user_day", "age"]
