"""The table of `RatingHyperModel`'s hyperparameters.

`HYPERPARAMETERS` is the only place where a hyperparameter is declared:
its name, kind, searched range or choices, sampling, default, the check of
a fixed value and its documentation. `_space` derives the search space
(`declare`), the names and the checks of fixed values from it, and `_docs`
the list in `RatingHyperModel`'s docstring and the table of the Tuning
guide. To add a hyperparameter, add a row (and use its value in
`RatingHyperModel.model_kwargs` or `_recipe.recipe`).
"""

from keras_catembed import _checks
from keras_catembed.entity_embedding import auto_output_dim
from keras_catembed.hypermodel._hyperparameter import COLUMN
from keras_catembed.hypermodel._hyperparameter import LAYER
from keras_catembed.hypermodel._hyperparameter import Hyperparameter
from keras_catembed.hypermodel._hyperparameter import activation
from keras_catembed.hypermodel._hyperparameter import boolean
from keras_catembed.hypermodel._hyperparameter import finite_float
from keras_catembed.hypermodel._hyperparameter import needs_rating_range
from keras_catembed.hypermodel._hyperparameter import needs_two_columns
from keras_catembed.hypermodel._hyperparameter import one_of
from keras_catembed.training import OPTIMIZERS

# Search ranges, also importable from `keras_catembed.hypermodel`.
OUTPUT_DIM_FACTORS = (0.25, 0.5, 1.0, 2.0)
MAX_HIDDEN_LAYERS = 3
HIDDEN_UNITS_CHOICES = (4, 8, 16, 32, 64, 128)
HIDDEN_UNITS_DEFAULTS = (32, 4, 4)
ACTIVATION_CHOICES = ("relu", "gelu", "silu", "tanh")
EMBEDDINGS_L2_CHOICES = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
OPTIMIZER_CHOICES = ("sparse_adam", "adam", "adamw", "rmsprop")
# Decoupled decay of the embedding tables (0.0: none); see `table_decay`.
TABLE_DECAY_CHOICES = (0.0, 0.3, 1.0, 3.0)
# The optimizers that apply `table_decay`.
DECAYING_OPTIMIZERS = ("sparse_adam", "adamw")
SCHEDULES = ("constant", "cosine")
# "uniform": Keras's default, U(-0.05, 0.05); "normal": N(0, 0.01**2), the
# presets' smaller start.
EMBEDDINGS_INITIALIZERS = ("uniform", "normal")
BATCH_SIZE_CHOICES = (64, 128, 256, 512, 1024, 2048)
# 0.0: no moving average of the weights.
EMA_MOMENTUM_CHOICES = (0.0, 0.99, 0.999)


def output_dim_choices(num_rows: int) -> list[int]:
    """The searched embedding sizes for a table of `num_rows` rows.

    `auto_output_dim(num_rows)` times 0.25, 0.5, 1 and 2, rounded, at
    least 1, sorted and without repeats.

    Args:
        num_rows: Integer. Number of rows of the table (the cardinality).

    Returns:
        Sorted list of distinct positive integers.
    """
    auto = auto_output_dim(num_rows)
    return sorted(
        {max(1, round(auto * factor)) for factor in OUTPUT_DIM_FACTORS}
    )


