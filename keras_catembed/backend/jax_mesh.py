"""Where the JAX device loop's arrays live under a `keras.distribution`."""

from typing import Any

import jax
import keras


class Mesh:
    """Where the device loop's arrays live under a `keras.distribution`.

    Each variable keeps the layout Keras gave it (tables split by rows
    under `ModelParallel` with `keras_catembed.distribution.layout_map`,
    copies on every device otherwise). The id columns and targets are
    copied to every device, and each batch of a block is split over the
    distribution's batch axis, so every device gathers and trains on its
    part of each batch; XLA adds the reductions that make a step equal to
    the one-device step.
    """

    def __init__(self, distribution: Any) -> None:
        mesh = distribution.device_mesh.backend_mesh
        self.mesh = mesh
        self.replicated = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec()
        )
        self.batch_axis = distribution.batch_dim_name
        self.batch_devices = mesh.shape[self.batch_axis]
        self.split = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec(None, self.batch_axis)
        )
        self.state_shardings: Any = None
        # XLA's CPU devices meet at each collective on a shared pool of
        # threads: two calls in flight at once can each hold some of the
        # threads the other waits for, and never finish.
        self.one_call_at_a_time = all(
            device.platform == "cpu" for device in mesh.devices.flat
        )

    @classmethod
    def current(cls) -> "Mesh | None":
        distribution = keras.distribution.distribution()
        return None if distribution is None else cls(distribution)

    def _on_mesh(self, value: Any) -> Any:
        sharding = getattr(value, "sharding", None)
        if (
            isinstance(sharding, jax.sharding.NamedSharding)
            and sharding.mesh == self.mesh
        ):
            return value
        return jax.device_put(value, self.replicated)

    def replicate(self, values: Any) -> Any:
        """`values` on the mesh: copied to every device unless already."""
        return jax.tree.map(self._on_mesh, values)

    def place_state(self, state: Any) -> Any:
        """`state` on the mesh; its shardings are kept for later calls."""
        state = self.replicate(state)
        self.state_shardings = jax.tree.map(lambda v: v.sharding, state)
        return state

    def split_batches(self, block: Any) -> Any:
        """`block` (steps, batch) with each batch split over the devices."""
        if block.shape[1] % self.batch_devices:
            # An uneven last batch: each device reads all of it.
            return jax.device_put(block, self.replicated)
        return jax.device_put(block, self.split)
