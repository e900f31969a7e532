"""Root finders for the implicit steps: the in-house `Newton` (default) and any optimistix one.

`VariationalIntegrator(..., root_finder=...)` takes a root finder object:

- `lep.Newton(rtol=None, atol=None, max_steps=20, linear_solver=None)` (the default);
- any optimistix root finder, e.g. `optx.Newton(rtol, atol, cauchy_termination=False)` or
  `optx.Chord(...)`, wrapped in `OptimistixRootFinder`.

Both report a result code, the number of iterations and the final residual (`RootInfo`), and
both differentiate the root implicitly (implicit function theorem), never through the iterations.

**Why the in-house Newton is the default.** Its convergence test is on the Newton *step*
relative to the unknowns, `‖Δz‖∞ ≤ atol + rtol‖z‖∞` (affine invariant). Our residuals are
momenta computed from differences such as `M (q_b − q_a)/h`; their round-off floor
`ε·M·|q|/h` exceeds any fixed absolute residual tolerance once `|q|` or `1/h` is large, so
`optx.Newton` with its default (Cauchy) termination reports converged steps as failures.
With `cauchy_termination=False` optimistix judges the contraction rate instead, which is
robust, and `benchmarks/root_finders.py` measures the two side by side (docs/benchmarks.md):
the in-house Newton is faster per step on the small dense systems of one time step and takes
no more iterations, so it stays the default; the optimistix solvers are there to plug in
chord iterations or iterative linear solvers.

`linear_solver` (in-house Newton): `None` solves the dense Jacobian (`jax.jacfwd`) with an LU
factorisation; a lineax solver (`lx.LU()`, `lx.GMRES(...)`, ...) is applied to the Jacobian as
a `lineax.JacobianLinearOperator`, which iterative solvers use matrix-free (Jacobian-vector
products only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

from . import _autodiff as autodiff
from ._solution import RESULTS
from .errors import InputError

__all__ = [
    "AbstractRootFinder",
    "Newton",
    "OptimistixRootFinder",
    "RootInfo",
    "as_root_finder",
    "newton_root",
    "newton_tolerances",
]


def newton_tolerances(dtype) -> tuple[float, float]:
    """Default `(rtol, atol)` for Newton solves in the given floating dtype (100ε in float64,
    √ε in float32)."""
    eps = float(jnp.finfo(dtype).eps)
    tol = 100.0 * eps if eps < 1e-10 else math.sqrt(eps)
    return tol, tol


class RootInfo(eqx.Module):
    """How a root solve ended: `result` (an `RESULTS` item), `iterations` `()` and the final
    residual `residual` `()` (max-norm of the equations at the returned root)."""

    result: RESULTS
    iterations: Int[Array, ""]
    residual: Float[Array, ""]

    @property
    def ok(self):
        return self.result == RESULTS.successful


class AbstractRootFinder(eqx.Module):
    """Solves `fn(z) = 0` for a pytree `z`; `fn` may close over traced values, which are
    differentiated through the implicit function theorem."""

    def solve(self, fn: Callable, guess) -> tuple[object, RootInfo]:
        """**Returns:** `(z, info)` with `z` shaped like `guess` and `info` a `RootInfo`."""
        raise NotImplementedError


def _tolerances(rtol, atol, dtype):
    default_rtol, default_atol = newton_tolerances(dtype)
    return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)


class Newton(AbstractRootFinder):
    """Newton's method with a relative step criterion (see the module docstring for why it is
    the default).

    **Arguments:**
    - `rtol`, `atol`: converged when the last step satisfies `‖Δz‖∞ ≤ atol + rtol ‖z‖∞`
      (`None`: from the dtype, `newton_tolerances`).
    - `max_steps`: iteration cap.
    - `linear_solver`: `None` (dense LU of the `jax.jacfwd` Jacobian) or a lineax solver.
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=20)
    linear_solver: lx.AbstractLinearSolver | None = None

    def __check_init__(self):
        if isinstance(self.max_steps, bool) or int(self.max_steps) != self.max_steps or self.max_steps < 1:
            raise InputError(f"Newton max_steps must be a positive integer, got {self.max_steps!r}.")

    def _linear_solve(self, f, x, rhs):
        if self.linear_solver is None:
            return jnp.linalg.solve(autodiff.jacfwd(f)(x), rhs)
        operator = lx.JacobianLinearOperator(lambda y, _: f(y), x)
        return lx.linear_solve(operator, rhs, self.linear_solver, throw=False).value

    def solve(self, fn, guess):
        flat_guess, unravel = ravel_pytree(guess)
        dtype = flat_guess.dtype
        if flat_guess.size == 0:
            return guess, RootInfo(RESULTS.successful, jnp.zeros((), jnp.int32), jnp.zeros((), dtype))
        rtol, atol = _tolerances(self.rtol, self.atol, dtype)

        def residual(x):
            return ravel_pytree(fn(unravel(x)))[0]

        def solve(f, x0):
            def body(state):
                i, x, _, _, _ = state
                fx = f(x)
                step = self._linear_solve(f, x, fx)
                x_new = x - step
                small = jnp.max(jnp.abs(step)) <= atol + rtol * jnp.max(jnp.abs(x_new))
                finite = jnp.all(jnp.isfinite(x_new))
                # A finite residual with a non-finite step: the Jacobian is singular.
                singular = ~finite & jnp.all(jnp.isfinite(fx))
                return i + 1, jnp.where(finite, x_new, x), small & finite, ~finite, singular

            def cond(state):
                i, _, converged, broken, _ = state
                return (i < self.max_steps) & ~(converged | broken)

            false = jnp.asarray(False)
            state0 = (jnp.zeros((), jnp.int32), x0, false, false, false)
            iterations, x, converged, broken, singular = jax.lax.while_loop(cond, body, state0)
            final = f(x)
            code = jnp.where(
                converged, RESULTS.successful._value,
                jnp.where(singular, RESULTS.singular._value,
                          jnp.where(broken, RESULTS.newton_nonfinite._value, RESULTS.max_steps_reached._value)))
            code = jnp.where(converged & ~jnp.all(jnp.isfinite(final)), RESULTS.newton_nonfinite._value, code)
            x = jnp.where(code == RESULTS.newton_nonfinite._value, jnp.nan, x)
            # custom_root gives aux outputs a tangent of the primal dtype: pack them as floats.
            real = jnp.abs(final).dtype
            aux = jnp.stack([code.astype(real), iterations.astype(real), jnp.max(jnp.abs(final))])
            return x, aux

        def tangent_solve(g, y):
            # g is the residual's linearisation at the root.
            if self.linear_solver is None:
                return jnp.linalg.solve(jax.jacobian(g, holomorphic=autodiff.is_complex(y))(y), y)
            operator = lx.FunctionLinearOperator(g, jax.eval_shape(lambda: y))
            return lx.linear_solve(operator, y, self.linear_solver).value

        x, aux = jax.lax.custom_root(residual, flat_guess, solve, tangent_solve, has_aux=True)
        aux = jax.lax.stop_gradient(aux)
        result = _result_from_code(jnp.round(aux[0]).astype(jnp.int32))
        return unravel(x), RootInfo(result, jnp.round(aux[1]).astype(jnp.int32), aux[2])


