import argparse
import copy
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_catembed import cli
from keras_catembed import training
from keras_catembed.cli import embeddings as cli_embeddings
from keras_catembed.datasets.movielens import inputs
from keras_catembed.evaluation import baselines
from keras_catembed.presets import PRESETS
from tests.synthetic_movielens import write_synthetic_100k

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_100k(str(tmp_path_factory.mktemp("movielens")))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    model_path = str(folder / "model.keras")
    map_path = str(folder / "map.png")
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

    status = cli.main(
        [
            "train",
            "--data-dir",
            data_dir,
            "--preset",
            "course",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--verbose",
            "0",
            "--similar",
            "Movie 1 (1950)",
            "--save",
            model_path,
            "--plot",
            map_path,
        ],
        out=Out(),
    )
    return status, "".join(lines), model_path, map_path


def _run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_prints_baselines_and_model(trained):
    status, output, model_path, map_path = trained
    assert status == 0
    assert "ml-100k (u1 split): 3,200 training and 800 test ratings" in output
    rows = {}
    for line in output.splitlines():
        match = re.fullmatch(r"(.+?)\s+(\d+\.\d{4})\s+(\d+\.\d{4})", line)
        if match:
            rows[match[1]] = (float(match[2]), float(match[3]))
    assert set(rows) == {
        "global mean",
        "per-movie mean",
        "RatingModel (course)",
    }
    assert all(0 < rmse < 3 and 0 < mae <= rmse for rmse, mae in rows.values())
    assert "Nearest to Movie 1 (1950) (cosine):" in output
    assert os.path.getsize(model_path) > 0
    with open(map_path, "rb") as file:
        assert file.read(4) == b"\x89PNG"


@pytest.mark.one_backend
def test_baselines_match_numpy(data_dir):
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    train, test = ratings.official_split("u2")
    rows = baselines(train, test)
    mean = train.rating.mean()
    expected = np.sqrt(np.mean((test.rating - mean) ** 2))
    assert rows["global mean"]["rmse"] == pytest.approx(expected, rel=1e-6)
    movie_means = {
        m: train.rating[train.movie_id == m].mean()
        for m in np.unique(train.movie_id)
    }
    predicted = [movie_means.get(m, mean) for m in test.movie_id]
    assert rows["per-movie mean"]["mae"] == pytest.approx(
        np.mean(np.abs(test.rating - predicted)), rel=1e-6
    )


def test_evaluate_saved_model(trained, data_dir, capsys):
    _, _, model_path, _ = trained
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert "ml-100k, u1 split, 800 ratings" in out
    assert "model" in out.splitlines()[-1]


def test_similar_with_no_candidate_is_an_error(trained, data_dir, capsys):
    _, _, model_path, _ = trained
    argv = ["similar", "--model", model_path, "--data-dir", data_dir]
    argv += ["--movie", "Movie 3 (1952)", "--min-ratings"]
    error = _error([*argv, "100000"], capsys)
    assert "No movie but 'Movie 3 (1952)' has at least 100000 ratings" in error
    assert "lower --min-ratings" in error
    # The movie itself does not count: one below its own count works.
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    counts = np.bincount(ratings.movie_id, minlength=ratings.num_movies)
    index = list(ratings.titles).index("Movie 3 (1952)")
    others = np.delete(counts, index)
    status, out, _ = _run([*argv, str(others.max()), "-k", "1"], capsys)
    assert status == 0
    assert len(out.splitlines()) == 2


