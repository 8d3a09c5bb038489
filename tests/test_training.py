import warnings

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import RatingModel
from keras_catembed import optimizers
from keras_catembed import training
from keras_catembed.training import Recipe


def _data(num=600, num_users=30, num_movies=20, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(num_users, 2))
    movies = rng.normal(size=(num_movies, 2))
    x = {
        "user_id": rng.integers(0, num_users, num),
        "movie_id": rng.integers(0, num_movies, num),
    }
    y = 3 + (users[x["user_id"]] * movies[x["movie_id"]]).sum(1)
    return x, y.astype("float32")


def _model():
    return keras_catembed.RatingModel(
        {"user_id": 30, "movie_id": 20}, hidden_units=[8]
    )


def test_config_round_trip_and_plain_values():
    recipe = Recipe(
        2e-3,
        schedule="cosine",
        batch_size=64,
        epochs=3,
        ema_momentum=0.99,
        optimizer="adamw",
        table_decay=0.5,
    )
    config = recipe.get_config()
    assert config == {
        "optimizer": "adamw",
        "learning_rate": 2e-3,
        "schedule": "cosine",
        "batch_size": 64,
        "epochs": 3,
        "ema_momentum": 0.99,
        "table_decay": 0.5,
    }
    assert Recipe.from_config(config) == recipe
    assert recipe.replace(epochs=5).epochs == 5
    assert recipe.epochs == 3
    # 0 means no average, as in RatingHyperModel.
    assert Recipe(ema_momentum=0.0).ema_momentum is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rate": 0}, "`learning_rate` must be a finite number > 0"),
        ({"learning_rate": float("nan")}, "`learning_rate` must be"),
        ({"schedule": "step"}, r"`schedule` must be one of.*'step'"),
        ({"optimizer": "lion"}, r"`optimizer` must be one of.*'lion'"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 1.5}, "epochs"),
        ({"ema_momentum": 1.0}, "ema_momentum"),
        ({"ema_momentum": "0.9"}, "`ema_momentum` must be None or a number"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"Unknown recipe settings \['lr'\]"):
        Recipe.from_config({"lr": 0.1})


def test_cosine_schedule_warms_up_then_decays():
    recipe = Recipe(1e-2, schedule="cosine", batch_size=10, epochs=5)
    # 100 rows: 10 steps per epoch, 50 steps, 10 of warm-up.
    assert recipe.steps(100) == 50
    schedule = recipe.learning_rate_for(100)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    rate = [float(ops.convert_to_numpy(schedule(step))) for step in range(51)]
    assert rate[0] == pytest.approx(1e-3)
    assert rate[10] == pytest.approx(1e-2)
    assert rate[50] == pytest.approx(0.0, abs=1e-9)
    assert Recipe(1e-2).learning_rate_for(100) == 1e-2


def _schedule_config(schedule):
    config = schedule.get_config()
    del config["name"]
    return config


def test_schedule_length_from_rows_steps_or_set_later():
    recipe = Recipe(1e-2, schedule="cosine", batch_size=10, epochs=5)
    by_rows = _schedule_config(recipe.learning_rate_for(100))
    assert by_rows["decay_steps"] == 40 and by_rows["warmup_steps"] == 10
    assert _schedule_config(recipe.learning_rate_for(steps=50)) == by_rows
    # Without a length, set later (a model compiled before its data).
    schedule = recipe.learning_rate_for()
    assert schedule.decay_steps == 1
    recipe.set_schedule_steps(schedule, 50)
    assert _schedule_config(schedule) == by_rows
    # Under 5 steps there is no warm-up: the rate itself decays.
    recipe.set_schedule_steps(schedule, 4)
    assert (schedule.warmup_steps, schedule.warmup_target) == (0, None)
    assert float(ops.convert_to_numpy(schedule(0))) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="not both"):
        recipe.learning_rate_for(100, steps=50)
    with pytest.raises(ValueError, match="steps=0"):
        recipe.learning_rate_for(steps=0)
    with pytest.raises(ValueError, match="CosineDecay of a 'cosine'"):
        Recipe(1e-2).set_schedule_steps(1e-2, 10)


