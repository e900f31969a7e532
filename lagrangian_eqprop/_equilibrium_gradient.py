"""Gradients of equilibrium losses: static EqProp (centered, one-sided, holomorphic) and implicit differentiation.

Loss `ℒ(θ, x) = C(s*_θ,x)` at the free equilibrium. Theory §1: with `F = E + βC`,
`dℒ/dθ = d/dβ|₀ ∂_θE(θ, x, s^β)` and likewise `dℒ/dx = d/dβ|₀ ∂_xE(θ, x, s^β)`. Write
`G(β) = (∂_θE, ∂_xE)(s^β)`; a contrast object turns nudged equilibria into `G'(0)`:

- `Centered`, `Positive`, `Negative` (`_contrasts.py`): real β, nudged solves warm-started at
  the free equilibrium;
- `Tangent`: `G'(0)` by forward-mode differentiation of the nudged solve in β (the implicit
  function theorem in forward mode: exact, no β);
- `Holomorphic(points=K)`: `β_j = r e^{2πij/K}`, `G'(0) ≈ Re (1/(K r)) Σ_j e^{−2πij/K} G(β_j)`,
  exact up to `O((r/R)^K)` for analytic E and C, with `R` the radius of convergence of
  `β ↦ s^β`. Each complex equilibrium is continued from the real one by complex Newton
  (never by minimisation: a complex energy has no minimum). `r` defaults to `R/10` with `R`
  estimated per sample from the Taylor coefficients of `s^β` (`convergence_radius`, here:
  specific to equilibria), never a fixed number.

The reference is implicit differentiation: `jax.grad` of `C(s*)` through `solve_equilibrium`
(`lax.custom_root`), the `Implicit` estimator on an `EnergyModel`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ._contrasts import AbstractContrast, Holomorphic
from ._energy import EnergyModel
from ._equilibrium import EXPECT, Equilibrium, _as_solver, equilibrium_state, make_stats, prepare_equilibrium
from ._equilibrium_linalg import ldl_factor, ldl_solve, solve_symmetric
from ._estimators import AbstractEqProp
from ._root import newton_tolerances
from ._solution import RESULTS, GradientResult, check_solution, first_failure, result_from_code
from ._typing import Number, Params
from .errors import EstimatorError, InputError

__all__ = ["EquilibriumEqProp", "EquilibriumProblem", "complex_equilibrium", "convergence_radius",
           "equilibrium_gradient", "equilibrium_loss", "implicit_gradient_result"]


def _complex_dtype(dtype):
    """The complex dtype of the same precision as the real `dtype`."""
    return jnp.dtype(jnp.complex128) if jnp.finfo(dtype).bits == 64 else jnp.dtype(jnp.complex64)


def _unit_circle(points: int, dtype):
    phases = 2.0 * np.pi * np.arange(points) / points
    real = jnp.asarray(np.cos(phases), dtype)
    return jax.lax.complex(real, jnp.asarray(np.sin(phases), dtype))


class EquilibriumProblem(eqx.Module):
    """The data of one equilibrium gradient problem: `x (m,)`, the free solve's start `s0 (n,)`,
    the `solver`, `bounds` (`None`: the model's) and `expect` (static)."""

    x: Any
    s0: Any
    solver: Any = None
    bounds: Any = None
    expect: str | None = eqx.field(static=True, default="minimum")

    @property
    def dtype(self):
        return self.s0.dtype


def _grads(model, s, params, x):
    """`G = (∂_θE, ∂_xE)` at state `s` (real arithmetic)."""
    return jax.grad(model.energy_fn, argnums=(1, 2))(s, params, x)


def _complex(tree, dtype):
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v).astype(dtype), tree)


