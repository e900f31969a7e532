"""What the compiler detects about a Lagrangian: degeneracy (numerically), separability and
time-reversibility (symbolically), and the constant mass matrix of a separable L."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from .._checks import degenerate_coordinates, degenerate_message
from .._graph import MassFunction
from ..errors import LagrangianError
from .printing import lambdify
from .validate import SymbolTable

__all__ = ["check_nondegenerate", "couples_inputs_to_velocities", "is_analytic", "is_time_reversible", "is_zero",
           "kinetic_mass", "mass_structure"]

_NUM_SAMPLE_POINTS = 4

def _sample_points(rng, num_points, n, parameter_shapes, m, dtype, symmetric: bool):
    low, high = (-0.7, 0.7) if symmetric else (0.1, 0.7)
    q = rng.uniform(low, high, (num_points, n)).astype(dtype)
    v = rng.uniform(low, high, (num_points, n)).astype(dtype)
    t = rng.uniform(0.1, 1.0, (num_points,)).astype(dtype)
    u = rng.uniform(low, high, (num_points, m)).astype(dtype)
    params = {
        name: rng.uniform(0.5, 1.5, (num_points, *shape)).astype(dtype)
        for name, shape in parameter_shapes.items()
    }
    return q, v, t, params, u


def check_nondegenerate(
    lagrangian_fn: Callable,
    n: int,
    parameter_shapes: dict,
    m: int,
    coordinate_names: Sequence[str],
    where: str,
    seed: int = 0,
) -> None:
    """Reject `L` whose velocity Hessian `∂²L/∂v²` is singular at every sample point.

    The Hessian is evaluated with `jax.hessian` of the compiled function at a few random points
    (parameters uniform in [0.5, 1.5], q, v, u small), in the dtype JAX currently uses, with a
    relative rank tolerance suited to that dtype (float32 included). Non-finite points are skipped.
    """
    dtype = np.dtype(jnp.result_type(float))
    eps = float(np.finfo(dtype).eps)
    rtol = 3.0 * np.sqrt(eps)  # ≈ 1e-3 in float32, 5e-8 in float64
    hessian_fn = jax.jit(jax.vmap(jax.hessian(lagrangian_fn, argnums=1)))
    rng = np.random.default_rng(seed)
    finite_hessians = []
    for symmetric in (False, True):
        points = _sample_points(rng, _NUM_SAMPLE_POINTS, n, parameter_shapes, m, dtype, symmetric)
        try:
            hessians = np.asarray(hessian_fn(*points))
        except LagrangianError:
            raise
        except Exception as error:  # noqa: BLE001
            raise LagrangianError(
                f"{where} could not be evaluated after compilation: {type(error).__name__}: {error}"
            ) from error
        finite_hessians = [h for h in hessians if np.all(np.isfinite(h))]
        if finite_hessians:
            break
    if not finite_hessians:
        warnings.warn(
            f"{where}: the velocity Hessian was non-finite at every sample point; the degeneracy"
            " check was skipped.",
            stacklevel=3,
        )
        return
    culprits: list[int] = []
    for h in finite_hessians:
        involved = degenerate_coordinates(h, rtol, eps)
        if involved is None:
            return  # regular somewhere: not structurally degenerate
        culprits.extend(i for i in involved if i not in culprits)
    names = ", ".join(coordinate_names[i] for i in sorted(culprits))
    raise LagrangianError(degenerate_message(f"{where} is degenerate: the velocity Hessian ∂²L/∂v² is singular "
                                             "(at every sample point)", names))


def is_zero(expr) -> bool:
    if expr == 0:
        return True
    expr = sympy.expand(expr)
    if expr == 0:
        return True
    return sympy.simplify(expr) == 0


def kinetic_mass(plain: sympy.Expr, table: SymbolTable) -> sympy.Matrix | None:
    """Mass matrix `M(θ)` when `plain = ½vᵀMv − V(q,t,θ,u)` with parameter-only `M`, else None."""
    velocities = set(table.v)
    if not plain.free_symbols & velocities:
        return sympy.zeros(len(table.v), len(table.v))
    state_symbols = set(table.q) | velocities | {table.t} | set(table.u)
    at_rest = {vi: 0 for vi in table.v}
    n = len(table.v)
    mass = sympy.zeros(n, n)
    for i, vi in enumerate(table.v):
        first = sympy.diff(plain, vi)
        if not is_zero(first.xreplace(at_rest)):
            return None  # linear terms in the velocity (gyroscopic / magnetic)
        for j in range(i, n):
            entry = sympy.expand(sympy.diff(first, table.v[j]))
            if entry.free_symbols & state_symbols:
                return None  # configuration-, time- or velocity-dependent mass
            mass[i, j] = mass[j, i] = entry
    return mass


def is_time_reversible(plain: sympy.Expr, table: SymbolTable) -> bool:
    """`L(q, −v) == L(q, v)` symbolically."""
    flipped = plain.xreplace({vi: -vi for vi in table.v})
    return is_zero(flipped - plain)


def couples_inputs_to_velocities(plain: sympy.Expr, table: SymbolTable) -> bool:
    """Whether some input appears in `∂L/∂v` (so `∂²L/∂v∂u ≠ 0`, up to cancellations SymPy
    does not see): then the equations of motion need the inputs' time derivative."""
    inputs = set(table.u)
    return bool(inputs) and any(sympy.diff(plain, vi).free_symbols & inputs for vi in table.v)


_NON_ANALYTIC = (sympy.Abs, sympy.sign, sympy.Heaviside, sympy.Piecewise, sympy.Min, sympy.Max, sympy.floor,
                 sympy.ceiling, sympy.re, sympy.im, sympy.conjugate, sympy.arg, sympy.Mod, sympy.frac,
                 sympy.DiracDelta)


def is_analytic(plain: sympy.Expr) -> bool:
    """Whether the expression is built from functions that continue analytically to complex
    arguments (polynomials, sin, exp, tanh, ...; not Abs, sign, Piecewise, Min/Max, floor, re, im,
    conjugate): the condition for the holomorphic echo."""
    return not any(plain.atoms(kind) for kind in _NON_ANALYTIC) and not plain.has(*_NON_ANALYTIC)


def mass_structure(mass: sympy.Matrix, table: SymbolTable) -> tuple[Callable, bool]:
    """`(params -> M, diagonal)` for a constant mass matrix in the table's parameters."""
    n = mass.shape[0]
    diagonal = all(mass[i, j] == 0 for i in range(n) for j in range(n) if i != j)
    entries = [mass[i, i] for i in range(n)] if diagonal else list(mass)
    raw = lambdify(list(table.p), entries)
    return MassFunction(raw, tuple(str(p) for p in table.parameters), n, diagonal), diagonal