def test_similar_lists_k_titles(trained, data_dir, capsys):
    _, _, model_path, _ = trained
    status, out, _ = _run(
        [
            "similar",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--movie",
            "Movie 3 (1952)",
            "-k",
            "4",
            "--min-ratings",
            "60",
        ],
        capsys,
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "Nearest to Movie 3 (1952) (cosine):"
    assert len(lines) == 5
    assert all("Movie" in line for line in lines[1:])
    assert "Movie 3 (1952)" not in "".join(lines[1:])
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    counts = dict(
        zip(
            ratings.titles,
            np.bincount(ratings.movie_id, minlength=ratings.num_movies),
            strict=True,
        )
    )
    for line in lines[1:]:
        title = re.fullmatch(r"\s*\d+\. [+-]\d\.\d{3}  (.+)", line)[1]
        assert counts[title] >= 60


def test_plot_and_projector(trained, data_dir, tmp_path, capsys):
    _, _, model_path, _ = trained
    png = str(tmp_path / "map.png")
    status, _, _ = _run(
        ["plot", "--model", model_path, "--data-dir", data_dir, "--out", png],
        capsys,
    )
    assert status == 0 and os.path.getsize(png) > 5000
    log_dir = str(tmp_path / "logs")
    status, _, _ = _run(
        [
            "projector",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--log-dir",
            log_dir,
        ],
        capsys,
    )
    assert status == 0
    with open(os.path.join(log_dir, "movie_id_metadata.tsv")) as file:
        lines = file.read().splitlines()
    assert lines[0] == "title\tgenres"
    assert lines[1] == "Movie 1 (1950)\tAction"
    assert len(lines) == 61


@pytest.mark.parametrize(
    "argv, message",
    [
        (["similar", "--movie", "Nope"], "No movie titled 'Nope'"),
        (["evaluate", "--model", "missing.keras"], "no such file"),
        (["train", "--rating-range", "1"], "--rating-range must be"),
        (["train", "--hidden-units", "4,x"], "--hidden-units expects"),
        (["train", "--max-rows", "0"], "--max-rows must be a positive"),
        (
            ["train", "--ema-momentum", "1.5"],
            "--ema-momentum must be a number in [0, 1). Received: 1.5",
        ),
    ],
)
def test_errors_are_one_line(trained, data_dir, capsys, argv, message):
    _, _, model_path, _ = trained
    if argv[0] == "similar":
        argv = [*argv, "--model", model_path]
    status, _, err = _run([*argv, "--data-dir", data_dir], capsys)
    assert status == 2
    assert err.startswith("catembed: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.one_backend
def test_missing_data_is_one_line(tmp_path, capsys):
    status, _, err = _run(
        ["train", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1"],
        capsys,
    )
    assert status == 2
    assert err.startswith("catembed: error: ")
    assert "nowhere" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.one_backend
def test_python_m_alias_prints_help():
    result = subprocess.run(
        [sys.executable, "-m", "keras_catembed", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0
    for command in ("train", "evaluate", "similar", "plot", "projector"):
        assert command in result.stdout


@pytest.mark.one_backend
def test_auto_preset_follows_training_size(data_dir, capsys):
    status, out, _ = _run(
        [
            "train",
            "--data-dir",
            data_dir,
            "--split",
            "random",
            "--epochs",
            "1",
            "--verbose",
            "0",
        ],
        capsys,
    )
    assert status == 0
    assert "preset 'recommended'" in out
    assert "RatingModel (recommended)" in out


@pytest.mark.one_backend
def test_recommended_for():
    from keras_catembed import presets

    assert presets.recommended_for(80_000) == "recommended"
    assert presets.recommended_for(800_000) == "recommended-large"
    assert presets.recommended_for(80_000, implicit=False) == "mlp"
    assert presets.recommended_for(800_000, implicit=False) == "mlp-large"
    small = presets.get("recommended")["model"]
    large = presets.get("recommended-large")["model"]
    # The same model; the tables' regularization is the recipes' decay.
    assert small == large
    assert presets.recipe("recommended").table_decay == 3.0
    assert presets.recipe("recommended-large").table_decay == 1.0
    for name in ("", "-large"):
        with_implicit = presets.get(f"recommended{name}")
        without = presets.get(f"mlp{name}")
        assert with_implicit["model"].pop("implicit") is True
        assert without["model"].pop("implicit") is False
        assert with_implicit["model"] == without["model"]
        assert with_implicit["recipe"] == without["recipe"]


@pytest.mark.one_backend
def test_tune_writes_best_and_resumes(data_dir, tmp_path, capsys):
    import json

    argv = [
        "tune",
        "--data-dir",
        data_dir,
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--epochs",
        "1",
        "--directory",
        str(tmp_path / "search"),
        "--fix",
        "batch_size=512",
        "--fix",
        "bias_terms=true",
        "--fix",
        "table_decay=0.3",
        "--fix",
        "optimizer=sparse_adam",
        "--best-out",
        str(tmp_path / "best.json"),
        "--preset-out",
        str(tmp_path / "best-preset"),
    ]
    status, out, err = _run(argv, capsys)
    assert status == 0, err
    assert "2,880 training and 320 validation ratings" in out
    progress = [ln for ln in out.splitlines() if " done: " in ln]
    trial_lines = [
        line
        for line in out.splitlines()
        if "batch_size=512" in line and line not in progress
    ]
    assert len(trial_lines) == 2
    # One line per finished trial, as the search runs, before the table.
    assert len(progress) == 2
    assert out.index(progress[-1]) < out.index(trial_lines[0])
    scores = []
    for line in progress:
        found = re.fullmatch(
            r"trial (\w+) done: val_rmse=(\d\.\d{4}) \(best so far "
            r"(\d\.\d{4})\); (.*batch_size=512.*)",
            line,
        )
        assert found, line
        scores.append(float(found[2]))
        assert float(found[3]) == min(scores)
    # Values read as typed: no 0.30000000000000004, JSON booleans.
    for line in trial_lines:
        values = dict(
            pair.split("=") for pair in line.split(None, 2)[2].split(", ")
        )
        assert values["bias_terms"] == "true"
        for text in values.values():
            if re.fullmatch(r"[\d.e+-]+", text) and "." in text:
                assert text == repr(float(f"{float(text):.6g}"))
    with open(tmp_path / "best.json") as file:
        best = json.load(file)
    assert best["objective"] == "val_rmse"
    assert best["hyperparameters"]["bias_terms"] is True
    assert best["score"] > 0
    assert os.path.getsize(tmp_path / "best.keras") > 0
    # The best trial as a preset folder: its model and recipe.
    from keras_catembed import RatingModel
    from keras_catembed import presets

    folder = str(tmp_path / "best-preset")
    assert f"Wrote the preset {folder}" in out
    recipe = presets.recipe(folder)
    assert (recipe.batch_size, recipe.epochs) == (512, 1)
    assert recipe.learning_rate == pytest.approx(
        best["hyperparameters"]["learning_rate"]
    )
    # The whole training recipe of the trial, its table decay included.
    assert (recipe.optimizer, recipe.table_decay) == ("sparse_adam", 0.3)
    assert RatingModel.from_preset(folder).bias_terms is True
    status, out, err = _run(
        ["train", "--data-dir", data_dir, "--preset", folder]
        + ["--max-rows", "200", "--verbose", "0"],
        capsys,
    )
    assert status == 0, err
    assert f"RatingModel ({folder})" in out
    # The files written are not replaced without --overwrite.
    written = (tmp_path / "best.keras").read_bytes()
    error = _error(argv, capsys)
    assert "best.json exists already; pass --overwrite" in error
    assert (tmp_path / "best.keras").read_bytes() == written
    # A second run resumes the finished search: no new trial.
    resume = argv[: argv.index("--best-out")]
    status, out, _ = _run(resume, capsys)
    assert status == 0
    assert len([ln for ln in out.splitlines() if "batch_size=512" in ln]) == 2
    assert not [ln for ln in out.splitlines() if " done: " in ln]
    # Not with other settings, which the old trials did not use.
    changed = [*resume]
    changed[changed.index("--epochs") + 1] = "2"
    error = _error(changed + ["--add-columns", "age"], capsys)
    assert "holds a search run with other settings" in error
    assert "columns: ['user_id', 'movie_id'] there," in error
    assert "epochs: 1 there, 2 now" in error
    assert "pass --overwrite to start afresh" in error
    # --overwrite starts the search afresh with the new settings.
    status, out, err = _run(changed + ["--overwrite"], capsys)
    assert status == 0, err
    assert len([ln for ln in out.splitlines() if " done: " in ln]) == 2
    project = changed[changed.index("--directory") + 1]
    settings = [
        os.path.join(root, name)
        for root, _, names in os.walk(project)
        for name in names
        if name == "catembed_search.json"
    ]
    assert len(settings) == 1
    with open(settings[0]) as file:
        assert json.load(file)["epochs"] == 2


def test_tune_add_columns_searches_with_them_and_trains_again(
    data_dir, tmp_path, capsys
):
    import keras

    from keras_catembed.datasets import movielens

    folder = str(tmp_path / "best-preset")
    status, out, err = _run(
        ["tune", "--data-dir", data_dir, "--tuner", "random"]
        + ["--max-trials", "1", "--epochs", "1"]
        + ["--directory", str(tmp_path / "search")]
        + ["--add-columns", "occupation,user_day"]
        + ["--fix", "implicit=true", "--fix", "batch_size=256"]
        + ["--pair-dtype", "bfloat16"]
        + ["--best-out", str(tmp_path / "best.json"), "--preset-out", folder],
        capsys,
    )
    assert status == 0, err
    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    best = keras.saving.load_model(str(tmp_path / "best.keras"))
    columns = ["user_id", "movie_id", "occupation", "user_day"]
    assert best.columns == columns
    assert best.implicit == {"user_id": "movie_id", "movie_id": "user_id"}
    assert best.pair_dtype == "bfloat16"
    layer = best.embedding_layers["user_day"]
    assert layer.input_dim == ratings.num_user_days
    # The preset folder trains the same columns again.
    model_path = str(tmp_path / "again.keras")
    status, out, err = _run(
        ["train", "--data-dir", data_dir, "--preset", folder]
        + ["--max-rows", "200", "--verbose", "0", "--save", model_path],
        capsys,
    )
    assert status == 0, err
    again = keras.saving.load_model(model_path)
    assert again.columns == columns and again.pair_dtype == "bfloat16"
    # A pair dtype that no trial can use is refused before any search.
    status, _, err = _run(
        ["tune", "--data-dir", data_dir, "--directory", str(tmp_path / "x")]
        + ["--fix", "implicit=false", "--fix", "neighborhood=false"]
        + ["--pair-dtype", "bfloat16"],
        capsys,
    )
    assert status == 2 and "pair_dtype='bfloat16'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.one_backend
def test_tune_rejects_unknown_hyperparameter(data_dir, tmp_path, capsys):
    status, _, err = _run(
        [
            "tune",
            "--data-dir",
            data_dir,
            "--directory",
            str(tmp_path),
            "--fix",
            "width=3",
        ],
        capsys,
    )
    assert status == 2
    assert "width" in err and len(err.strip().splitlines()) == 1


def _model_rmse(output):
    for line in output.splitlines():
        match = re.fullmatch(
            r"(?:RatingModel.*|model)\s+(\d+\.\d{4})\s+.*", line
        )
        if match:
            return float(match[1])
    raise AssertionError(f"no model row in {output!r}")


def test_train_with_implicit_feedback_saves_the_pairs(
    data_dir, tmp_path, capsys
):
    model_path = str(tmp_path / "implicit.keras")
    argv = ["--data-dir", data_dir, "--verbose", "0"]
    status, out, _ = _run(
        ["train", "--preset", "course", "--implicit", "--epochs", "2"]
        + argv
        + ["--save", model_path],
        capsys,
    )
    assert status == 0
    trained = _model_rmse(out)
    import keras

    model = keras.saving.load_model(model_path)
    assert model.implicit == {"user_id": "movie_id", "movie_id": "user_id"}
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert _model_rmse(out) == pytest.approx(trained, abs=1e-4)


def test_train_with_neighborhood_and_bfloat16_pairs_saves_them(
    data_dir, tmp_path, capsys
):
    model_path = str(tmp_path / "neighborhood.keras")
    status, out, err = _run(
        ["train", "--preset", "course", "--neighborhood"]
        + ["--pair-dtype", "bfloat16", "--epochs", "2"]
        # With a third column the pairs are named before it is added.
        + ["--add-columns", "age"]
        + ["--data-dir", data_dir, "--verbose", "0", "--save", model_path],
        capsys,
    )
    assert status == 0, err
    trained = _model_rmse(out)
    import keras

    model = keras.saving.load_model(model_path)
    assert model.columns == ["user_id", "movie_id", "age"]
    assert model.implicit == {}
    assert model.neighborhood == {"user_id": "movie_id", "movie_id": "user_id"}
    assert model.pair_dtype == "bfloat16"
    for layer in model.neighborhood_layers.values():
        assert keras.backend.standardize_dtype(layer.pair_weights.dtype) == (
            "bfloat16"
        )
        assert layer.listed_pairs() > 0
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert _model_rmse(out) == pytest.approx(trained, abs=1e-4)


@pytest.mark.parametrize("pairs", [["--implicit"], []])
def test_train_with_auto_pairs_saves_the_dtype_picked(
    data_dir, tmp_path, capsys, monkeypatch, pairs
):
    import keras

    from keras_catembed import _pair_dtype

    # As on a CPU with native bfloat16.
    monkeypatch.setattr(_pair_dtype, "native_bfloat16", lambda: True)
    model_path = str(tmp_path / "auto.keras")
    status, _, err = _run(
        ["train", "--preset", "course", *pairs, "--pair-dtype", "auto"]
        + ["--max-rows", "2000", "--epochs", "1", "--data-dir", data_dir]
        + ["--verbose", "0", "--save", model_path],
        capsys,
    )
    assert status == 0, err
    model = keras.saving.load_model(model_path)
    # bfloat16 for the pairs; a model without pairs keeps float32, where
    # `--pair-dtype bfloat16` is refused (below).
    assert model.pair_dtype == ("bfloat16" if pairs else "float32")


def test_train_refuses_bfloat16_pairs_without_pairs(data_dir, tmp_path, capsys):
    model_path = tmp_path / "none.keras"
    status, out, err = _run(
        ["train", "--preset", "course", "--pair-dtype", "bfloat16"]
        + ["--data-dir", data_dir, "--verbose", "0"]
        + ["--save", str(model_path)],
        capsys,
    )
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--pair-dtype bfloat16 sets the dtype" in lines[0]
    assert "--preset course has neither: add --implicit" in lines[0]
    # Refused before loading the data: nothing printed, no model written.
    assert out == ""
    assert not model_path.exists()


def test_train_with_weight_average_keeps_and_saves_it(
    data_dir, tmp_path, capsys
):
    model_path = str(tmp_path / "ema.keras")
    argv = ["--data-dir", data_dir, "--verbose", "0"]
    status, out, _ = _run(
        ["train", "--preset", "course", "--ema-momentum", "0.9"]
        + ["--epochs", "2", "--save", model_path]
        + argv,
        capsys,
    )
    assert status == 0
    import keras

    model = keras.saving.load_model(model_path)
    assert model.optimizer.use_ema
    assert model.optimizer.ema_momentum == pytest.approx(0.9)
    # The table scored the averaged weights, which the file holds.
    status, evaluated, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert _model_rmse(evaluated) == pytest.approx(_model_rmse(out), abs=1e-4)


@pytest.mark.one_backend
def test_train_max_rows_keeps_the_first_training_rows(data_dir, capsys):
    status, out, _ = _run(
        ["train", "--preset", "course", "--max-rows", "150", "--epochs", "1"]
        + ["--data-dir", data_dir, "--verbose", "0"],
        capsys,
    )
    assert status == 0
    assert re.search(r": 150 training and [\d,]+ test ratings", out)


@pytest.mark.parametrize(
    "name",
    sorted(PRESETS),
)
def test_every_preset_trains_with_its_settings(data_dir, name):
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    train = ratings.subset(np.arange(300))
    model, history = training.train(train, name, verbose=0, epochs=1)
    recipe = presets.get(name)["recipe"]
    assert model.recipe == training.Recipe.from_config(recipe).replace(epochs=1)
    assert model.optimizer.use_ema == (recipe["ema_momentum"] is not None)
    assert len(history.history["loss"]) == 1
    prediction = model.predict(inputs(train, model.columns), verbose=0)
    assert np.all(np.isfinite(prediction))
    if presets.get(name)["model"]["rating_range"] is not None:
        assert np.all((prediction > 0.5) & (prediction < 5.5))


def test_train_model_takes_ema_momentum_as_a_training_setting(data_dir):
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    train = ratings.subset(np.arange(200))
    held_out = ratings.subset(np.arange(200, 300))
    model, history = training.train(
        train,
        "course",
        validation=held_out,
        verbose=0,
        epochs=2,
        ema_momentum=0.5,
    )
    assert model.optimizer.use_ema
    assert model.optimizer.ema_momentum == pytest.approx(0.5)
    # Validation saw the averaged weights, which `fit` left in the model.
    rmse = model.evaluate(
        inputs(held_out), held_out.rating, verbose=0, return_dict=True
    )["rmse"]
    assert history.history["val_rmse"][-1] == pytest.approx(rmse, rel=1e-5)
    plain, _ = training.train(train, "course", verbose=0, epochs=1)
    assert not plain.optimizer.use_ema
    # 0 means no average, as in the hypermodel.
    off, _ = training.train(
        train, "course", verbose=0, epochs=1, ema_momentum=0
    )
    assert not off.optimizer.use_ema


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "preset, recorded",
    [
        ("tuned-ml-100k", "tune_ml-100k-preset"),
        ("tuned-ml-1m", "tune_ml-1m-preset-large"),
    ],
)
def test_tuned_preset_is_the_recorded_search_result(preset, recorded):
    import json

    from keras_catembed import presets

    path = os.path.join(ROOT, "benchmarks", "results", f"{recorded}.json")
    with open(path, encoding="utf-8") as file:
        result = json.load(file)
    config = presets.get(preset)
    # The search recorded the preset in the first preset vocabulary.
    recorded_preset = presets.upgrade(copy.deepcopy(result["preset"]))
    recorded_preset["model"]["rating_range"] = (0.5, 5.5)
    # Since moved to the sparse path: the recipe's decay of the tables
    # replaces their L2 penalty (benchmarks/sparse_presets.py).
    assert recorded_preset["model"]["embedding"]["embeddings_regularizer"]
    recorded_preset["model"]["embedding"]["embeddings_regularizer"] = None
    assert config["model"] == recorded_preset["model"]
    decay = {"tuned-ml-100k": 3.0, "tuned-ml-1m": 1.0}[preset]
    assert training.Recipe.from_config(
        config["recipe"]
    ) == training.Recipe.from_config(recorded_preset["recipe"]).replace(
        optimizer="sparse_adam", table_decay=decay
    )
    # The preset is the best trial of the search.
    best = min(
        trial["val_rmse"]
        for trial in result["trials"]
        if trial["val_rmse"] is not None
    )
    assert result["trials"][0]["val_rmse"] == best
    assert result["best"] == result["trials"][0]["hyperparameters"]
    built = keras_catembed_model(preset)
    dims = result["preset"]["model"]["embedding_dim"]
    for column in ("user_id", "movie_id"):
        assert built.embedding_layers[column].output_dim == dims[column]
    assert built.implicit == {"user_id": "movie_id", "movie_id": "user_id"}


def keras_catembed_model(preset):
    import keras_catembed

    return keras_catembed.RatingModel.from_preset(
        preset, {"user_id": 943, "movie_id": 1682}
    )


@pytest.mark.one_backend
def test_inputs_add_the_user_features_a_model_names(data_dir):
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    part = ratings.subset(np.arange(50))
    assert list(inputs(part)) == ["user_id", "movie_id"]
    x = inputs(part, ("user_id", "movie_id", "occupation", "gender"))
    assert list(x) == ["user_id", "movie_id", "occupation", "gender"]
    features = ratings.user_features()
    np.testing.assert_array_equal(
        x["occupation"], features["occupation"][part.user_id]
    )
    np.testing.assert_array_equal(x["gender"], part.user_id % 2)
    with pytest.raises(ValueError, match="No MovieLens input is named 'zip'"):
        inputs(part, ("user_id", "zip"))


def test_demographics_preset_trains_saves_and_evaluates(
    data_dir, tmp_path, capsys
):
    from keras_catembed import RatingModel

    with pytest.raises(ValueError, match=r"add the columns \['age', 'gender'"):
        RatingModel.from_preset(
            "tuned-ml-100k-demographics", {"user_id": 80, "movie_id": 60}
        )
    model_path = str(tmp_path / "model.keras")
    status, out, _ = _run(
        [
            "train",
            "--data-dir",
            data_dir,
            "--preset",
            "tuned-ml-100k-demographics",
            "--epochs",
            "1",
            "--verbose",
            "0",
            "--save",
            model_path,
        ],
        capsys,
    )
    assert status == 0
    trained_rmse = re.search(
        r"RatingModel \(tuned-ml-100k-demographics\)\s+(\d+\.\d{4})", out
    )[1]
    # The table's columns line up, whatever the length of the names.
    table = [
        line
        for line in out.splitlines()
        if line.startswith(
            ("model ", "global mean", "per-movie", "RatingModel")
        )
    ]
    assert len(table) == 4 and len({len(line) for line in table}) == 1
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert re.search(rf"model\s+{trained_rmse}", out)
    # Exploring uses the movie vectors with their neighbourhood part.
    status, out, _ = _run(
        [
            "similar",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--movie",
            "Movie 1 (1950)",
        ],
        capsys,
    )
    assert status == 0
    assert "Nearest to Movie 1 (1950)" in out


def _error(argv, capsys):
    """Runs a command that must fail; returns its one error line."""
    status, out, err = _run(argv, capsys)
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("catembed: error: ")
    # Nothing trained, nothing printed.
    assert out == ""
    return lines[0]


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--batch-size", "0"], "--batch-size must be a positive"),
        (["train", "--batch-size", "-5"], "--batch-size must be a positive"),
        (["train", "--epochs", "0"], "--epochs must be a positive integer"),
        (["train", "--epochs", "-1"], "--epochs must be a positive integer"),
        (["train", "--learning-rate", "nan"], "--learning-rate must be a"),
        (["train", "--learning-rate", "inf"], "--learning-rate must be a"),
        (["train", "--learning-rate", "-0.1"], "--learning-rate must be a"),
        (["train", "--learning-rate", "0"], "--learning-rate must be a"),
        (["train", "--test-fraction", "1"], "--test-fraction must be a"),
        (["train", "--test-fraction", "0"], "--test-fraction must be a"),
        (["train", "--dropout", "1"], "--dropout must be a number in [0, 1)"),
        (["train", "--seed", "-1"], "--seed must be an integer in [0, 2**32"),
        (
            ["train", "--seed", "4294967296"],
            "--seed must be an integer in [0, 2**32 - 1]. Received: 4294967296",
        ),
        (["train", "--rating-range", "5,1"], "--rating-range must be two"),
        (["train", "--rating-range", "1,nan"], "--rating-range must be two"),
        (["train", "--max-rows", "-3"], "--max-rows must be a positive"),
        (["train", "--embedding-dim", "0"], "--embedding-dim expects positive"),
        (["train", "--hidden-units", "8,0"], "--hidden-units expects positive"),
        (["train", "--ema-momentum", "nan"], "--ema-momentum must be a"),
        (["train", "--batch-size", "x"], "argument --batch-size: invalid int"),
        (["train", "--preset", "nope"], "--preset must be 'auto', one of"),
        (["train", "--nope"], "unrecognized arguments: --nope"),
        (
            ["train", "--pair-dtype", "float16"],
            "argument --pair-dtype: invalid choice: 'float16'",
        ),
        (["tune", "--epochs", "-1"], "--epochs must be a positive integer"),
        (["tune", "--max-trials", "0"], "--max-trials must be a positive"),
        (
            ["tune", "--validation-fraction", "1.5"],
            "--validation-fraction must be a number in (0, 1). Received: 1.5",
        ),
        (
            ["tune", "--validation-fraction", "0"],
            "--validation-fraction must be a number in (0, 1)",
        ),
        (["tune", "--test-fraction", "-0.2"], "--test-fraction must be a"),
        (["tune", "--fix", "dropout"], "--fix expects NAME=VALUE"),
        (
            ["similar", "--model", "m.keras", "--movie", "A", "-k", "0"],
            "-k must be a positive integer. Received: 0",
        ),
        (
            ["similar", "--model", "m.keras", "--movie", "A", "--metric", "l1"],
            "argument --metric: invalid choice",
        ),
        (
            ["similar", "--model", "m.keras", "--movie", "A"]
            + ["--min-ratings", "-1"],
            "--min-ratings must be an integer >= 0",
        ),
        (
            ["plot", "--model", "m.keras", "--num-labels", "-1"],
            "--num-labels must be an integer >= 0. Received: -1",
        ),
        (
            ["evaluate", "--model", "m.keras", "--test-fraction", "2"],
            "--test-fraction must be a number in (0, 1)",
        ),
        (
            ["train", "--pair-dtype", "bfloat16", "--preset", "mlp"],
            "--pair-dtype bfloat16 sets the dtype of the pairs of implicit "
            "feedback and the neighbourhood, and --preset mlp has neither",
        ),
        (
            ["train", "--download-timeout", "0"],
            "--download-timeout must be a finite number of seconds > 0",
        ),
        (
            ["train", "--dataset", "ml-2m"],
            "--dataset must be one of: ml-100k, ml-1m, ml-10m, ml-20m, "
            "ml-25m, ml-32m, ml-latest-small, ml-latest. Received: 'ml-2m'",
        ),
        (
            ["tune", "--dataset", "ml-1m", "--split", "u2"],
            "--split u2 is an official fold of ml-100k; ml-1m has none: "
            "use --split random or --split temporal",
        ),
        (
            ["projector", "--model", "m.keras", "--log-dir", "{file}"],
            "--log-dir names a file; expected a folder (new or existing). "
            "Received: '{file}'",
        ),
        (
            ["tune", "--directory", "{file}"],
            "--directory names a file; expected a folder",
        ),
    ],
)
def test_bad_option_values_stop_before_loading_data(
    tmp_path, capsys, argv, message
):
    # The data folder does not exist: an error about it would mean that
    # the option was checked only after loading.
    missing = str(tmp_path / "no-data")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    argv = [arg.replace("{file}", str(a_file)) for arg in argv]
    error = _error([*argv, "--data-dir", missing], capsys)
    assert message.replace("{file}", str(a_file)) in error
    assert "no-data" not in error


@pytest.mark.one_backend
def test_usage_mistakes_are_one_line(capsys):
    error = _error([], capsys)
    assert "required: command" in error
    error = _error(["train", "--epochs"], capsys)
    assert "argument --epochs: expected one argument" in error
    assert "catembed train --help" in error


@pytest.mark.parametrize(
    "command", ["evaluate", "similar", "plot", "projector"]
)
def test_model_must_be_a_saved_rating_model(command, tmp_path, capsys):
    import keras

    other = str(tmp_path / "other.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(other)
    text = tmp_path / "text.keras"
    text.write_text("not a model")
    extra = {
        "evaluate": [],
        "similar": ["--movie", "Movie 1 (1950)"],
        "plot": ["--out", str(tmp_path / "map.png")],
        "projector": ["--log-dir", str(tmp_path / "logs")],
    }[command]
    missing = str(tmp_path / "no-data")
    for model, message in (
        (other, "holds a Sequential, not a RatingModel"),
        (str(text), "cannot load"),
        (str(tmp_path / "missing.keras"), "no such file"),
        (str(tmp_path), "no such file"),
    ):
        error = _error(
            [command, "--model", model, "--data-dir", missing, *extra], capsys
        )
        assert error.startswith("catembed: error: --model: ")
        assert model in error and message in error
    assert not os.path.exists(tmp_path / "map.png")
    assert not os.path.exists(tmp_path / "logs")


@pytest.mark.one_backend
def test_version(capsys):
    import keras_catembed

    status, out, err = _run(["--version"], capsys)
    assert status == 0 and err == ""
    assert out == f"catembed {keras_catembed.__version__}\n"


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--save", "model.h5"], "--save must name a .keras file"),
        (["train", "--save", "model"], "--save must name a .keras file"),
        (["train", "--save", "{tmp}/none/m.keras"], "none does not exist"),
        (["train", "--save", "{tmp}/folder.keras"], "--save names a folder"),
        (["train", "--plot", "{tmp}/none/map.png"], "none does not exist"),
        (["train", "--plot", "map.xyz"], "--plot must name an image file"),
        # matplotlib would write map.png, not the file named.
        (["train", "--plot", "map"], "--plot must name an image file"),
        (
            ["plot", "--model", "m.keras", "--out", "{tmp}/map"],
            "). Received: '{tmp}/map'",
        ),
        (
            ["train", "--history-plot", "h.xyz"],
            "--history-plot must name an image file",
        ),
        (["train", "--history-plot", "{tmp}/none/h.png"], "none does not"),
        (
            ["plot", "--model", "m.keras", "--out", "{tmp}/none/map.png"],
            "--out: the folder",
        ),
        (["tune", "--best-out", "best.keras"], "--best-out must name a .json"),
        (["tune", "--best-out", "{tmp}/none/b.json"], "none does not exist"),
        # What the user made is not replaced without --overwrite.
        (
            ["train", "--save", "{tmp}/made.keras"],
            "--save: {tmp}/made.keras exists already; pass --overwrite",
        ),
        (
            ["tune", "--best-out", "{tmp}/made.json"],
            "--best-out: {tmp}/made.keras exists already; pass --overwrite",
        ),
        (
            ["tune", "--preset-out", "{tmp}/preset"],
            "--preset-out: {tmp}/preset/config.json exists already",
        ),
    ],
)
def test_output_paths_are_checked_before_training(
    tmp_path, capsys, argv, message
):
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "made.keras").write_bytes(b"a trained model")
    (tmp_path / "preset").mkdir()
    (tmp_path / "preset" / "config.json").write_text("{}")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    missing = str(tmp_path / "no-data")
    error = _error([*argv, "--data-dir", missing], capsys)
    assert message.replace("{tmp}", str(tmp_path)) in error
    assert (tmp_path / "made.keras").read_bytes() == b"a trained model"


