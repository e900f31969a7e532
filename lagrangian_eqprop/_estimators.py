"""Gradient estimators as objects, and `eqprop_gradient`, the one entry point that runs them.

EqProp estimators (theory §3) contrast free and nudged trajectories of the *same* integrator:

- `Echo` (§3c, the practical one): free pass forward, nudged replays from the reversed final
  momentum (`_echo.py`); memory O(1) in N. Loss `ℒ = Σ_{k=1..N} c_k(q_k)`.
- `FixedEndpoints` (§3a, the thesis' formulation): free and nudged two-point solves with the
  end positions prescribed. Loss `ℒ = Σ_{k=0..N} c_k(q_k)`.
- `Naive` (§3b): the initial-value problem nudged forward in time; biased unless the final
  node's boundary term (forward sensitivities, RTRL cost) is added (`correction=True`).

References on the same footing (`_references.py`): `BPTT`, `Implicit`, `Adjoint`.

Each estimator is an equinox Module with `check(integ)` (refusals, before anything runs) and
`compute(...)` (traceable; it never raises on a failed solve but reports `result` and
`stats`); `eqprop_gradient` validates the problem, compiles the computation once per
structure (`eqx.filter_jit`) and applies the failure contract (`_solution.check_solution`).
The variant of an EqProp estimator is a contrast object (`_contrasts.py`), one class each.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._bvp import boundary_trajectory
from . import _autodiff as autodiff
from ._checks import as_vector, check_num_steps, check_params, finite_or_raise
from ._contrasts import AbstractContrast, Holomorphic, Tangent, as_contrast
from ._costs import check_cost, trajectory_cost
from ._echo import check_echo_exact, echo_gradient, theta_gradient
from ._integrate import as_arrays
from ._solution import RESULTS, GradientResult, check_solution, first_failure
from ._typing import NodeInputs, Number, Params, StateVector
from .errors import EstimatorError

__all__ = [
    "AbstractEqProp",
    "AbstractEstimator",
    "Echo",
    "FixedEndpoints",
    "Naive",
    "Problem",
    "as_estimator",
    "default_beta",
    "eqprop_gradient",
    "make_problem",
    "run_estimator",
]


def default_beta(dtype) -> float:
    """Default nudging strength `ε^{1/3}` of the floating dtype (≈ 6e-6 in float64, 5e-3 in
    float32): it balances the centered estimator's O(β²) bias against its round-off ε/β."""
    return float(jnp.finfo(dtype).eps) ** (1.0 / 3.0)


class Problem(eqx.Module):
    """The data of one gradient problem (validated; traced inside the compiled estimator).

    **Fields:** `kind` (`"initial"` or `"boundary"`, static), `num_steps` (static), `us` (node
    inputs `(N+1, m)`), and `q0`, `v0`, `p0` (initial-value; one of `v0`/`p0` is `None`) or
    `q_start`, `q_end` (boundary-value).
    """

    kind: str = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    us: Any
    q0: Any = None
    v0: Any = None
    p0: Any = None
    q_start: Any = None
    q_end: Any = None

    @property
    def dtype(self):
        return (self.q0 if self.kind == "initial" else self.q_start).dtype

    def initial_momentum(self, integ, params):
        """`(times, p0, p0_fn)`: node times, the initial momentum and, when the velocity was
        given, the Legendre transform `p0_fn(params, q0, v0, u0)` that produced it."""
        times = integ.node_times(self.num_steps, self.dtype)

        def p0_fn(prm, q, v, u):
            return integ.initial_momentum(prm, q, v, times[0], u)

        p0 = self.p0 if self.v0 is None else p0_fn(params, self.q0, self.v0, self.us[0])
        return times, p0, p0_fn