def complex_equilibrium(model: EnergyModel, params, x, cost, beta, s_start, *, substeps: int = 1,
                        max_steps: int = 30):
    """The nudged equilibrium at a complex `beta` by complex Newton on `∇E + β∇C = 0`, continued
    from the real equilibrium `s_start` in `substeps` steps along `t β`, `t ∈ (0, 1]` (each with a
    first-order predictor). `params`, `x` complex. **Returns:** `(s, code, iterations, residual)`."""
    rtol, atol = newton_tolerances(jnp.real(s_start).dtype)
    grad_e = jax.grad(lambda s: model.energy_fn(s, params, x), holomorphic=True)
    grad_c = jax.grad(lambda s: jnp.asarray(cost(s)).astype(s.dtype), holomorphic=True)

    def force(s, b):
        return grad_e(s) + b * grad_c(s)

    hessian = jax.jacfwd(force, holomorphic=True)

    def step(carry, t):
        s, b_prev, code, total = carry
        b = beta * t.astype(beta.dtype)
        s = s - (b - b_prev) * solve_symmetric(hessian(s, b_prev), grad_c(s))[0]  # predictor ds/dβ

        def body(state):
            i, s, _ = state
            delta = solve_symmetric(hessian(s, b), force(s, b))[0]
            s_new = s - delta
            done = jnp.max(jnp.abs(delta)) <= atol + rtol * jnp.max(jnp.abs(s_new))
            return i + 1, s_new, done

        i, s, done = jax.lax.while_loop(lambda st: (st[0] < max_steps) & ~st[2] & jnp.all(jnp.isfinite(st[1])),
                                        body, (jnp.zeros((), jnp.int32), s, jnp.asarray(False)))
        bad = jnp.where(jnp.all(jnp.isfinite(s)), RESULTS.max_steps_reached._value, RESULTS.newton_nonfinite._value)
        code = jnp.where((code == 0) & ~done, bad, code)
        return (s, b, code, total + i), None

    ts = jnp.arange(1, substeps + 1, dtype=jnp.real(s_start).dtype) / substeps
    zero = jnp.zeros((), jnp.int32)
    (s, _, code, iterations), _ = jax.lax.scan(step, (s_start, jnp.zeros_like(beta), zero, zero), ts)
    residual = jnp.max(jnp.abs(force(s, beta)))
    return s, code, iterations, residual


def _taylor_radius(model, params, x, cost, s_free, points: int, fraction: float, substeps: int = 4,
                   rounds: int = 4):
    """`(R, r_probe, ok)`: the radius of convergence of `β ↦ s^β`, from the decay of the Taylor
    coefficients of `s^β` sampled on a probe circle (traceable).

    First guess from the state's own derivatives at β = 0: `a₁ = −H⁻¹∇C`,
    `a₂ = −H⁻¹(½ ∂³E[a₁, a₁] + ∂²C a₁)`, `R₁ = ‖a₁‖/‖a₂‖`; the probe radius starts at `R₁/4` (no
    larger than the β moving the state by 10% of its size) and shrinks ×4 while a complex solve
    fails or the coefficients do not decay. On the circle, the coefficients `b_k = a_k r^k`
    (discrete Fourier transform, k = 1..K−1) are fitted by `log ‖b_k‖ = A − k log(R/r) − 3/2 log k`
    (a square-root branch point, where `∂²F` turns singular, is the generic singularity).
    """
    dtype = s_free.dtype
    cdtype = _complex_dtype(dtype)
    eps = float(jnp.finfo(dtype).eps)
    energy = lambda s: model.energy_fn(s, params, x)  # noqa: E731
    grad_e = jax.grad(energy)
    grad_c = jax.grad(lambda s: jnp.asarray(cost(s)).astype(s.dtype))
    lower, pivots = ldl_factor(jax.hessian(energy)(s_free))
    lower = lower - jnp.diag(jnp.diag(lower))
    a1 = -ldl_solve(lower, pivots, grad_c(s_free))
    third = jax.jvp(lambda s: jax.jvp(grad_e, (s,), (a1,))[1], (s_free,), (a1,))[1]
    hc_a1 = jax.jvp(grad_c, (s_free,), (a1,))[1]
    a2 = -ldl_solve(lower, pivots, 0.5 * third + hc_a1)
    size1, size2 = jnp.max(jnp.abs(a1)), jnp.max(jnp.abs(a2))
    tiny = jnp.finfo(dtype).tiny
    r_scale = 0.1 * (1.0 + jnp.max(jnp.abs(s_free))) / jnp.maximum(size1, tiny)
    r0 = jnp.minimum(0.25 * size1 / jnp.maximum(size2, tiny), r_scale)
    r0 = jnp.where(jnp.isfinite(r0) & (r0 > 0), r0, jnp.ones((), dtype))
    params_c, x_c = _complex(params, cdtype), _complex(x, cdtype)
    unit = _unit_circle(points, dtype)
    k = jnp.arange(1, points, dtype=dtype)
    # the discrete Fourier transform as a K×K matrix (XLA's FFT thunk shares the LAPACK kernels'
    # thread-pool hazard, see _equilibrium_linalg)
    grid = np.outer(np.arange(points), np.arange(points)) * (2.0 * np.pi / points)
    fourier = jax.lax.complex(jnp.asarray(np.cos(grid) / points, dtype), jnp.asarray(-np.sin(grid) / points, dtype))

    def probe(r):
        def one(b):
            s, code, _, _ = complex_equilibrium(model, params_c, x_c, cost, b, s_free.astype(cdtype),
                                                substeps=substeps)
            return s, code

        samples, codes = jax.vmap(one)(r.astype(cdtype) * unit)
        coefficients = fourier @ samples  # b_k = a_k r^k (+ aliases)
        sizes = jnp.max(jnp.abs(coefficients), axis=1)
        noise = 1e3 * eps * (sizes[0] + jnp.max(jnp.abs(samples)))
        y = jnp.log(jnp.maximum(sizes[1:], tiny)) + 1.5 * jnp.log(k)
        w = (sizes[1:] > noise).astype(dtype)
        count = jnp.sum(w)
        k_mean = jnp.sum(w * k) / jnp.maximum(count, 1.0)
        y_mean = jnp.sum(w * y) / jnp.maximum(count, 1.0)
        slope = jnp.sum(w * (k - k_mean) * (y - y_mean)) / jnp.maximum(jnp.sum(w * (k - k_mean) ** 2), tiny)
        decay = -slope  # log(R / r)
        radius = jnp.where(count >= 2, r * jnp.exp(decay), jnp.inf)  # too few coefficients: R ≫ r
        ok = jnp.all(codes == 0) & ((count < 2) | (decay > math.log(2.0)))
        return radius, ok

    def cond(state):
        i, _, _, ok = state
        return (i < rounds) & ~ok

    def body(state):
        i, r, _, _ = state
        r = jnp.where(i == 0, r, r / 4.0)
        radius, ok = probe(r)
        return i + 1, r, radius, ok

    _, r, radius, ok = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), r0, jnp.full((), jnp.inf, dtype),
                                                      jnp.asarray(False)))
    return radius, r, ok


