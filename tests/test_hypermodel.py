"""Tests for `RatingHyperModel` with every KerasTuner tuner."""

import inspect
import json
import math
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest

import keras_catembed
from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.entity_embedding import auto_output_dim
from keras_catembed.hypermodel import RatingHyperModel
from keras_catembed.hypermodel import output_dim_choices
from keras_catembed.rating_model import RatingModel
from tests._tuner_worker import BATCH_SIZE
from tests._tuner_worker import NUM_ITEMS
from tests._tuner_worker import NUM_USERS
from tests._tuner_worker import make_ratings
from tests._tuner_worker import run_search
from tests._tuner_worker import small_hypermodel

Choice = keras_tuner.engine.hyperparameters.Choice
Fixed = keras_tuner.engine.hyperparameters.Fixed
WORKER = pathlib.Path(__file__).with_name("_tuner_worker.py")
EMBEDDINGS = {"user_id": NUM_USERS, "item_id": NUM_ITEMS}


def _trials(directory, project="search"):
    """The saved `trial.json` of every trial, by trial id."""
    trials = {}
    for path in sorted((directory / project).glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        trials[trial["trial_id"]] = trial
    return trials


def _search_data():
    x, y = make_ratings()
    return x, y, make_ratings(num_rows=2 * BATCH_SIZE, seed=1)


# Constructor checks ---------------------------------------------------------


def test_is_a_keras_tuner_hypermodel():
    assert keras_catembed.RatingHyperModel is RatingHyperModel
    hypermodel = RatingHyperModel(EMBEDDINGS)
    assert isinstance(hypermodel, keras_tuner.HyperModel)
    assert hypermodel.embeddings == EMBEDDINGS
    assert hypermodel.columns == ["user_id", "item_id"]


def test_rejects_bad_embeddings():
    for embeddings in (
        {},
        [("user_id", 3)],
        {"user_id": 0},
        {"user_id": 2.5},
        {"user_id": True},
        {"": 3},
        {"user_id": EntityEmbedding(3)},
    ):
        with pytest.raises(ValueError, match="embeddings"):
            RatingHyperModel(embeddings)


def test_rejects_unknown_fixed_name_and_lists_valid_names():
    with pytest.raises(ValueError, match="learning_rat") as info:
        RatingHyperModel(EMBEDDINGS, learning_rat=0.01)
    message = str(info.value)
    assert "Valid names" in message
    for name in RatingHyperModel(EMBEDDINGS).hyperparameter_names:
        assert name in message


def test_rejects_bad_fixed_values():
    for name, value in (
        ("learning_rate", -1.0),
        ("learning_rate", 0),
        ("learning_rate", float("nan")),
        ("embeddings_l2", -1e-4),
        ("dropout", 1.5),
        ("entity_dropout", -0.1),
        ("bias_terms", 1),
        ("bounded_output", "yes"),
        ("implicit", 1),
        ("neighborhood", "no"),
        ("schedule", "linear"),
        ("embeddings_initializer", "glorot"),
        ("optimizer", "adadelta2"),
        ("activation", "no_such_activation"),
        ("activation", 3),
        ("user_id_output_dim", 0),
        ("hidden_units_0", 2.5),
        ("num_hidden_layers", -1),
        ("batch_size", 0),
        ("ema_momentum", 1.0),
        ("ema_momentum", -0.1),
        ("ema_momentum", True),
        ("ema_momentum", "0.99"),
    ):
        with pytest.raises(ValueError, match=name):
            RatingHyperModel(EMBEDDINGS, **{name: value})


def test_rejects_bad_objective_metric():
    with pytest.raises(ValueError, match="objective_metric"):
        RatingHyperModel(EMBEDDINGS, objective_metric="accuracy")


def test_rejects_bad_rating_range():
    for rating_range in ((5, 1), (1,), "1-5", (0, np.inf)):
        with pytest.raises(ValueError, match="rating_range"):
            RatingHyperModel(EMBEDDINGS, rating_range=rating_range)


def test_bounded_output_needs_a_rating_range():
    with pytest.raises(ValueError, match="rating_range"):
        RatingHyperModel(EMBEDDINGS, rating_range=None, bounded_output=True)


@pytest.mark.one_backend
def test_missing_keras_tuner_raises_import_error_with_pip_command():
    # A fresh process in which `import keras_tuner` fails.
    code = (
        "import sys\n"
        "sys.modules['keras_tuner'] = None\n"
        "try:\n"
        "    import keras_catembed.hypermodel\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(KERAS_BACKEND="numpy"),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert 'pip install "keras-catembed[tuner]"' in result.stdout
    assert "needs KerasTuner" in result.stdout


@pytest.mark.one_backend
def test_importing_the_package_does_not_import_keras_tuner():
    code = (
        "import sys, keras_catembed; "
        "assert 'keras_tuner' not in sys.modules, 'keras_tuner imported'"
    )
    # The backend does not matter here, and numpy's imports fastest.
    subprocess.run(
        [sys.executable, "-c", code],
        env=_env(KERAS_BACKEND="numpy"),
        check=True,
        timeout=120,
    )


# The search space -----------------------------------------------------------


def test_build_declares_every_hyperparameter_with_its_default():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    assert [h.name for h in hp.space] == hypermodel.hyperparameter_names
    assert hp.values == {
        "user_id_output_dim": auto_output_dim(NUM_USERS),
        "item_id_output_dim": auto_output_dim(NUM_ITEMS),
        "num_hidden_layers": 2,
        "hidden_units_0": 32,
        "hidden_units_1": 4,
        "activation": "relu",
        "dropout": 0.0,
        "embeddings_l2": 0.0,
        "embeddings_initializer": "uniform",
        "entity_dropout": 0.0,
        "bias_terms": False,
        "bounded_output": False,
        "implicit": False,
        "neighborhood": False,
        "optimizer": "sparse_adam",
        "table_decay": 0.0,
        "learning_rate": 1e-3,
        "schedule": "constant",
        "ema_momentum": 0.0,
        "batch_size": 256,
    }
    # The log-scaled hyperparameters.
    assert hp.get("learning_rate") == 1e-3
    learning_rate = next(h for h in hp.space if h.name == "learning_rate")
    assert learning_rate.sampling == "log"
    l2 = next(h for h in hp.space if h.name == "embeddings_l2")
    assert 0.0 in l2.values
    positive = [v for v in l2.values if v > 0]
    ratios = [b / a for a, b in zip(positive, positive[1:], strict=False)]
    assert all(math.isclose(r, 10.0) for r in ratios)


def test_defaults_give_rating_model_defaults():
    model = RatingHyperModel(EMBEDDINGS).build(keras_tuner.HyperParameters())
    default = RatingModel(EMBEDDINGS)
    assert model.hidden_units == default.hidden_units == [32, 4]
    assert model.activation is default.activation
    assert model.dropout == default.dropout
    assert model.bias_terms is default.bias_terms is False
    assert model.rating_range is default.rating_range is None
    for column in EMBEDDINGS:
        layer = model.embedding_layers[column]
        assert layer.output_dim == default.embedding_layers[column].output_dim
        assert layer.dropout == 0.0
        assert layer.embeddings_regularizer is None
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert math.isclose(
        float(model.optimizer.learning_rate), 1e-3, rel_tol=1e-6
    )


def test_build_returns_a_compiled_and_built_model():
    model = RatingHyperModel(EMBEDDINGS).build(keras_tuner.HyperParameters())
    assert isinstance(model, RatingModel)
    assert model.built
    assert model.compiled
    assert model.optimizer.built
    # The parameter count KerasTuner checks includes the embedding tables.
    tables = sum(
        n * model.embedding_layers[c].output_dim for c, n in EMBEDDINGS.items()
    )
    assert model.count_params() > tables
    x, y = make_ratings(num_rows=8)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"loss", "rmse", "mae", "mse"} <= set(logs)
    assert math.isclose(logs["rmse"], math.sqrt(logs["mse"]), rel_tol=1e-4)


def test_output_dim_choices_surround_the_auto_rule():
    for num_rows in (1, 2, 5, 40, 1000, 10**6):
        choices = output_dim_choices(num_rows)
        auto = auto_output_dim(num_rows)
        assert auto in choices
        assert choices == sorted(set(choices))
        assert all(isinstance(c, int) and c >= 1 for c in choices)
        assert max(choices) == 2 * auto
        hypermodel = RatingHyperModel({"column": num_rows})
        hp = keras_tuner.HyperParameters()
        hypermodel.values(hp)
        space = next(h for h in hp.space if h.name == "column_output_dim")
        assert list(space.values) == choices
        assert space.default == auto


def test_fixed_hyperparameters_are_declared_with_hp_fixed():
    hypermodel = RatingHyperModel(
        EMBEDDINGS,
        user_id_output_dim=7,
        num_hidden_layers=1,
        hidden_units_0=16,
        learning_rate=0.01,
        bias_terms=True,
        embeddings_l2=1e-5,
        entity_dropout=0.2,
        embeddings_initializer="normal",
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    space = {h.name: h for h in hp.space}
    for name in (
        "user_id_output_dim",
        "num_hidden_layers",
        "hidden_units_0",
        "learning_rate",
        "bias_terms",
        "embeddings_l2",
        "entity_dropout",
        "embeddings_initializer",
    ):
        assert isinstance(space[name], Fixed), name
    assert isinstance(space["item_id_output_dim"], Choice)
    assert hp.values["user_id_output_dim"] == 7
    assert "hidden_units_1" not in hp.values  # inactive with one layer
    assert model.embedding_layers["user_id"].output_dim == 7
    assert model.embedding_layers["user_id"].dropout == 0.2
    initializer = model.embedding_layers["item_id"].embeddings_initializer
    assert isinstance(initializer, keras.initializers.RandomNormal)
    assert initializer.stddev == 0.01
    regularizer = model.embedding_layers["item_id"].embeddings_regularizer
    assert math.isclose(regularizer.l2, 1e-5)
    assert model.hidden_units == [16]
    assert model.bias_terms is True
    assert math.isclose(
        float(model.optimizer.learning_rate), 0.01, rel_tol=1e-6
    )


def test_fixed_number_of_layers_may_exceed_the_searched_range():
    hypermodel = RatingHyperModel(
        EMBEDDINGS, num_hidden_layers=5, hidden_units_4=8
    )
    assert "hidden_units_4" in hypermodel.hyperparameter_names
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.hidden_units == [32, 4, 4, 4, 8]


def test_hidden_layer_hyperparameters_are_conditional():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    hp = keras_tuner.HyperParameters()
    hp.values["num_hidden_layers"] = 0
    model = hypermodel.build(hp)
    assert model.hidden_units == []
    for name in ("hidden_units_0", "activation", "dropout"):
        assert not hp.is_active(name)
        assert name not in hp.values


def test_rating_range_sets_the_bounds_of_bounded_output():
    hypermodel = RatingHyperModel(EMBEDDINGS, rating_range=(0.5, 10.5))
    kwargs = hypermodel.model_kwargs({"bounded_output": True})
    assert kwargs["rating_range"] == (0.5, 10.5)
    assert hypermodel.model_kwargs({})["rating_range"] is None


def test_without_rating_range_bounded_output_is_fixed_false():
    hypermodel = RatingHyperModel(EMBEDDINGS, rating_range=None)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    bounded = next(h for h in hp.space if h.name == "bounded_output")
    assert isinstance(bounded, Fixed)
    assert model.rating_range is None


def test_objective_minimizes_the_validation_metric():
    objective = RatingHyperModel(EMBEDDINGS).objective
    assert objective == keras_tuner.Objective("val_rmse", "min")
    for metric in ("mae", "mse"):
        objective = RatingHyperModel(
            EMBEDDINGS, objective_metric=metric
        ).objective
        assert (objective.name, objective.direction) == (f"val_{metric}", "min")


def test_model_kwargs_turn_hyperparameters_into_a_rating_model():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    preset = {
        "user_id_output_dim": 6,
        "num_hidden_layers": 1,
        "hidden_units_0": 64,
        "activation": "gelu",
        "dropout": 0.1,
        "embeddings_l2": 1e-6,
        "bias_terms": True,
        "bounded_output": True,
    }
    kwargs = hypermodel.model_kwargs(preset)
    assert set(kwargs) == {
        "embeddings",
        "hidden_units",
        "activation",
        "dropout",
        "bias_terms",
        "rating_range",
        "implicit",
        "neighborhood",
        "pair_dtype",
    }
    assert kwargs["implicit"] is False
    assert kwargs["neighborhood"] is False
    assert kwargs["pair_dtype"] is None
    assert kwargs["hidden_units"] == (64,)
    assert kwargs["rating_range"] == (0.5, 5.5)
    model = RatingModel(**kwargs)
    config = json.loads(json.dumps(model.get_config()))
    restored = RatingModel.from_config(config)
    assert restored.embedding_layers["user_id"].output_dim == 6
    assert restored.embedding_layers["item_id"].output_dim == auto_output_dim(
        NUM_ITEMS
    )
    # The same values as a HyperParameters give the same kwargs.
    hp = keras_tuner.HyperParameters()
    hp.values.update(preset)
    from_hp = hypermodel.model_kwargs(hp)
    assert from_hp["hidden_units"] == kwargs["hidden_units"]
    assert from_hp["activation"] == kwargs["activation"]
    assert hypermodel.compile_kwargs(preset)["loss"] == "mse"
    assert hypermodel.fit_kwargs({"batch_size": 128}) == {"batch_size": 128}


def test_a_dict_of_values_leaves_out_keras_tuners_records_of_a_trial():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    values = {"dropout": 0.2, "hidden_units_0": 8, "num_hidden_layers": 1}
    records = {
        "tuner/epochs": 3,
        "tuner/initial_epoch": 1,
        "tuner/bracket": 1,
        "tuner/round": 1,
        "tuner/trial_id": "0001",
    }
    with_records = {**values, **records}

    def config(kwargs):
        return RatingModel(**kwargs, name="model").get_config()

    assert config(hypermodel.model_kwargs(with_records)) == config(
        hypermodel.model_kwargs(values)
    )
    assert hypermodel.fit_kwargs(with_records) == hypermodel.fit_kwargs(values)
    # A name outside `tuner/` is still checked.
    with pytest.raises(ValueError, match="tuner_epochs"):
        hypermodel.model_kwargs({**with_records, "tuner_epochs": 3})


def test_model_kwargs_reject_unknown_or_bad_values():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    with pytest.raises(ValueError, match="Valid names"):
        hypermodel.model_kwargs({"hidden_units": [64]})
    with pytest.raises(ValueError, match="dropout"):
        hypermodel.model_kwargs({"dropout": 2.0})
    with pytest.raises(ValueError, match="num_hidden_layers"):
        hypermodel.model_kwargs({"num_hidden_layers": 4})
    with pytest.raises(ValueError, match="hp"):
        hypermodel.model_kwargs([("dropout", 0.1)])


def test_a_dict_of_values_keeps_the_fixed_ones_and_the_requirements():
    # As the constructor checks fixed values: a dict may not change one,
    # nor turn on what the hypermodel cannot build.
    fixed = RatingHyperModel(EMBEDDINGS, bias_terms=True, optimizer="adam")
    with pytest.raises(ValueError, match="`bias_terms` is fixed to True .* "):
        fixed.model_kwargs({"bias_terms": False})
    with pytest.raises(ValueError, match="`optimizer` is fixed to 'adam'"):
        fixed.recipe({"optimizer": "sparse_adam", "table_decay": 1.0})
    # The same values as fixed, or the other names, are fine.
    assert fixed.model_kwargs({"bias_terms": True, "dropout": 0.1})["dropout"]
    assert fixed.recipe({"optimizer": "adam"}).optimizer == "adam"
    one = RatingHyperModel({"user_id": EMBEDDINGS["user_id"]})
    with pytest.raises(ValueError, match=r"`implicit=True` needs at least two"):
        one.model_kwargs({"implicit": True})
    unbounded = RatingHyperModel(EMBEDDINGS, rating_range=None)
    with pytest.raises(ValueError, match=r"`bounded_output=True` needs a"):
        unbounded.model_kwargs({"bounded_output": True})


@pytest.mark.one_backend
def test_docstring_documents_every_argument_and_hyperparameter():
    doc = inspect.getdoc(RatingHyperModel)
    args_section = doc.split("Args:")[1].split("Raises:")[0]
    documented = re.findall(r"^    (\**\w+):", args_section, re.MULTILINE)
    parameters = inspect.signature(RatingHyperModel.__init__).parameters
    expected = [
        ("**" + name) if p.kind is p.VAR_KEYWORD else name
        for name, p in parameters.items()
        if name != "self"
    ]
    assert documented == expected
    names = RatingHyperModel({"column": 10}).hyperparameter_names
    for name in names:
        generic = re.sub(r"^column_", "<column>_", name)
        generic = re.sub(r"_\d+$", "_<i>", generic)
        assert f'`"{generic}"`' in doc, name


# fit --------------------------------------------------------------------------


class _CountBatches(keras.callbacks.Callback):
    """Counts the steps of an epoch (several may run per callback)."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches = batch + 1


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return {k: v[rows] for k, v in self.x.items()}, self.y[rows]


def test_fit_uses_the_tuned_batch_size_and_passes_callbacks():
    hypermodel = small_hypermodel()
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    counter = _CountBatches()
    x, y = make_ratings(num_rows=5 * BATCH_SIZE)
    history = hypermodel.fit(
        hp, model, x, y, epochs=1, callbacks=[counter], verbose=0
    )
    assert isinstance(history, keras.callbacks.History)
    assert counter.batches == 5
    # Batched inputs keep their own batches.
    counter = _CountBatches()
    hypermodel.fit(
        hp,
        model,
        _Batches(x, y, batch_size=80),
        epochs=1,
        callbacks=[counter],
        verbose=0,
    )
    assert counter.batches == 4


def test_fit_rejects_batch_size_from_the_caller():
    hypermodel = small_hypermodel()
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    x, y = make_ratings(num_rows=10)
    with pytest.raises(ValueError, match="batch_size"):
        hypermodel.fit(hp, model, x, y, batch_size=32)


# Searches -----------------------------------------------------------------


def _tuner(kind, hypermodel, directory, **kwargs):
    common = {
        "objective": hypermodel.objective,
        "directory": directory,
        "project_name": "search",
        "seed": 1,
    }
    if kind == "bayesian":
        # The second trial comes from the Gaussian process.
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=2, num_initial_points=1, **common, **kwargs
        )
    # Hyperband: with max_epochs=2 and factor=2, five short trials, one of
    # which continues the best one-epoch trial from its checkpoint.
    return keras_tuner.Hyperband(
        hypermodel,
        max_epochs=2,
        factor=2,
        hyperband_iterations=1,
        **common,
        **kwargs,
    )


# GridSearch runs in the max_model_size and divergence tests below, and
# RandomSearch in the subprocess tests.
@pytest.mark.parametrize("kind", ["bayesian", "hyperband", "implicit"])
def test_search_finds_and_reloads_the_best_model(kind, tmp_path):
    if kind == "bayesian":
        hypermodel = small_hypermodel()
    elif kind == "implicit":
        # Every trial adapts to the training inputs; the best model's
        # checkpoint restores its pairs.
        hypermodel = RatingHyperModel(
            EMBEDDINGS, implicit=True, num_hidden_layers=1, batch_size=64
        )
        kind = "bayesian"
    else:
        hypermodel = RatingHyperModel(
            EMBEDDINGS, num_hidden_layers=1, batch_size=BATCH_SIZE
        )
    tuner = _tuner(kind, hypermodel, tmp_path)
    x, y, validation_data = _search_data()
    tuner.search(x, y, epochs=1, validation_data=validation_data, verbose=0)

    trials = tuner.oracle.trials.values()
    assert len(trials) >= 2
    assert all(t.status == "COMPLETED" for t in trials), [
        t.message for t in trials
    ]
    if kind == "hyperband":
        # A continued trial builds a model and loads another's checkpoint.
        assert any("tuner/trial_id" in t.hyperparameters.values for t in trials)
    best_trial = tuner.oracle.get_best_trials()[0]
    assert best_trial.score == min(t.score for t in trials)
    best_hp = tuner.get_best_hyperparameters()[0]
    assert best_hp.values == best_trial.hyperparameters.values

    # get_best_models() rebuilds the model and loads its best checkpoint:
    # evaluating it gives back the trial's score.
    best_model = tuner.get_best_models()[0]
    assert isinstance(best_model, RatingModel)
    logs = best_model.evaluate(*validation_data, verbose=0, return_dict=True)
    assert math.isclose(logs["rmse"], best_trial.score, rel_tol=1e-4)

    # The best hyperparameters rebuild the same architecture without
    # KerasTuner.
    rebuilt = RatingModel(**hypermodel.model_kwargs(best_hp))
    rebuilt.build()
    assert rebuilt.count_params() == best_model.count_params()
    assert rebuilt.implicit == best_model.implicit
    # So do its values as a plain dict (saved as JSON), which hold
    # Hyperband's records of the trial (`tuner/epochs`, ...) too.
    values = json.loads(json.dumps(best_hp.values))
    assert ("tuner/epochs" in values) == (kind == "hyperband")
    from_values = RatingModel(**hypermodel.model_kwargs(values))
    from_values.build()
    assert from_values.count_params() == best_model.count_params()
    assert hypermodel.fit_kwargs(values) == hypermodel.fit_kwargs(best_hp)


def test_cosine_schedule_spans_the_trial():
    hypermodel = small_hypermodel()
    hp = _with_values(schedule="cosine", learning_rate=0.01)
    model = hypermodel.build(hp)
    x, y = make_ratings(num_rows=100)
    hypermodel.fit(hp, model, x, y, epochs=3, verbose=0)
    # ceil(100 / BATCH_SIZE) steps per epoch, 3 epochs; a fifth warm-up.
    steps = -(-100 // BATCH_SIZE) * 3
    assert int(model.optimizer.iterations.numpy()) == steps
    # The rate decays to 0 at the last step.
    assert float(model.optimizer.learning_rate) < 1e-8
    # Given the steps, compile_kwargs sets the schedule up by itself.
    optimizer = hypermodel.compile_kwargs(hp, steps=100)["optimizer"]
    for step, rate in ((0, 1e-3), (20, 1e-2), (60, 5e-3), (100, 0.0)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(rate, abs=1e-7)


def _settings(optimizer):
    """The config of `optimizer` but its name (unique per instance)."""
    config = optimizer.get_config()
    del config["name"]
    return config


@pytest.mark.parametrize(
    "values, num_rows, epochs",
    [
        ({}, 5 * BATCH_SIZE, 1),
        (
            {
                "optimizer": "adamw",
                "learning_rate": 0.01,
                "schedule": "cosine",
                "ema_momentum": 0.99,
            },
            5 * BATCH_SIZE,
            3,
        ),
        # Under 5 steps the cosine schedule has no warm-up.
        (
            {"optimizer": "rmsprop", "schedule": "cosine", "batch_size": 128},
            2 * BATCH_SIZE,
            2,
        ),
        ({"optimizer": "sgd", "ema_momentum": 0.999}, BATCH_SIZE, 2),
    ],
)
def test_trials_compile_the_optimizer_of_their_recipe(values, num_rows, epochs):
    hypermodel = small_hypermodel()
    hp = _with_values(**values)
    model = hypermodel.build(hp)
    x, y = make_ratings(num_rows=num_rows)
    hypermodel.fit(hp, model, x, y, epochs=epochs, verbose=0)
    settings = {**hypermodel.values(hp), **values}
    recipe = keras_catembed.training.Recipe(
        settings["learning_rate"],
        schedule=settings["schedule"],
        batch_size=settings["batch_size"],
        epochs=epochs,
        ema_momentum=settings["ema_momentum"],
        optimizer=settings["optimizer"],
    )
    assert hypermodel.recipe(hp, epochs=epochs) == recipe
    # The optimizer, its rate or schedule (with the step counts that `fit`
    # set) and its moving average are the recipe's.
    expected = recipe.make_optimizer(num_rows)
    assert type(model.optimizer) is type(expected)
    assert _settings(model.optimizer) == _settings(expected)
    # So is what `compile_kwargs` gives for the same number of steps.
    kwargs = hypermodel.compile_kwargs(hp, steps=recipe.steps(num_rows))
    assert _settings(kwargs["optimizer"]) == _settings(expected)
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert steps == recipe.steps(num_rows)


def test_table_decay_decays_the_tables_of_the_sparse_default():
    hypermodel = RatingHyperModel(EMBEDDINGS, num_hidden_layers=1)
    hp = _with_values(table_decay=1.0)
    assert hypermodel.values(hp)["optimizer"] == "sparse_adam"
    recipe = hypermodel.recipe(hp)
    assert recipe.optimizer == "sparse_adam"
    assert recipe.table_decay == 1.0
    model = hypermodel.build(hp)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras_catembed.optimizers.SparseAdam)
    assert optimizer.weight_decay == pytest.approx(1.0)
    hidden = model.hidden_layers[0].kernel
    assert not optimizer._use_weight_decay(hidden)
    assert optimizer._use_weight_decay(
        model.embedding_layers["user_id"].embeddings
    )
    # Tables decay: the rows of ids that never occur shrink while training.
    x, y = make_ratings(num_rows=2 * BATCH_SIZE)
    x["user_id"] = x["user_id"] % (NUM_USERS - 1)
    table = model.embedding_layers["user_id"]
    before = abs(keras.ops.convert_to_numpy(table.embeddings)[-1]).sum()
    hypermodel.fit(hp, model, x, y, epochs=2, verbose=0)
    after = abs(keras.ops.convert_to_numpy(table.embeddings)[-1]).sum()
    assert after < before
    # compile_kwargs needs the model whose tables decay.
    with pytest.raises(ValueError, match="pass the model"):
        hypermodel.compile_kwargs(hp, steps=10)
    kwargs = hypermodel.compile_kwargs(hp, steps=10, model=model)
    assert kwargs["optimizer"].weight_decay == pytest.approx(1.0)


def test_table_decay_is_ignored_or_refused_by_other_optimizers():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    # A searched value with an optimizer that has no decay: ignored.
    hp = _with_values(optimizer="rmsprop", table_decay=3.0)
    assert hypermodel.recipe(hp).table_decay is None
    # A fixed pair that cannot hold: refused, naming both.
    with pytest.raises(ValueError, match=r"table_decay.*'adam'"):
        RatingHyperModel(EMBEDDINGS, optimizer="adam", table_decay=1.0)
    fixed = RatingHyperModel(EMBEDDINGS, optimizer="adamw", table_decay=0.3)
    assert fixed.recipe(keras_tuner.HyperParameters()).table_decay == 0.3


def test_ema_momentum_averages_the_weights_that_validation_sees():
    hypermodel = small_hypermodel()
    model = hypermodel.build(_with_values(ema_momentum=0.9))
    assert model.optimizer.use_ema
    assert model.optimizer.ema_momentum == pytest.approx(0.9)
    assert not hypermodel.build(_with_values()).optimizer.use_ema

    x, y = make_ratings(num_rows=256)
    x_val, y_val = make_ratings(num_rows=64, seed=1)

    def weights():
        return [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]

    seen = {}
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.update(raw=weights()),
        on_epoch_end=lambda epoch, logs: seen.update(epoch_end=weights()),
    )
    history = hypermodel.fit(
        _with_values(ema_momentum=0.9),
        model,
        x,
        y,
        epochs=3,
        validation_data=(x_val, y_val),
        callbacks=[recorder],
        verbose=0,
    )
    # The weights left by `fit` are the average: the ones the last
    # validation measured and the ones later callbacks (the tuner's
    # checkpoints) saw at the end of the epoch, not the last step's.
    final = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert history.history["val_rmse"][-1] == pytest.approx(
        final["rmse"], rel=1e-5
    )
    for saved, weight in zip(seen["epoch_end"], weights(), strict=True):
        np.testing.assert_allclose(saved, weight, rtol=1e-6)
    assert not all(
        np.allclose(raw, weight)
        for raw, weight in zip(seen["raw"], weights(), strict=True)
    )


def test_implicit_pairs_the_first_two_of_more_columns():
    three = dict(EMBEDDINGS, genre_id=5)
    hypermodel = RatingHyperModel(three, implicit=True, batch_size=64)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert model.implicit == {"user_id": "item_id", "item_id": "user_id"}
    x, y = make_ratings(num_rows=256)
    x = dict(x, genre_id=x["item_id"] % 5)
    hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    # `fit` adapted the model to the (user, item) pairs of `x`.
    implicit = model.encoders["user_id"].implicit_layer
    assert implicit is not None and implicit.adapted
    predicted = model.predict(x, verbose=0)
    assert predicted.shape == (256, 1) and np.all(np.isfinite(predicted))
    # Searched, not fixed, with three columns.
    space = keras_tuner.HyperParameters()
    RatingHyperModel(three).build(space)
    implicit_hp = next(h for h in space.space if h.name == "implicit")
    assert not isinstance(implicit_hp, Fixed)


def test_implicit_is_fixed_off_with_one_column():
    one = {"user_id": EMBEDDINGS["user_id"]}
    hp = keras_tuner.HyperParameters()
    model = RatingHyperModel(one).build(hp)
    implicit = next(h for h in hp.space if h.name == "implicit")
    assert isinstance(implicit, Fixed) and implicit.value is False
    assert model.implicit == {}
    with pytest.raises(ValueError, match=r"at least two columns.*user_id"):
        RatingHyperModel(one, implicit=True)


def test_neighborhood_pairs_the_first_two_columns_and_adapts_to_ratings():
    three = dict(EMBEDDINGS, genre_id=5)
    hypermodel = RatingHyperModel(
        three, neighborhood=True, implicit=False, batch_size=64
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    pairs = {"user_id": "item_id", "item_id": "user_id"}
    assert model.neighborhood == pairs and model.implicit == {}
    x, y = make_ratings(num_rows=256)
    x = dict(x, genre_id=x["item_id"] % 5)
    hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    # `fit` adapted both sides to the (user, item) pairs and their ratings.
    rated = len(set(zip(x["user_id"], x["item_id"], strict=True)))
    for column in pairs:
        layer = model.neighborhood_layers[column]
        assert layer.adapted and layer.listed_pairs() == rated
    predicted = model.predict(x, verbose=0)
    assert predicted.shape == (256, 1) and np.all(np.isfinite(predicted))
    # Searched with two columns or more; fixed off with one.
    space = keras_tuner.HyperParameters()
    RatingHyperModel(EMBEDDINGS).build(space)
    searched = next(h for h in space.space if h.name == "neighborhood")
    assert not isinstance(searched, Fixed) and searched.default is False
    one = {"user_id": EMBEDDINGS["user_id"]}
    with pytest.raises(ValueError, match=r"`neighborhood=True` needs at le"):
        RatingHyperModel(one, neighborhood=True)


@pytest.mark.parametrize("frame", [False, True])
def test_validation_split_rows_neither_adapt_nor_lengthen_the_trial(frame):
    # Keras holds the last half out inside `fit`; the trial's pairs and
    # its cosine schedule come from the first half, the training rows.
    # (A trial with pairs is adapted to a dict of arrays only.)
    hypermodel = RatingHyperModel(
        EMBEDDINGS, neighborhood=not frame, implicit=False, batch_size=64
    )
    hp = _with_values(schedule="cosine", learning_rate=0.01)
    model = hypermodel.build(hp)
    x, y = make_ratings(num_rows=256)
    if frame:
        import pandas as pd

        x, y = pd.DataFrame(x), pd.Series(y)
    history = hypermodel.fit(
        hp, model, x, y, validation_split=0.5, epochs=2, verbose=0
    )
    assert len(history.history["val_rmse"]) == 2
    users, items = (np.asarray(x[c])[:128] for c in ("user_id", "item_id"))
    rated = len(set(zip(users, items, strict=True)))
    assert bool(model.neighborhood) == (not frame)
    for layer in model.neighborhood_layers.values():
        assert layer.listed_pairs() == rated
    # 2 steps of 64 rows an epoch, and the rate decays to 0 at the last.
    assert int(model.optimizer.iterations.numpy()) == 4
    assert float(model.optimizer.learning_rate) < 1e-8


def test_neighborhood_trials_need_the_ratings_to_adapt():
    hypermodel = RatingHyperModel(EMBEDDINGS, neighborhood=True)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    x, _ = make_ratings(num_rows=64)
    before = [np.copy(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match="pass them to `search` as `y`"):
        hypermodel.fit(hp, model, x, epochs=1, verbose=0)
    # Refused before anything was adapted or trained.
    layer = model.neighborhood_layers["user_id"]
    assert not layer.adapted
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_implicit_trials_adapt_to_a_dataframe_as_to_its_arrays():
    pd = pytest.importorskip("pandas")
    hypermodel = RatingHyperModel(EMBEDDINGS, implicit=True, neighborhood=True)
    hp = keras_tuner.HyperParameters()
    x, y = make_ratings(num_rows=64)
    adapted = []
    for inputs in (x, pd.DataFrame(x)):
        model = hypermodel.build(hp)
        hypermodel.fit(
            hp, model, inputs, y, epochs=1, validation_split=0.25, verbose=0
        )
        layer = model.neighborhood_layers["user_id"]
        adapted.append(keras.ops.convert_to_numpy(layer.pair_counts))
    # Adapted to the same 48 training rows either way.
    assert adapted[0].sum() > 0
    np.testing.assert_array_equal(adapted[1], adapted[0])


def test_implicit_trials_need_array_inputs_to_adapt():
    hypermodel = RatingHyperModel(EMBEDDINGS, implicit=True)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    x, y = make_ratings(num_rows=64)
    with pytest.raises(ValueError, match="must then be a dict of id arrays"):
        hypermodel.fit(hp, model, _Batches(x, y, batch_size=32), epochs=1)


def test_pair_dtype_reaches_the_pairs_of_trials_that_have_them(tmp_path):
    hypermodel = RatingHyperModel(
        EMBEDDINGS, pair_dtype="bfloat16", neighborhood=True, batch_size=64
    )
    assert hypermodel.pair_dtype == "bfloat16"
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hypermodel.model_kwargs(hp)["pair_dtype"] == "bfloat16"
    assert model.pair_dtype == "bfloat16"
    layer = model.neighborhood_layers["user_id"]
    assert keras.backend.standardize_dtype(layer.pair_weights.dtype) == (
        "bfloat16"
    )
    x, y = make_ratings(num_rows=256)
    hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert np.all(np.isfinite(predicted))
    # A saved trial keeps its pairs' dtype, and its predictions.
    path = str(tmp_path / "trial.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.pair_dtype == "bfloat16"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predicted)
    # A trial without pairs takes no pair dtype (RatingModel refuses one).
    searched = RatingHyperModel(EMBEDDINGS, pair_dtype="bfloat16")
    plain = {"implicit": False, "neighborhood": False}
    assert searched.model_kwargs(plain)["pair_dtype"] is None
    assert searched.build(_with_values(**plain)).pair_dtype == "float32"
    # Float32 by default.
    default = RatingHyperModel(EMBEDDINGS).model_kwargs({"implicit": True})
    assert default["pair_dtype"] == "float32"


@pytest.mark.parametrize("native", [True, False])
def test_auto_pair_dtype_is_picked_by_each_trial(monkeypatch, native):
    from keras_catembed import _pair_dtype

    monkeypatch.setattr(_pair_dtype, "native_bfloat16", lambda: native)
    hypermodel = RatingHyperModel(EMBEDDINGS, pair_dtype="auto")
    model = hypermodel.build(_with_values(implicit=True))
    assert model.pair_dtype == ("bfloat16" if native else "float32")
    plain = hypermodel.build(_with_values(implicit=False, neighborhood=False))
    assert plain.pair_dtype == "float32"


@pytest.mark.parametrize(
    "embeddings, fixed, pair_dtype, match",
    [
        (EMBEDDINGS, {}, "float16", r"'bfloat16' or 'auto'. Received"),
        (
            {"user_id": NUM_USERS},
            {},
            "bfloat16",
            r"has none \(columns \['user_id'\]",
        ),
        (
            EMBEDDINGS,
            {"implicit": False, "neighborhood": False},
            "bfloat16",
            r"fixed implicit=False, neighborhood=False",
        ),
        (
            {"user_id": 10_000, "item_id": 8_000},
            {},
            "bfloat16",
            r"pairs of 'user_id' and 'item_id'.*10,000 x 8,000 = 80,000,000",
        ),
    ],
)
def test_pair_dtype_no_trial_can_use_is_refused(
    embeddings, fixed, pair_dtype, match
):
    with pytest.raises(ValueError, match=match):
        RatingHyperModel(embeddings, pair_dtype=pair_dtype, **fixed)
    # Float32 and "auto" suit every hypermodel, and one side suffices.
    assert RatingHyperModel(embeddings, **fixed).pair_dtype == "float32"
    auto = RatingHyperModel(embeddings, pair_dtype="auto", **fixed)
    assert auto.pair_dtype == "auto"
    if len(embeddings) > 1:
        one_side = RatingHyperModel(
            {"user_id": 20, "item_id": 30},
            pair_dtype="bfloat16",
            implicit=False,
        )
        assert one_side.pair_dtype == "bfloat16"


def test_max_model_size_rejects_trials_whose_tables_are_too_big(tmp_path):
    embeddings = {"user_id": 500, "item_id": NUM_ITEMS}
    fixed = {
        "item_id_output_dim": 4,
        "num_hidden_layers": 1,
        "hidden_units_0": 4,
        "activation": "relu",
        "dropout": 0.0,
        "embeddings_l2": 0.0,
        "embeddings_initializer": "uniform",
        "entity_dropout": 0.0,
        "bias_terms": False,
        "bounded_output": False,
        "implicit": False,
        "neighborhood": False,
        "optimizer": "adam",
        "table_decay": 0.0,
        "learning_rate": 1e-3,
        "schedule": "constant",
        "ema_momentum": 0.0,
        "batch_size": BATCH_SIZE,
    }
    hypermodel = RatingHyperModel(embeddings, **fixed)
    choices = output_dim_choices(500)
    sizes = {
        dim: hypermodel.build(
            _with_values(user_id_output_dim=dim)
        ).count_params()
        for dim in choices
    }
    # The user table alone is 500 * dim parameters: allow the smallest.
    max_model_size = (sizes[choices[0]] + sizes[choices[1]]) // 2
    tuner = keras_tuner.GridSearch(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=len(choices),
        max_model_size=max_model_size,
        directory=tmp_path,
        project_name="search",
    )
    rows = np.arange(5 * BATCH_SIZE)
    x = {"user_id": rows % 500, "item_id": rows % NUM_ITEMS}
    y = np.linspace(1, 5, len(rows)).astype("float32")
    validation_data = ({k: v[::5] for k, v in x.items()}, y[::5])
    tuner.search(x, y, epochs=1, validation_data=validation_data, verbose=0)

    trials = list(tuner.oracle.trials.values())
    tried = sorted(t.hyperparameters.get("user_id_output_dim") for t in trials)
    assert tried == choices
    for trial in trials:
        dim = trial.hyperparameters.get("user_id_output_dim")
        if sizes[dim] > max_model_size:
            assert trial.status == "FAILED"
            assert "Oversized model" in trial.message
        else:
            assert trial.status == "COMPLETED"
    best_trial = tuner.oracle.get_best_trials()[0]
    assert best_trial.hyperparameters.get("user_id_output_dim") == choices[0]
    best_model = tuner.get_best_models()[0]
    assert best_model.count_params() <= max_model_size
    logs = best_model.evaluate(*validation_data, verbose=0, return_dict=True)
    assert math.isclose(logs["rmse"], best_trial.score, rel_tol=1e-4)


def _with_values(**values):
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return hp


def _learning_rate_search(directory, rates, max_consecutive_failed_trials):
    """A grid search over `rates` alone; the rest take their defaults."""
    hypermodel = small_hypermodel()
    # The tuner's own declaration of a hyperparameter overrides the
    # hypermodel's range, and `tune_new_entries=False` leaves the others at
    # their defaults.
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", rates, default=rates[0])
    return keras_tuner.GridSearch(
        hypermodel,
        objective=hypermodel.objective,
        hyperparameters=hp,
        tune_new_entries=False,
        max_trials=len(rates),
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        directory=directory,
        project_name="search",
    )


def test_diverging_trial_fails_and_the_search_goes_on(tmp_path):
    tuner = _learning_rate_search(tmp_path, [1e10, 1e-3], 2)
    x, y, validation_data = _search_data()
    tuner.search(x, y, epochs=1, validation_data=validation_data, verbose=0)

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    rates = [t.hyperparameters.get("learning_rate") for t in trials]
    assert rates == [1e10, 1e-3]
    assert [t.status for t in trials] == ["FAILED", "COMPLETED"]
    assert "diverged" in trials[0].message
    assert tuner.get_best_hyperparameters()[0].get("learning_rate") == 1e-3


def test_search_stops_after_max_consecutive_failed_trials(tmp_path):
    tuner = _learning_rate_search(tmp_path, [1e10, 1e-3], 1)
    x, y, validation_data = _search_data()
    with pytest.raises(RuntimeError, match="consecutive failures"):
        tuner.search(x, y, epochs=1, validation_data=validation_data, verbose=0)
    assert [t.status for t in tuner.oracle.trials.values()] == ["FAILED"]


# Subprocess searches: kill and resume, distributed ---------------------------


def _env(**extra):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP"):
        env.pop(name, None)
    env.update(extra)
    return env


def _worker_command(directory, log, *args):
    return [
        sys.executable,
        str(WORKER),
        "--directory",
        str(directory),
        "--log",
        str(log),
        *args,
    ]


def _start(command, output, env):
    """Starts `command` with its stdout and stderr going to `output`."""
    with open(output, "w") as file:
        return subprocess.Popen(
            command, env=env, stdout=file, stderr=subprocess.STDOUT
        )


def _wait_for(path, process, output, timeout):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"the search exited with {process.returncode}: "
                f"{output.read_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear in {timeout}s")
        time.sleep(0.2)


@pytest.mark.one_backend
def test_search_killed_mid_trial_resumes_without_losing_trials(tmp_path):
    directory = tmp_path / "tuning"
    log = tmp_path / "started.log"
    sentinel = tmp_path / "in_third_trial"
    output = tmp_path / "first.out"
    first = _start(
        _worker_command(
            directory,
            log,
            "--max-trials",
            "3",
            "--block-at-trial",
            "3",
            "--sentinel",
            str(sentinel),
        ),
        output,
        _env(),
    )
    try:
        _wait_for(sentinel, first, output, timeout=150)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    before = _trials(directory)
    assert log.read_text().split() == ["0", "1", "2"]
    assert [before[i]["status"] for i in ("0", "1")] == ["COMPLETED"] * 2
    assert before["2"]["status"] == "RUNNING"

    # Restart the search, here in this process, on the same directory.
    resumed = run_search(directory, log, max_trials=3)
    assert len(resumed.oracle.trials) == 3

    after = _trials(directory)
    assert sorted(after) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in after.values())
    # The completed trials were kept as they were, not run again; the
    # interrupted one was run again with the same hyperparameters.
    for trial_id in ("0", "1"):
        assert after[trial_id] == before[trial_id]
    assert (
        after["2"]["hyperparameters"]["values"]
        == before["2"]["hyperparameters"]["values"]
    )
    assert log.read_text().split() == ["0", "1", "2", "2"]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, process, output, timeout):
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise AssertionError(
                f"the chief exited with {process.returncode}: "
                f"{output.read_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"the chief did not listen in {timeout}s")
        time.sleep(0.2)


@pytest.mark.one_backend
@pytest.mark.slow
def test_distributed_search_runs_each_trial_once(tmp_path):
    directory = tmp_path / "tuning"
    port = _free_port()
    processes = {}
    try:
        for tuner_id in ("chief", "tuner0", "tuner1"):
            env = _env(
                KERASTUNER_TUNER_ID=tuner_id,
                KERASTUNER_ORACLE_IP="127.0.0.1",
                KERASTUNER_ORACLE_PORT=str(port),
            )
            processes[tuner_id] = _start(
                _worker_command(
                    directory,
                    tmp_path / f"{tuner_id}.log",
                    "--max-trials",
                    "4",
                ),
                tmp_path / f"{tuner_id}.out",
                env,
            )
            if tuner_id == "chief":
                # A worker that finds no chief retries with a growing
                # backoff, so start the workers once the chief listens.
                _wait_for_port(
                    port, processes["chief"], tmp_path / "chief.out", 120
                )
        for tuner_id in ("tuner0", "tuner1"):
            returncode = processes[tuner_id].wait(timeout=180)
            output = (tmp_path / f"{tuner_id}.out").read_text()
            assert returncode == 0, output
        # The chief exits once no worker is left; when a worker was still
        # training as the budget ran out, KerasTuner polls every 20 s, so
        # stop waiting after a few seconds.
        try:
            processes["chief"].wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    trials = _trials(directory)
    assert sorted(trials) == ["0", "1", "2", "3"]
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    values = [
        json.dumps(t["hyperparameters"]["values"], sort_keys=True)
        for t in trials.values()
    ]
    assert len(set(values)) == len(values)
    run = [
        trial_id
        for tuner_id in ("tuner0", "tuner1")
        for trial_id in (tmp_path / f"{tuner_id}.log").read_text().split()
    ]
    assert sorted(run) == ["0", "1", "2", "3"]  # each trial ran once
    assert not (tmp_path / "chief.log").exists()  # the chief only serves