class AbstractEstimator(eqx.Module):
    """A gradient estimator: `check(integ)` refuses what it cannot compute, `compute` runs it."""

    name: ClassVar[str]
    problem_kind: ClassVar[str] = "initial"

    def check(self, integ) -> None:
        """Raise `EstimatorError` when this estimator is not exact for `integ`'s model."""

    def resolve(self, dtype) -> "AbstractEstimator":
        """The estimator with defaults that depend on the dtype filled in (e.g. β)."""
        return self

    def describe(self) -> str:
        return f"{self.name} estimator"

    def compute(self, integ, params, cost, problem: Problem, *, full: bool = False) -> GradientResult:
        """The estimate (traceable); reports failed solves in `result`, never raises. With
        `full`, also the initial-state and input gradients where the estimator provides them."""
        raise NotImplementedError


class AbstractEqProp(AbstractEstimator):
    """An EqProp estimator: a nudging strength `beta` and a `variant` — `"centered"`,
    `"positive"`, `"negative"` (finite contrasts; `beta=None`: `default_beta` of the dtype),
    `"tangent"` (no β: exact by forward mode), `"holomorphic"` (`beta` the radius r of the circle
    of complex nudges, `None`: chosen as R/10 from an estimate of the radius of convergence R;
    `points` K nudges, default 8), or a contrast object."""

    beta: Number | None = None
    variant: str | AbstractContrast = "centered"
    points: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        as_contrast(self.variant)  # an unknown variant is refused at construction
        if self.points is not None and self.variant != "holomorphic":
            raise EstimatorError("points is the number of complex nudges of the holomorphic variant; give "
                                 "variant='holomorphic' with it.")
        if self.beta is not None and not isinstance(self.beta, jax.core.Tracer):
            b = np.asarray(self.beta)
            if b.shape != () or np.iscomplexobj(b) or not np.isfinite(b) or b == 0:
                raise EstimatorError(
                    f"beta must be a non-zero finite real number, got {self.beta!r}: the estimator divides "
                    "by β (β = 0 gives no nudge, so no gradient information)."
                )

    @property
    def contrast(self) -> AbstractContrast:
        if self.variant == "holomorphic":
            return Holomorphic(8 if self.points is None else self.points)
        return as_contrast(self.variant)

    @property
    def automatic_beta(self) -> bool:
        """Whether β is chosen per problem (the holomorphic radius) or not needed (tangent)."""
        return isinstance(self.contrast, (Holomorphic, Tangent))

    def resolve(self, dtype):
        if self.beta is not None or self.automatic_beta:
            return self
        return eqx.tree_at(lambda e: e.beta, self, default_beta(dtype), is_leaf=lambda x: x is None)

    def check_analytic(self, integ, cost) -> None:
        """Refuse the holomorphic variant where the passes cannot continue to complex states."""
        if not isinstance(self.contrast, Holomorphic):
            return
        if integ.model.analytic is False:
            raise EstimatorError(
                f"the holomorphic {self.name} estimator needs a Lagrangian that continues analytically to complex "
                "states; this one uses a non-analytic function (Abs, sign, Piecewise, Min/Max, floor, re/im, ...). "
                "Use variant='tangent' (exact, forward mode) or 'centered'.")
        if getattr(cost, "analytic", None) is False:
            raise EstimatorError(f"the holomorphic {self.name} estimator needs a cost that continues analytically to "
                                 f"complex states; {type(cost).__name__} does not. Use variant='tangent' or "
                                 "'centered'.")

    def array_beta(self, dtype):
        """β as a 0-d array of `dtype`, or None where the contrast chooses it (tangent, holomorphic)."""
        return None if self.beta is None else jnp.asarray(self.beta, dtype)

    def with_beta(self, beta) -> "AbstractEqProp":
        """The same estimator with another nudging strength."""
        return eqx.tree_at(lambda e: e.beta, self, beta, is_leaf=lambda x: x is None)

    def describe(self) -> str:
        if isinstance(self.contrast, Tangent):
            return f"{self.name} estimator (tangent)"
        if self.beta is None:
            beta = "radius from the estimated R" if self.automatic_beta else "default β"
        elif isinstance(self.beta, jax.core.Tracer):
            beta = "traced β"
        else:
            beta = f"β={float(np.asarray(self.beta)):.3g}"
        return f"{self.name} estimator ({self.contrast.name}, {beta})"