def _final_radius(radius, r_probe, fraction):
    return jnp.where(jnp.isfinite(radius), fraction * radius, r_probe)


class EquilibriumEqProp(AbstractEqProp):
    """Static EqProp on an `EnergyModel` (theory §1).

    **Arguments:**
    - `beta`: nudging strength (`None`: `default_beta(dtype)` for the finite variants; for the
      holomorphic variant `None` means `radius_fraction ×` the radius of convergence `R`
      estimated per sample, and a number is the circle's radius `|β|`; unused by `tangent`).
    - `variant`: `"centered"` (bias O(β²)), `"positive"`, `"negative"` (O(β)), `"tangent"`
      (exact, forward mode), `"holomorphic"` (`points` on the circle, default 8) or a contrast.
    - `points`: points of the holomorphic variant.
    - `radius_fraction`: `|β| / R` of the holomorphic variant (default 0.1: error ~ 0.1^K).

    The holomorphic variant refuses non-analytic energies (`Abs`, `Piecewise`, `Max`, ...),
    costs marked `analytic = False`, and boxed states, for which `β ↦ s^β` is not holomorphic.
    """

    name: ClassVar[str] = "eqprop"
    problem_kind: ClassVar[str] = "equilibrium"
    radius_fraction: float = eqx.field(static=True, default=0.1)

    @property
    def holomorphic(self) -> bool:
        return isinstance(self.contrast, Holomorphic)

    def check(self, model, bounds=None, cost=None) -> None:
        """Raise `EstimatorError` when this estimator cannot be exact for `model`."""
        if not isinstance(model, EnergyModel):
            raise EstimatorError(
                f"the static EqProp estimator trains energy models (lep.compile_energy, ...), got "
                f"{type(model).__name__}; for a VariationalIntegrator use 'echo', 'bvp' or 'naive'.")
        if not self.holomorphic:
            return
        if cost is not None and getattr(cost, "analytic", None) is False:
            raise EstimatorError(f"holomorphic EqProp needs a cost that continues analytically to complex states; "
                                 f"{type(cost).__name__} does not. Use variant='tangent' or 'centered'.")
        if model.non_analytic:
            raise EstimatorError(
                f"holomorphic EqProp needs an analytic energy, but E uses {', '.join(model.non_analytic)}, which "
                "is not holomorphic: β ↦ s^β has no complex extension. Use variant='tangent' or 'centered', or "
                "write E with analytic functions (e.g. a smooth activation instead of a hard sigmoid).")
        if (model.bounds if bounds is None else bounds) is not None:
            raise EstimatorError(
                "holomorphic EqProp cannot handle box-constrained states: β ↦ s^β is only piecewise analytic where "
                "units saturate at the bounds. Use variant='tangent' or 'centered' (or an unbounded, smooth model).")

    def compute(self, model, params, cost, problem, *, full=False) -> GradientResult:
        """The estimate (traceable): `params` and `inputs` (`dℒ/dx`) gradients, the loss `C(s*)`,
        the first failed solve's result and merged statistics."""
        solver, bounds, expect = problem.solver, problem.bounds, problem.expect
        free = equilibrium_state(model, params, problem.x, problem.s0, solver=solver, bounds=bounds, expect=expect)
        s_free = jax.lax.stop_gradient(free.s)
        dtype = s_free.dtype
        if self.holomorphic:
            cdtype = _complex_dtype(dtype)
            params_c, x_c = _complex(params, cdtype), _complex(problem.x, cdtype)
            if self.beta is None:
                radius, r_probe, _ = _taylor_radius(model, params, problem.x, cost, s_free, self.contrast.points,
                                                    self.radius_fraction)
                beta = _final_radius(radius, r_probe, self.radius_fraction)
            else:
                beta = self.array_beta(dtype)

            def nudged(b):
                s, code, iterations, residual = complex_equilibrium(model, params_c, x_c, cost, b,
                                                                    s_free.astype(cdtype))
                grads = jax.grad(model.energy_fn, argnums=(1, 2), holomorphic=True)(s, params_c, x_c)
                stats = make_stats(dtype, num_failures=(code != 0).astype(jnp.int32),
                                   first_failed=jnp.full((), -1, jnp.int32),
                                   newton_iterations_mean=iterations.astype(dtype), newton_iterations_max=iterations,
                                   max_residual=residual.astype(dtype))
                return grads, (result_from_code(code), stats)
        else:
            beta = self.array_beta(dtype)  # None for the tangent variant

            def nudged(b):
                sol = equilibrium_state(model, params, problem.x, s_free, cost=cost, beta=b, solver=solver,
                                        bounds=bounds, expect=expect)
                return _grads(model, sol.s, params, problem.x), (sol.result, sol.stats)

        (g_params, g_x), result, stats = self.contrast.estimate(nudged, beta, dtype)
        free_ok = free.result == RESULTS.successful
        stats = jax.tree_util.tree_map(lambda a, b: jnp.where(free_ok, b, a), free.stats, stats)
        return GradientResult(params=g_params, loss=jnp.asarray(cost(s_free)).astype(dtype),
                              inputs=g_x, result=first_failure(free.result, result), stats=stats)