class _Batches(keras.utils.PyDataset):
    def __len__(self):
        return 7

    def __getitem__(self, index):
        raise IndexError(index)


def test_fit_steps_count_rows_or_batches():
    recipe = Recipe(batch_size=10, epochs=5)
    x, _ = _data(95)
    assert recipe.fit_steps(x) == 50
    assert recipe.fit_steps(x["user_id"]) == 50
    assert recipe.fit_steps(_Batches()) == 35
    with pytest.raises(ValueError, match="Received: generator"):
        recipe.fit_steps(x for x in ())


def test_fit_kwargs_swap_the_averaged_weights_in_first():
    model = _model()
    recipe = Recipe(batch_size=10, epochs=3, ema_momentum=0.9)
    recipe.compile(model, 100)
    stop = keras.callbacks.TerminateOnNaN()
    x, _ = _data(100)
    kwargs = recipe.fit_kwargs(model, x, callbacks=[stop], swap_on_epoch=True)
    assert set(kwargs) == {"epochs", "callbacks", "batch_size"}
    assert (kwargs["epochs"], kwargs["batch_size"]) == (3, 10)
    swap, after = kwargs["callbacks"]
    assert isinstance(swap, keras.callbacks.SwapEMAWeights)
    assert swap.swap_on_epoch and after is stop
    # Batched inputs keep their batches; no average, no swap.
    model = _model()
    Recipe(epochs=2).compile(model, 100)
    kwargs = Recipe(epochs=2).fit_kwargs(model, _Batches())
    assert kwargs == {"epochs": 2, "callbacks": []}


def test_compile_sets_the_optimizer_loss_and_metrics():
    model = _model()
    Recipe(3e-3, ema_momentum=0.9, optimizer="rmsprop").compile(model, 100)
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.optimizer.use_ema
    assert model.optimizer.ema_momentum == pytest.approx(0.9)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    with pytest.raises(ValueError, match=r"sets \['loss'\] itself"):
        Recipe().compile(_model(), 100, loss="mae")


def test_fit_compiles_and_uses_the_batch_size_and_epochs():
    x, y = _data()
    model = _model()
    recipe = Recipe(1e-2, batch_size=100, epochs=3)
    history = recipe.fit(model, x, y, verbose=0)
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.optimizer.iterations.numpy() == 3 * 6
    with pytest.raises(ValueError, match=r"takes \['epochs'\] from the"):
        recipe.fit(model, x, y, epochs=2)


def test_fit_validates_the_averaged_weights():
    x, y = _data()
    x_val, y_val = _data(200, seed=1)
    model = _model()
    history = Recipe(1e-2, batch_size=100, epochs=2, ema_momentum=0.5).fit(
        model, x, y, validation_data=(x_val, y_val), verbose=0
    )
    # Validation saw the averaged weights, which `fit` left in the model.
    rmse = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["rmse"]
    assert history.history["val_rmse"][-1] == pytest.approx(rmse, rel=1e-5)


def test_train_fits_a_preset(tmp_path):
    from keras_catembed import cli
    from tests.synthetic_movielens import write_synthetic_100k

    data_dir = write_synthetic_100k(str(tmp_path))
    ratings = keras_catembed.datasets.movielens.load_ratings(
        "ml-100k", data_dir=data_dir
    )
    train, test = ratings.official_split("u1")
    seen = []
    model, history = training.train(
        train,
        "course",
        validation=test,
        validation_name="test",
        verbose=0,
        seed=3,
        epochs=2,
        hidden_units=[4],
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: seen.append(sorted(logs))
            )
        ],
    )
    # The callbacks given run after the one renaming the metrics.
    assert len(seen) == 2 and "test_rmse" in seen[0]
    assert "val_rmse" not in seen[0]
    assert model.recipe == Recipe(
        0.005, batch_size=1024, epochs=2, optimizer="adam"
    )
    assert model.hidden_units == [4]
    assert len(history.history["test_rmse"]) == 2
    # The deprecated name gives the same model for the same seed.
    with pytest.warns(DeprecationWarning, match="cli.train_model"):
        again, _ = cli.train_model(
            train, "course", verbose=0, seed=3, epochs=2, hidden_units=[4]
        )
    x = keras_catembed.datasets.movielens.inputs(test)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), again.predict(x, verbose=0), rtol=1e-5
    )


