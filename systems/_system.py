"""The `System` record every catalog entry returns."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from lagrangian_eqprop import LagrangianModel
from lagrangian_eqprop.errors import LagrangianError


class System(NamedTuple):
    """A compiled model together with sensible defaults, ready to simulate.

    **Fields:**
    - `model`: the `LagrangianModel`.
    - `params`: default parameters `{name: array}` with the shapes of `model.parameter_shapes`.
    - `q0`: default initial coordinates, shape `(n,)`.
    - `v0`: default initial velocities, shape `(n,)`.

    Unpack it directly: `model, params, q0, v0 = systems.get("double_pendulum")`.
    """

    model: LagrangianModel
    params: dict[str, Any]
    q0: Any
    v0: Any


def one_hot(size: int, index: int) -> np.ndarray:
    """A gain vector that routes an input to one node: zeros of length `size`, 1 at `index`."""
    gain = np.zeros(size)
    gain[index] = 1.0
    return gain


def make_system(model: LagrangianModel, params: dict, q0, v0) -> System:
    """Build a `System`, converting defaults to JAX arrays of the default float dtype and
    checking them against the model's declared shapes."""
    arrays = {}
    for name, shape in model.parameter_shapes.items():
        value = jnp.asarray(np.broadcast_to(np.asarray(params[name], dtype=float), shape),
                            dtype=float)
        arrays[name] = value
    extra = set(params) - set(model.parameter_shapes)
    if extra:
        raise LagrangianError(f"default parameters {sorted(extra)} are not parameters of the model")
    q0 = jnp.asarray(np.asarray(q0, dtype=float).reshape(model.num_dof), dtype=float)
    v0 = jnp.asarray(np.asarray(v0, dtype=float).reshape(model.num_dof), dtype=float)
    return System(model, arrays, q0, v0)
