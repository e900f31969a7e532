"""Parameter constraints by reparametrisation (never clipping): the optimiser updates an
unconstrained `raw` value, the physics sees `θ = transform(raw)`.

`"positive"` → `softplus(raw)`, `"log"` → `exp(raw)`, `"none"` → `raw`. Gradients reach `raw`
by the chain rule through the transform, so every estimator's physical gradient is used as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError

__all__ = ["CONSTRAINTS", "Constraint", "to_unconstrained"]


@dataclasses.dataclass(frozen=True)
class Constraint:
    """A bijection from unconstrained `raw` values to the physical range of a parameter."""

    name: str
    forward: Callable
    inverse: Callable
    description: str


def _softplus_inverse(x):
    # raw = x + log(1 − e^{−x}), stable for small and large x (x > 0).
    return x + jnp.log(-jnp.expm1(-x))


CONSTRAINTS = {
    "none": Constraint("none", lambda r: r, lambda x: x, "θ = raw (unconstrained)"),
    "positive": Constraint("positive", jax.nn.softplus, _softplus_inverse,
                           "θ = softplus(raw) = log(1 + e^raw) > 0"),
    "log": Constraint("log", jnp.exp, jnp.log, "θ = exp(raw) > 0"),
}


def to_unconstrained(params: dict, constraints: dict) -> dict:
    """`raw` values of the constrained parameters (checks that they lie in range)."""
    raw = {}
    for name, kind in constraints.items():
        if kind not in CONSTRAINTS:
            raise ConfigError(f"parameter {name!r} has unknown constraint {kind!r}; choose one of "
                              f"{', '.join(CONSTRAINTS)}.")
        value = jnp.asarray(params[name])
        if kind in ("positive", "log") and not bool(jnp.all(value > 0)):
            raise ConfigError(
                f"parameter {name!r} must be positive (constraint {kind!r}), got {np.asarray(value)}."
            )
        raw[name] = CONSTRAINTS[kind].inverse(value)
    return raw