def test_moved_cli_names_warn_and_work(tmp_path):
    from keras_catembed import cli
    from tests.synthetic_movielens import write_synthetic_100k

    data_dir = write_synthetic_100k(str(tmp_path))
    ratings = keras_catembed.datasets.movielens.load_ratings(
        "ml-100k", data_dir=data_dir
    )
    train, test = ratings.official_split("u1")
    with pytest.warns(DeprecationWarning, match="datasets.movielens.inputs"):
        x = cli.inputs(test)
    assert sorted(x) == ["movie_id", "user_id"]
    np.testing.assert_array_equal(x["user_id"], test.user_id)
    with pytest.warns(DeprecationWarning, match="evaluation.baselines"):
        rows = cli.baselines(train, test)
    assert rows == keras_catembed.evaluation.baselines(train, test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert callable(cli.main)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cli.nope  # noqa: B018


def test_table_decay_reaches_only_the_embedding_tables():
    # With a constant rate, the row of a user never trained on is its
    # initial value times (1 - rate * decay) per step; its bias row (zero)
    # and the dense layers are not decayed.
    rng = np.random.default_rng(5)
    x = {
        "user_id": rng.integers(0, 5, 32).astype("int32"),
        "movie_id": rng.integers(0, 4, 32).astype("int32"),
    }
    y = rng.uniform(1, 5, 32).astype("float32")
    keras.utils.set_random_seed(0)
    model = RatingModel({"user_id": 6, "movie_id": 4}, bias_terms=True)
    model.build()
    initial = np.array(
        keras.ops.convert_to_numpy(model.embedding_layers["user_id"].embeddings)
    )
    recipe = Recipe(
        0.01,
        batch_size=8,
        epochs=2,
        optimizer="sparse_adam",
        table_decay=2.0,
    )
    recipe.fit(model, x, y, verbose=0)
    assert isinstance(model.optimizer, optimizers.SparseAdam)
    assert model.optimizer.weight_decay == 2.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(
            model.embedding_layers["user_id"].embeddings
        )[5],
        initial[5] * (1 - 0.01 * 2.0) ** 8,
        rtol=1e-5,
    )
    excluded = model.optimizer._exclude_from_weight_decay
    kernel = model.hidden_layers[0].kernel
    assert model.optimizer._var_key(kernel) in excluded
    bias = model.bias_layers["user_id"].embeddings
    assert model.optimizer._var_key(bias) in excluded


def test_adamw_without_table_decay_decays_nothing():
    # `table_decay=None` is no decay: not AdamW's default of 0.004, which
    # would decay the dense layers too.
    x = {"user_id": np.arange(6) % 3, "movie_id": np.arange(6) % 2}
    y = np.full(6, 3.0, "float32")
    keras.utils.set_random_seed(0)
    model = RatingModel({"user_id": 4, "movie_id": 2})
    model.build()
    unread = np.array(
        keras.ops.convert_to_numpy(model.embedding_layers["user_id"].embeddings)
    )[3]
    Recipe(0.01, batch_size=6, epochs=3, optimizer="adamw").fit(
        model, x, y, verbose=0
    )
    assert model.optimizer.weight_decay == 0.0
    # User 3 is in no batch: Adam leaves its row, and so must the decay.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(
            model.embedding_layers["user_id"].embeddings
        )[3],
        unread,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"table_decay": -1.0, "optimizer": "sparse_adam"}, "table_decay"),
        ({"table_decay": 1.0, "optimizer": "adam"}, "sparse_adam"),
    ],
)
def test_table_decay_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


