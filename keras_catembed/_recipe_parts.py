"""The parts of a training recipe: its checks, schedule and decay helpers."""

import collections.abc
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_catembed import _checks
from keras_catembed import optimizers

# The optimizers a recipe may name.
OPTIMIZERS: dict[str, Any] = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
    "sgd": keras.optimizers.SGD,
    "sparse_adam": optimizers.SparseAdam,
}

SCHEDULES = ("constant", "cosine")


def check_settings(
    *,
    learning_rate: Any,
    schedule: Any,
    batch_size: Any,
    epochs: Any,
    ema_momentum: Any,
    optimizer: Any,
    table_decay: Any,
) -> dict[str, Any]:
    """A recipe's settings, checked, as the values the recipe keeps."""
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not math.isfinite(learning_rate)
        or learning_rate <= 0
    ):
        raise ValueError(
            "`learning_rate` must be a finite number > 0. Received: "
            f"learning_rate={learning_rate!r}"
        )
    if schedule not in SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {list(SCHEDULES)}. Received: "
            f"schedule={schedule!r}"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {sorted(OPTIMIZERS)}. "
            f"Received: optimizer={optimizer!r}"
        )
    if ema_momentum is not None:
        if isinstance(ema_momentum, bool) or not isinstance(
            ema_momentum, (int, float)
        ):
            raise ValueError(
                "`ema_momentum` must be None or a number in [0, 1). "
                f"Received: ema_momentum={ema_momentum!r}"
            )
        ema_momentum = _checks.rate("ema_momentum", ema_momentum)
    if table_decay is not None:
        if (
            isinstance(table_decay, bool)
            or not isinstance(table_decay, (int, float))
            or not math.isfinite(table_decay)
            or table_decay < 0
        ):
            raise ValueError(
                "`table_decay` must be None or a finite number >= 0. "
                f"Received: table_decay={table_decay!r}"
            )
        if optimizer not in ("sparse_adam", "adamw"):
            raise ValueError(
                "`table_decay` is the optimizer's weight decay: use "
                "optimizer='sparse_adam' or 'adamw'. Received: "
                f"optimizer={optimizer!r}"
            )
        table_decay = float(table_decay)
    return {
        "learning_rate": float(learning_rate),
        "schedule": schedule,
        "batch_size": _checks.positive_int("batch_size", batch_size),
        "epochs": _checks.positive_int("epochs", epochs),
        "ema_momentum": float(ema_momentum) if ema_momentum else None,
        "optimizer": optimizer,
        "table_decay": table_decay,
    }


def cosine_settings(rate: float, steps: int) -> dict[str, Any]:
    """The `CosineDecay` arguments of the `"cosine"` schedule.

    A linear warm-up over the first fifth of the `steps`, from a tenth of
    the rate, then cosine decay to 0; no warm-up under 5 steps.
    """
    steps = max(1, steps)
    warmup = steps // 5
    return {
        "initial_learning_rate": rate / 10 if warmup else rate,
        "decay_steps": steps - warmup,
        "warmup_target": rate if warmup else None,
        "warmup_steps": warmup,
    }


def is_unbatched(x: Any) -> bool:
    """True for inputs that `fit` batches itself (arrays, dicts, frames)."""
    if isinstance(x, (collections.abc.Mapping, np.ndarray, list, tuple)):
        return True
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        return True
    # Backend tensors; a `tf.data.Dataset` has no `dtype`.
    return hasattr(x, "shape") and hasattr(x, "dtype")


def not_tables(model: Any) -> list[Any]:
    """The trainable variables of `model` other than its embedding tables."""
    names = ("embedding_layers", "implicit_layers", "neighborhood_layers")
    groups = [getattr(model, name, None) for name in names]
    layers = [group for group in groups if isinstance(group, dict)]
    if len(layers) < len(groups):
        raise ValueError(
            "`table_decay` decays the embedding tables of a RatingModel. "
            f"Received: {type(model).__name__}"
        )
    if not model.built:
        model.build()
    tables = {
        id(layer.embeddings) for group in layers for layer in group.values()
    }
    return [v for v in model.trainable_variables if id(v) not in tables]


def reject_taken(
    kwargs: Mapping[str, Any],
    names: tuple[str, ...],
    prefix: str,
    suffix: str = "itself.",
) -> None:
    """Raises if `kwargs` holds one of `names`, which the recipe sets."""
    taken = sorted(set(names) & set(kwargs))
    if taken:
        raise ValueError(
            f"{prefix} {taken} {suffix} Received: "
            + ", ".join(f"{name}={kwargs[name]!r}" for name in taken)
        )


def batches_per_epoch(x: Any, batch_size: int) -> int:
    """Number of batches of one epoch of `fit` on the inputs `x`."""
    if is_unbatched(x):
        first = next(iter(x.values())) if isinstance(x, Mapping) else x
        return -(-len(first) // batch_size)
    if hasattr(x, "__len__"):
        return len(x)
    raise ValueError(
        "The 'cosine' schedule needs the number of steps per epoch: "
        "pass arrays, or a dataset or PyDataset with a length. "
        f"Received: {type(x).__name__}"
    )


def total_steps(recipe: Any, num_rows: int | None, steps: int | None) -> int:
    """The training steps of `num_rows` rows or given as `steps` (else 1)."""
    if num_rows is not None and steps is not None:
        raise ValueError(
            "Pass `num_rows` or `steps`, not both. Received: "
            f"num_rows={num_rows!r}, steps={steps!r}"
        )
    if steps is not None:
        return int(_checks.positive_int("steps", steps))
    return 1 if num_rows is None else int(recipe.steps(num_rows))
