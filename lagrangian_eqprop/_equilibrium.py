"""Equilibria of energy models: the minimisers, `solve_equilibrium` and the `Equilibrium` solution.

An equilibrium is a state `s*` with `∂F/∂s = 0`, `F(s) = E(θ, s, x) + β C(s)` (β = 0: the free
state), or — for states confined to a box `lo ≤ s ≤ hi` (hard-sigmoid units) — a KKT point,
i.e. a root of the *natural residual* `r(s) = s − P(s − ∇F(s))` with `P` the projection onto
the box (`r = ∇F` without a box). Every solver differentiates `s*` implicitly (implicit function
theorem on `r`, `lax.custom_root`), never through its iterations, and reports a result code.

Solvers (`solver=`):
- `NewtonMinimiser(rtol, atol, max_steps, linear_solver=None)` (default): Newton's method on
  `∇F = 0` with an Armijo line search on `F`, projected onto the box when there is one
  (Bertsekas' projected Newton: Newton on the free states, gradient steps on the ε-active ones).
- `ProjectedGradient(step=1.0, ...)`: projected gradient descent with the same line search; one
  gradient per iteration and no Hessian — for large energies with well-scaled curvature (with
  unit self-curvature and `step=1` it is the thesis' fixed-point update `s ← P(s − ∇F)`).
- `lep.Newton(...)` or any optimistix root finder (pure root finding on `∇F`, no box), or any
  optimistix minimiser such as `optx.BFGS(rtol, atol)` (no box).

**Why two hand-written solvers.** Optimistix 0.1 has no bound-constrained minimiser (`optx.minimise`
takes no bounds), and its root finders neither use the energy to control the step (so from a
poor start they converge to maxima and saddles as readily as to minima, and diverge on
exponential co-contents such as diodes) nor respect a box. Both solvers are short loops around
dense or lineax linear solves, and are measured against `optx.BFGS` in docs/equilibrium.md.

After the solve, `expect="minimum"` (default) checks that the Hessian of `F` restricted to the
free states is positive definite — from the signs of its LDLᵀ pivots — and reports a saddle
point otherwise (`expect="stationary"`: only invertible; `None`: no check, which saves one dense
Hessian per solve on large networks). Dense solves use `_equilibrium_linalg` (plain JAX), never
LAPACK: batched LAPACK kernels can deadlock XLA's CPU thread pool (measured; see there).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Real

from ._checks import as_float_array, check_params, finite_or_raise
from ._energy import EnergyModel
from ._equilibrium_linalg import ldl_factor, ldl_solve, solve_symmetric
from ._root import AbstractRootFinder, as_root_finder, newton_tolerances
from ._solution import RESULTS, SolveStats, check_solution, result_from_code
from ._typing import Params
from .errors import InputError

__all__ = ["EXPECT", "AbstractEquilibriumSolver", "Equilibrium", "NewtonMinimiser", "ProjectedGradient",
           "equilibrium_state", "make_stats", "nudged_energy", "prepare_equilibrium", "solve_equilibrium"]

EXPECT = ("minimum", "stationary", None)


class Equilibrium(eqx.Module):
    """A solved equilibrium.

    **Fields:**
    - `s`: the state, shape `(n,)`.
    - `energy`: `F(s) = E(θ, s, x) + β C(s)` there.
    - `min_pivot`: the smallest pivot of the LDLᵀ factorisation of the Hessian of `F` on the
      free states (NaN when not checked, `expect=None`): it has the sign of the smallest
      eigenvalue (Sylvester's law of inertia), positive at a strict minimum; for a diagonal
      Hessian it is the smallest eigenvalue.
    - `result`: an `RESULTS` item; `stats`: a `SolveStats` (iterations, final max-norm of the
      natural residual, `first_failed` the state with the largest residual, or the state of
      the smallest pivot for a saddle point, −1 when none; `condition`, when checked, the ratio of the
      largest to the smallest pivot, a cheap condition estimate).
    """

    s: Float[Array, " n"]
    energy: Float[Array, ""]
    min_pivot: Float[Array, ""]
    result: RESULTS
    stats: SolveStats

    @property
    def converged(self):
        """True when the solve succeeded."""
        return self.result == RESULTS.successful


def _project(z, box):
    if box is None:
        return z
    lo, hi = box
    return jnp.where(z < lo, lo, jnp.where(z > hi, hi, z))


def natural_residual(grad_fn: Callable, box) -> Callable:
    """`s ↦ s − P(s − ∇F(s))` (or `∇F` without a box): zero exactly at the equilibria."""
    if box is None:
        return grad_fn
    return lambda s: s - _project(s - grad_fn(s), box)


def _active(s, g, box, width):
    """States held at a bound (within `width`) with the gradient pushing them outwards."""
    if box is None:
        return jnp.zeros(s.shape, bool)
    lo, hi = box
    return ((s <= lo + width) & (g > 0)) | ((s >= hi - width) & (g < 0))


def _tolerances(rtol, atol, dtype):
    default_rtol, default_atol = newton_tolerances(dtype)
    return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)


class AbstractEquilibriumSolver(eqx.Module):
    """Minimises `F` (a scalar function of `s`, closing over traced values) from `s0`, within
    `box` (`None` or `(lo (n,), hi (n,))`); `s*` is differentiated implicitly."""

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=100)
    linear_solver: lx.AbstractLinearSolver | None = None
    max_backtracks: int = eqx.field(static=True, default=40)

    def __check_init__(self):
        for name in ("max_steps", "max_backtracks"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"{type(self).__name__} {name} must be a positive integer, got {value!r}.")

    def direction(self, energy, s, g, active):
        """`(d, newton)`: the search direction (the iterate moves to `P(s − α d)`) and whether it
        is a Newton direction."""
        raise NotImplementedError

    def minimise(self, energy: Callable, s0, box):
        """**Returns:** `(s, (code, iterations, residual))` with `s` differentiable implicitly."""
        grad_fn = jax.grad(energy)
        residual = natural_residual(grad_fn, box)
        dtype = s0.dtype
        rtol, atol = _tolerances(self.rtol, self.atol, dtype)
        eps = float(jnp.finfo(dtype).eps)
        root_eps = eps ** 0.5

        value_and_grad = jax.value_and_grad(energy)

        def unit_residual(s, g):  # ‖s − P(s − ∇F)‖₂, the measure of progress when F is flat to round-off
            return jnp.sqrt(jnp.sum((s - _project(s - g, box)) ** 2))

        def solve(_, x0):
            def body(state):
                i, s, f, g, _, _ = state
                width = 0.0 if box is None else jnp.minimum(1e-3, jnp.max(jnp.abs(s - _project(s - g, box))))
                active = _active(s, g, box, width)
                d, newton = self.direction(energy, s, g, active)
                slope = jnp.sum(jnp.where(active, 0.0, g * d))
                usable = jnp.all(jnp.isfinite(d)) & (slope > 0)
                d = jnp.where(usable, d, g)
                full = _project(s - d, box)  # the unit step: its length is the convergence measure
                small = jnp.max(jnp.abs(full - s)) <= atol + rtol * jnp.max(jnp.abs(full))
                progress = unit_residual(s, g)

                def trial(alpha):
                    s_new = _project(s - alpha * d, box)
                    decrease = 1e-4 * jnp.sum(jnp.where(active, g * (s - s_new), alpha * g * d))
                    f_new, g_new = value_and_grad(s_new)
                    slack = 16.0 * eps * (jnp.abs(f) + jnp.abs(f_new))
                    # Armijo on F while F resolves the decrease; below round-off, the residual decides.
                    ok = jnp.where(decrease > slack, f_new <= f - decrease, unit_residual(s_new, g_new) < progress)
                    return s_new, f_new, g_new, ok & jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new))

                def ls_cond(ls):
                    return ~ls[-1] & (ls[0] < self.max_backtracks)

                def ls_body(ls):
                    return ls[0] + 1, *trial(0.5 ** ls[0].astype(dtype))

                k, s_new, f_new, g_new, ok = jax.lax.while_loop(
                    ls_cond, ls_body, (jnp.zeros((), jnp.int32), s, f, g, small))
                # No acceptable step although the unit step is within √ε of the state: the iterate is
                # as accurate as round-off allows (an ill-conditioned Hessian, condition κ, leaves
                # Newton steps of size ~κ·ε at the solution, above the 100ε test).
                stalled = ~ok & (jnp.max(jnp.abs(full - s)) <= root_eps * (1.0 + jnp.max(jnp.abs(s))))
                converged = small | stalled  # the unit step was already within tolerance: take it and stop
                code = jnp.where(ok | stalled, 0, jnp.where(
                    jnp.isfinite(f) & jnp.all(jnp.isfinite(g)), RESULTS.equilibrium_line_search._value,
                    RESULTS.newton_nonfinite._value))
                s_next = jnp.where(small, full, jnp.where(stalled, s, s_new))
                f_next, g_next = jax.lax.cond(small, lambda: value_and_grad(full),
                                              lambda: jax.lax.cond(stalled, lambda: (f, g), lambda: (f_new, g_new)))
                return i + 1, s_next, f_next, g_next, converged, code

            def cond(state):
                i, _, _, _, converged, code = state
                return (i < self.max_steps) & ~converged & (code == 0)

            zero = jnp.zeros((), jnp.int32)
            f0, g0 = value_and_grad(x0)
            i, s, _, _, converged, code = jax.lax.while_loop(
                cond, body, (zero, x0, f0, g0, jnp.asarray(False), zero))
            code = jnp.where(converged, 0, jnp.where(code != 0, code, RESULTS.equilibrium_max_steps._value))
            code = jnp.where(jnp.all(jnp.isfinite(s)), code, RESULTS.newton_nonfinite._value)
            final = jnp.max(jnp.abs(residual(s)), initial=0.0)
            return s, jnp.stack([code.astype(dtype), i.astype(dtype), final])

        def tangent_solve(g, y):
            # g: the natural residual linearised at s* (the Hessian of F without a box).
            if self.linear_solver is None:
                return _solve_linearised_residual(jax.jacobian(g)(y), y)
            symmetric = box is None
            solver = self.linear_solver
            if not symmetric and isinstance(solver, lx.CG):  # the boxed Jacobian is not symmetric
                solver = lx.GMRES(solver.rtol, solver.atol)
            tags = (lx.symmetric_tag, lx.positive_semidefinite_tag) if symmetric else ()
            operator = lx.FunctionLinearOperator(g, jax.eval_shape(lambda: y), tags=tags)
            return lx.linear_solve(operator, y, solver).value

        s, aux = jax.lax.custom_root(residual, s0, solve, tangent_solve, has_aux=True)
        aux = jax.lax.stop_gradient(aux)
        return s, (jnp.round(aux[0]).astype(jnp.int32), jnp.round(aux[1]).astype(jnp.int32), aux[2])


def _solve_linearised_residual(jacobian, y):
    """Solve `J δ = y` for the linearised natural residual `J = I − D + D H` (`D` the free states):
    rows of held states are unit rows (`δ_A = y_A`), the free block is the symmetric `H_FF`, so
    `H_FF δ_F = y_F − H_FA y_A` is solved by `solve_symmetric` (no LAPACK, see `_equilibrium_linalg`)."""
    n = y.shape[0]
    unit = jnp.all(jacobian == jnp.eye(n, dtype=jacobian.dtype), axis=1)
    both = ~unit[:, None] & ~unit[None, :]
    matrix = jnp.where(both, 0.5 * (jacobian + jacobian.T), 0.0) + jnp.diag(unit.astype(jacobian.dtype))
    held = jnp.where(unit, y, 0.0)
    rhs = jnp.where(unit, y, y - jacobian @ held)
    return solve_symmetric(matrix, rhs)[0]


class NewtonMinimiser(AbstractEquilibriumSolver):
    """Newton's method on `∇F = 0` with an Armijo line search on `F`; with a box, Bertsekas'
    projected Newton method. Converged when a full Newton step satisfies
    `‖Δs‖∞ ≤ atol + rtol ‖s‖∞` (`None`: `newton_tolerances(dtype)`), or when no step decreases F
    (nor, below F's round-off, the residual) although the Newton step is within `√ε (1 + ‖s‖∞)`:
    the round-off limit of an ill-conditioned Hessian.

    **Arguments:** `rtol`, `atol`, `max_steps` (default 100), `linear_solver` (`None`: dense
    Hessian by `jax.hessian`, LDLᵀ solve; a lineax solver such as `lx.CG(rtol, atol)`: matrix-free
    Hessian-vector products on the free states), `max_backtracks` (default 40).
    Where the Hessian is not positive definite, its negative LDLᵀ pivots are flipped (dense
    path: a modified Newton step, which leaves maxima and saddles) or, matrix-free, the
    iteration takes a gradient step.
    """

    def direction(self, energy, s, g, active):
        free = ~active
        if self.linear_solver is None:
            hessian = jax.hessian(energy)(s)
            reduced = jnp.where(free[:, None] & free[None, :], hessian, 0.0) + jnp.diag(active.astype(s.dtype))
            lower, pivots = ldl_factor(reduced)
            # Negative curvature: flip the offending pivots (a modified Newton step, a descent
            # direction that moves away from maxima and saddles instead of towards them).
            floor = jnp.sqrt(jnp.finfo(s.dtype).eps) * jnp.max(jnp.abs(reduced))
            positive = jnp.maximum(jnp.abs(pivots), floor)
            return ldl_solve(lower - jnp.diag(jnp.diag(lower)), positive, g), jnp.all(pivots > floor)

        def matvec(v):
            hv = jax.jvp(jax.grad(energy), (s,), (jnp.where(free, v, 0.0),))[1]
            return jnp.where(free, hv, v)

        operator = lx.FunctionLinearOperator(matvec, jax.eval_shape(lambda: s),
                                             tags=(lx.symmetric_tag, lx.positive_semidefinite_tag))
        sol = lx.linear_solve(operator, g, self.linear_solver, throw=False)
        return sol.value, sol.result == lx.RESULTS.successful


class ProjectedGradient(AbstractEquilibriumSolver):
    """Projected gradient descent `s ← P(s − α·step·∇F)` with an Armijo line search on `F` (α =
    1, ½, ¼, ...): one gradient per iteration, no Hessian. Linear convergence (rate set by the
    conditioning), so the default `max_steps` is 2000; converged when an unshortened step
    satisfies `‖Δs‖∞ ≤ atol + rtol ‖s‖∞`.

    **Arguments:** `step` (default 1: the fixed-point update `s ← P(s − ∇F)` of units with unit
    self-curvature), `rtol`, `atol`, `max_steps`, `max_backtracks`, `linear_solver` (used only
    for the implicit derivative; `None`: dense).
    """

    step: float = eqx.field(static=True, default=1.0)
    max_steps: int = eqx.field(static=True, default=2000)

    def direction(self, energy, s, g, active):
        return self.step * g, jnp.asarray(False)


def _as_solver(solver):
    if solver is None:
        return NewtonMinimiser()
    if isinstance(solver, (AbstractEquilibriumSolver, optx.AbstractMinimiser)):
        return solver
    try:
        return as_root_finder(solver)
    except InputError:
        raise InputError(
            "solver must be lep.NewtonMinimiser(...), lep.ProjectedGradient(...), an optimistix minimiser (e.g. "
            "optx.BFGS(rtol, atol)), lep.Newton(...) or an optimistix root finder, got "
            f"{type(solver).__name__}.") from None


def make_stats(dtype, **fields) -> SolveStats:
    """A `SolveStats` with the given fields set (the others as for a solve that did nothing)."""
    stats = SolveStats.empty(dtype)
    names = [k for k in fields if hasattr(stats, k)]
    return eqx.tree_at(lambda st: [getattr(st, k) for k in names], stats, [fields[k] for k in names])


def nudged_energy(model: EnergyModel, params, x, cost=None, beta=0.0) -> Callable:
    """`F(s) = E(θ, s, x) + β C(s)` (the cost term only when `cost` is given)."""
    if cost is None:
        return lambda s: model.energy_fn(s, params, x)
    return lambda s: model.energy_fn(s, params, x) + beta * jnp.asarray(cost(s)).astype(s.dtype)


def _curvature_check(energy, s, box, expect):
    """`(code, min_pivot, pivot_ratio, where)` of the Hessian of `F` on the free states at `s`.

    The LDLᵀ pivots of the reduced Hessian have the signs of its eigenvalues (Sylvester's law of
    inertia): a negative pivot means a direction of negative curvature (a saddle point), a pivot
    that is zero relative to the Hessian's scale a singular Hessian."""
    dtype = s.dtype
    hessian = jax.hessian(energy)(s)
    hessian = 0.5 * (hessian + hessian.T)
    g = jax.grad(energy)(s)
    width = 1e3 * jnp.finfo(dtype).eps * (1.0 + jnp.max(jnp.abs(s)))
    active = _active(s, g, box, width)
    scale = jnp.max(jnp.abs(hessian))
    reduced = jnp.where(~active[:, None] & ~active[None, :], hessian, 0.0) + jnp.diag(jnp.where(active, scale, 0.0))
    _, pivots = solve_symmetric(reduced, jnp.zeros_like(s))
    pivots = jnp.where(active, jnp.inf, pivots)  # held states do not count
    tol = 10.0 * s.size * jnp.finfo(dtype).eps * scale
    smallest = jnp.argmin(pivots) if expect == "minimum" else jnp.argmin(jnp.abs(pivots))
    if expect == "minimum":
        code = jnp.where(pivots[smallest] < -tol, RESULTS.saddle_point._value,
                         jnp.where(pivots[smallest] <= tol, RESULTS.singular._value, 0))
    else:
        code = jnp.where(jnp.abs(pivots[smallest]) <= tol, RESULTS.singular._value, 0)
    code = jnp.where(jnp.all(jnp.isfinite(jnp.where(active, 0.0, pivots))), code, RESULTS.singular._value)
    finite = jnp.where(active, jnp.nan, jnp.abs(pivots))
    ratio = jnp.nanmax(finite) / jnp.nanmin(finite)
    return code.astype(jnp.int32), jnp.min(pivots), ratio, smallest.astype(jnp.int32)


def equilibrium_state(model: EnergyModel, params, x, s0, *, cost=None, beta=0.0, solver=None, bounds=None,
                      expect: str | None = "minimum") -> Equilibrium:
    """The equilibrium of `F = E + βC` from `s0` (traceable; failures in `result`, never raised).

    `bounds`: `None` (the model's own box, if any) or `(lower, upper)` arrays. Differentiable
    in `params`, `x`, `beta` and the cost's leaves (implicit function theorem).
    """
    solver = _as_solver(solver)
    box = model.bound_arrays(s0.dtype) if bounds is None else tuple(jnp.asarray(b, s0.dtype) for b in bounds)
    energy = nudged_energy(model, params, x, cost, beta)
    grad_fn = jax.grad(energy)
    if isinstance(solver, AbstractEquilibriumSolver):
        s, (code, iterations, residual) = solver.minimise(energy, s0, box)
    elif isinstance(solver, AbstractRootFinder):
        s, info = solver.solve(grad_fn, s0)
        code, iterations, residual = info.result._value, info.iterations, info.residual
    else:
        sol = optx.minimise(lambda y, _: energy(y), solver, s0, max_steps=1000, throw=False)
        s = sol.value
        code = jnp.where(sol.result == optx.RESULTS.successful, 0,
                         jnp.where(sol.result == optx.RESULTS.nonlinear_max_steps_reached,
                                   RESULTS.equilibrium_max_steps._value, RESULTS.diverged._value))
        code = jnp.where(jnp.all(jnp.isfinite(s)), code, RESULTS.newton_nonfinite._value)
        iterations = jnp.asarray(sol.stats["num_steps"], jnp.int32)
        residual = jax.lax.stop_gradient(jnp.max(jnp.abs(grad_fn(s)), initial=0.0))
    code = jnp.asarray(code, jnp.int32)
    final = jax.lax.stop_gradient(natural_residual(grad_fn, box)(s))
    where = jnp.where(code != 0, jnp.argmax(jnp.abs(final)), -1).astype(jnp.int32)
    curvature = condition = jnp.full((), jnp.nan, s.dtype)
    if expect is not None:
        check, curvature, condition, direction = _curvature_check(energy, jax.lax.stop_gradient(s), box, expect)
        where = jnp.where((code == 0) & (check != 0), direction, where)
        code = jnp.where(code == 0, check, code)
    iterations = jnp.asarray(iterations, jnp.int32)
    stats = make_stats(s.dtype, num_failures=jnp.asarray(code != 0, jnp.int32), first_failed=where,
                       newton_iterations_mean=iterations.astype(s.dtype), newton_iterations_max=iterations,
                       max_residual=jnp.asarray(residual, s.dtype), condition=condition)
    return Equilibrium(s, energy(s), jax.lax.stop_gradient(curvature), result_from_code(code), stats)


def prepare_equilibrium(model: EnergyModel, params, x, s0=None):
    """Validated `(params, x (m,), s0 (n,))` as float arrays of one dtype (eager checks;
    `InputError` naming the argument)."""
    if not isinstance(model, EnergyModel):
        raise InputError(f"model must be an EnergyModel (lep.compile_energy, ...), got {type(model).__name__}.")
    check_params(model, params)
    params = {k: as_float_array(v) for k, v in params.items()}
    for name, shape in model.parameter_shapes.items():
        if tuple(params[name].shape) != tuple(shape):
            raise InputError(f"params[{name!r}] must have shape {tuple(shape)}, got {tuple(params[name].shape)}.")
    dtype = jnp.result_type(*params.values()) if params else jnp.result_type(float)
    m, n = model.num_inputs, model.num_states
    x = jnp.zeros((m,), dtype) if x is None else as_float_array(x, dtype)
    if x.shape != (m,):
        raise InputError(f"x must have shape ({m},) for the inputs {model.input_names[:6]}"
                         f"{'...' if m > 6 else ''}, got {tuple(x.shape)}.")
    if s0 is None:
        s0 = jnp.zeros((n,), dtype)
        box = model.bound_arrays(dtype)
        s0 = s0 if box is None else _project(s0, box)
    s0 = as_float_array(s0, dtype)
    if s0.shape != (n,):
        raise InputError(f"s0 must have shape ({n},) for the states of the model, got {tuple(s0.shape)}.")
    finite_or_raise({"x": x, "s0": s0, **{f"params[{k!r}]": v for k, v in params.items()}})
    return params, x, s0


@eqx.filter_jit
def _solve(model, params, x, s0, cost, beta, solver, bounds, expect):
    return equilibrium_state(model, params, x, s0, cost=cost, beta=beta, solver=solver, bounds=bounds, expect=expect)


def solve_equilibrium(
    model: EnergyModel,
    params: Params,
    x: Real[ArrayLike, " m"] | None = None,
    s0: Real[ArrayLike, " n"] | None = None,
    *,
    cost: Callable | None = None,
    beta: float | Real[Array, ""] = 0.0,
    solver=None,
    bounds=None,
    expect: str | None = "minimum",
    throw: bool = True,
) -> Equilibrium:
    """The equilibrium `s* = argmin_s E(θ, s, x) + β C(s)` (a KKT point inside the model's box).

    **Arguments:**
    - `model`: an `EnergyModel`; `params`: `{name: array}`; `x`: inputs `(m,)` (`None`: zeros).
    - `s0`: initial state `(n,)` (`None`: zeros, projected onto the box).
    - `cost`, `beta`: an optional nudge `β C(s)` (`cost(s) -> scalar`, any JAX callable).
    - `solver`: `NewtonMinimiser()` (default), `ProjectedGradient(...)`, an optimistix minimiser,
      `lep.Newton(...)` or an optimistix root finder (the last three without a box).
    - `bounds`: `(lower, upper)` overriding the model's box (`None`: the model's).
    - `expect`: `"minimum"` (default: a stationary point whose Hessian on the free states is not
      positive definite is reported as a saddle point), `"stationary"` (only invertible) or
      `None` (no Hessian check).
    - `throw`: the failure contract (`ConvergenceError` naming the cause; under `jit` a runtime
      error); `False` returns the solution with its `result` and `stats`.

    **Returns:** an `Equilibrium(s, energy, min_pivot, result, stats)`.

    **Raises:** `InputError` naming a malformed argument; `ConvergenceError` (with `throw`) when
    the solve fails or ends at a saddle point.
    """
    params, x, s0 = prepare_equilibrium(model, params, x, s0)
    solver = _as_solver(solver)
    if expect not in EXPECT:
        raise InputError(f"expect must be one of {EXPECT}, got {expect!r}.")
    box = model.bounds if bounds is None else bounds
    if box is not None and not isinstance(solver, AbstractEquilibriumSolver):
        raise InputError(f"the states are bounded; {type(solver).__name__} cannot respect bounds: use "
                         "lep.NewtonMinimiser() or lep.ProjectedGradient().")
    if bounds is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, dtype=float), (model.num_states,)) for b in bounds)
        bounds = (jnp.asarray(lower, s0.dtype), jnp.asarray(upper, s0.dtype))
    beta = jnp.asarray(beta, s0.dtype)
    sol = _solve(model, params, x, s0, cost, beta, solver, bounds, expect)
    what = f"equilibrium solve ({type(solver).__name__}{', nudged' if cost is not None else ''})"
    return check_solution(sol, sol.result, sol.stats, what=what, unit="state", throw=throw,
                          context=lambda: _describe_failure(model, sol))


def _describe_failure(model: EnergyModel, sol: Equilibrium) -> str:
    index = int(np.asarray(sol.stats.first_failed).reshape(-1)[0])
    name = f" ({model.state_names[index]})" if 0 <= index < model.num_states else ""
    curvature = float(np.asarray(sol.min_pivot).reshape(-1)[0])
    text = name
    if np.isfinite(curvature):
        text += f"; smallest LDLᵀ pivot of the Hessian on the free states {curvature:.3e}"
    return text
