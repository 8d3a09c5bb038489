"""Tests for `cross_validate` and `nested_cross_validate`."""

import keras
import numpy as np
import pytest

from keras_catembed import RatingModel
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate
from keras_catembed.evaluation import nested_cross_validate
from keras_catembed.evaluation import protocols
from tests._tuner_worker import BATCH_SIZE
from tests._tuner_worker import NUM_ITEMS
from tests._tuner_worker import NUM_USERS
from tests._tuner_worker import small_hypermodel


def make_data(num_rows=5 * BATCH_SIZE):
    """Ratings with distinct (user, item) pairs: a pair names its row."""
    rng = np.random.default_rng(0)
    pairs = rng.choice(NUM_USERS * NUM_ITEMS, num_rows, replace=False)
    users, items = np.divmod(pairs, NUM_ITEMS)
    taste = (
        rng.normal(size=NUM_USERS)[users] + rng.normal(size=NUM_ITEMS)[items]
    )
    return {
        "user_id": users,
        "item_id": items,
        "rating": np.clip(np.round(3 + taste), 1, 5).astype("float32"),
        "timestamp": rng.permutation(num_rows) + 1000,
    }


def rows_of(data, x):
    """The row positions in `data` of the inputs `x`."""
    row = {
        (u, i): r
        for r, (u, i) in enumerate(
            zip(data["user_id"], data["item_id"], strict=True)
        )
    }
    return np.array(
        sorted(row[(u, i)] for u, i in zip(*x.values(), strict=True))
    )


class MeanModel:
    """Predicts the mean training rating: scores that can be checked."""

    def fit(self, x, y, **kwargs):
        self.fit_kwargs = kwargs
        self.mean = float(np.mean(y))

    def predict(self, x, batch_size=None, verbose=0):
        assert batch_size == 4096
        return np.full((len(next(iter(x.values()))), 1), self.mean)


def test_scores_and_summary_are_exact(capsys):
    data = make_data(103)
    protocol = protocols.KFold(4, seed=1)
    results = cross_validate(
        lambda train: MeanModel(), data, protocol=protocol, verbose=True
    )
    rmse, mae = [], []
    for train, test in protocol.split(data):
        error = data["rating"][test] - np.mean(data["rating"][train])
        rmse.append(np.sqrt(np.mean(error.astype("float64") ** 2)))
        mae.append(np.mean(np.abs(error)))
    np.testing.assert_allclose(results["test_rmse"], rmse, rtol=1e-6)
    np.testing.assert_allclose(results["test_mae"], mae, rtol=1e-6)
    assert results["mean"]["test_rmse"] == pytest.approx(np.mean(rmse))
    assert results["std"]["test_mae"] == pytest.approx(np.std(mae))
    assert results["num_train"] == [77, 77, 77, 78]
    assert results["num_test"] == [26, 26, 26, 25]
    assert results["fit_time"].shape == results["test_time"].shape == (4,)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        *("Fold", "1", "Fold", "2", "Fold", "3", "Fold", "4"),
        *("Mean", "Std"),
    ]
    assert table[1].startswith("RMSE (testset)")
    assert float(table[1].split()[-2]) == pytest.approx(np.mean(rmse), 1e-3)


def test_each_fold_trains_and_validates_inside_its_training_part():
    data = make_data(100)
    seen = []

    def build(train):
        model = MeanModel()
        seen.append((train, model))
        return model, {"epochs": 3}

    protocol = protocols.KFold(5, seed=2)
    cross_validate(build, data, protocol=protocol, inner_validation=0.25)
    assert len(seen) == 5
    for (train, test), (built_on, model) in zip(
        protocol.split(data), seen, strict=True
    ):
        fitted = rows_of(data, {k: built_on[k] for k in ("user_id", "item_id")})
        validation = rows_of(data, model.fit_kwargs["validation_data"][0])
        assert model.fit_kwargs["epochs"] == 3
        # The carve-out: a seeded quarter of the fold's training part.
        (_, held), *_ = protocols.HoldOut(0.25, seed=0).split({"row": train})
        np.testing.assert_array_equal(validation, train[held])
        np.testing.assert_array_equal(np.sort(np.r_[fitted, validation]), train)
        assert np.intersect1d(np.r_[fitted, validation], test).size == 0


