"""Root finders for the implicit steps: `Auto` (default), `Newton`, `Chord`, `NewtonKrylov`, and
any optimistix root finder.

`VariationalIntegrator(..., root_finder=...)` takes a root finder object:

- `None` → `Auto(rtol, atol, max_steps)`: picks a strategy per model from what the step knows
  about its Jacobian (`StepStructure`, `_linear_solvers.py`), as measured in
  `benchmarks/implicit_path.py` (docs/benchmarks.md):
  a separable model (`L = ½vᵀMv − V`, constant M) → `Chord(jacobian="kinetic")`: no Jacobian
  at all, each iteration one residual and a solve with the kinetic Jacobian `J₀ = (K ⊗ M)/h`
  (O(n) for a diagonal M), falling back to a preconditioned Newton–Krylov solve when that
  contracts slowly (large `ω·h`); otherwise few unknowns (≤ `Auto.dense_newton_size`) →
  `Newton()`; otherwise `Chord(jacobian="dense", reuse=True)`: one LU factorisation of a
  `jax.jacfwd` Jacobian reused across steps, refreshed by Newton iterations when it goes stale;
- `Newton(rtol, atol, max_steps, linear_solver=None)`: Newton with a dense Jacobian and an LU
  per iteration (or a lineax solver);
- `Chord(...)`, `NewtonKrylov(...)`: the strategies above, chosen explicitly;
- any optimistix root finder (e.g. `optx.Newton(rtol, atol, cauchy_termination=False)`),
  wrapped in `OptimistixRootFinder`.

All report a result code, the number of iterations and a residual (`RootInfo`), and all
differentiate the root implicitly (implicit function theorem, `jax.lax.custom_root`), never
through the iterations; the tangent solve is dense (`Newton`, dense `Chord`) or preconditioned
GMRES (kinetic strategies, `NewtonKrylov`). All work in complex arithmetic (holomorphic echo).

**Convergence tests.** `Newton` stops when its step is small relative to the unknowns,
`‖Δz‖∞ ≤ atol + rtol‖z‖∞` (affine invariant). Our residuals are momenta computed from
differences such as `M (q_b − q_a)/h`; their round-off floor `ε·M·|q|/h` exceeds any fixed
absolute residual tolerance once `|q|` or `1/h` is large, so `optx.Newton` with its default
(Cauchy) termination reports converged steps as failures (measured in
`benchmarks/root_finders.py`). The linearly convergent iterations (`Chord`, `NewtonKrylov` and
`Auto`'s Newton phase) use the rate-aware form of the same test (Hairer & Wanner, *Solving ODEs
II*, §IV.8): with `θ_k = ‖Δ_k‖/‖Δ_{k−1}‖ < 1` the error left after step k is about
`θ_k/(1 − θ_k)‖Δ_k‖`, and the iteration stops when that (or `‖Δ_k‖` itself) is below the same
tolerance, so every strategy returns a root to the same accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

from . import _autodiff as autodiff
from ._linear_solvers import DenseFactor, StepStructure, dense_tangent_solve, krylov_tangent_solve
from ._solution import RESULTS, result_from_code
from .errors import InputError

__all__ = [
    "AbstractRootFinder",
    "Auto",
    "Chord",
    "Newton",
    "NewtonKrylov",
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
    residual `residual` `()` (max-norm of the equations at the returned root; from `solve_step`,
    at the last evaluated iterate: the implicit step replaces it by the residual at the root)."""

    result: RESULTS
    iterations: Int[Array, ""]
    residual: Float[Array, ""]

    @property
    def ok(self):
        return self.result == RESULTS.successful