def _result_from_code(code: Int[Array, ""]) -> RESULTS:
    out = RESULTS.successful
    for item in (RESULTS.max_steps_reached, RESULTS.newton_nonfinite, RESULTS.singular, RESULTS.diverged):
        out = RESULTS.where(code == item._value, item, out)
    return out


class OptimistixRootFinder(AbstractRootFinder):
    """Any `optimistix.AbstractRootFinder` (e.g. `optx.Newton(rtol, atol,
    cauchy_termination=False)`, `optx.Chord(...)`) behind the engine's interface.

    **Arguments:** `solver`, `max_steps` (iteration cap, default 20).
    """

    solver: optx.AbstractRootFinder
    max_steps: int = eqx.field(static=True, default=20)

    def solve(self, fn, guess):
        sol = optx.root_find(lambda y, _: fn(y), self.solver, guess, max_steps=self.max_steps, throw=False)
        value = sol.value
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(value)]))
        r = optx.RESULTS
        result = RESULTS.where(sol.result == r.successful, RESULTS.successful, RESULTS.diverged)
        result = RESULTS.where(sol.result == r.nonlinear_max_steps_reached, RESULTS.max_steps_reached, result)
        result = RESULTS.where(sol.result == r.singular, RESULTS.singular, result)
        result = RESULTS.where(finite, result, RESULTS.newton_nonfinite)
        final = ravel_pytree(fn(value))[0]
        residual = jax.lax.stop_gradient(jnp.max(jnp.abs(final)) if final.size else jnp.zeros((), final.dtype))
        return value, RootInfo(result, jnp.asarray(sol.stats["num_steps"], jnp.int32), residual)


def as_root_finder(root_finder=None, *, rtol=None, atol=None, max_steps: int = 20) -> AbstractRootFinder:
    """The engine's root finder for `root_finder`: `None` → `Newton(rtol, atol, max_steps)`; an
    optimistix root finder → `OptimistixRootFinder(root_finder, max_steps)`; ours → as is."""
    if root_finder is None:
        return Newton(rtol, atol, max_steps)
    if isinstance(root_finder, AbstractRootFinder):
        return root_finder
    if isinstance(root_finder, optx.AbstractRootFinder):
        return OptimistixRootFinder(root_finder, max_steps)
    raise InputError(
        f"root_finder must be lep.Newton(...), an optimistix root finder (e.g. optx.Newton(rtol, atol, "
        f"cauchy_termination=False)) or None, got {type(root_finder).__name__}."
    )


def newton_root(fn: Callable, guess, *, rtol: float, atol: float, max_steps: int):
    """`Newton(rtol, atol, max_steps).solve(fn, guess)` as `(z, ok)` (Galerkin stage solves)."""
    z, info = Newton(rtol, atol, max_steps).solve(fn, guess)
    return z, info.ok