@pytest.mark.slow
def test_rating_model_with_early_stopping_learns():
    data = make_data()
    for key in ("user_id", "item_id"):
        data[key] = data[key].astype("int32")

    def build(train):
        model = RatingModel({"user_id": NUM_USERS, "item_id": NUM_ITEMS})
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        stop = keras.callbacks.EarlyStopping(
            patience=2, restore_best_weights=True
        )
        return model, {"epochs": 10, "batch_size": 32, "callbacks": [stop]}

    results = cross_validate(
        build,
        data,
        protocol=protocols.HoldOut(0.2, seed=0),
        inner_validation=protocols.TimeCut(quantile=0.8),
    )
    (train, test), *_ = protocols.HoldOut(0.2, seed=0).split(data)
    spread = np.std(data["rating"][test])
    # Distinct timestamps: the cut at sorted position ceil(0.8 * 255) = 204
    # leaves 204 of the 256 training rows to fit on.
    assert len(train) == 256
    assert results["num_train"] == [204]
    assert results["test_rmse"][0] < spread


def test_preset_on_ratings_with_official_folds(tmp_path):
    from tests import movielens_fixtures as fx

    fx.write_release(tmp_path, "ml-100k")
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    results = cross_validate(
        "course", ratings, protocol=protocols.OfficialFolds(["u1", "u2"])
    )
    assert results["num_test"] == [
        len(ratings.official_split(f)[1]) for f in ("u1", "u2")
    ]
    assert np.all(np.isfinite(results["test_rmse"]))
    assert np.all(results["test_mae"] <= results["test_rmse"] + 1e-9)


def test_preset_dicts_and_folders_train_like_their_names(tmp_path):
    from keras_catembed import presets
    from tests import movielens_fixtures as fx

    fx.write_release(tmp_path, "ml-100k")
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    folds = protocols.OfficialFolds(["u1"])
    by_name = cross_validate("course", ratings, protocol=folds)
    config = presets.load("course")
    same = cross_validate(config, ratings, protocol=folds)
    assert same["test_rmse"][0] == by_name["test_rmse"][0]
    # A trained model's folder: its settings are used, not its weights.
    model = RatingModel.from_preset(
        "course", {"user_id": ratings.num_users, "movie_id": ratings.num_movies}
    )
    model.compile(optimizer="adam", loss="mse")
    x = movielens.inputs(ratings, model.columns)
    model.fit(x, ratings.rating, epochs=2, batch_size=64, verbose=0)
    folder = presets.save_to_preset(model, tmp_path / "trained")
    saved = cross_validate(folder, ratings, protocol=folds)
    assert saved["test_rmse"][0] == by_name["test_rmse"][0]
    # A changed dict trains as changed; the caller's dict stays as it was.
    config["recipe"]["epochs"] += 3
    longer = cross_validate(config, ratings, protocol=folds)
    assert longer["test_rmse"][0] != by_name["test_rmse"][0]
    expected = presets.load("course")
    expected["recipe"]["epochs"] += 3
    assert config == expected


def test_a_preset_model_leaves_out_the_fold_label_column(monkeypatch):
    # The labels of the folds are no input of the preset's model: a
    # test fold's label never occurs in its training part.
    from keras_catembed.evaluation import cross_validation

    data = make_data(200)
    data["fold"] = np.arange(200) % 2 + 1
    models = []
    original = cross_validation._score

    def record(results, model, *args, **kwargs):
        models.append(model)
        return original(results, model, *args, **kwargs)

    monkeypatch.setattr(cross_validation, "_score", record)
    config = _quick_course()
    results = cross_validate(
        config, data, protocol=protocols.OfficialFolds(fold_column="fold")
    )
    assert [model.columns for model in models] == [["user_id", "item_id"]] * 2
    assert results["num_test"] == [100, 100]
    # Labels passed as an array train the same models.
    labels = data.pop("fold")
    same = cross_validate(
        config, data, protocol=protocols.OfficialFolds(fold_column=labels)
    )
    np.testing.assert_array_equal(same["test_rmse"], results["test_rmse"])