class Echo(AbstractEqProp):
    """Time-dependent EqProp by the echo (theory §3c): exact as β → 0 for time-reversible
    systems, memory O(1) in N; also returns `dℒ/dq0`, `dℒ/dv0` (or `dℒ/dp0`), `dℒ/du_k`."""

    name: ClassVar[str] = "echo"

    def check(self, integ):
        check_echo_exact(integ)

    def compute(self, integ, params, cost, problem, *, full=False):
        times, p0, p0_fn = problem.initial_momentum(integ, params)
        return echo_gradient(integ, params, cost, self.contrast, self.array_beta(problem.dtype), q0=problem.q0, v0=problem.v0, p0=p0,
                             times=times, us=problem.us, p0_fn=p0_fn,
                             with_inputs=full and integ.model.num_inputs > 0)


def _check_variational(integ, name: str) -> None:
    # Every estimator rests on dℒ/dθ = d/dβ ∂_θ S_d(θ; q^β) (theory §2–3), which needs the
    # trajectory to be a stationary point of an action; a non-variational force breaks it.
    if integ.model.force_fn is not None:
        raise EstimatorError(
            f"method={name!r} is not exact for this model: it has a non-variational "
            "Lagrange–d'Alembert force, so the trajectory is not a stationary point of the discrete "
            "action and the EqProp contrast is biased. Model dissipation variationally (e.g. a "
            "Caldirola–Kanai Lagrangian e^{γt}(T − V)) or use bptt_gradient."
        )


def _action_gradient(integ, params, q, times, us):
    """`Σ_k ∂_θ L_d(θ; q_k, q_{k+1})` along a stored trajectory `q (N+1, n)`."""
    grads = jax.vmap(lambda a, b, ta, tb, ua, ub: theta_gradient(integ, params, a, b, (ta, ua), (tb, ub)))(
        q[:-1], q[1:], times[:-1], times[1:], us[:-1], us[1:])
    return jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0), grads)


class FixedEndpoints(AbstractEqProp):
    """Fixed-endpoint EqProp (theory §3a): free and nudged two-point solves (nudged ones
    warm-started from the free one); exact boundary term `B = 0`. Loss `Σ_{k=0..N} c_k`."""

    name: ClassVar[str] = "bvp"
    problem_kind: ClassVar[str] = "boundary"

    def check(self, integ):
        _check_variational(integ, "bvp")
        if isinstance(self.contrast, Holomorphic):
            raise EstimatorError("the fixed-endpoint estimator has no holomorphic variant (its two-point Newton solve "
                                 "is real); use variant='tangent', which is exact, or the holomorphic echo.")
        if integ.model.constrained:
            raise EstimatorError("the fixed-endpoint estimator does not support constrained models yet (its two-point "
                                 "solve would need multipliers at every node); use the echo.")

    def compute(self, integ, params, cost, problem, *, full=False):
        us = problem.us
        free = boundary_trajectory(integ, params, problem.q_start, problem.q_end, us)
        guess = free.q[1:-1]

        def nudged(b):
            traj = boundary_trajectory(integ, params, problem.q_start, problem.q_end, us, cost=cost, beta=b,
                                       interior_guess=guess)
            return _action_gradient(integ, params, traj.q, free.t, us), (traj.result, traj.stats)

        est, result, stats = self.contrast.estimate(nudged, self.array_beta(problem.dtype), problem.dtype)
        free_ok = free.result == RESULTS.successful
        stats = jax.tree_util.tree_map(lambda a, b: jnp.where(free_ok, b, a), free.stats, stats)
        return GradientResult(params=est, loss=trajectory_cost(cost, free.q, start=0),
                              result=first_failure(free.result, result), stats=stats)


