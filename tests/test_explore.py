import os
import warnings

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


def test_embedding_matrix_appends_the_neighbourhood_sums():
    model = keras_catembed.RatingModel(
        {"user": 3, "movie": keras_catembed.EntityEmbedding(4, 4)},
        neighborhood={"movie": "user"},
    )
    model.build()
    table = np.arange(4 * 4, dtype="float32").reshape(4, 4)
    model.embedding_layers["movie"].embeddings.assign(table)
    users = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], "float32")
    model.neighborhood_layers["movie"].embeddings.assign(users)
    # Ratings 5 and 3 of movie 0 (users 0, 1), 1 of movie 2 (user 2);
    # their mean is 3, so the centred ratings are 2, 0 and -2.
    model.adapt(
        {"user": np.array([0, 1, 2]), "movie": np.array([0, 0, 2])},
        np.array([5.0, 3.0, 1.0]),
    )
    matrix = explore.embedding_matrix(model, "movie")
    assert matrix.shape == (4, 8)
    np.testing.assert_array_equal(matrix[:, :4], table)
    expected = np.zeros((4, 4), "float32")
    expected[0] = (2.0 * users[0] + 0.0 * users[1]) / np.sqrt(2)
    expected[2] = -2.0 * users[2]
    np.testing.assert_allclose(matrix[:, 4:], expected, rtol=1e-6)


def test_plot_map_without_counts_writes_png_without_warnings(model, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        path = explore.plot_map(
            model, "movie", labels=list("abcde"), path=str(tmp_path / "m.png")
        )
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


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


@pytest.mark.parametrize("bad", [np.nan, np.inf, -2.0])
def test_plot_map_checks_the_counts_values(model, tmp_path, bad):
    counts = [3.0, 1.0, bad, 0.0, 5.0]
    with pytest.raises(ValueError, match=r"`counts` must hold finite .* 2"):
        explore.plot_map(
            model, "movie", path=str(tmp_path / "m.png"), counts=counts
        )
    assert not (tmp_path / "m.png").exists()


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


def test_to_projector_lists_every_column_of_its_folder(model, tmp_path):
    # A second column joins the first in the config; writing a column
    # again replaces its own entry only.
    from types import MappingProxyType

    log_dir = str(tmp_path)
    explore.to_projector(model, "movie", log_dir, list("abcde"))
    titles = MappingProxyType({"name": ["x", "y", "z"]})
    paths = explore.to_projector(model, "user", log_dir, titles)
    explore.to_projector(model, "movie", log_dir)
    with open(paths["config"], encoding="utf-8") as file:
        config = file.read()
    assert config.count("embeddings {") == 2
    assert 'tensor_name: "user"' in config and 'tensor_name: "movie"' in config
    assert 'metadata_path: "user_metadata.tsv"' in config
    assert 'metadata_path: "movie_metadata.tsv"' not in config


def test_to_projector_checks_metadata_before_writing(model, tmp_path):
    from types import MappingProxyType

    bad = MappingProxyType({"title": list("ab"), "year": range(2)})
    with pytest.raises(ValueError, match=r"metadata\['title'\]"):
        explore.to_projector(model, "movie", str(tmp_path), bad)
    assert list(tmp_path.iterdir()) == []


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
        ([[1, 2], [3, 4]], "sequence of integer id indices"),
    ],
)
def test_nearest_rejects_bad_candidates(model, candidates, match):
    with pytest.raises(ValueError, match=match):
        explore.nearest(model, "movie", 0, candidates=candidates)


def _model_with_movies(vectors):
    vectors = np.asarray(vectors, dtype="float32")
    model = keras_catembed.RatingModel(
        {
            "user": 3,
            "movie": keras_catembed.EntityEmbedding(*vectors.shape),
        }
    )
    model.build()
    model.embedding_layers["movie"].embeddings.assign(vectors)
    return model


def _centred(vectors):
    """The rule of `center=True`, written out: less the mean and its axis."""
    mean = vectors.mean(axis=0)
    direction = mean / np.linalg.norm(mean)
    moved = vectors - mean
    return moved - np.outer(moved @ direction, direction)


def _cosines(matrix, query):
    return (matrix @ matrix[query]) / (
        np.linalg.norm(matrix, axis=1) * np.linalg.norm(matrix[query])
    )