@pytest.mark.one_backend
def test_unknown_similar_title_stops_before_training(
    data_dir, tmp_path, capsys
):
    model_path = tmp_path / "model.keras"
    error = _error(
        ["train", "--data-dir", data_dir, "--preset", "course"]
        + ["--epochs", "1", "--verbose", "0", "--save", str(model_path)]
        + ["--similar", "Movie 1 (1905)"],
        capsys,
    )
    assert "No movie titled 'Movie 1 (1905)'" in error
    assert not model_path.exists()


@pytest.mark.one_backend
def test_train_saves_the_model_before_the_extras(
    data_dir, tmp_path, capsys, monkeypatch
):
    def failing_extra(*args, **kwargs):
        raise OSError("the extra failed")

    monkeypatch.setattr(cli_embeddings, "print_similar", failing_extra)
    monkeypatch.setattr(cli_embeddings, "plot", failing_extra)
    model_path = tmp_path / "model.keras"
    status, out, err = _run(
        ["train", "--data-dir", data_dir, "--preset", "course"]
        + ["--max-rows", "200", "--epochs", "1", "--verbose", "0"]
        + ["--save", str(model_path), "--similar", "Movie 1 (1950)"]
        + ["--plot", str(tmp_path / "map.png")],
        capsys,
    )
    assert status == 2
    assert err.strip() == "catembed: error: the extra failed"
    assert f"Saved the model to {model_path}" in out
    import keras

    from keras_catembed import RatingModel

    assert isinstance(keras.saving.load_model(model_path), RatingModel)