class AbstractRootFinder(eqx.Module):
    """Solves `fn(z) = 0` for a pytree `z`; `fn` may close over traced values, which are
    differentiated through the implicit function theorem.

    Implicit steps call `solve_step`, which also receives what the step knows about its Jacobian
    (a `StepStructure`) and a state carried from step to step (`init_state`); the defaults ignore
    both, so a root finder only has to define `solve`."""

    def solve(self, fn: Callable, guess) -> tuple[object, RootInfo]:
        """**Returns:** `(z, info)` with `z` shaped like `guess` and `info` a `RootInfo`."""
        raise NotImplementedError

    def init_state(self, structure: StepStructure, dtype):
        """The state carried into the first step (`None`: stateless)."""
        return None

    def solve_step(self, fn: Callable, guess, structure: StepStructure, state):
        """**Returns:** `(z, info, state)`, the state for the next step."""
        z, info = self.solve(fn, guess)
        return z, info, state


def _tolerances(rtol, atol, dtype):
    default_rtol, default_atol = newton_tolerances(dtype)
    return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)


def _check_max_steps(name, max_steps):
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1:
        raise InputError(f"{name} max_steps must be a positive integer, got {max_steps!r}.")


# ------------------------------------------------------------------ shared machinery
# Status of an iteration (inside the compiled loops), mapped to RESULTS at the end.
_RUNNING, _CONVERGED, _NONFINITE, _SINGULAR, _SLOW = 0, 1, 2, 3, 4
_CODE = {_CONVERGED: RESULTS.successful, _NONFINITE: RESULTS.newton_nonfinite, _SINGULAR: RESULTS.singular,
         _SLOW: RESULTS.diverged, _RUNNING: RESULTS.max_steps_reached}


def _status_code(status):
    code = jnp.asarray(RESULTS.max_steps_reached._value)
    for s, item in _CODE.items():
        code = jnp.where(status == s, item._value, code)
    return code


def _iterate(f, x0, direction, carry0, *, rtol, atol, max_steps, give_up=None, start=True, skipped=_CONVERGED,
             scale=None, anticipate=True):
    """`x ← x − Δ` with `(Δ, carry, singular) = direction(x, f(x), carry)`, until the rate-aware test
    of the module docstring passes, the iterate goes non-finite, `max_steps` (an int, or a traced
    budget for a later phase), or (`give_up` a float) the contraction `θ` exceeds `give_up` or is
    (`anticipate`) too slow to converge within `max_steps` (status `_SLOW`, the error estimate
    `θ^r·θ‖Δ‖/(1 − θ)` after the `r` remaining iterations above the tolerance). `start=False` (traced bool) skips the
    loop with status `skipped` (a later phase runs only when it is not `_CONVERGED`).

    The tolerance `atol + rtol‖x‖∞` is taken at the starting point (a predictor is as large as
    the root to O(h)): each iteration then costs one reduction, `‖Δ‖∞`, which also tells a
    non-finite step (the loop's cost is mostly per-operation overhead on small systems).

    A later phase passes the `scale` of the first (same tolerance, no second reduction).

    **Returns:** `(x, carry, iterations, status, theta_max, scale)`; `x` is the last finite
    iterate."""
    real = jnp.finfo(x0.dtype).dtype

    def iteration(state, scale):
        i, x, previous, _, carry, theta_max = state
        delta, carry, singular = direction(x, f(x), carry)
        if scale is None:
            # The first iteration takes ‖x₀‖∞ from the same reduction as ‖Δ‖∞.
            size, norm = jnp.max(jnp.abs(jnp.stack([delta, x])), axis=1)
            scale = (atol + rtol * norm).astype(real)
        else:
            size = jnp.max(jnp.abs(delta))
        finite = jnp.isfinite(size)
        theta = jnp.where(i > 0, size / previous, 0.0)
        contracting = (i > 0) & (theta < 1)
        converged = finite & ((size <= scale) | (contracting & (theta * size <= (1 - theta) * scale)))
        status = jnp.where(converged, _CONVERGED, jnp.where(finite, _RUNNING, jnp.where(singular, _SINGULAR,
                                                                                         _NONFINITE)))
        if give_up is not None:
            remaining = (max_steps - i - 1).astype(real)
            hopeless = anticipate & contracting & (theta ** remaining * theta * size > (1 - theta) * scale)
            status = jnp.where((status == _RUNNING) & ((theta > give_up) | hopeless), _SLOW, status)
        return (i + 1, jnp.where(finite, x - delta, x), size, status.astype(jnp.int32), carry,
                jnp.maximum(theta_max, jnp.where(finite, theta, jnp.inf))), scale

    def cond(state):
        i, _, _, status, _, _ = state
        return (i < max_steps) & (status == _RUNNING)

    status0 = jnp.where(start, _RUNNING, skipped).astype(jnp.int32)
    state = (jnp.zeros((), jnp.int32), x0, jnp.full((), jnp.inf, real), status0, carry0, jnp.zeros((), real))
    if start is True:
        # The first iteration always runs, and the second almost always (a test needs the
        # contraction of two): outside the loop they skip the trips' overhead (the loop state's
        # copies and condition), a sizeable share of an iteration on small systems.
        state, scale = iteration(state, scale)
        if max_steps > 1:
            state = jax.tree_util.tree_map(partial(jnp.where, cond(state)), iteration(state, scale)[0], state)
    elif scale is None:
        scale = (atol + rtol * jnp.max(jnp.abs(x0))).astype(real)
    iterations, x, _, status, carry, theta_max = jax.lax.while_loop(cond, lambda s_: iteration(s_, scale)[0], state)
    return x, carry, iterations, status, theta_max, scale


