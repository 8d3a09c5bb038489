"""Small trained models of every saved layout, for file-compatibility tests.

`build(name)` makes the model `name` the same way every time (fixed data
and seed), so its weight file lists the same paths and shapes under any
version of the package that keeps the layout. `layout(path)` lists them.
"""

import io
import zipfile

import h5py
import keras
import numpy as np

import keras_catembed

NAMES = (
    "plain",
    "bias_range",
    "implicit",
    "neighborhood",
    "capped",
    "vocabulary",
    "dropout",
)

_USERS = np.arange(40) % 8
_MOVIES = (np.arange(40) * 3) % 7
_RATINGS = 1.0 + (np.arange(40) * 7 % 5).astype("float32")


def data(name):
    """The inputs and ratings `build(name)` trains on."""
    movies = _MOVIES + 100 if name == "vocabulary" else _MOVIES
    return {"user": _USERS, "movie": movies}, _RATINGS


def build(name):
    """A compiled model of the layout `name`, adapted and trained."""
    keras.utils.set_random_seed(0)
    embeddings = {"user": 8, "movie": 7}
    kwargs = {}
    if name == "bias_range":
        kwargs = {"bias_terms": True, "rating_range": (0.5, 5.5)}
    elif name == "implicit":
        kwargs = {"implicit": True}
    elif name == "neighborhood":
        kwargs = {"neighborhood": {"user": "movie"}, "bias_terms": True}
    elif name == "capped":
        kwargs = {"implicit": True, "neighborhood": True}
        kwargs["max_pairs_per_id"] = 2
    elif name == "vocabulary":
        embeddings = {
            "user": 8,
            "movie": keras_catembed.EntityEmbedding(
                vocabulary=list(range(100, 107)),
                output_dim=3,
                num_oov_indices=1,
                name="movie_table",
            ),
        }
        kwargs = {"bias_terms": True}
    elif name == "dropout":
        kwargs = {"dropout": 0.2, "hidden_units": (6, 3), "bias_terms": True}
    kwargs.setdefault("hidden_units", (6,))
    model = keras_catembed.RatingModel(embeddings, **kwargs)
    model.compile(optimizer="adam", loss="mse")
    x, y = data(name)
    if model.implicit or model.neighborhood:
        model.adapt(x, y)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model


def layout(path):
    """`{h5 path: shape}` of every saved variable of a `.keras` file."""
    with zipfile.ZipFile(path) as archive:
        raw = archive.read("model.weights.h5")
    found = {}
    with h5py.File(io.BytesIO(raw), "r") as store:
        store.visititems(
            lambda key, item: (
                found.__setitem__(key, list(item.shape))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return found
