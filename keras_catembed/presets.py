"""Named RatingModel configurations, with the training settings they need.

A preset is a dict with two parts: `"model"` (keyword arguments for
`keras_catembed.RatingModel` other than `embeddings`, plus
`"embedding_dim"` and `"embeddings_l2"`, `"entity_dropout"` for the
per-column `EntityEmbedding`s) and `"training"` (`learning_rate`,
`batch_size`, `epochs`). Use them through `RatingModel.from_preset` and the
`--preset` option of the `catembed` command.
"""

import copy

__all__ = ["PRESETS", "get"]

PRESETS = {
    # The model of Kaggle's "Embeddings" course, with its training settings.
    "course": {
        "description": (
            "Kaggle 'Embeddings' course model: 8-dim embeddings, Dense 32-4-1 "
            "(ReLU), linear output, Adam 0.005, MSE."
        ),
        "model": {
            "embedding_dim": 8,
            "embeddings_l2": 0.0,
            "entity_dropout": 0.0,
            "hidden_units": [32, 4],
            "activation": "relu",
            "dropout": 0.0,
            "bias_terms": False,
            "rating_range": None,
        },
        "training": {"learning_rate": 0.005, "batch_size": 1024, "epochs": 5},
    },
    "recommended": {
        "description": "placeholder",
        "model": {
            "embedding_dim": 32,
            "embeddings_l2": 0.0,
            "entity_dropout": 0.0,
            "hidden_units": [64],
            "activation": "relu",
            "dropout": 0.2,
            "bias_terms": True,
            "rating_range": (0.5, 5.5),
        },
        "training": {"learning_rate": 0.003, "batch_size": 256, "epochs": 8},
    },
}


def get(name):
    """Returns a deep copy of the preset `name`.

    Args:
        name: String. One of `keras_catembed.presets.PRESETS`.

    Returns:
        Dict with keys `"description"`, `"model"` and `"training"`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets: {sorted(PRESETS)}"
        )
    return copy.deepcopy(PRESETS[name])