HYPERPARAMETERS = (
    Hyperparameter(
        name=f"{COLUMN}_output_dim",
        kind="choice",
        values=output_dim_choices,
        default=auto_output_dim,
        check=_checks.positive_int,
        summary="the size of the column's embedding vectors",
        doc="One per column: the size of its embedding vectors.",
        values_doc=(
            "`auto_output_dim(n)` (fastai's rule on the cardinality `n`) "
            "times 0.25, 0.5, 1 and 2, rounded, at least 1, without repeats"
        ),
        default_doc="`auto_output_dim(n)`",
    ),
    Hyperparameter(
        name="num_hidden_layers",
        kind="int",
        min_value=0,
        max_value=MAX_HIDDEN_LAYERS,
        default=2,
        check=_checks.non_negative_int,
        summary="the number of hidden layers",
        doc=(
            "Number of hidden layers; 0 makes the output a linear function "
            "of the embeddings. A fixed value may exceed the range."
        ),
    ),
    Hyperparameter(
        name=f"hidden_units_{LAYER}",
        kind="choice",
        values=HIDDEN_UNITS_CHOICES,
        default=lambda index: HIDDEN_UNITS_DEFAULTS[
            min(index, len(HIDDEN_UNITS_DEFAULTS) - 1)
        ],
        check=_checks.positive_int,
        summary="the width of hidden layer `i`",
        doc="Width of hidden layer `i`.",
        default_doc=", ".join(f"`{units}`" for units in HIDDEN_UNITS_DEFAULTS)
        + " for `i` = 0, 1, 2",
        with_hidden_layers=True,
    ),
    Hyperparameter(
        name="activation",
        kind="choice",
        values=ACTIVATION_CHOICES,
        default="relu",
        check=activation,
        summary="the activation of the hidden layers",
        doc=(
            "Activation of the hidden layers (a fixed value may name any "
            "Keras activation)."
        ),
        with_hidden_layers=True,
    ),
    Hyperparameter(
        name="dropout",
        kind="float",
        min_value=0.0,
        max_value=0.5,
        step=0.1,
        default=0.0,
        check=_checks.rate,
        summary="dropout after each hidden layer",
        doc="Dropout after each hidden layer.",
        with_hidden_layers=True,
    ),
    Hyperparameter(
        name="embeddings_l2",
        kind="choice",
        values=EMBEDDINGS_L2_CHOICES,
        default=0.0,
        check=finite_float(strictly_positive=False),
        summary="L2 penalty on every embedding table (0: none)",
        doc="L2 penalty on every embedding table (`0.0`: none).",
    ),
    Hyperparameter(
        name="embeddings_initializer",
        kind="choice",
        values=EMBEDDINGS_INITIALIZERS,
        default="uniform",
        check=one_of(EMBEDDINGS_INITIALIZERS),
        summary="uniform: U(-0.05, 0.05); normal: N(0, 0.01²)",
        doc=(
            'The start of the embeddings: `"uniform"` (Keras\'s default, '
            'U(-0.05, 0.05)) or `"normal"` (N(0, 0.01²), the presets\' '
            "smaller start)."
        ),
    ),
    Hyperparameter(
        name="entity_dropout",
        kind="float",
        min_value=0.0,
        max_value=0.5,
        step=0.1,
        default=0.0,
        check=_checks.rate,
        summary="dropout of whole embedding vectors",
        doc=(
            "The `dropout` of each `EntityEmbedding`: whole vectors are "
            "dropped during training."
        ),
    ),
    Hyperparameter(
        name="bias_terms",
        kind="bool",
        default=False,
        check=boolean,
        summary="per-id bias terms",
        doc="`RatingModel`'s per-id bias terms.",
    ),
    Hyperparameter(
        name="bounded_output",
        kind="bool",
        default=False,
        check=boolean,
        summary="output bounded to `rating_range`",
        doc=(
            "Whether the output is bounded to `rating_range` by a scaled "
            "sigmoid. Fixed to `False` when `rating_range=None`."
        ),
        unavailable=needs_rating_range,
    ),
    Hyperparameter(
        name="implicit",
        kind="bool",
        default=False,
        check=boolean,
        summary="implicit feedback (first two columns; `fit` adapts)",
        doc=(
            "`RatingModel`'s implicit feedback, each of the first two "
            "columns (the user and item) described by the ids of the other "
            "it occurs with (`fit` adapts the model to the training "
            "inputs); more columns add no pairs. Fixed to `False` with one "
            "column."
        ),
        unavailable=needs_two_columns("implicit"),
    ),
    Hyperparameter(
        name="neighborhood",
        kind="bool",
        default=False,
        check=boolean,
        summary="neighbourhood term (first two columns; `fit` adapts)",
        doc=(
            "`RatingModel`'s neighbourhood term: each of the first two "
            "columns (the user and item) also described by the ids of the "
            "other it occurs with, each weighted by its centred rating "
            "(`fit` adapts the model to the training inputs and ratings); "
            "more columns add no pairs. Fixed to `False` with one column."
        ),
        unavailable=needs_two_columns("neighborhood"),
    ),
    Hyperparameter(
        name="optimizer",
        kind="choice",
        values=OPTIMIZER_CHOICES,
        default="sparse_adam",
        check=one_of(tuple(OPTIMIZERS)),
        summary="the optimizer (sparse_adam: only the rows a batch reads)",
        doc=(
            '`"sparse_adam"` (`keras_catembed.optimizers.SparseAdam`, the '
            "presets' optimizer: Adam on the table rows a batch reads, the "
            "fast path of `RatingModel.fit`) or a Keras optimizer (a fixed "
            "value may also be "
            + ", ".join(
                f'`"{name}"`'
                for name in OPTIMIZERS
                if name not in OPTIMIZER_CHOICES
            )
            + ")."
        ),
    ),
    Hyperparameter(
        name="table_decay",
        kind="choice",
        values=TABLE_DECAY_CHOICES,
        default=0.0,
        check=finite_float(strictly_positive=False),
        summary="decoupled decay of the tables (sparse_adam, adamw; 0: none)",
        doc=(
            "A decoupled weight decay of the embedding tables (the "
            "presets' regularization, `Recipe(table_decay=...)`): with "
            '`"sparse_adam"` it reaches the rows a step skips lazily. '
            'Applied by `"sparse_adam"` and `"adamw"`; the other '
            "optimizers ignore it, and fixing a value above 0 with one of "
            "them is an error. `0.0`: none."
        ),
    ),
    Hyperparameter(
        name="learning_rate",
        kind="float",
        min_value=1e-4,
        max_value=1e-1,
        sampling="log",
        default=1e-3,
        check=finite_float(strictly_positive=True),
        summary="the (peak) learning rate",
        doc='The learning rate (the peak of the `"cosine"` schedule).',
    ),
    Hyperparameter(
        name="schedule",
        kind="choice",
        values=SCHEDULES,
        default="constant",
        check=one_of(SCHEDULES),
        summary="cosine: warm-up, then cosine decay to 0",
        doc=(
            '`"cosine"` is a linear warm-up from a tenth of the rate over '
            "the first fifth of the steps, then cosine decay to 0 at the end "
            "of `fit` (the presets' schedule; `fit` counts the steps from "
            "the data, the batch size and `epochs`)."
        ),
    ),
    Hyperparameter(
        name="ema_momentum",
        kind="choice",
        values=EMA_MOMENTUM_CHOICES,
        default=0.0,
        check=_checks.rate,
        summary="moving average of the weights (0: none)",
        doc=(
            "With a momentum above 0 the optimizer keeps an exponential "
            "moving average of the weights (`use_ema=True`); `fit` evaluates "
            "the validation data with the averaged weights "
            "(`keras.callbacks.SwapEMAWeights`), so the objective and the "
            "tuner's checkpoints are those of the average, which replaces "
            "the weights at the end of training. `0.0`: no average."
        ),
    ),
    Hyperparameter(
        name="batch_size",
        kind="choice",
        values=BATCH_SIZE_CHOICES,
        default=256,
        check=_checks.positive_int,
        summary="the batch size of array inputs",
        doc=(
            "Used by `fit` for array inputs; a `tf.data.Dataset` or other "
            "batched input keeps its own batches."
        ),
    ),
)