@pytest.mark.one_backend
def test_train_labels_the_held_out_metrics_as_test(data_dir, capsys):
    status, out, _ = _run(
        ["train", "--data-dir", data_dir, "--preset", "course"]
        + ["--max-rows", "200", "--epochs", "2", "--verbose", "2"],
        capsys,
    )
    assert status == 0
    # The Keras log of each epoch and the table name the test part.
    epochs = [line for line in out.splitlines() if "test_rmse" in line]
    assert len(epochs) == 2
    assert "val_" not in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert header.split() == ["model", "test", "RMSE", "test", "MAE"]
    assert re.search(r"\btest_rmse: (\d+\.\d+)", epochs[-1])


def test_train_model_names_the_validation_metrics(data_dir):
    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    train = ratings.subset(np.arange(200))
    held_out = ratings.subset(np.arange(200, 300))
    model, history = training.train(
        train,
        "course",
        validation=held_out,
        validation_name="test",
        verbose=0,
        epochs=1,
    )
    assert sorted(history.history) == [
        "loss",
        "mae",
        "rmse",
        "test_loss",
        "test_mae",
        "test_rmse",
    ]
    rmse = model.evaluate(
        inputs(held_out), held_out.rating, verbose=0, return_dict=True
    )["rmse"]
    assert history.history["test_rmse"][-1] == pytest.approx(rmse, rel=1e-5)


