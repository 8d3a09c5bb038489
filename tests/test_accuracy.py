"""Reduced-budget regression tests of the published accuracy figures.

The README's headline for the `"recommended"` preset on MovieLens 100k's
first official fold is an RMSE of 0.8941 on its current recipe (u1 entry
of `benchmarks/results/movielens_accuracy_sparse_ml-100k.json`). Training
it again with the preset's own recipe (as a member of the blend's test)
must stay close. The preset was
chosen before this test existed; the bound only guards against
regressions. The same holds for the variant with a day column that the
nested choice picked on u1 (`benchmarks/nested_variants.py --time`), and
for the preset with a day column trained for 10 epochs, the run against
SVD++ (`benchmarks/surprise_comparison.py`), for the blend of the
preset with an `ItemAutoencoder` (`RatingEnsemble`), for the blend
within SVD++'s time (`training.blend` with fixed autoencoder epochs), and
for ml-1m's blends (five folds, and the random 90/10 split).
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_catembed import training
from keras_catembed.datasets import movielens

REAL_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens"
)

pytestmark = pytest.mark.skipif(
    not (REAL_DATA / "ml-100k" / "u.data").is_file(),
    reason=f"the real ml-100k is not in {REAL_DATA / 'ml-100k'}",
)


def _rmse(model, test):
    prediction = model.predict(
        movielens.inputs(test, model.columns), batch_size=4096, verbose=0
    )
    error = np.asarray(prediction, "float64").reshape(-1) - test.rating
    return float(np.sqrt(np.mean(error**2)))


def _fit_model_and_autoencoder(blend, train, test, label):
    """Fits a blend of one model and one autoencoder; each one's RMSE."""
    blend.fit(movielens.inputs(train, blend.columns), train.rating, verbose=0)
    model, autoencoder = blend.members
    scores = _rmse(model, test), _rmse(autoencoder, test), _rmse(blend, test)
    print("{} {:.4f}, autoencoder {:.4f}, blend {:.4f}".format(label, *scores))
    return scores


@pytest.mark.slow
def test_the_day_column_keeps_u1_near_its_published_rmse():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import nested_variants

    ratings = movielens.load_ratings("ml-100k", data_dir=REAL_DATA)
    train, test = ratings.official_split("u1")
    config = nested_variants.variants(time=True)["+neighborhood+user_day"]
    model, _ = training.train(train, config, verbose=0, seed=0)
    assert model.columns == ["user_id", "movie_id", "user_day"]
    # Published: 0.8876, u1's chosen variant, one model of seed 0
    # (`nested_variants_time_ml-100k.json`). Without the day column the
    # same fold scores 0.8941 ("recommended") or so; a day column that
    # learned nothing would land there.
    assert _rmse(model, test) <= 0.891


@pytest.mark.slow
def test_the_day_column_in_ten_epochs_keeps_u1_near_its_published_rmse():
    from keras_catembed import presets

    ratings = movielens.load_ratings("ml-100k", data_dir=REAL_DATA)
    train, test = ratings.official_split("u1")
    config = presets.with_columns("recommended", ["user_day"])
    model, history = training.train(train, config, verbose=0, seed=0, epochs=10)
    assert len(history.history["loss"]) == 10
    # Published: 0.8942, the u1 entry of the run against SVD++
    # (`surprise_comparison_ml-100k_user_day_10_epochs.json`). The preset
    # without implicit feedback ("mlp", 25 epochs) scores 0.9207.
    assert _rmse(model, test) <= 0.903


@pytest.mark.slow
def test_the_preset_and_its_blend_with_an_item_autoencoder_on_u1():
    from keras_catembed import ItemAutoencoder
    from keras_catembed import RatingEnsemble
    from keras_catembed import presets
    from keras_catembed.training import Recipe

    ratings = movielens.load_ratings("ml-100k", data_dir=REAL_DATA)
    train, test = ratings.official_split("u1")
    keras.utils.set_random_seed(0)
    config = presets.load("recommended")
    sizes = {"user_id": train.num_users, "movie_id": train.num_movies}
    model = presets.build_model(config, sizes)
    model.recipe = Recipe.from_config(config["recipe"])
    autoencoder = ItemAutoencoder(sizes, rating_range=(1, 5))
    # 18 epochs: the choice of `blend_validation_ml-100k.json`.
    autoencoder.recipe = Recipe(
        1e-3, schedule="constant", batch_size=64, epochs=18, optimizer="adam"
    )
    blend = RatingEnsemble(
        [model, autoencoder], weights=[0.7, 0.3], rating_range=(1, 5)
    )
    blend.fit(movielens.inputs(train, blend.columns), train.rating, verbose=0)
    # Published: u1 0.8879 for three models of the preset and the
    # autoencoder (`surprise_comparison_ml-100k_blend.json`), where the
    # preset alone scores 0.8913; one model blends to a little more than
    # three. A blend that lost the autoencoder's help (0.9205 alone on
    # validation ratings) would not get below the preset's own figure.
    alone, blended = _rmse(model, test), _rmse(blend, test)
    print(f"u1: preset {alone:.4f}, blend {blended:.4f}")
    # The preset alone, the README's headline: 0.8941 (one run, the u1
    # entry of `movielens_accuracy_sparse_ml-100k.json`). Seeds and
    # backends move it by about 0.002; a regression of the model or the
    # recipe moves it far more (the preset without implicit feedback,
    # "mlp", scores 0.9207).
    assert alone <= 0.905
    assert blended < alone
    # Seeds and backends move u1 by about 0.003 (the preset's published
    # u1 is 0.8941 in one run, 0.8913 in another).
    assert blended <= 0.893