def test_nearest_center_removes_the_shared_part():
    # Every vector shares a large common part, as with implicit feedback:
    # the cosine scores all sit near 1.
    common = np.array([10.0, 10.0, 10.0])
    own = np.array(
        [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    )
    model = _model_with_movies(common + own)
    _, plain = explore.nearest(model, "movie", 0, k=3)
    assert np.all(plain > 0.97)
    indices, centred = explore.nearest(model, "movie", 0, k=3, center=True)
    expected = _cosines(_centred(common + own), 0)
    np.testing.assert_allclose(centred, expected[indices], rtol=1e-5)
    np.testing.assert_array_equal(indices, [1, 3, 2])
    assert centred[0] > 0.9 and centred[-1] < -0.5
    # The mean is that of the candidates and the query.
    indices, scores = explore.nearest(
        model, "movie", 0, k=1, center=True, candidates=[1]
    )
    np.testing.assert_allclose(scores, [-1.0], atol=1e-5)
    assert indices.tolist() == [1]
    _, far_centred = explore.nearest(
        model, "movie", 0, k=3, metric="euclidean", center=True
    )
    moved = _centred(common + own)
    np.testing.assert_allclose(
        far_centred,
        np.sort(np.linalg.norm(moved[1:] - moved[0], axis=1)),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="`center` must be a bool"):
        explore.nearest(model, "movie", 0, center="yes")


def test_center_spreads_a_shared_direction_of_different_lengths():
    # Implicit feedback: an id's shared part grows with its number of
    # pairs, so it is one direction with a length of its own per id.
    rng = np.random.default_rng(0)
    own = rng.normal(size=(30, 4))
    lengths = np.sqrt(rng.integers(20, 400, size=30))[:, None]
    vectors = own + lengths * np.array([3.0, 2.0, 2.0, 1.0])
    model = _model_with_movies(vectors)
    _, plain = explore.nearest(model, "movie", 0, k=29)
    _, centred = explore.nearest(model, "movie", 0, k=29, center=True)
    # The mean alone leaves the direction: |cosine| stays near 1.
    mean_only = vectors - vectors.mean(axis=0)
    old = np.delete(_cosines(mean_only, 0), 0)
    print(
        "cosine spread (max - min): plain "
        f"{np.ptp(plain):.3f}, mean only {np.ptp(old):.3f}, centred "
        f"{np.ptp(centred):.3f}"
    )
    assert np.ptp(plain) < 0.1
    assert np.median(np.abs(old)) > 0.85
    # Centred, the scores spread over most of [-1, 1] ...
    assert np.ptp(centred) > 1.2 and np.median(np.abs(centred)) < 0.6
    # ... and compare the ids' own vectors.
    np.testing.assert_allclose(
        centred,
        np.sort(np.delete(_cosines(_centred(vectors), 0), 0))[::-1],
        atol=1e-5,
    )


def test_placed_labels_do_not_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 3), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots()
    rng = np.random.default_rng(0)
    # Crowded: 60 long labels on points close to each other.
    points = rng.normal(size=(60, 2)) * 0.05
    axes.scatter(points[:, 0], points[:, 1])
    axes.set_xlim(-1, 1)
    axes.set_ylim(-1, 1)
    texts = [f"A movie with a long title {i}" for i in range(60)]
    placed = explore._place_labels(axes, points, texts)
    renderer = canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in placed]
    assert 1 < len(placed) < 60
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)
    # Labels are taken in order: the first always gets its place.
    assert placed[0].get_text() == texts[0]
    drawn = [t for t in axes.texts if t.get_text().startswith("A movie")]
    assert len(drawn) == len(placed)
    # Far-apart points keep every label.
    figure = Figure(figsize=(4, 3), dpi=100)
    axes = figure.subplots()
    spread = np.array([[-0.8, -0.8], [0.0, 0.0], [0.5, 0.8]])
    axes.set_xlim(-1, 1)
    axes.set_ylim(-1, 1)
    assert len(explore._place_labels(axes, spread, ["a", "b", "c"])) == 3


def test_plot_map_keeps_every_label_inside_the_axes(monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    drawn = []
    save = Figure.savefig

    def keep(figure, *args, **kwargs):
        drawn.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    rng = np.random.default_rng(0)
    # Points spread to every edge, long titles on all of them.
    vectors = rng.normal(size=(40, 3))
    vectors[:4, 0] = [8.0, -8.0, 7.5, -7.5]
    model = _model_with_movies(vectors)
    titles = [f"Raiders of the Lost Ark ({1950 + i})" for i in range(40)]
    explore.plot_map(
        model,
        "movie",
        labels=titles,
        path=str(tmp_path / "map.png"),
        counts=np.arange(40, 0, -1),
        num_labels=40,
    )
    (figure,) = drawn
    (axes,) = [a for a in figure.axes if a.get_xlabel()]
    renderer = figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    labels = [t for t in axes.texts if t.get_text().startswith("Raiders")]
    # The four points at the left and right edges keep their labels.
    assert {t.get_text() for t in labels} >= set(titles[:4])
    for label in labels:
        box = label.get_window_extent(renderer)
        assert box.x0 >= inside.x0 - 0.5 and box.x1 <= inside.x1 + 0.5
        assert box.y0 >= inside.y0 - 0.5 and box.y1 <= inside.y1 + 0.5


def test_a_label_at_the_right_edge_is_moved_inside():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 3), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_xlim(-1, 1)
    axes.set_ylim(-1, 1)
    points = np.array([[0.99, 0.0], [0.99, 0.99], [-0.99, -0.99]])
    texts = ["Raiders of the Lost Ark (1981)"] * 3
    placed = explore._place_labels(axes, points, texts)
    assert len(placed) == 3
    renderer = canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    for label in placed:
        box = label.get_window_extent(renderer)
        assert inside.x0 - 0.5 <= box.x0 and box.x1 <= inside.x1 + 0.5
        assert inside.y0 - 0.5 <= box.y0 and box.y1 <= inside.y1 + 0.5
    # A label wider than the axes fits nowhere and is left out.
    assert explore._place_labels(axes, points[:1], ["x" * 400]) == []