def _polish(f, x, iterations, status, solve):
    """One more chord iteration after convergence. A linearly convergent iteration stops with an
    error up to the tolerance (100ε relative), Newton's last step leaves ~ε; a finite-β EqProp
    contrast divides that error by β (measured: the centered echo at β = 1e-6 on a midpoint
    chain 1.2e-6 off BPTT without this, 5e-8 with dense Newton). One chord iteration multiplies
    the error by the contraction θ, for one residual and one cheap solve."""
    delta = solve(f(x))
    keep = (status == _CONVERGED) & jnp.all(jnp.isfinite(delta))
    return jnp.where(keep, x - delta, x), iterations + keep.astype(iterations.dtype)


def _pack(tree, real):
    # custom_root gives aux outputs a tangent of the primal dtype: integers travel as floats.
    return jax.tree_util.tree_map(lambda a: a if jnp.issubdtype(a.dtype, jnp.inexact) else a.astype(real), tree)


def _unpack(tree, like):
    return jax.tree_util.tree_map(lambda a, b: a.astype(b.dtype) if a.dtype != b.dtype else a, tree, like)


def _root(fn, guess, run, tangent_solve, state, *, final_residual: bool):
    """`fn(z) = 0` by `run(f, x0, state) -> (x, status, iterations, state)` on the flattened
    unknowns, differentiated by `jax.lax.custom_root` with `tangent_solve(g, y)`.

    **Returns:** `(z, RootInfo, state)`. The residual is evaluated at the root only when
    `final_residual` (otherwise NaN: implicit steps compute it with their next momentum)."""
    flat_guess, unravel = ravel_pytree(guess)
    dtype = flat_guess.dtype
    real = jnp.finfo(dtype).dtype
    if flat_guess.size == 0:
        return guess, RootInfo(RESULTS.successful, jnp.zeros((), jnp.int32), jnp.zeros((), real)), state

    def residual(x):
        return ravel_pytree(fn(unravel(x)))[0]

    def solve(f, x0):
        x, status, iterations, new_state = run(f, x0, state)
        code = _status_code(status)
        if final_residual:
            final = f(x)
            code = jnp.where((code == RESULTS.successful._value) & ~jnp.all(jnp.isfinite(final)),
                             RESULTS.newton_nonfinite._value, code)
            norm = jnp.max(jnp.abs(final))
        else:
            norm = jnp.full((), jnp.nan, real)
        x = jnp.where(code == RESULTS.newton_nonfinite._value, jnp.nan, x)
        aux = (jnp.stack([code.astype(real), iterations.astype(real), norm.astype(real)]), _pack(new_state, real))
        return x, aux

    x, (info, new_state) = jax.lax.custom_root(residual, flat_guess, solve, tangent_solve, has_aux=True)
    info, new_state = jax.lax.stop_gradient((info, new_state))
    result = result_from_code(jnp.round(info[0]).astype(jnp.int32))
    return (unravel(x), RootInfo(result, jnp.round(info[1]).astype(jnp.int32), info[2]),
            _unpack(new_state, state))


