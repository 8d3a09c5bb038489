"""`training.blend`: preset models averaged with an item autoencoder."""

import numpy as np
import pytest

from keras_catembed import ItemAutoencoder
from keras_catembed import RatingEnsemble
from keras_catembed import RatingModel
from keras_catembed import presets
from keras_catembed import training
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate


def ratings(n=400, seed=0):
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(30 * 20)[:n]
    users, movies = pairs // 20, pairs % 20
    # Ratings from 2 to 4.5, so the clip range comes from the data.
    stars = 2.0 + 0.5 * ((users + 2 * movies) % 6)
    return movielens.Ratings.from_arrays(users, movies, stars)


def short(preset="recommended", epochs=1):
    config = presets.load(preset)
    config["recipe"]["epochs"] = epochs
    return config


@pytest.fixture
def no_choosing_run(monkeypatch):
    """Fails the test if `training.blend` runs its choice of epochs."""
    from keras_catembed import _blend

    def never(*args, **kwargs):
        raise AssertionError("the choice of epochs ran")

    monkeypatch.setattr(_blend, "_autoencoder_curve", never)


def test_blend_builds_the_weighted_ensemble_with_chosen_epochs():
    data = ratings()
    record = {}
    ensemble = training.blend(
        data,
        short(),
        members=2,
        autoencoders=1,
        weight=0.4,
        max_epochs=4,
        patience=2,
        seed=3,
        record=record,
    )
    assert isinstance(ensemble, RatingEnsemble)
    first, second, autoencoder = ensemble.members
    assert isinstance(first, RatingModel) and isinstance(second, RatingModel)
    assert isinstance(autoencoder, ItemAutoencoder)
    np.testing.assert_allclose(ensemble.member_weights, [0.3, 0.3, 0.4])
    assert 1 <= record["epochs"] <= 4
    assert np.isfinite(record["inner_rmse"]) and record["inner_rmse"] > 0
    # The chosen count is the best epoch of the choosing run's curve.
    curve = record["inner_curve"]
    assert record["inner_rmse"] == min(curve) == curve[record["epochs"] - 1]
    assert len(curve) == min(4, record["epochs"] + 2)
    assert autoencoder.recipe.epochs == record["epochs"]
    assert first.recipe.epochs == 1
    assert autoencoder.rating_range == (2.0, 4.5)
    assert ensemble.rating_range == (2.0, 4.5)
    assert ensemble.compiled
    ensemble.fit(movielens.inputs(data, ensemble.columns), data.rating)
    predicted = ensemble.predict(
        movielens.inputs(data, ensemble.columns), verbose=0
    )
    assert predicted.min() >= 2.0 and predicted.max() <= 4.5
    # The two preset models started from different weights.
    x = movielens.inputs(data, first.columns)
    assert not np.allclose(
        first.predict(x, verbose=0), second.predict(x, verbose=0)
    )
    # The same seed chooses the same epochs.
    again = {}
    training.blend(
        data,
        short(),
        members=2,
        max_epochs=4,
        patience=2,
        seed=3,
        record=again,
    )
    assert again == record