class Naive(AbstractEqProp):
    """Initial-value nudging forward in time (theory §3b) — biased unless `correction=True`,
    which adds the final node's boundary term from forward sensitivities (RTRL cost):

        B = (∂_β p⁺_N + ∇c_N)·d_θ q_N − (d_θ p⁺_N)·∂_β q_N.
    """

    name: ClassVar[str] = "naive"
    correction: bool = eqx.field(static=True, default=False)

    def check(self, integ):
        _check_variational(integ, "naive")

    def compute(self, integ, params, cost, problem, *, full=False):
        num_steps = problem.num_steps
        times, _, p0_fn = problem.initial_momentum(integ, params)
        us, q0, v0 = problem.us, problem.q0, problem.v0
        grad_cost = autodiff.grad(cost, argnums=1)

        def run(prm, b):
            # A complex β (the holomorphic contrast) makes the pass complex from its first node.
            dtype = jnp.result_type(q0, b)
            p_init = problem.p0 if v0 is None else p0_fn(prm, q0, v0, us[0])

            def kick(j, q):
                return jnp.where(j + 1 <= num_steps - 1, b * grad_cost(j + 1, q), jnp.zeros_like(q))

            def accumulate(j, q_a, q_b, node_a, node_b, *lam):
                g = theta_gradient(integ, prm, q_a, q_b, node_a, node_b)
                if lam:  # the augmented action L_d − λ_a·φ(q_a)
                    g_phi = autodiff.grad(
                        lambda p_: jnp.dot(lam[0], integ.model.constraint(q_a, node_a[0], p_, node_a[1])))(prm)
                    g = jax.tree_util.tree_map(jnp.subtract, g, g_phi)
                return g, cost(j + 1, q_b)

            acc0 = (jax.tree_util.tree_map(lambda x: jnp.zeros(jnp.shape(x), dtype), prm), jnp.zeros((), dtype))
            out = integ.rollout(prm, q0.astype(dtype), p_init.astype(dtype), times, us, kick=kick,
                                accumulate=accumulate, accumulator_init=acc0, save_trajectory=False, v0_hint=v0)
            values = {"G": out.accumulated[0], "q_n": out.q, "p_n": out.p, "loss": out.accumulated[1]}
            return values, (out.result, out.stats)

        est, result, stats = self.contrast.estimate(lambda b: run(params, b), self.array_beta(q0.dtype), q0.dtype)
        grads = est["G"]
        zero = jnp.zeros((), q0.dtype)
        if self.correction:
            def final(prm):
                values, status = run(prm, zero)
                return (values["q_n"], values["p_n"]), (values, status)

            # Forward sensitivities d_θ q_N, d_θ p_N (RTRL cost); the free run comes along as aux.
            (dq_dtheta, dp_dtheta), (free, (free_result, _)) = jax.jacfwd(final, has_aux=True)(params)
            weight_q = est["p_n"] + grad_cost(num_steps, free["q_n"])

            def boundary(dq, dp):
                return jnp.tensordot(weight_q, dq, axes=1) - jnp.tensordot(est["q_n"], dp, axes=1)

            grads = jax.tree_util.tree_map(jnp.add, grads, jax.tree_util.tree_map(boundary, dq_dtheta, dp_dtheta))
        else:
            free, (free_result, _) = run(params, zero)
        return GradientResult(params=grads, loss=free["loss"], result=first_failure(free_result, result),
                              stats=stats)


# ------------------------------------------------------------------------------ running
_WARNED_FLOAT32: set = set()


def _warn_low_precision(estimator, dtype) -> None:
    """Warn once per estimator kind when a finite-β contrast runs below float64."""
    if (not isinstance(estimator, AbstractEqProp) or jnp.finfo(dtype).bits >= 64
            or not estimator.contrast.finite_difference):  # tangent/holomorphic keep their digits
        return
    if estimator.name in _WARNED_FLOAT32:
        return
    _WARNED_FLOAT32.add(estimator.name)
    warnings.warn(
        f"{estimator.describe()} runs in {jnp.dtype(dtype).name}: a finite-β contrast balances an O(β²) "
        "bias against ε/β round-off and keeps only ~2–3 correct digits in float32 (measured: 4% error on "
        "the README quickstart). Enable float64 (jax.config.update('jax_enable_x64', True)) or use "
        "the exact variants (Echo(variant='tangent') or 'holomorphic') for digit-level gradients.",
        stacklevel=4,
    )


