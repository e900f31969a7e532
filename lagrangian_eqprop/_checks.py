"""Validation of user-supplied problem data, shared by every solver and estimator.

Each check runs eagerly (on concrete shapes) before anything is compiled and raises an
`InputError` naming the argument, the expected shape and the one given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError

__all__ = ["as_float_array", "as_vector", "check_num_steps", "check_params", "check_state_pair", "finite_or_raise"]


def as_float_array(x, dtype=None):
    """`x` as a JAX array of a floating dtype (integers become the default float dtype)."""
    if x is None:
        return None
    x = jnp.asarray(x) if dtype is None else jnp.asarray(x, dtype=dtype)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def check_num_steps(num_steps) -> int:
    """`num_steps` as a positive Python int."""
    if isinstance(num_steps, bool) or isinstance(num_steps, jax.core.Tracer):
        raise InputError(f"num_steps must be a positive integer (static), got {num_steps!r}.")
    try:
        value = int(num_steps)
    except (TypeError, ValueError):
        raise InputError(f"num_steps must be a positive integer, got {num_steps!r}.") from None
    if value != num_steps or value < 1:
        raise InputError(f"num_steps must be a positive integer, got {num_steps!r}.")
    return value


def check_params(model, params) -> None:
    """`params` must hold every parameter of `model` (names listed when some are missing)."""
    if not hasattr(params, "keys"):
        raise InputError(f"params must be a dict {{parameter name: array}}, got {type(params).__name__}.")
    missing = set(model.parameter_shapes) - set(params)
    if missing:
        raise InputError(f"params is missing parameter(s): {', '.join(sorted(missing))}.")


def as_vector(value, name: str, model, dtype=None):
    """A state vector of shape `(n,)` for the model's coordinates, as a float array."""
    n = model.num_dof
    value = as_float_array(value, dtype)
    if value.shape != (n,):
        raise InputError(
            f"{name} must have shape ({n},) for coordinates {model.coordinate_names}, got {tuple(value.shape)}."
        )
    return value


def check_state_pair(model, q0, v0, p0):
    """Validated `(q0, v0, p0)`: exactly one of `v0`/`p0` given, each of shape `(n,)`."""
    if (v0 is None) == (p0 is None):
        raise InputError("Give exactly one of v0 (initial velocity) or p0 (initial momentum).")
    q0 = as_vector(q0, "q0", model)
    if p0 is None:
        return q0, as_vector(v0, "v0", model, q0.dtype), None
    return q0, None, as_vector(p0, "p0", model, q0.dtype)


def finite_or_raise(values: dict) -> None:
    """Raise when a concrete input holds NaN/inf (names the argument)."""
    for name, value in values.items():
        if value is None or isinstance(value, jax.core.Tracer) or callable(value):
            continue
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise InputError(f"{name} contains non-finite values (NaN or inf).")