def implicit_gradient_result(model, params, cost, problem) -> GradientResult:
    """`jax.grad` of `C(s*)` through the equilibrium solve (implicit function theorem), for the
    parameters and the inputs (traceable)."""

    def loss(prm, x):
        sol = equilibrium_state(model, prm, x, problem.s0, solver=problem.solver, bounds=problem.bounds,
                                expect=problem.expect)
        return jnp.asarray(cost(sol.s)).astype(sol.s.dtype), (sol.result, sol.stats)

    (value, (result, stats)), (g_params, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        params, problem.x)
    return GradientResult(params=g_params, loss=value, inputs=g_x, result=result, stats=stats)


def equilibrium_loss(model: EnergyModel, params: Params, x, cost: Callable, *, s0=None, solver=None, bounds=None,
                     expect: str | None = "minimum") -> Float[Array, ""]:
    """`C(s*)` at the free equilibrium, differentiable by `jax.grad` (implicit function theorem)
    in `params` and `x` (traceable; a failed solve gives NaN rather than raising)."""
    s0 = jnp.zeros((model.num_states,), jnp.asarray(x).dtype) if s0 is None else s0
    sol = equilibrium_state(model, params, x, s0, solver=solver, bounds=bounds, expect=expect)
    value = jnp.asarray(cost(sol.s)).astype(sol.s.dtype)
    return jnp.where(sol.result == RESULTS.successful, value, jnp.nan)


