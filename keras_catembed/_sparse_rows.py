"""Which table rows a training step reads, for the sparse-row steps.

Under `keras_catembed.optimizers.SparseAdam`, the JAX and torch device
loops differentiate with respect to the rows of each table a batch reads
rather than the whole tables. `SparseTables` names those tables and
computes the rows of a batch; `builtin_forward` marks the forward-pass
methods whose table lookups it knows.
"""

from collections.abc import Callable
from typing import Any

from keras import ops

from keras_catembed import _pair_windows

_BUILTIN = "_keras_catembed_builtin_forward"


def builtin_forward(method: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a forward-pass method of `RatingModel` (not a subclass's).

    The sparse steps replace each table lookup by a lookup in the batch's
    gathered rows, which holds when the lookups are the model's own; the
    TensorFlow loop compiles the model's own code with XLA.
    """
    setattr(method, _BUILTIN, True)
    return method


def own_methods(model: Any, names: tuple[str, ...]) -> bool:
    """Whether `model` keeps RatingModel's own methods `names`."""
    return all(
        getattr(getattr(type(model), name), _BUILTIN, False) for name in names
    )


def table_layers(model: Any) -> list[Any]:
    """The EntityEmbedding tables of `model`, embeddings then biases."""
    layers = list(model.embedding_layers.values())
    layers += list(model.bias_layers.values())
    return [layer for layer in layers if hasattr(layer, "check_ids")]


def pair_layers(model: Any) -> list[Any]:
    """The implicit-feedback and neighbourhood layers of `model`."""
    layers = list(getattr(model, "implicit_layers", {}).values())
    return layers + list(getattr(model, "neighborhood_layers", {}).values())


def list_layers(model: Any) -> list[Any]:
    """The trainable pair layers of `model` in the lists layout."""
    return [
        layer
        for layer in pair_layers(model)
        if not layer.dense and layer.trainable
    ]


def regularizes_rows(model: Any) -> bool:
    """Whether a table of `model` regularizes the rows a step reads.

    That loss (an `add_loss` of the looked-up rows, under SparseAdam)
    counts every row of a batch, so a batch padded with zero-weight copies
    of its rows would regularize the copies too.
    """
    return any(
        layer._row_regularization and layer.embeddings_regularizer is not None
        for layer in table_layers(model) + list_layers(model)
    )


class SparseTables:
    """The tables of a model whose rows a sparse step gathers.

    The EntityEmbedding tables, and the tables of implicit-feedback and
    neighbourhood layers in the lists layout (the dense layout reads its
    whole table at each step).
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def by_index(self) -> dict[int, Any]:
        """Maps positions in `trainable_variables` to each table's layer."""
        model = self.model
        owners = {id(layer.embeddings): layer for layer in table_layers(model)}
        for layer in list_layers(model):
            owners[id(layer.embeddings)] = layer
        return {
            index: owners[id(variable)]
            for index, variable in enumerate(model.trainable_variables)
            if id(variable) in owners
        }

    def needed_rows(
        self,
        layer: Any,
        x: dict[str, Any],
        value: Callable[[Any], Any] = _pair_windows.own_value,
    ) -> tuple[Any, int]:
        """The rows `layer` reads for the batch `x`, and the table size.

        `value` gives the current value of a variable inside a stateless
        step (the pair lists and the window's step counter).
        """
        model = self.model
        for column, table in [
            *model.embedding_layers.items(),
            *model.bias_layers.items(),
        ]:
            if table is layer:
                return layer._rows(x[column])[0], layer.num_rows
        for pairs, layers in (
            (model.implicit, model.implicit_layers),
            (model.neighborhood, model.neighborhood_layers),
        ):
            for target, source in pairs.items():
                if layers[target] is layer:
                    rows = {
                        column: model.embedding_layers[column]._clipped_rows(
                            ops.reshape(x[column], (-1,))
                        )
                        for column in (target, source)
                    }
                    needed = layer.rows_needed(
                        rows[target], rows[source], value
                    )
                    # The table has one more row: the lists' padding.
                    return needed, layer.num_sources + 1
        raise ValueError(f"{layer.name} is not a table of this model")