def _newton_direction(f):
    """A dense Newton step that also returns the factorisation it used (to be reused)."""

    def direction(x, fx, factor):
        new = DenseFactor.factor(autodiff.jacfwd(f)(x))
        return new.solve(fx), new, new.singular()

    return direction


# ------------------------------------------------------------------ the root finders
class Newton(AbstractRootFinder):
    """Newton's method with a dense Jacobian (`jax.jacfwd`) and an LU solve per iteration (or a
    lineax `linear_solver`), converged when the last step satisfies
    `‖Δz‖∞ ≤ atol + rtol ‖z‖∞`.

    **Arguments:**
    - `rtol`, `atol`: tolerances (`None`: from the dtype, `newton_tolerances`).
    - `max_steps`: iteration cap.
    - `linear_solver`: `None` (dense LU of the `jax.jacfwd` Jacobian) or a lineax solver, applied
      to the Jacobian as a `lineax.JacobianLinearOperator` (iterative solvers use it matrix-free).
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=20)
    linear_solver: lx.AbstractLinearSolver | None = None

    def __check_init__(self):
        _check_max_steps("Newton", self.max_steps)

    def _linear_solve(self, f, x, rhs):
        if self.linear_solver is None:
            return jnp.linalg.solve(autodiff.jacfwd(f)(x), rhs)
        operator = lx.JacobianLinearOperator(lambda y, _: f(y), x)
        return lx.linear_solve(operator, rhs, self.linear_solver, throw=False).value

    def _run(self, rtol, atol):
        def run(f, x0, state):
            def body(carry):
                i, x, _, _, _ = carry
                fx = f(x)
                step = self._linear_solve(f, x, fx)
                x_new = x - step
                small = jnp.max(jnp.abs(step)) <= atol + rtol * jnp.max(jnp.abs(x_new))
                finite = jnp.all(jnp.isfinite(x_new))
                singular = ~finite & jnp.all(jnp.isfinite(fx))
                return i + 1, jnp.where(finite, x_new, x), small & finite, ~finite, singular

            def cond(carry):
                i, _, converged, broken, _ = carry
                return (i < self.max_steps) & ~(converged | broken)

            false = jnp.asarray(False)
            iterations, x, converged, broken, singular = jax.lax.while_loop(
                cond, body, (jnp.zeros((), jnp.int32), x0, false, false, false))
            status = jnp.where(converged, _CONVERGED, jnp.where(singular, _SINGULAR,
                                                                jnp.where(broken, _NONFINITE, _RUNNING)))
            return x, status, iterations, state

        return run

    def _tangent_solve(self, g, y):
        if self.linear_solver is None:
            return dense_tangent_solve(g, y)
        operator = lx.FunctionLinearOperator(g, jax.eval_shape(lambda: y))
        return lx.linear_solve(operator, y, self.linear_solver, throw=False).value

    def solve(self, fn, guess):
        rtol, atol = _tolerances(self.rtol, self.atol, ravel_pytree(guess)[0].dtype)
        z, info, _ = _root(fn, guess, self._run(rtol, atol), self._tangent_solve, None, final_residual=True)
        return z, info

    def solve_step(self, fn, guess, structure, state):
        rtol, atol = _tolerances(self.rtol, self.atol, ravel_pytree(guess)[0].dtype)
        return _root(fn, guess, self._run(rtol, atol), self._tangent_solve, state, final_residual=False)


class Chord(AbstractRootFinder):
    """Chord (simplified Newton) iterations `z ← z − J₀⁻¹F(z)` with a Jacobian `J₀` factorised
    once and reused: cheaper iterations than Newton, linear convergence at the rate `θ` of
    `‖I − J₀⁻¹J‖`, stopped by the rate-aware test (module docstring).

    **Arguments:**
    - `rtol`, `atol`, `max_steps`: as for `Newton` (the cap applies to each phase).
    - `jacobian`: `"kinetic"` — the exact Jacobian of the kinetic part, `(K ⊗ M)/h`
      (`_linear_solvers.KineticJacobian`; separable models without constraints; nothing to
      factorise, `θ ≈ (ωh)²/4` for the midpoint rule); `"dense"` — the `jax.jacfwd` Jacobian,
      LU-factorised; `"auto"` (default) — kinetic when the model allows it, else dense.
    - `reuse` (dense): keep the factorisation from step to step (default `True`); it is
      refreshed when a chord iteration contracts slower than `refresh` (for the next step) or
      gives up (at once). `False` factorises at every step's predictor.
    - `fallback`: when the chord gives up (`θ > give_up`), continue with Newton iterations
      (dense Jacobians for `"dense"`, preconditioned Newton–Krylov for `"kinetic"`), so a slow
      chord costs time, never a failure. `False`: report `RESULTS.diverged` when `θ ≥ 1`.
    - `give_up`, `refresh`: the contraction thresholds above (defaults 0.5 and 0.1).
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=20)
    jacobian: str = eqx.field(static=True, default="auto")
    reuse: bool = eqx.field(static=True, default=True)
    fallback: bool = eqx.field(static=True, default=True)
    give_up: float = eqx.field(static=True, default=0.5)
    refresh: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        _check_max_steps("Chord", self.max_steps)
        if self.jacobian not in ("auto", "kinetic", "dense"):
            raise InputError(f"Chord jacobian must be 'auto', 'kinetic' or 'dense', got {self.jacobian!r}.")
        if self.reuse and not self.fallback and self.jacobian == "dense":
            raise InputError("Chord(reuse=True) refreshes a stale factorisation by Newton iterations: it needs "
                             "fallback=True (or use reuse=False).")
        if not (0.0 < self.refresh <= self.give_up < 1.0 or (not self.fallback and 0.0 < self.refresh < 1.0)):
            raise InputError(f"Chord thresholds must satisfy 0 < refresh ≤ give_up < 1, got refresh={self.refresh!r}, "
                             f"give_up={self.give_up!r}.")

    def _kind(self, structure) -> str:
        if self.jacobian == "auto":
            return "kinetic" if structure.kinetic is not None else "dense"
        if self.jacobian == "kinetic" and structure.kinetic is None:
            raise InputError("Chord(jacobian='kinetic') needs L = ½vᵀMv − V with a constant mass matrix and no "
                             "constraints (model.separable); use jacobian='dense' or 'auto'.")
        return self.jacobian

    def init_state(self, structure, dtype):
        if self._kind(structure) == "dense" and self.reuse:
            return DenseFactor.empty(structure.size, dtype)
        return None

    def solve(self, fn, guess):
        structure = StepStructure(size=ravel_pytree(guess)[0].size)
        dtype = ravel_pytree(guess)[0].dtype
        z, info, _ = self._solve(fn, guess, structure, self.init_state(structure, dtype), final_residual=True)
        return z, info

    def solve_step(self, fn, guess, structure, state):
        return self._solve(fn, guess, structure, state, final_residual=False)

    def _solve(self, fn, guess, structure, state, *, final_residual):
        rtol, atol = _tolerances(self.rtol, self.atol, ravel_pytree(guess)[0].dtype)
        kw = dict(rtol=rtol, atol=atol, max_steps=self.max_steps)
        give_up = self.give_up if self.fallback else 1.0
        kind = self._kind(structure)
        if kind == "kinetic":
            kinetic = structure.kinetic
            fallback = NewtonKrylov(self.rtol, self.atol, self.max_steps, preconditioner="kinetic")

            def run(f, x0, state):
                x, _, its, status, _, scale = _iterate(f, x0, lambda x, fx, c: (kinetic.solve(fx), c, False), None,
                                                       give_up=give_up, anticipate=self.fallback, **kw)
                if self.fallback:
                    # From the chord's last finite iterate (the start, if none), at the same tolerance;
                    # in a `cond` so that a converged step skips even the loop's set-up (under `vmap`
                    # both branches run, and the loop runs for the members that need it).
                    # The iteration cap is shared: the fallback has what the chord left.
                    def newton_krylov(x, status, its):
                        return fallback._iterate(f, x, kinetic, status != _CONVERGED, rtol, atol, scale,
                                                 budget=self.max_steps - its)

                    def done(x, status, its):
                        return x, jnp.zeros((), jnp.int32), status

                    x, its2, status = jax.lax.cond(status != _CONVERGED, newton_krylov, done, x, status, its)
                    its = its + its2
                x, its = _polish(f, x, its, status, kinetic.solve)
                return x, status, its, state

            tangent = krylov_tangent_solve(kinetic, rtol, atol)
            return _root(fn, guess, run, tangent, state, final_residual=final_residual)

        def run(f, x0, state):
            factor = state if self.reuse else DenseFactor.factor(autodiff.jacfwd(f)(x0))
            x, _, its, status, theta, scale = _iterate(f, x0, lambda x, fx, c: (c.solve(fx), c, c.singular()),
                                                       factor, give_up=give_up, start=factor.valid, skipped=_SLOW,
                                                       anticipate=self.fallback, **kw)
            if self.fallback:
                # Newton iterations from the chord's last finite iterate; the last Jacobian is kept.
                x, factor2, its2, status, _, _ = _iterate(f, x, _newton_direction(f), factor, rtol=rtol, atol=atol,
                                                          max_steps=self.max_steps - its, start=status != _CONVERGED,
                                                          scale=scale)
                refreshed = its2 > 0
                # A factorisation that converged only slowly is replaced at the next step.
                keep = refreshed | (theta <= self.refresh)
                factor = DenseFactor(factor2.lu, factor2.pivots, factor2.valid & keep)
                its = its + its2
            x, its = _polish(f, x, its, status, factor.solve)
            return x, status, its, (factor if self.reuse else state)

        return _root(fn, guess, run, dense_tangent_solve, state, final_residual=final_residual)


