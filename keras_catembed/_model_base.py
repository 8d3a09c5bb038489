"""`ModelBase`: what the mixins of `RatingModel` read of the model.

`RatingModel` is `keras.Model` with the mixins `RatingForward`,
`PairAdapting`, `RatingTrainer`, `RatingSaving`, `TrainingProvenance`
and `Exportable`. Each mixin extends `ModelBase`, which declares, for
type checkers only, the attributes `RatingModel.__init__` sets and the
members of `keras.Model` (or of another mixin) the mixins use. At run
time it is an empty class, so every name resolves as before.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from keras_catembed._implicit import ImplicitFeedback
    from keras_catembed.entity_embedding import EntityEmbedding


class ModelBase:
    """The attributes a `RatingModel` has, declared for its mixins."""

    if TYPE_CHECKING:
        # Set by `RatingModel.__init__`; saved files name the weights by
        # the attributes that hold layers.
        columns: list[str]
        hidden_units: list[int]
        activation: Any
        dropout: float
        bias_terms: bool
        rating_range: tuple[float, float] | None
        embedding_layers: dict[str, EntityEmbedding]
        bias_layers: dict[str, EntityEmbedding]
        _cardinalities: dict[str, int]
        implicit: dict[str, str]
        neighborhood: dict[str, str]
        max_pairs_per_id: int | None
        pairs_per_step: int | dict[str, int | None] | None
        pair_dtype: str
        implicit_layers: dict[str, ImplicitFeedback]
        neighborhood_layers: dict[str, ImplicitFeedback]
        hidden_layers: list[Any]
        dropout_layers: list[Any]
        output_layer: Any
        _encoders: Mapping[str, Any]

        # `keras.Model`'s state, read and reset by the loops.
        name: str
        built: bool
        compiled: bool
        optimizer: Any
        trainable_variables: list[Any]
        train_function: Any
        test_function: Any
        predict_function: Any

        # Of `TrainingProvenance`, read by `RatingSaving`.
        @property
        def training_fingerprint(self) -> dict[str, Any] | None: ...

        @property
        def data_source(self) -> dict[str, Any] | None: ...

        @data_source.setter
        def data_source(self, value: Any) -> None: ...

        # Of `RatingTrainer`, called by `PairAdapting`.
        def _reset_compiled(self) -> None: ...

        # `keras.Model`'s methods, which the mixins extend.
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
        def call(self, *args: Any, **kwargs: Any) -> Any: ...
        def build(self, *args: Any, **kwargs: Any) -> Any: ...
        def compile(self, *args: Any, **kwargs: Any) -> Any: ...
        def compute_loss(self, *args: Any, **kwargs: Any) -> Any: ...
        def fit(self, *args: Any, **kwargs: Any) -> Any: ...
        def evaluate(self, *args: Any, **kwargs: Any) -> Any: ...
        def predict(self, *args: Any, **kwargs: Any) -> Any: ...
        def predict_on_batch(self, *args: Any, **kwargs: Any) -> Any: ...
        def get_config(self) -> dict[str, Any]: ...
