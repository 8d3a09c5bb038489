"""Tests for the table that drives `RatingHyperModel`."""

import dataclasses
import inspect
import json
import math
import pathlib
import re

import keras
import numpy as np
import pytest

keras_tuner = pytest.importorskip("keras_tuner")

import keras_catembed  # noqa: E402
from keras_catembed import hypermodel as hypermodel_module  # noqa: E402
from keras_catembed.hypermodel import HYPERPARAMETERS  # noqa: E402
from keras_catembed.hypermodel import Hyperparameter  # noqa: E402
from keras_catembed.hypermodel import RatingHyperModel  # noqa: E402
from keras_catembed.hypermodel import _docs  # noqa: E402
from keras_catembed.hypermodel import _recipe  # noqa: E402
from keras_catembed.hypermodel import _space  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The search spaces of the hypermodel (`hp.get_config()` of `values(hp)`
# for a few hypermodels), frozen when it came to be driven by the table and
# rewritten only on purpose (since then: the `"sparse_adam"` default,
# `table_decay` and `neighborhood`).
FROZEN = ROOT / "tests" / "data" / "hypermodel_space.json"
EMBEDDINGS = {"user_id": 30, "item_id": 40}


def _concrete(row, column="user_id", index=0):
    return row.name.replace("<column>", column).replace("<i>", str(index))


def _searched(row, cardinality=40):
    """Every value the search may give `row` (the bounds of a range)."""
    if row.kind == "bool":
        return [False, True]
    if row.kind == "choice":
        values = row.values
        return list(values(cardinality) if callable(values) else values)
    return [row.min_value, row.max_value]


def _default(row, argument=40):
    return row.default(argument) if callable(row.default) else row.default


class _Bad:
    def __repr__(self):
        return "<a bad value>"


# The space is the one the hypermodel had before the table ----------------


@pytest.mark.parametrize(
    "case",
    ["default", "no_rating_range", "three_columns", "five_layers", "fixed"],
)
def test_search_space_is_the_frozen_one(case):
    frozen = json.loads(FROZEN.read_text())[case]
    hypermodel = RatingHyperModel(frozen["embeddings"], **frozen["kwargs"])
    hp = keras_tuner.HyperParameters()
    values = hypermodel.values(hp)
    assert hypermodel.hyperparameter_names == frozen["names"]
    assert values == frozen["values"]
    assert hp.get_config() == frozen["space"]
    # And `build` declares the same space.
    built = keras_tuner.HyperParameters()
    hypermodel.build(built)
    assert built.get_config() == frozen["space"]


# The rows --------------------------------------------------------------------


def test_rows_are_frozen_and_their_names_unique():
    assert all(isinstance(row, Hyperparameter) for row in HYPERPARAMETERS)
    names = [row.name for row in HYPERPARAMETERS]
    assert len(set(names)) == len(names) == 18
    with pytest.raises(dataclasses.FrozenInstanceError):
        HYPERPARAMETERS[0].default = 1
    for row in HYPERPARAMETERS:
        assert row.kind in ("int", "float", "choice", "bool"), row.name
        assert row.sampling in ("linear", "log"), row.name
        assert row.summary and row.doc, row.name


def test_a_malformed_row_is_rejected():
    common = {"check": str, "default": 0, "summary": "s", "doc": "d"}
    for fields, match in (
        ({"kind": "integer"}, "kind='integer' for 'x'"),
        (
            {
                "kind": "float",
                "min_value": 0.0,
                "max_value": 1.0,
                "sampling": "reverse_log",
            },
            "sampling='reverse_log'",
        ),
        ({"kind": "choice"}, r"values=\(\) for 'x'"),
        ({"kind": "int", "min_value": 0}, "max_value=None for 'x'"),
        ({"kind": "choice", "values": len}, "values_doc=None for 'x'"),
    ):
        with pytest.raises(ValueError, match=match):
            Hyperparameter(name="x", **fields, **common)


def test_defaults_and_searched_values_pass_their_own_checks():
    for row in HYPERPARAMETERS:
        name = _concrete(row)
        for cardinality in (1, 40, 10**6):
            default = _default(row, cardinality if row.per_column else 1)
            assert row.check(name, default) == default, name
            searched = _searched(row, cardinality)
            for value in searched:
                assert row.check(name, value) == value, (name, value)
            if row.kind in ("int", "float"):
                assert searched[0] <= default <= searched[1], name
            else:
                assert default in searched, name


def test_every_check_names_the_hyperparameter_the_value_and_the_expected():
    for name in RatingHyperModel(EMBEDDINGS).hyperparameter_names:
        with pytest.raises(ValueError) as info:
            RatingHyperModel(EMBEDDINGS, **{name: _Bad()})
        message = str(info.value)
        assert f"`{name}`" in message, message
        assert "<a bad value>" in message, message
        assert "must be" in message, message


def test_checks_return_the_values_the_model_uses():
    hypermodel = RatingHyperModel(
        EMBEDDINGS,
        learning_rate=1,
        embeddings_l2=0,
        bias_terms=np.bool_(True),
        batch_size=64,
    )
    assert hypermodel.fixed == {
        "learning_rate": 1.0,
        "embeddings_l2": 0.0,
        "bias_terms": True,
        "batch_size": 64,
    }
    assert isinstance(hypermodel.fixed["learning_rate"], float)
    assert isinstance(hypermodel.fixed["embeddings_l2"], float)
    assert type(hypermodel.fixed["bias_terms"]) is bool


# Everything follows the table ------------------------------------------------


def test_a_new_row_is_declared_checked_named_and_documented(monkeypatch):
    row = Hyperparameter(
        name="label_smoothing",
        kind="float",
        min_value=0.0,
        max_value=0.2,
        step=0.05,
        default=0.0,
        check=hypermodel_module._hyperparameter.finite_float(False),
        summary="a new knob",
        doc="A new knob.",
    )
    extended = (*HYPERPARAMETERS, row)
    monkeypatch.setattr(_space, "HYPERPARAMETERS", extended)
    monkeypatch.setattr(_docs, "HYPERPARAMETERS", extended)

    hypermodel = RatingHyperModel(EMBEDDINGS)
    assert hypermodel.hyperparameter_names[-1] == "label_smoothing"
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    declared = hp.space[-1]
    assert declared.name == "label_smoothing"
    assert (declared.min_value, declared.max_value) == (0.0, 0.2)
    assert declared.step == 0.05
    assert hp.values["label_smoothing"] == 0.0
    fixed = RatingHyperModel(EMBEDDINGS, label_smoothing=0.1)
    assert fixed.values({})["label_smoothing"] == 0.1
    with pytest.raises(ValueError, match="label_smoothing"):
        RatingHyperModel(EMBEDDINGS, label_smoothing=-1.0)
    assert '`"label_smoothing"`: Float in [0.0, 0.2], step 0.05.' in (
        _docs.docstring_list()
    )
    assert "| `label_smoothing` | 0.0 to 0.2, step 0.05 | `0.0` |" in (
        _docs.markdown_table()
    )


def test_docstring_lists_every_row():
    doc = " ".join(inspect.getdoc(RatingHyperModel).split())
    for row in HYPERPARAMETERS:
        generic = row.name
        assert f'- `"{generic}"`:' in doc, generic
        assert " ".join(row.doc.split()) in doc, generic
    assert doc.count('- `"') == len(HYPERPARAMETERS)


def test_tuning_guide_table_is_the_generated_one():
    page = (ROOT / "docs" / "tuning.md").read_text()
    match = re.search(
        r"<!-- hyperparameters: generated from HYPERPARAMETERS, do not "
        r"edit -->\n\n(.*?)\n<!-- end of hyperparameters -->",
        page,
        re.DOTALL,
    )
    assert match, "docs/tuning.md lost its generated table's markers"
    expected = _docs.markdown_table()
    assert match.group(1) == expected, (
        "docs/tuning.md's table differs from HYPERPARAMETERS. Put this "
        f"table between the markers:\n{expected}"
    )
    rows = [line for line in expected.splitlines() if line.startswith("| `")]
    assert len(rows) == len(HYPERPARAMETERS)


def test_number_formatting_in_the_docs():
    assert [_docs._number(v) for v in (0.0, 1e-7, 2.5e-5, 1e-3, 0.1, 3)] == [
        "0.0",
        "1e-7",
        "2.5e-5",
        "1e-3",
        "0.1",
        "3",
    ]


# The training recipe ---------------------------------------------------------


def _recipe_values(**values):
    return {
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "schedule": "constant",
        "ema_momentum": 0.0,
        "batch_size": 256,
        **values,
    }


def test_training_hyperparameters_make_a_recipe():
    recipe = _recipe.recipe(_recipe_values(optimizer="sgd"))
    assert recipe == keras_catembed.training.Recipe(
        1e-3, optimizer="sgd", batch_size=256, epochs=1
    )
    # An `ema_momentum` of 0 is no average.
    assert recipe.ema_momentum is None
    optimizer = recipe.make_optimizer(100)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert not optimizer.use_ema
    assert math.isclose(float(optimizer.learning_rate), 1e-3, rel_tol=1e-6)


def test_recipe_of_the_hypermodel_has_the_cosine_schedule_and_ema():
    hypermodel = RatingHyperModel(EMBEDDINGS, batch_size=64)
    values = _recipe_values(
        optimizer="adamw",
        learning_rate=0.01,
        schedule="cosine",
        ema_momentum=0.999,
    )
    del values["batch_size"]
    recipe = hypermodel.recipe(values, epochs=5)
    assert recipe.get_config() == {
        "optimizer": "adamw",
        "learning_rate": 0.01,
        "schedule": "cosine",
        "batch_size": 64,
        "epochs": 5,
        "ema_momentum": 0.999,
        "table_decay": None,
    }
    # 640 rows: 10 batches of 64 per epoch, 50 steps.
    optimizer = recipe.make_optimizer(640)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.use_ema
    assert optimizer.ema_momentum == pytest.approx(0.999)
    # A fifth of the steps warm up from a tenth of the rate.
    for step, rate in ((0, 1e-3), (10, 1e-2), (50, 0.0)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(rate, abs=1e-9)
    with pytest.raises(ValueError, match="epochs=0"):
        hypermodel.recipe(values, epochs=0)


def test_compile_kwargs_rejects_bad_steps():
    hypermodel = RatingHyperModel(EMBEDDINGS)
    for steps in (0, -3, 2.5):
        with pytest.raises(ValueError, match=f"steps={steps}"):
            hypermodel.compile_kwargs({"schedule": "cosine"}, steps=steps)


# Modules and names -----------------------------------------------------------


def test_each_module_of_the_hypermodel_is_at_most_400_lines():
    package = ROOT / "keras_catembed" / "hypermodel"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.name} has {lines} lines"


def test_public_names_are_still_importable():
    assert keras_catembed.RatingHyperModel is RatingHyperModel
    for name in (
        "OBJECTIVE_METRICS",
        "OUTPUT_DIM_FACTORS",
        "MAX_HIDDEN_LAYERS",
        "HIDDEN_UNITS_CHOICES",
        "HIDDEN_UNITS_DEFAULTS",
        "ACTIVATION_CHOICES",
        "EMBEDDINGS_L2_CHOICES",
        "OPTIMIZER_CHOICES",
        "SCHEDULES",
        "EMBEDDINGS_INITIALIZERS",
        "BATCH_SIZE_CHOICES",
        "EMA_MOMENTUM_CHOICES",
        "OPTIMIZERS",
        "output_dim_choices",
        "keras_tuner",
    ):
        assert hasattr(hypermodel_module, name), name
    assert hypermodel_module.keras_tuner is keras_tuner
    # A fixed `optimizer` may name any optimizer of a training recipe.
    assert set(hypermodel_module.OPTIMIZERS) == {
        "adam",
        "adamw",
        "rmsprop",
        "nadam",
        "adagrad",
        "sgd",
        "sparse_adam",
    }