def test_table_decay_needs_a_rating_model():
    model = keras.Sequential([keras.layers.Dense(1)])
    recipe = Recipe(optimizer="sparse_adam", table_decay=1.0)
    with pytest.raises(ValueError, match="embedding tables of a RatingModel"):
        recipe.compile(model, 10)


def test_train_adds_a_user_day_column_that_learns_each_days_shift():
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    # Each user rates 1.5 above or below 3 depending on the day, whatever
    # the movie: only a column of the user and day can tell.
    rng = np.random.default_rng(0)
    num = 3000
    users = rng.integers(0, 20, num)
    days = rng.integers(0, 5, num)
    shift = rng.choice([-1.5, 1.5], size=(20, 5))
    ratings = movielens.Ratings.from_arrays(
        users,
        rng.integers(0, 30, num),
        3 + shift[users, days] + rng.normal(0, 0.1, num),
        timestamps=days * 86_400 + rng.integers(0, 86_400, num),
    )
    train, test = ratings.random_split(0.2, seed=0)
    with_day = presets.load("course")
    with_day["time_columns"] = ["user_day"]
    errors = {}
    for name, config in (("without", "course"), ("with", with_day)):
        model, _ = training.train(
            train, config, verbose=0, seed=0, batch_size=64, epochs=8
        )
        x = movielens.inputs(test, model.columns)
        predicted = model.predict(x, verbose=0).reshape(-1)
        errors[name] = float(np.sqrt(np.mean((predicted - test.rating) ** 2)))
        if name == "with":
            assert model.columns == ["user_id", "movie_id", "user_day"]
            layer = model.embedding_layers["user_day"]
            assert layer.input_dim == ratings.num_user_days == 100
    # Without the day the shift is noise (RMSE about 1.5).
    assert errors["without"] > 1.2
    assert errors["with"] < 0.5


def test_train_rejects_time_columns_it_cannot_make():
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    config = presets.load("course")
    config["time_columns"] = ["user_day"]
    no_stamps = movielens.Ratings.from_arrays(
        [1, 2], [1, 2], [3.0, 4.0], name="ml-1m"
    )
    with pytest.raises(ValueError, match="'user_day' column needs timestamps"):
        training.train(no_stamps, config, verbose=0)
    config["time_columns"] = ["movie_day"]
    stamped = movielens.Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0], [0, 1])
    with pytest.raises(ValueError, match="column 'movie_day'.*time columns"):
        training.train(stamped, config, verbose=0)
    # Building the preset's model needs the column's size.
    config["time_columns"] = ["user_day"]
    with pytest.raises(ValueError, match=r"time columns \['user_day'\]"):
        keras_catembed.RatingModel.from_preset(
            config, {"user_id": 2, "movie_id": 2}
        )


def test_from_preset_names_missing_user_feature_columns():
    from keras_catembed import presets

    config = presets.load("course")
    config["user_features"] = ["age", "gender"]
    with pytest.raises(
        ValueError, match=r"user features \['age', 'gender'\].*\['gender'\]"
    ):
        keras_catembed.RatingModel.from_preset(
            config, {"user_id": 2, "movie_id": 2, "age": 7}
        )


def _stamped_ratings(seed, num=400):
    """`Ratings` of 10 users and 12 movies over six days."""
    from keras_catembed.datasets import movielens

    rng = np.random.default_rng(seed)
    return movielens.Ratings.from_arrays(
        rng.integers(0, 10, num),
        rng.integers(0, 12, num),
        rng.integers(1, 6, num).astype("float32"),
        timestamps=rng.integers(0, 6, num) * 86_400,
    )


