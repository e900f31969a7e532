"""Validation of user-supplied problem data, shared by every solver and estimator.

Each check runs eagerly (on concrete shapes) before anything is compiled and raises an
`InputError` naming the argument, the expected shape and the one given.
"""

from __future__ import annotations

import difflib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError, LagrangianError

__all__ = ["as_float_array", "as_vector", "check_constraints", "check_mass_matrix", "check_num_steps", "check_params", "check_state_pair",
           "degenerate_coordinates", "degenerate_message", "finite_or_raise"]


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
    """`params` must hold exactly the parameters of `model`, each of its declared shape (names
    the missing and unknown keys, with a suggestion for a misspelling, and both shapes)."""
    if not hasattr(params, "keys"):
        raise InputError(f"params must be a dict {{parameter name: array}}, got {type(params).__name__}.")
    declared = model.parameter_shapes
    missing = sorted(set(declared) - set(params))
    if missing:
        raise InputError(f"params is missing parameter(s): {', '.join(missing)}.")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), list(declared), n=1, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InputError(f"params has unknown parameter(s) {', '.join(hints)}; the model's parameters are "
                         f"{', '.join(sorted(declared))}.")
    for name, shape in declared.items():
        given = tuple(np.shape(params[name]))
        if given != tuple(shape):
            raise InputError(f"parameter {name!r} must have shape {tuple(shape)}, got {given}.")


def check_constraints(model, params, q0, v0, t0, u0) -> None:
    """The initial state of a constrained model must lie on the constraint manifold and move
    along it: `φ(q0, t0) = 0` and `Dφ v0 + ∂_tφ = 0` (to `√ε` relative). Eager; names the
    constraint and its value."""
    if not model.constrained or any(isinstance(x, jax.core.Tracer)
                                    for x in [q0, v0, t0, u0, *jax.tree_util.tree_leaves(params)]):
        return
    tol = float(np.sqrt(np.finfo(np.asarray(q0).dtype).eps))
    scale = 1.0 + float(np.max(np.abs(np.asarray(q0))))
    values = np.asarray(model.constraint(q0, t0, params, u0))
    worst = int(np.argmax(np.abs(values)))
    if abs(values[worst]) > tol * scale:
        raise InputError(f"q0 violates holonomic constraint #{worst}: φ = {values[worst]:.3g} (it must be 0); start "
                         "on the constraint manifold.")
    if v0 is None:
        return
    t0 = jnp.asarray(t0, dtype=jnp.result_type(q0))
    _, rate = jax.jvp(lambda q, t: model.constraint(q, t, params, u0), (jnp.asarray(q0), t0),
                      (jnp.asarray(v0), jnp.ones_like(t0)))
    rate = np.asarray(rate)
    worst = int(np.argmax(np.abs(rate)))
    speed = 1.0 + float(np.max(np.abs(np.asarray(v0))))
    if abs(rate[worst]) > tol * speed:
        raise InputError(f"v0 violates holonomic constraint #{worst}: dφ/dt = {rate[worst]:.3g} (it must be 0); the "
                         "initial velocity must be tangent to the constraint manifold.")


def degenerate_message(what: str, names: str) -> str:
    """The "degenerate" message shared by the compiler and the run-time mass check."""
    return (f"{what}, involving coordinate(s) {names}. A Lagrangian linear in a velocity, or depending on "
            "velocities only through a combination such as (ẋ + ẏ), or a zero mass, has no well-defined dynamics.")


def degenerate_coordinates(hessian: np.ndarray, rtol: float, eps: float) -> list[int] | None:
    """Indices of the coordinates involved in the null space of a singular velocity Hessian,
    or `None` when the Hessian is regular. Zero rows/columns are named directly."""
    hessian = 0.5 * (hessian + hessian.T)
    row_size = np.max(np.abs(hessian), axis=1)
    scale = row_size.max()
    if scale == 0.0:
        return list(range(hessian.shape[0]))
    # A row that is zero to round-off (L does not depend on that velocity quadratically).
    zero_rows = np.flatnonzero(row_size <= 10.0 * eps * scale)
    if zero_rows.size:
        return zero_rows.tolist()
    # Symmetric equilibration so that very different masses are not mistaken for degeneracy.
    d = 1.0 / np.sqrt(row_size)
    scaled = hessian * d[:, None] * d[None, :]
    _, s, vh = np.linalg.svd(scaled)
    null = s <= rtol * s[0]
    if not null.any():
        return None
    weight = np.sqrt(np.sum(vh[null] ** 2, axis=0))
    return np.flatnonzero(weight >= 0.25 * weight.max()).tolist()


# Above this size the dense velocity Hessian of a non-separable model is not formed for the check.
_MAX_DENSE_MASS_CHECK = 2000


def check_mass_matrix(model, params, q0, v0, t0, u0) -> None:
    """Refuse a singular mass matrix `∂²L/∂v²` at the initial state (a zero mass, a vanishing
    length, ...) with the compiler's "degenerate" message (`LagrangianError`); warn when it is
    not positive definite (a negative mass). Eager; skipped for traced values."""
    values = [q0, v0, t0, u0, *jax.tree_util.tree_leaves(params)]
    if any(isinstance(x, jax.core.Tracer) for x in values):
        return
    if model.separable is not None:
        mass = np.asarray(model.separable.mass_fn(params), dtype=float)
        mass = np.diag(mass) if model.separable.diagonal else mass
    elif model.num_dof <= _MAX_DENSE_MASS_CHECK:
        mass = np.asarray(model.mass_matrix(q0, v0, t0, params, u0), dtype=float)
    else:
        return
    if not np.all(np.isfinite(mass)):
        raise InputError("the mass matrix ∂²L/∂v² is not finite at the initial state (check the parameters).")
    eps = float(np.finfo(np.asarray(q0).dtype).eps)
    involved = degenerate_coordinates(mass, 3.0 * np.sqrt(eps), eps)
    if involved is not None:
        names = ", ".join(model.coordinate_names[i] for i in involved)
        raise LagrangianError(degenerate_message(
            "the Lagrangian is degenerate at the initial state with these parameters: its velocity Hessian "
            "∂²L/∂v² (the mass matrix) is singular", names))
    eigenvalues = np.linalg.eigvalsh(0.5 * (mass + mass.T))
    if not np.all(eigenvalues > 0):
        warnings.warn(f"the mass matrix ∂²L/∂v² at the initial state is not positive definite (eigenvalues from "
                      f"{eigenvalues.min():.3g} to {eigenvalues.max():.3g}): a negative mass? (Only a Lagrangian "
                      "whose sign was flipped as a whole has the dynamics of the positive one.)", stacklevel=4)


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