def as_estimator(method, beta=None, variant=None, correction=None, points=None) -> AbstractEstimator:
    """An estimator object from a name (`"echo"`, `"bvp"`, `"naive"`, `"bptt"`, `"implicit"`,
    `"adjoint"`) and the EqProp settings, or an estimator object (settings must then be unset)."""
    from ._references import ESTIMATORS

    if isinstance(method, AbstractEstimator):
        given = {k: v for k, v in dict(beta=beta, variant=variant, correction=correction, points=points).items()
                 if v is not None and not (k == "variant" and v == "centered") and not (k == "correction" and not v)}
        if given:
            raise EstimatorError(
                f"{', '.join(given)} given both as argument(s) and inside the estimator object "
                f"{type(method).__name__}; set them on the object, e.g. lep.Echo(beta=1e-6, variant='centered')."
            )
        return method
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise EstimatorError(f"Unknown method {method!r}; choose one of {', '.join(ESTIMATORS)} "
                             "or an estimator object (lep.Echo(), lep.FixedEndpoints(), ...).")
    cls = ESTIMATORS[method]
    if issubclass(cls, AbstractEqProp):
        kwargs = dict(beta=beta, variant="centered" if variant is None else variant, points=points)
        if cls is Naive:
            kwargs["correction"] = bool(correction)
        return cls(**kwargs)
    if beta is not None or (variant not in (None, "centered")):
        raise EstimatorError(f"method={method!r} is not an EqProp estimator: it takes no beta or variant.")
    return cls()


def make_problem(integ, estimator, params, cost, *, q0=None, v0=None, p0=None, q_start=None, q_end=None,
                 num_steps, inputs=None) -> tuple[dict, Problem]:
    """Validated `(params, Problem)` for `estimator` (eager checks; `EstimatorError` or
    `InputError` naming what is missing or malformed)."""
    name = estimator.name
    if estimator.problem_kind == "boundary":
        missing = [k for k, v in dict(q_start=q_start, q_end=q_end).items() if v is None]
        if missing:
            raise EstimatorError(f"method={name!r} needs {', '.join(missing)}.")
        model = integ.model
        check_params(model, params)
        num_steps = check_num_steps(num_steps)
        q_start = as_vector(q_start, "q_start", model)
        q_end = as_vector(q_end, "q_end", model, q_start.dtype)
        us = integ.node_inputs(num_steps, inputs, q_start.dtype)
        params = as_arrays(params)
        finite_or_raise({"q_start": q_start, "q_end": q_end, "inputs": us,
                         **{f"params[{k!r}]": v for k, v in params.items()}})
        problem = Problem("boundary", num_steps, us, q_start=q_start, q_end=q_end)
    else:
        if q0 is None:
            raise EstimatorError(f"method={name!r} needs q0.")
        if (v0 is None) == (p0 is None):
            raise EstimatorError(f"method={name!r} needs exactly one of v0 (initial velocity) or p0 (initial momentum).")
        params, q0, v0, p0, us, num_steps = integ.prepare(params, q0, v0, p0, num_steps, inputs)
        problem = Problem("initial", num_steps, us, q0=q0, v0=v0, p0=p0)
    check_cost(cost, integ.model.num_dof, problem.num_steps)
    return params, problem


@eqx.filter_jit
def _compute(estimator, integ, params, cost, problem, full):
    return estimator.compute(integ, params, cost, problem, full=full)


