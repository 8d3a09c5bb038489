"""Backend-specific code, one module per backend, chosen once at import.

`generic.Backend` is the interface, implemented the way most backends do
it; the `tensorflow`, `jax` and `torch` modules extend it, overriding
only what differs, and `current` is the instance for the active Keras
backend:

- ids: `SUPPORTS_JIT` (whether a layer checking ids may be compiled by
  XLA or `torch.compile`), `is_concrete`, `graph_assert`,
  `with_dependencies`, `lookup` (a table gather that keeps the gradient
  sparse where the backend can);
- optimizers: `sparse_gradient`, `gather_rows`, `scatter_rows`,
  `EAGER_ADAM` with `adam_together` and `adam_rows` (Adam's arithmetic
  in the backend's own operations, where it runs eagerly);
- Keras loops: `save_state`, `restore_state`, `unshare_ema_buffers`,
  `DISTINCT_STEP_FUNCTIONS`, `held_value` (a variable's value while a
  graph is traced);
- the device loop: `loop_blocker`, `on_accelerator`, `Runner`,
  `OPTIONAL_JIT`;
- export: `export_error`.

Any other Keras backend gets `generic.Backend` itself, which has no
device loop.
"""

import keras

from keras_catembed.backend.generic import Backend

NAME: str = keras.backend.backend()

current: Backend
if NAME == "tensorflow":
    from keras_catembed.backend.tensorflow import BACKEND as current
elif NAME == "jax":
    from keras_catembed.backend.jax import BACKEND as current
elif NAME == "torch":
    from keras_catembed.backend.torch import BACKEND as current
else:
    from keras_catembed.backend.generic import BACKEND as current

__all__ = ["NAME", "current"]
