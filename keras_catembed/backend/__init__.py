"""Backend-specific code, one module per backend, chosen once at import.

Each of `tensorflow`, `jax` and `torch` implements the same small
interface, and `current` is the module of the active Keras backend:

- ids: `SUPPORTS_JIT` (whether a layer checking ids may be compiled by
  XLA or `torch.compile`), `is_concrete`, `graph_assert`,
  `with_dependencies`, `lookup` (a table gather that keeps the gradient
  sparse where the backend can);
- optimizers: `sparse_gradient`, `gather_rows`, `scatter_rows`;
- Keras loops: `save_state`, `restore_state`, `unshare_ema_buffers`,
  `DISTINCT_STEP_FUNCTIONS`;
- the device loop: `loop_blocker`, `on_accelerator`, `Runner`;
- export: `export_error`.

Any other Keras backend gets `generic`, which has no device loop.
"""

import keras

NAME = keras.backend.backend()

if NAME == "tensorflow":
    from keras_catembed.backend import tensorflow as current
elif NAME == "jax":
    from keras_catembed.backend import jax as current
elif NAME == "torch":
    from keras_catembed.backend import torch as current
else:
    from keras_catembed.backend import generic as current

__all__ = ["NAME", "current"]