def test_autoencoders_share_the_weight_and_the_chosen_epochs(monkeypatch):
    from keras_catembed import _blend

    choose, chosen = _blend._autoencoder_curve, []

    def counted(*args, **kwargs):
        chosen.append(choose(*args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(_blend, "_autoencoder_curve", counted)
    data = ratings()
    record = {}
    ensemble = training.blend(
        data,
        short(),
        members=1,
        autoencoders=3,
        weight=0.3,
        max_epochs=3,
        patience=1,
        seed=5,
        record=record,
    )
    model, *autoencoders = ensemble.members
    assert isinstance(model, RatingModel)
    assert len(autoencoders) == 3
    assert all(isinstance(each, ItemAutoencoder) for each in autoencoders)
    np.testing.assert_allclose(ensemble.member_weights, [0.7, 0.1, 0.1, 0.1])
    assert [each.recipe.epochs for each in autoencoders] == [
        record["epochs"]
    ] * 3
    # One choosing run for all three.
    assert len(chosen) == 1
    ensemble.fit(movielens.inputs(data, ensemble.columns), data.rating)
    # Each autoencoder started from its own weights.
    x = movielens.inputs(data, autoencoders[0].columns)
    first, second = (
        each.predict(x, verbose=0).reshape(-1) for each in autoencoders[:2]
    )
    assert not np.allclose(first, second)
    blended = ensemble.predict(
        movielens.inputs(data, ensemble.columns), verbose=0
    ).reshape(-1)
    by_hand = 0.7 * model.predict(
        movielens.inputs(data, model.columns), verbose=0
    ).reshape(-1) + sum(
        0.1 * each.predict(x, verbose=0).reshape(-1) for each in autoencoders
    )
    np.testing.assert_allclose(
        blended, np.clip(by_hand, 2.0, 4.5), rtol=1e-5, atol=1e-5
    )


def test_the_default_blend_shares_its_weight_among_five_autoencoders():
    ensemble = training.blend(
        ratings(), short(), members=1, max_epochs=1, patience=1
    )
    np.testing.assert_allclose(ensemble.member_weights, [0.6] + [0.08] * 5)
    assert all(isinstance(m, ItemAutoencoder) for m in ensemble.members[1:])


def test_given_autoencoder_epochs_skip_the_choosing_run(no_choosing_run):
    # A dict reused from a blend that chose its epochs.
    record = {"epochs": 7, "inner_rmse": 0.9, "inner_curve": [1.0, 0.9]}
    data = ratings(n=12)  # Too few to choose on; enough to train.
    ensemble = training.blend(
        data,
        short(),
        members=1,
        autoencoders=2,
        autoencoder_epochs=3,
        autoencoder_units=7,
        record=record,
    )
    assert record == {"epochs": 3}
    assert [m.hidden_units for m in ensemble.members[1:]] == [7, 7]
    assert [m.recipe.epochs for m in ensemble.members] == [1, 3, 3]
    np.testing.assert_allclose(ensemble.member_weights, [0.6, 0.2, 0.2])
    ensemble.fit(movielens.inputs(data, ensemble.columns), data.rating)
    # At most 20 rated items: one batch of items an epoch, three epochs.
    for member in ensemble.members[1:]:
        assert int(member.optimizer.iterations.numpy()) == 3


def test_blend_is_a_cross_validate_build_function():
    data = ratings()
    scores = cross_validate(
        lambda train: training.blend(
            train,
            short(),
            members=1,
            autoencoders=1,
            max_epochs=2,
            patience=1,
        ),
        data,
        protocol=2,
    )
    assert scores["test_rmse"].shape == (2,)
    assert np.all(np.isfinite(scores["test_rmse"]))
    assert np.all(scores["test_rmse"] < 2.5)


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("members", 0, r"`members` must be a positive integer"),
        ("autoencoders", 0, r"`autoencoders` must be a positive integer"),
        ("weight", 1.0, r"`weight` must be a number in \(0, 1\).*1\.0"),
        ("weight", True, r"`weight` must be a number in \(0, 1\)"),
        ("l2", -1.0, r"`l2`"),
        ("patience", 0, r"`patience` must be a positive integer"),
        (
            "autoencoder_epochs",
            0,
            r"`autoencoder_epochs` must be a positive integer",
        ),
        ("autoencoder_epochs", 2.5, r"`autoencoder_epochs`.*2\.5"),
        ("autoencoder_units", 0, r"`autoencoder_units` must be a positive"),
    ],
)
def test_bad_arguments_are_named_before_anything_trains(
    argument, value, message
):
    with pytest.raises(ValueError, match=message):
        training.blend(ratings(), short(), **{argument: value})


def test_blend_needs_ratings():
    data = ratings()
    with pytest.raises(ValueError, match=r"`train` must be a .*Ratings.*dict"):
        training.blend({"user_id": data.user_id}, short())
    with pytest.raises(ValueError, match=r"at least 20 ratings.*Received 10"):
        training.blend(ratings(n=10), short())


def test_a_bad_preset_fails_before_the_autoencoder_trains(no_choosing_run):
    config = short()
    config["recipe"]["optimizer"] = "no-such-optimizer"
    with pytest.raises(ValueError, match="no-such-optimizer"):
        training.blend(ratings(), config)