@pytest.mark.slow
def test_the_blend_within_svdpps_time_keeps_u1_near_its_published_rmse():
    from keras_catembed import ItemAutoencoder
    from keras_catembed import presets

    ratings = movielens.load_ratings("ml-100k", data_dir=REAL_DATA)
    train, test = ratings.official_split("u1")
    config = presets.with_columns("recommended", ["user_day"])
    config["recipe"]["epochs"] = 6
    record = {}
    blend = training.blend(
        train,
        config,
        members=1,
        autoencoders=2,
        weight=0.5,
        autoencoder_epochs=40,
        autoencoder_units=250,
        seed=0,
        record=record,
    )
    assert record == {"epochs": 40}
    blend.fit(movielens.inputs(train, blend.columns), train.rating, verbose=0)
    model, *autoencoders = blend.members
    assert [type(a) for a in autoencoders] == [ItemAutoencoder] * 2
    alone, blended = _rmse(model, test), _rmse(blend, test)
    print(f"u1: preset {alone:.4f}, blend {blended:.4f}")
    # Published: u1 0.8909 (`surprise_comparison_ml-100k_fast_blend_2.json`,
    # against SVD++'s 0.9247; the nested run,
    # `surprise_comparison_ml-100k_nested_blend.json`, chose this blend
    # for u1 too and scored the same); the preset with the day column alone
    # scores 0.8942 after 10 epochs and worse after 6. A blend whose
    # autoencoders learned nothing would not beat its member.
    assert blended < alone - 0.003
    assert blended <= 0.894


@pytest.mark.slow
@pytest.mark.one_backend
def test_the_ml1m_blend_within_svdpps_time_keeps_fold_1_near_its_figure():
    # The README's ml-1m headline: one "mlp-large" model and five
    # autoencoders at 0.7 score 0.8279 on fold 1 (the clean fold of
    # `surprise_comparison_ml-1m_fast_blend.json`). At a reduced budget,
    # one autoencoder for the 19 epochs its validation run chose
    # (`blend_autoencoders_ml-1m_fold1_mlp-large.json`).
    import sys

    if not (REAL_DATA / "ml-1m" / "ratings_no_timestamp.csv").is_file():
        pytest.skip(f"ml-1m's fold column is not in {REAL_DATA / 'ml-1m'}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import movielens_accuracy

    ratings, folds = movielens_accuracy.load_1m(str(REAL_DATA))
    train = ratings.subset(np.flatnonzero(folds != 1))
    test = ratings.subset(np.flatnonzero(folds == 1))
    blend = training.blend(
        train,
        "mlp-large",
        members=1,
        autoencoders=1,
        weight=0.7,
        autoencoder_epochs=19,
        seed=0,
    )
    alone, coder, blended = _fit_model_and_autoencoder(
        blend, train, test, "fold 1: mlp-large"
    )
    assert blended < min(alone, coder) - 0.005
    # One autoencoder in place of five: about 0.838 on JAX and torch.
    assert blended <= 0.841


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the ml-1m 90/10 headline was measured on JAX; a reduced run of "
    "its model takes minutes, so it runs on that backend alone",
)
def test_the_ml1m_holdout_blend_keeps_seed_0_near_its_figure():
    # The README's 90/10 headline: one "recommended-large" model (bfloat16
    # pairs) and four to six autoencoders, each seed's count and weight
    # chosen inside its training part, 0.8175 on seed 0 (the clean seed,
    # `surprise_comparison_ml-1m_holdout_nested_blend.json`; 0.8220 with
    # one autoencoder at 0.3, `surprise_comparison_ml-1m_holdout_blend.json`).
    # At a reduced budget: the model with the preset's own (float32)
    # pairs for 6 epochs of its 25 (cosine over 6), one autoencoder for
    # the 23 epochs seed 0's validation run chose
    # (`blend_autoencoders_ml-1m_nested_seed0.json`), weight 0.5.
    import sys

    from keras_catembed import presets
    from keras_catembed.evaluation.protocols import HoldOut

    if not (REAL_DATA / "ml-1m" / "ratings_no_timestamp.csv").is_file():
        pytest.skip(f"ml-1m's ratings are not in {REAL_DATA / 'ml-1m'}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import movielens_accuracy

    ratings, _ = movielens_accuracy.load_1m(str(REAL_DATA))
    (train, test), *_ = HoldOut(0.1, seed=0).split_data(ratings)
    config = presets.load("recommended-large")
    config["recipe"]["epochs"] = 6
    blend = training.blend(
        train,
        config,
        members=1,
        autoencoders=1,
        weight=0.5,
        autoencoder_epochs=23,
        seed=0,
    )
    assert blend.members[0].implicit
    alone, coder, blended = _fit_model_and_autoencoder(
        blend, train, test, "seed 0: recommended-large"
    )
    # Measured at this budget on JAX: 0.8373, 0.8510 and 0.8268. A model
    # that lost its implicit feedback ("mlp-large" validates at 0.8564 in
    # fold 1's training part, `blend_autoencoders_ml-1m_nested_fold1.json`;
    # "recommended-large" at 0.8340 in seed 0's)
    # or an autoencoder that learned nothing would not blend this far
    # below both.
    assert blended < min(alone, coder) - 0.008
    assert blended <= 0.831