def test_train_from_a_saved_folder_embeds_its_columns_again(tmp_path):
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    ratings = _stamped_ratings(seed=1)
    num = len(ratings)
    config = presets.with_columns("course", ["user_day"], output_dim=3)
    model, _ = training.train(ratings, config, verbose=0, seed=0, epochs=1)
    presets.save_to_preset(model, tmp_path)
    # The folder's model part names every column; none is dropped.
    again, _ = training.train(ratings, tmp_path, verbose=0, seed=0, epochs=1)
    assert again.columns == model.columns == ["user_id", "movie_id", "user_day"]
    layer = again.embedding_layers["user_day"]
    assert (layer.input_dim, layer.output_dim) == (ratings.num_user_days, 3)
    x = movielens.inputs(ratings, again.columns)
    assert again.predict(x, verbose=0).shape == (num, 1)


def test_train_names_a_preset_column_it_cannot_make():
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    config = presets.load("course")
    config["model"]["embeddings"] = {"store_id": {"output_dim": 4}}
    ratings = movielens.Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0])
    with pytest.raises(ValueError, match="column 'store_id'.*'user_id'"):
        training.train(ratings, config, verbose=0)


def test_train_names_the_pairs_of_an_override_for_added_columns():
    from keras_catembed import presets

    ratings = _stamped_ratings(seed=2)
    config = presets.with_columns("course", ["user_day"], output_dim=3)
    # Three columns: `True` means the users' and movies' pairs, as for two.
    model, _ = training.train(
        ratings,
        config,
        verbose=0,
        seed=0,
        epochs=1,
        implicit=True,
        neighborhood=True,
    )
    pairs = {"user_id": "movie_id", "movie_id": "user_id"}
    assert model.implicit == model.neighborhood == pairs
    assert sorted(model.neighborhood_layers) == ["movie_id", "user_id"]
    # Adapted to the training pairs.
    rated = set(
        zip(ratings.user_id.tolist(), ratings.movie_id.tolist(), strict=True)
    )
    for column in ("user_id", "movie_id"):
        assert model.implicit_layers[column].listed_pairs() == len(rated)
        assert model.neighborhood_layers[column].listed_pairs() == len(rated)
    # `False` switches a preset's pairs off.
    config = presets.load("recommended")
    model, _ = training.train(
        ratings, config, verbose=0, seed=0, epochs=1, implicit=False
    )
    assert not model.implicit


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda r: training.train({"user_id": r.user_id}, "course"),
            "`train` must be a keras_catembed.datasets.movielens.Ratings .* "
            "Received: train of type dict",
        ),
        (
            lambda r: training.train(r, "course", validation=(r.user_id,)),
            "`validation` must be .* Received: validation of type tuple",
        ),
        (
            lambda r: training.train(r, "course", epoch=2),
            r"Unknown overrides \['epoch'\]. Expected some of the recipe's "
            r"\[.*'epochs'.*\] or the model's \[.*'hidden_units'.*\]",
        ),
        (
            lambda r: training.train(r, "course", seed=2**32),
            r"`seed` must be an integer in \[0, 2\*\*32 - 1\]. Received: "
            "seed=4294967296",
        ),
        (
            lambda r: training.train(r, "course", seed=-1),
            r"`seed` must be an integer in \[0, 2\*\*32 - 1\]",
        ),
    ],
)
def test_train_names_a_bad_argument_before_training(call, match):
    with pytest.raises(ValueError, match=match):
        call(_stamped_ratings(seed=3))


def test_save_to_preset_names_a_file_in_the_way(tmp_path):
    from keras_catembed import presets

    model, _ = training.train(
        _stamped_ratings(seed=4), "course", verbose=0, seed=0, epochs=1
    )
    path = tmp_path / "taken"
    path.write_text("the user's file")
    with pytest.raises(
        ValueError, match="`preset_dir` must be a folder .* a file"
    ):
        presets.save_to_preset(model, path)
    assert path.read_text() == "the user's file"