# ------------------------------------------------------------------------------ entry points
def check_holomorphic_cost(cost: Callable, s: Array) -> None:
    """Refuse (eagerly) a cost that is not holomorphic: its complex-step derivative
    `Im C(s + ihv)/h` must equal `∇C·v`."""
    cdtype = _complex_dtype(s.dtype)
    v = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.0, s.shape), s.dtype)
    h = 1e-20
    try:
        value = jnp.asarray(cost(s.astype(cdtype) + jax.lax.complex(jnp.zeros_like(s), h * v)))
    except Exception as err:  # noqa: BLE001  (any failure to evaluate at a complex state)
        raise EstimatorError(f"holomorphic EqProp evaluates the cost at complex states, and it failed there: "
                             f"{type(err).__name__}: {err}") from None
    derivative = jax.jvp(lambda y: jnp.asarray(cost(y)).astype(y.dtype), (s,), (v,))[1]
    step = float(jnp.imag(value)) / h if jnp.iscomplexobj(value) else 0.0
    scale = abs(float(derivative)) + float(jnp.finfo(s.dtype).eps) ** 0.5
    if not abs(step - float(derivative)) <= 1e-3 * scale:
        raise EstimatorError(
            "holomorphic EqProp needs an analytic cost C(s), but this cost is not holomorphic (its complex-step "
            f"derivative {step:.6g} differs from its derivative {float(derivative):.6g}): avoid abs, where, "
            "clip, max, real/imag and norms (write a squared error as d*d, a distance as sqrt(d·d)).")


def _as_equilibrium_estimator(method, beta, variant, points):
    from ._references import BPTT, Implicit  # (lazily: the estimator registry may list this module's estimator)

    if method is None:
        return EquilibriumEqProp(beta=beta, variant=variant, points=points if variant == "holomorphic" else None)
    if isinstance(method, str) and method in ("implicit", "bptt"):
        method = Implicit()
    if isinstance(method, (EquilibriumEqProp, Implicit, BPTT)):
        return method
    raise EstimatorError(f"method must be None (static EqProp with beta and variant), 'implicit', "
                         f"lep.EquilibriumEqProp(...) or lep.Implicit(), got {method!r}.")


