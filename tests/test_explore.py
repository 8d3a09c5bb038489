import os

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import explore


@pytest.fixture
def model():
    model = keras_catembed.RatingModel(
        {
            "user": 3,
            "movie": keras_catembed.EntityEmbedding(5, 2, num_oov_indices=2),
        }
    )
    model.build()
    # Movies 0 and 1 point the same way, 2 the opposite way, 3 is far out.
    model.embedding_layers["movie"].embeddings.assign(
        np.array(
            [
                [1.0, 0.0],
                [2.0, 0.1],
                [-1.0, 0.0],
                [0.0, 5.0],
                [0.5, 0.5],
                [9.0, 9.0],  # OOV rows: never returned.
                [9.0, 9.1],
            ],
            dtype="float32",
        )
    )
    return model


def test_embedding_matrix_leaves_out_oov_rows(model):
    matrix = explore.embedding_matrix(model, "movie")
    assert matrix.shape == (5, 2)
    np.testing.assert_array_equal(matrix[3], [0.0, 5.0])


def test_embedding_matrix_adds_implicit_feedback():
    model = keras_catembed.RatingModel(
        {"user": 3, "movie": keras_catembed.EntityEmbedding(4, 4)},
        implicit=True,
    )
    model.build()
    model.embedding_layers["movie"].embeddings.assign(
        np.arange(4 * 4, dtype="float32").reshape(4, 4)
    )
    model.implicit_layers["movie"].embeddings.assign(
        np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], "float32")
    )
    own = explore.embedding_matrix(model, "movie")
    np.testing.assert_array_equal(own, np.arange(16).reshape(4, 4))
    # Movie 0 rated by users 0 and 1, movie 2 by user 2, the others by none.
    model.adapt({"user": np.array([0, 1, 2]), "movie": np.array([0, 0, 2])})
    matrix = explore.embedding_matrix(model, "movie")
    expected = np.arange(16, dtype="float32").reshape(4, 4)
    expected[0] += np.array([1, 1, 0, 0]) / np.sqrt(2)
    expected[2] += np.array([0, 0, 1, 0])
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)


def test_embedding_matrix_of_plain_keras_model():
    inputs = keras.Input((1,), dtype="int32")
    outputs = keras.layers.Embedding(4, 3, name="store")(inputs)
    plain = keras.Model(inputs, outputs)
    assert explore.embedding_matrix(plain, "store").shape == (4, 3)


def test_unknown_column_lists_known_ones(model):
    with pytest.raises(ValueError, match=r"\['user', 'movie'\].*'zip'"):
        explore.embedding_matrix(model, "zip")


def test_unbuilt_model_is_reported():
    unbuilt = keras_catembed.RatingModel({"a": 3})
    with pytest.raises(ValueError, match="not built"):
        explore.embedding_matrix(unbuilt, "a")


def test_nearest_cosine(model):
    indices, scores = explore.nearest(model, "movie", 0, k=3)
    np.testing.assert_array_equal(indices, [1, 4, 3])
    cosine = 2.0 / np.hypot(2.0, 0.1)
    np.testing.assert_allclose(scores, [cosine, np.sqrt(0.5), 0.0], atol=1e-6)


def test_nearest_euclidean_and_dot(model):
    indices, distances = explore.nearest(model, "movie", 0, metric="euclidean")
    np.testing.assert_array_equal(indices, [4, 1, 2, 3])
    assert np.all(np.diff(distances) >= 0)
    indices, _ = explore.nearest(model, "movie", 0, k=1, metric="dot")
    np.testing.assert_array_equal(indices, [1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"index": 5}, r"\[0, 4\].*index=5"),
        ({"index": -1}, "index=-1"),
        ({"index": 0, "k": 0}, "k=0"),
        ({"index": 0, "metric": "l1"}, "metric='l1'"),
    ],
)
def test_nearest_rejects_bad_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore.nearest(model, "movie", **kwargs)


def test_plot_map_writes_png(model, tmp_path):
    path = explore.plot_map(
        model,
        "movie",
        labels=["a", "b", "c", "d", "e"],
        path=str(tmp_path / "map.png"),
        counts=[5, 1, 9, 0, 2],
        num_labels=2,
    )
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000


def test_plot_map_checks_label_count(model, tmp_path):
    with pytest.raises(
        ValueError, match=r"`labels` must have one entry per id \(5\)"
    ):
        explore.plot_map(
            model, "movie", labels=["a"], path=str(tmp_path / "x.png")
        )


def test_to_projector_files(model, tmp_path):
    paths = explore.to_projector(
        model,
        "movie",
        str(tmp_path / "logs"),
        metadata={"title": ["A", "B\tx", "C", "D", "E"], "year": range(5)},
    )
    vectors = np.loadtxt(paths["vectors"], delimiter="\t")
    np.testing.assert_allclose(
        vectors, explore.embedding_matrix(model, "movie")
    )
    with open(paths["metadata"], encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert lines[0] == "title\tyear"
    assert lines[2] == "B x\t1"
    assert len(lines) == 6
    with open(paths["config"], encoding="utf-8") as file:
        config = file.read()
    assert 'tensor_path: "movie_vectors.tsv"' in config
    assert 'metadata_path: "movie_metadata.tsv"' in config


@pytest.mark.parametrize("metadata", [list("abcde"), {"title": list("abcde")}])
def test_to_projector_single_metadata_column_has_no_header(
    model, tmp_path, metadata
):
    paths = explore.to_projector(model, "movie", str(tmp_path), metadata)
    with open(paths["metadata"], encoding="utf-8") as file:
        assert file.read().splitlines() == list("abcde")


def test_nearest_only_among_candidates(model):
    indices, _ = explore.nearest(model, "movie", 0, candidates=[2, 3, 0])
    np.testing.assert_array_equal(indices, [3, 2])
    mask = np.array([True, False, True, False, True])
    indices, _ = explore.nearest(model, "movie", 0, candidates=mask)
    np.testing.assert_array_equal(indices, [4, 2])


@pytest.mark.parametrize(
    "candidates, match",
    [
        ([7], r"\[0, 4\].*7"),
        (np.ones(3, dtype=bool), r"shape \(5,\)"),
        ([], "non-empty sequence"),
        ([1.5], "integer id indices"),
    ],
)
def test_nearest_rejects_bad_candidates(model, candidates, match):
    with pytest.raises(ValueError, match=match):
        explore.nearest(model, "movie", 0, candidates=candidates)