def _quick_course():
    from keras_catembed import presets

    config = presets.load("course")
    config["recipe"].update(epochs=1, batch_size=64)
    return config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": -1}, r"`seed` must be an integer in \[0, 2\*\*32 - 1\]"),
        ({"seed": 2**32}, r"Received: seed=4294967296"),
        ({"build": 3}, "`build` must be a preset .* or a function"),
        ({"build": "nope"}, "Unknown preset 'nope'"),
        ({"protocol": "random"}, "A protocol must be"),
        ({"inner_validation": 1.5}, "`inner_validation` must be a fraction"),
        (
            {"inner_validation": protocols.KFold(3)},
            "one-split protocol .* Received: KFold",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    kwargs = {"build": lambda train: MeanModel(), **kwargs}
    with pytest.raises(ValueError, match=match):
        cross_validate(data=make_data(20), **kwargs)


class RecordingHyperModel(type(small_hypermodel())):
    """Records the rows of every training and validation set it gets."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fits = []

    def fit(self, hp, model, x, y, **kwargs):
        validation = kwargs.get("validation_data")
        self.fits.append((x, None if validation is None else validation[0]))
        return super().fit(hp, model, x, y, **kwargs)


def recording_hypermodel():
    base = small_hypermodel()
    return RecordingHyperModel(base.embeddings, **base.fixed)


@pytest.mark.slow
@pytest.mark.parametrize(
    "inner, fits_per_trial", [(0.25, 1), (protocols.KFold(2, seed=5), 2)]
)
def test_nested_search_never_sees_the_outer_test_rows(
    tmp_path, inner, fits_per_trial
):
    data = make_data()
    hypermodel = recording_hypermodel()
    outer = protocols.KFold(2, seed=3)
    results = nested_cross_validate(
        hypermodel,
        data,
        outer=outer,
        inner=inner,
        max_trials=2,
        epochs=1,
        directory=tmp_path,
    )
    per_fold = 2 * fits_per_trial + 1
    assert len(hypermodel.fits) == 2 * per_fold
    for fold, (train, test) in enumerate(outer.split(data)):
        fits = hypermodel.fits[fold * per_fold : (fold + 1) * per_fold]
        for x, validation in fits[:-1]:
            seen = np.r_[rows_of(data, x), rows_of(data, validation)]
            assert np.intersect1d(seen, test).size == 0
            np.testing.assert_array_equal(np.sort(seen), train)
        # The best trial is retrained on the whole outer training part.
        x, validation = fits[-1]
        assert validation is None
        np.testing.assert_array_equal(rows_of(data, x), train)
    assert len(results["hyperparameters"]) == 2
    for chosen in results["hyperparameters"]:
        assert chosen["batch_size"] == BATCH_SIZE
        assert 1e-4 <= chosen["learning_rate"] <= 1e-1
    assert results["num_test"] == [160, 160]
    assert np.all(np.isfinite(results["test_rmse"]))


@pytest.mark.slow
def test_nested_stops_when_every_trial_failed(tmp_path):
    # No trial scored: no choice to retrain and report.
    import keras_tuner

    class Failing(keras_tuner.HyperModel):
        def build(self, hp):
            model = RatingModel(
                {"user_id": NUM_USERS, "item_id": NUM_ITEMS},
                hidden_units=[hp.Choice("units", [4, 8])],
            )
            model.compile(optimizer="adam", loss="mse")
            return model

        def fit(self, hp, model, *args, **kwargs):
            raise RuntimeError("this trial cannot train")

    with pytest.raises(RuntimeError, match="Every trial of the search in "):
        nested_cross_validate(
            Failing(),
            make_data(),
            outer=protocols.HoldOut(0.2, seed=0),
            tuner="grid",
            max_trials=2,
            directory=tmp_path,
        )


@pytest.mark.slow
def test_nested_with_a_build_function(tmp_path):
    def build(hp):
        model = RatingModel(
            {"user_id": NUM_USERS, "item_id": NUM_ITEMS},
            hidden_units=[hp.Choice("units", [4, 8])],
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    data = make_data()
    results = nested_cross_validate(
        build,
        data,
        outer=protocols.HoldOut(0.2, seed=0),
        inner=protocols.LeaveLastN(1, user_column="user_id"),
        tuner="grid",
        max_trials=2,
        directory=tmp_path,
    )
    assert results["hyperparameters"][0]["units"] in (4, 8)
    assert results["num_train"] == [256]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tuner": "genetic"}, "`tuner` must be one of .* tuner='genetic'"),
        ({"inner": None}, "`inner` must not be None"),
        ({"inner": 2.0}, "`inner` must be a fraction in"),
        ({"hypermodel": 3}, "`hypermodel` must be a `keras_tuner.HyperModel`"),
        ({"max_trials": 0}, "`max_trials` must be a positive integer"),
        ({"max_trials": 2.5}, "`max_trials` must be a positive integer"),
        ({"epochs": 0}, "`epochs` must be a positive integer"),
        ({"seed": 2**32}, r"`seed` must be an integer in \[0, 2\*\*32 - 1\]"),
    ],
)
def test_nested_rejects_bad_arguments(kwargs, match):
    kwargs = {"hypermodel": lambda hp: None, **kwargs}
    with pytest.raises(ValueError, match=match):
        nested_cross_validate(data=make_data(20), **kwargs)


def test_nested_under_its_old_module_warns_and_is_the_same_function():
    from keras_catembed.evaluation import cross_validation
    from keras_catembed.evaluation import nested

    with pytest.warns(DeprecationWarning, match="keras_catembed.evaluation"):
        moved = cross_validation.nested_cross_validate
    assert moved is nested.nested_cross_validate is nested_cross_validate
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        cross_validation.missing  # noqa: B018