def equilibrium_gradient(
    model: EnergyModel,
    params: Params,
    x: Real[ArrayLike, " m"] | None,
    cost: Callable,
    beta: Number | None = None,
    variant: str | AbstractContrast = "centered",
    *,
    points: int | None = None,
    method: Any = None,
    s0: Real[ArrayLike, " n"] | None = None,
    solver: Any = None,
    bounds: Any = None,
    expect: str | None = "minimum",
    return_all: bool = False,
    throw: bool = True,
) -> dict | GradientResult:
    """`dℒ/dθ` (and `dℒ/dx`) for `ℒ = C(s*)` at the free equilibrium, by static EqProp.

    **Arguments:**
    - `model`, `params`, `x`, `s0`, `solver`, `bounds`, `expect`: as in `solve_equilibrium`.
    - `cost`: `cost(s) -> scalar`, any JAX callable (analytic for the holomorphic variant).
    - `beta`, `variant`: `"centered"` (default), `"positive"`, `"negative"`, `"tangent"` (exact,
      forward mode: no β) or `"holomorphic"` (`points` on the circle; `beta=None` takes
      `|β| = R/10` from the estimated radius of convergence, per call); `beta=None` for the
      finite variants is `default_beta(dtype)`.
    - `method`: `None` (EqProp with `beta`, `variant`), an `EquilibriumEqProp`, or `"implicit"` /
      `lep.Implicit()`: the reference, `jax.grad` through the solve (implicit function theorem).
    - `return_all`: return a `GradientResult(params, loss, inputs=dℒ/dx, result, stats)`.
    - `throw`: the failure contract (`ConvergenceError` naming the failed solve).

    **Returns:** a dict shaped like `params`, or a `GradientResult`.

    **Raises:** `EstimatorError` for β = 0, an unknown variant, or the holomorphic variant on a
    non-analytic energy or cost or on boxed states; `InputError` for malformed arguments.
    """
    estimator = _as_equilibrium_estimator(method, beta, variant, points)
    if isinstance(estimator, EquilibriumEqProp):
        estimator.check(model, bounds, cost)
    params, x, s0 = prepare_equilibrium(model, params, x, s0)
    if expect not in EXPECT:
        raise InputError(f"expect must be one of {EXPECT}, got {expect!r}.")
    if bounds is not None:
        bounds = tuple(jnp.asarray(np.broadcast_to(np.asarray(b, float), (model.num_states,)), s0.dtype)
                       for b in bounds)
    problem = EquilibriumProblem(x, s0, _as_solver(solver), bounds, expect)
    estimator = estimator.resolve(s0.dtype)
    if isinstance(estimator, EquilibriumEqProp) and estimator.beta is not None:
        estimator = estimator.with_beta(jnp.asarray(estimator.beta, s0.dtype))  # traced: no recompilation per β
    if isinstance(estimator, EquilibriumEqProp) and estimator.holomorphic:
        free = _free(model, params, problem)
        check_solution(free, free.result, free.stats, what="equilibrium solve (free state)", unit="state",
                       throw=throw)
        check_holomorphic_cost(cost, free.s)
    result = _compute(estimator, model, params, cost, problem)

    def context():
        free = _free(model, params, problem)
        if bool(np.asarray(free.result._value) != 0):
            return " (in the free equilibrium)"
        return (" (in a nudged equilibrium; the free one is fine, so β is probably too large)"
                if isinstance(estimator, EquilibriumEqProp) else "")

    result = check_solution(result, result.result, result.stats, what=f"{estimator.describe()} at equilibrium",
                            unit="state", throw=throw, context=context)
    return result if return_all else result.params


@eqx.filter_jit
def _free(model, params, problem) -> Equilibrium:
    return equilibrium_state(model, params, problem.x, problem.s0, solver=problem.solver, bounds=problem.bounds,
                             expect=problem.expect)


@eqx.filter_jit
def _compute(estimator, model, params, cost, problem):
    if isinstance(estimator, EquilibriumEqProp):
        return estimator.compute(model, params, cost, problem)
    return implicit_gradient_result(model, params, cost, problem)


@eqx.filter_jit
def _radius(model, params, cost, problem, points, fraction):
    free = equilibrium_state(model, params, problem.x, problem.s0, solver=problem.solver, bounds=problem.bounds,
                             expect=problem.expect)
    radius, r_probe, ok = _taylor_radius(model, params, problem.x, cost, jax.lax.stop_gradient(free.s), points,
                                         fraction)
    return radius, r_probe, ok, free


def convergence_radius(model: EnergyModel, params: Params, x: Real[ArrayLike, " m"] | None, cost: Callable, *,
                       points: int | None = None, s0: Real[ArrayLike, " n"] | None = None, solver: Any = None) -> float:
    """The estimated radius of convergence `R` of `β ↦ s^β` around the free equilibrium (eager):
    how far a complex nudge may go before `∂²E + β∂²C` turns singular along the branch.

    **Returns:** `R` (a float; `inf` when the nudged state is affine in β to round-off).

    **Raises:** `EstimatorError` when the energy is not analytic, `ConvergenceError` when the free
    solve or every probe circle fails.
    """
    points = 8 if points is None else points
    EquilibriumEqProp(variant="holomorphic", points=points).check(model, None, cost)
    params, x, s0 = prepare_equilibrium(model, params, x, s0)
    problem = EquilibriumProblem(x, s0, _as_solver(solver), None, "minimum")
    free = _free(model, params, problem)
    check_solution(free, free.result, free.stats, what="equilibrium solve (free state)", unit="state")
    check_holomorphic_cost(cost, free.s)
    radius, _, ok, _ = _radius(model, params, cost, problem, points, 0.1)
    if not bool(ok):
        raise EstimatorError("could not estimate the radius of convergence: every probe circle failed (the complex "
                             "Newton continuation diverged); the nudged equilibrium may not depend analytically on β.")
    return float(radius)