class NewtonKrylov(AbstractRootFinder):
    """Inexact Newton, matrix-free: each iteration solves `J Δ = F(z)` with GMRES on Jacobian-vector
    products (`jax.linearize`) to a relative accuracy `forcing`, preconditioned by the kinetic
    Jacobian `(K ⊗ M)/h` when the model is separable (then one or two Krylov iterations suffice at
    moderate `ω·h`). Stopped by the rate-aware test (module docstring).

    **Arguments:** `rtol`, `atol`, `max_steps` (Newton iterations); `forcing` (relative
    accuracy of each linear solve, default 1e-3); `restart`, `max_krylov_steps` (GMRES);
    `preconditioner`: `"auto"` (kinetic when available), `"kinetic"`, or `None`.

    The linear solves use `jax.scipy.sparse.linalg.gmres` (incremental, stops within a restart
    cycle) rather than `lineax.GMRES`, which always runs whole restart cycles and needs two of
    them to test convergence; the tangent solve (exactness) uses `lineax.GMRES`.
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=20)
    forcing: float = eqx.field(static=True, default=1e-3)
    restart: int = eqx.field(static=True, default=20)
    max_krylov_steps: int | None = eqx.field(static=True, default=None)
    preconditioner: str | None = eqx.field(static=True, default="auto")

    def __check_init__(self):
        _check_max_steps("NewtonKrylov", self.max_steps)
        if self.preconditioner not in ("auto", "kinetic", None):
            raise InputError(f"NewtonKrylov preconditioner must be 'auto', 'kinetic' or None, "
                             f"got {self.preconditioner!r}.")
        if not 0.0 < self.forcing < 1.0:
            raise InputError(f"NewtonKrylov forcing must be in (0, 1), got {self.forcing!r}.")

    def _kinetic(self, structure):
        if self.preconditioner == "kinetic" and structure.kinetic is None:
            raise InputError("NewtonKrylov(preconditioner='kinetic') needs a separable model without constraints.")
        return None if self.preconditioner is None else structure.kinetic

    def _iterate(self, f, x0, kinetic, start, rtol, atol, scale=None, budget=None):
        precondition = None if kinetic is None else kinetic.solve
        maxiter = self.max_krylov_steps or max(1, -(-10 * x0.size // self.restart))

        def direction(x, fx, carry):
            _, jvp = jax.linearize(f, x)
            guess = None if precondition is None else precondition(fx)
            delta, _ = jax.scipy.sparse.linalg.gmres(jvp, fx, guess, tol=self.forcing, atol=0.0,
                                                     restart=min(self.restart, x.size), maxiter=maxiter,
                                                     M=precondition, solve_method="incremental")
            return delta, carry, jnp.all(jnp.isfinite(fx))

        x, _, its, status, _, _ = _iterate(f, x0, direction, None, rtol=rtol, atol=atol, start=start, scale=scale,
                                           max_steps=self.max_steps if budget is None else budget)
        return x, its, status

    def solve(self, fn, guess):
        flat = ravel_pytree(guess)[0]
        z, info, _ = self._solve(fn, guess, StepStructure(size=flat.size), None, final_residual=True)
        return z, info

    def solve_step(self, fn, guess, structure, state):
        return self._solve(fn, guess, structure, state, final_residual=False)

    def _solve(self, fn, guess, structure, state, *, final_residual):
        rtol, atol = _tolerances(self.rtol, self.atol, ravel_pytree(guess)[0].dtype)
        kinetic = self._kinetic(structure)

        def run(f, x0, state):
            x, its, status = self._iterate(f, x0, kinetic, True, rtol, atol)
            return x, status, its, state

        tangent = krylov_tangent_solve(kinetic, rtol, atol)
        return _root(fn, guess, run, tangent, state, final_residual=final_residual)


class Auto(AbstractRootFinder):
    """The default: a strategy per model (module docstring), with the tolerances and iteration
    cap given here. `solve` (no step structure) is `Newton`'s.

    **Arguments:** `rtol`, `atol`, `max_steps`; `dense_newton_size`: up to this many unknowns a
    model without kinetic structure uses `Newton` (a dense Jacobian per iteration costs little
    there), above it `Chord(jacobian="dense", reuse=True)`.
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=20)
    dense_newton_size: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        _check_max_steps("Auto", self.max_steps)

    def choose(self, structure: StepStructure) -> AbstractRootFinder:
        """The root finder this model's steps use."""
        if structure.kinetic is not None:
            return Chord(self.rtol, self.atol, self.max_steps, jacobian="kinetic")
        if structure.size <= self.dense_newton_size:
            return Newton(self.rtol, self.atol, self.max_steps)
        return Chord(self.rtol, self.atol, self.max_steps, jacobian="dense", reuse=True)

    def solve(self, fn, guess):
        return Newton(self.rtol, self.atol, self.max_steps).solve(fn, guess)

    def init_state(self, structure, dtype):
        return self.choose(structure).init_state(structure, dtype)

    def solve_step(self, fn, guess, structure, state):
        return self.choose(structure).solve_step(fn, guess, structure, state)


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
    """The engine's root finder for `root_finder`: `None` → `Auto(rtol, atol, max_steps)`; an
    optimistix root finder → `OptimistixRootFinder(root_finder, max_steps)`; ours → as is."""
    if root_finder is None:
        return Auto(rtol, atol, max_steps)
    if isinstance(root_finder, AbstractRootFinder):
        return root_finder
    if isinstance(root_finder, optx.AbstractRootFinder):
        return OptimistixRootFinder(root_finder, max_steps)
    raise InputError(
        f"root_finder must be lep.Auto(), lep.Newton(...), lep.Chord(...), lep.NewtonKrylov(...), an optimistix "
        f"root finder (e.g. optx.Newton(rtol, atol, cauchy_termination=False)) or None, got {type(root_finder).__name__}."
    )


def newton_root(fn: Callable, guess, *, rtol: float, atol: float, max_steps: int):
    """`Newton(rtol, atol, max_steps).solve(fn, guess)` as `(z, ok)` (Galerkin stage solves)."""
    z, info = Newton(rtol, atol, max_steps).solve(fn, guess)
    return z, info.ok