def run_estimator(estimator, integ, params, cost, *, throw: bool = True, full: bool = False,
                  **problem_data) -> GradientResult:
    """Validate, compute (compiled once per structure) and apply the failure contract."""
    estimator.check(integ)
    if isinstance(estimator, AbstractEqProp):
        estimator.check_analytic(integ, cost)
    params, problem = make_problem(integ, estimator, params, cost, **problem_data)
    estimator = estimator.resolve(problem.dtype)
    _warn_low_precision(estimator, problem.dtype)
    result = _compute(estimator, integ, params, cost, problem, full)

    def context():
        if problem.kind != "initial":
            return ""
        free = integ.simulate(params, problem.q0, problem.v0, problem.num_steps, problem.us, p0=problem.p0,
                              throw=False)
        if bool(np.asarray(free.result._value) != 0):
            first = int(np.asarray(free.stats.first_failed))
            return (f" (in the free run{f', which fails at step {first}' if first >= 0 else ''})"
                    + integ.diagnose_step_size(params, problem.q0, problem.us))
        return (" (in a nudged pass; the free run is fine, so β is probably too large for this problem)"
                if isinstance(estimator, AbstractEqProp) else "")


    what = f"{estimator.describe()} on {integ.describe()}"
    return check_solution(result, result.result, result.stats, what=what, throw=throw, context=context,
                          unit="node" if problem.kind == "boundary" else "step")


def eqprop_gradient(
    integ,
    params: Params,
    cost: Callable,
    method: str | AbstractEstimator = "echo",
    beta: Number | None = None,
    variant: str | AbstractContrast | None = None,
    *,
    q0: StateVector | None = None,
    v0: StateVector | None = None,
    p0: StateVector | None = None,
    q_start: StateVector | None = None,
    q_end: StateVector | None = None,
    num_steps: int,
    inputs: NodeInputs = None,
    return_all: bool = False,
    correction: bool | None = None,
    throw: bool = True,
) -> dict | GradientResult:
    """A gradient estimate `dℒ/dθ` by an estimator object (or its name).

    **Arguments:**
    - `integ`: the `VariationalIntegrator` (the discrete scheme the gradient is exact for).
    - `params`: `{name: array}`.
    - `cost`: `cost(k, q) -> scalar` for node `k` (e.g. `TrackingCost`; an equinox Module
      keeps its data as traced leaves, a plain closure is compiled with its data baked in).
    - `method`: an estimator object — `lep.Echo(beta, variant)`, `lep.FixedEndpoints(...)`,
      `lep.Naive(..., correction=False)`, `lep.BPTT()`, `lep.Implicit()`, `lep.Adjoint()` — or
      the shorthand `"echo"`, `"bvp"`, `"naive"`, `"bptt"`, `"implicit"`, `"adjoint"`.
      Initial-value estimators need `q0` and `v0` or `p0` (loss `Σ_{k=1..N} c_k`);
      `"bvp"`/`"implicit"` need `q_start`, `q_end` (loss `Σ_{k=0..N} c_k`).
    - `beta`, `variant`, `correction`: EqProp settings for a shorthand `method` (`beta=None`:
      `default_beta(dtype)`; variant `"centered"` (O(β²)), `"positive"`, `"negative"` (O(β)));
      give them inside the object when `method` is an object.
    - `num_steps`, `inputs`: as in `VariationalIntegrator.simulate`.
    - `return_all`: return a `GradientResult` (loss, initial-state and input gradients where the
      estimator provides them, `result`, `stats`) instead of the parameter gradient alone.
    - `throw`: on a failed solve raise `ConvergenceError` naming the operation, the step and the
      likely cause (under `jit`, the same cause as a runtime error); with `False`, read
      `result` (`return_all=True`).

    Compiled once per integrator, estimator, cost structure and shapes (`eqx.filter_jit`), so a
    Python training loop does not re-trace.

    **Returns:** a dict shaped like `params`, or a `GradientResult` when `return_all`.
    """
    estimator = as_estimator(method, beta, variant, correction)
    result = run_estimator(estimator, integ, params, cost, throw=throw, full=return_all, q0=q0, v0=v0, p0=p0,
                           q_start=q_start, q_end=q_end, num_steps=num_steps, inputs=inputs)
    return result if return_all else result.params