@pytest.mark.one_backend
def test_tune_prints_values_as_typed():
    assert cli._typed(0.1 + 0.2) == "0.3"
    assert cli._typed(0.0012345678901) == "0.00123457"
    assert cli._typed(1e-6) == "1e-06"
    assert cli._typed(0.0) == "0.0"
    assert cli._typed(True) == "true"
    assert cli._typed(None) == "null"
    assert cli._typed(64) == "64"
    assert cli._typed("gelu") == "gelu"


def _options(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                for option, help_text in _options(subparser):
                    yield f"{name} {option}", help_text
        elif action.dest != "help":
            yield "/".join(action.option_strings), action.help


@pytest.mark.one_backend
def test_every_option_has_help():
    options = dict(_options(cli._build_parser()))
    assert "similar -k" in options and "tune --project-name" in options
    missing = [name for name, text in options.items() if not text]
    assert missing == []
    # `train` embeds added columns at a fixed size; `tune` searches it.
    assert "each with 8 dimensions" in options["train --add-columns"]
    assert "size searched" in options["tune --add-columns"]


@pytest.mark.one_backend
def test_offline_error_names_the_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    error = _error(["train", "--no-download", "--epochs", "1"], capsys)
    assert "--no-download was given" in error
    assert "--data-dir FOLDER" in error
    assert "data_dir" not in error and "load_ratings" not in error
    error = _error(["train", "--data-dir", str(tmp_path / "nowhere")], capsys)
    assert "--data-dir does not exist. Received: --data-dir '" in error
    assert "data_dir" not in error


@pytest.mark.one_backend
def test_model_of_another_release_is_one_line(data_dir, tmp_path, capsys):
    from keras_catembed import RatingModel

    model = RatingModel.from_preset("course", {"user_id": 80, "movie_id": 7})
    x = {"user_id": np.array([0]), "movie_id": np.array([0])}
    model.predict(x, verbose=0)
    path = str(tmp_path / "other.keras")
    model.save(path)
    argv = ["--model", path, "--dataset", "ml-100k", "--data-dir", data_dir]
    for command in ("evaluate", "recommend --user 1"):
        error = _error([*command.split(), *argv], capsys)
        assert (
            "does not match ml-100k: it embeds 7 movies, the data has 60"
            in error
        )


def test_recommend_lists_unrated_movies_best_first(trained, data_dir, capsys):
    from keras_catembed.datasets import movielens

    _, _, model_path, _ = trained
    status, out, _ = _run(
        [
            "recommend",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--user",
            "3",
            "-k",
            "5",
            "--min-ratings",
            "0",
        ],
        capsys,
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("Top 5 for user 3 of ml-100k (rated ")
    assert len(lines) == 6
    scores = [float(line.split()[1]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)
    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    user = int(np.flatnonzero(ratings.user_ids == 3)[0])
    seen = {
        ratings.titles[m] for m in ratings.movie_id[ratings.user_id == user]
    }
    titles = [line.strip().split("  ", 1)[1] for line in lines[1:]]
    assert not seen & set(titles)
    assert set(titles) <= set(ratings.titles)


def test_recommend_names_an_unknown_user(trained, data_dir, capsys):
    _, _, model_path, _ = trained
    error = _error(
        [
            "recommend",
            "--model",
            model_path,
            "--data-dir",
            data_dir,
            "--user",
            "100000",
        ],
        capsys,
    )
    assert "--user 100000 is not a user of ml-100k" in error


def _train_quick(data_dir, capsys, *extra):
    status, out, err = _run(
        ["train", "--data-dir", data_dir, "--preset", "course"]
        + ["--epochs", "2", "--batch-size", "64", "--verbose", "0"]
        + list(extra),
        capsys,
    )
    assert status == 0, err
    return out


def test_seed_repeats_a_training_run(data_dir, tmp_path, capsys):
    import keras

    from keras_catembed.datasets import movielens

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    x = inputs(ratings)
    outputs, predictions = [], []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        path = str(tmp_path / f"{name}.keras")
        out = _train_quick(
            data_dir,
            capsys,
            "--max-rows",
            "640",
            "--seed",
            seed,
            "--save",
            path,
        )
        outputs.append(out.replace(path, ""))
        model = keras.saving.load_model(path)
        predictions.append(model.predict(x, verbose=0))
    assert outputs[0] == outputs[1]
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-7)
    assert outputs[0] != outputs[2]
    assert np.max(np.abs(predictions[0] - predictions[2])) > 1e-3


def test_evaluate_warns_when_test_ratings_trained_the_model(
    trained, data_dir, capsys
):
    _, _, model_path, _ = trained
    argv = ["evaluate", "--model", model_path, "--data-dir", data_dir]
    # The model was trained on u1: u2's test part is in u1's training part.
    status, out, err = _run([*argv, "--split", "u2"], capsys)
    assert status == 0
    warning = [line for line in out.splitlines() if "WARNING" in line]
    assert len(warning) == 1
    assert warning[0].startswith("WARNING: About 100% of the evaluated rows")
    assert "catembed: warning: About 100%" in err
    status, out, err = _run([*argv, "--split", "u1"], capsys)
    assert status == 0
    assert "WARNING" not in out and "warning" not in err


def test_saved_model_records_its_data_source(trained, data_dir):
    import keras

    _, _, model_path, _ = trained
    model = keras.saving.load_model(model_path)
    assert model.data_source == {
        "dataset": "ml-100k",
        "data_dir": os.path.abspath(data_dir),
        "split": "u1",
        "test_fraction": None,
        "seed": 0,
        "max_rows": None,
    }


def test_model_alone_finds_its_data(trained, tmp_path, capsys):
    _, _, model_path, _ = trained
    status, out, err = _run(
        ["similar", "--model", model_path, "--movie", "Movie 3 (1952)"],
        capsys,
    )
    assert status == 0, err
    assert out.startswith("Nearest to Movie 3 (1952) (cosine):")
    png = str(tmp_path / "map.png")
    status, _, err = _run(["plot", "--model", model_path, "--out", png], capsys)
    assert status == 0, err
    assert os.path.getsize(png) > 5000
    logs = str(tmp_path / "logs")
    status, _, err = _run(
        ["projector", "--model", model_path, "--log-dir", logs], capsys
    )
    assert status == 0, err
    assert os.path.exists(os.path.join(logs, "movie_id_metadata.tsv"))


def test_recommend_and_evaluate_read_the_recorded_data(
    trained, data_dir, capsys
):
    _, _, model_path, _ = trained
    outputs = {}
    for argv in (
        ["recommend", "--user", "1", "-k", "3", "--min-ratings", "0"],
        ["evaluate", "--split", "u1"],
    ):
        command = [argv[0], "--model", model_path, *argv[1:]]
        status, alone, err = _run(command, capsys)
        assert status == 0, err
        status, named, err = _run([*command, "--data-dir", data_dir], capsys)
        assert status == 0, err
        assert alone == named
        outputs[argv[0]] = alone
    assert outputs["recommend"].startswith("Top 3 for user 1 of ml-100k")
    assert "RMSE" in outputs["evaluate"]


def test_evaluate_defaults_to_the_recorded_split_and_folder(
    data_dir, tmp_path, capsys, monkeypatch
):
    from keras_catembed.datasets import movielens

    # `~` in --data-dir is recorded expanded.
    home, name = os.path.split(os.path.abspath(data_dir))
    monkeypatch.setenv("HOME", home)
    model_path = str(tmp_path / "random.keras")
    status, _, err = _run(
        ["train", "--data-dir", f"~/{name}", "--preset", "course"]
        + ["--split", "random", "--seed", "3", "--test-fraction", "0.1"]
        + ["--epochs", "1", "--verbose", "0", "--save", model_path],
        capsys,
    )
    assert status == 0, err
    _, test = movielens.load_ratings("ml-100k", data_dir=data_dir).random_split(
        0.1, seed=3
    )
    expected = f"ml-100k, random split, {len(test):,} ratings"
    # The recorded release, folder, split, fraction and seed; the folder
    # also when the recorded release is named.
    for extra in ([], ["--dataset", "ml-100k", "--no-download"]):
        status, out, err = _run(
            ["evaluate", "--model", model_path, *extra], capsys
        )
        assert status == 0, err
        assert out.splitlines()[0] == expected
        assert "WARNING" not in out and "warning" not in err
    # Options given are kept: another seed's test part was trained on.
    status, out, err = _run(
        ["evaluate", "--model", model_path, "--seed", "4"], capsys
    )
    assert status == 0, err
    assert out.splitlines()[0] == expected
    assert "WARNING: About" in out


def test_model_alone_says_what_is_missing(trained, tmp_path, capsys):
    import keras

    _, _, model_path, _ = trained
    model = keras.saving.load_model(model_path)
    model.data_source = None
    bare = str(tmp_path / "bare.keras")
    model.save(bare)
    for argv in (
        ["similar", "--model", bare, "--movie", "M"],
        ["recommend", "--model", bare, "--user", "1"],
        ["evaluate", "--model", bare],
    ):
        error = _error(argv, capsys)
        assert error == (
            f"catembed: error: --model {bare} does not record its training "
            "data (only models saved by catembed train --save do): pass "
            "--dataset (and --data-dir if the release is not in the cache)"
        )
    model.data_source = {"dataset": "ml-100k", "data_dir": "/no/such/dir"}
    moved = str(tmp_path / "moved.keras")
    model.save(moved)
    error = _error(["plot", "--model", moved], capsys)
    assert error == (
        f"catembed: error: --model {moved} was trained on ml-100k from "
        "/no/such/dir, which no longer exists: pass --data-dir"
    )


@pytest.mark.one_backend
def test_history_plot_draws_rmse_per_epoch(data_dir, tmp_path, capsys):
    from matplotlib import image

    path = str(tmp_path / "history.png")
    out = _train_quick(data_dir, capsys, "--history-plot", path)
    assert f"Wrote the RMSE per epoch to {path}" in out
    pixels = image.imread(path)
    assert pixels.shape[:2] == (450, 700)
    history = {"rmse": [1.2, 1.0], "test_rmse": [1.1, 1.05], "loss": [1, 1]}
    figure_path = str(tmp_path / "h.png")
    cli._plot_history(history, figure_path, "ml-100k")
    assert os.path.getsize(figure_path) > 5000
    with pytest.raises(cli.CommandError, match="has no RMSE to draw"):
        cli._plot_history({"loss": [1.0]}, figure_path, "ml-100k")


def test_similar_center_spreads_the_scores(trained, data_dir, capsys):
    _, _, model_path, _ = trained
    argv = ["similar", "--model", model_path, "--movie", "Movie 3 (1952)"]
    status, plain, _ = _run([*argv, "-k", "59", "--min-ratings", "0"], capsys)
    assert status == 0
    status, centred, _ = _run(
        [*argv, "-k", "59", "--min-ratings", "0", "--center"], capsys
    )
    assert status == 0
    assert centred.splitlines()[0] == (
        "Nearest to Movie 3 (1952) (cosine, centred):"
    )

    def scores(output):
        return [float(line.split()[1]) for line in output.splitlines()[1:]]

    assert scores(plain) != scores(centred)
    assert len(scores(centred)) == 59


def test_train_add_columns_embeds_them_and_saves_them(
    data_dir, tmp_path, capsys
):
    import keras

    from keras_catembed.datasets import movielens

    model_path = str(tmp_path / "columns.keras")
    status, out, _ = _run(
        ["train", "--data-dir", data_dir, "--preset", "course"]
        + ["--add-columns", "user_day, gender", "--epochs", "2"]
        + ["--verbose", "0", "--save", model_path],
        capsys,
    )
    assert status == 0
    assert "preset 'course+user_day+gender'" in out
    trained = _model_rmse(out)
    model = keras.saving.load_model(model_path)
    assert model.columns == ["user_id", "movie_id", "gender", "user_day"]
    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    layer = model.embedding_layers["user_day"]
    assert (layer.input_dim, layer.output_dim) == (ratings.num_user_days, 8)
    # evaluate builds the same columns from the data.
    status, out, _ = _run(
        ["evaluate", "--model", model_path, "--data-dir", data_dir], capsys
    )
    assert status == 0
    assert _model_rmse(out) == pytest.approx(trained, abs=1e-4)
    # recommend scores each movie at the user's latest day of training
    # (u1.base): a later day, of u1.test only, has an untrained vector.
    train, _ = ratings.official_split("u1")
    days = ratings.user_day()
    train_days = train.user_day()
    user = next(
        u
        for u in np.unique(train.user_id)
        if days[ratings.user_id == u].max()
        > train_days[train.user_id == u].max()
    )
    rows = np.flatnonzero(train.user_id == user)
    latest_day = train_days[[rows[np.argmax(train.timestamp[rows])]]]
    assert latest_day[0] < days[ratings.user_id == user].max()
    status, out, _ = _run(
        ["recommend", "--model", model_path, "--data-dir", data_dir]
        + ["--user", str(ratings.user_ids[user]), "-k", "3"]
        + ["--min-ratings", "0"],
        capsys,
    )
    assert status == 0
    title = out.splitlines()[1].strip().split("  ", 1)[1]
    top = int(np.flatnonzero(ratings.titles == title)[0])
    x = {
        "user_id": np.array([user]),
        "movie_id": np.array([top]),
        "gender": ratings.user_features()["gender"][[user]],
        "user_day": latest_day,
    }
    predicted = float(model.predict(x, verbose=0)[0, 0])
    assert float(out.splitlines()[1].split()[1]) == pytest.approx(
        predicted, abs=0.006
    )


def test_recommend_names_a_column_it_cannot_make(data_dir, tmp_path, capsys):
    import keras

    import keras_catembed

    model = keras_catembed.RatingModel(
        {"user_id": 80, "movie_id": 60, "store_id": 3}, hidden_units=[4]
    )
    model.build()
    path = str(tmp_path / "store.keras")
    model.save(path)
    assert keras.saving.load_model(path).columns[-1] == "store_id"
    error = _error(
        ["recommend", "--model", path, "--dataset", "ml-100k"]
        + ["--data-dir", data_dir, "--user", "3"],
        capsys,
    )
    assert "embeds the column 'store_id', which recommend cannot make" in error


@pytest.mark.one_backend
@pytest.mark.parametrize("value", ["user_days", "", "age,zip"])
def test_train_add_columns_rejects_unknown_names(data_dir, capsys, value):
    status, _, err = _run(
        ["train", "--data-dir", data_dir, "--add-columns", value], capsys
    )
    assert status == 2
    assert (
        "--add-columns expects some of age, gender, occupation, user_day" in err
    )
    assert f"Received: {value!r}" in err
