"""Time-dependent Equilibrium Propagation on the discrete action (theory §3).

Three estimators of `dℒ/dθ`, all contrasting a free and nudged trajectories of the *same*
variational integrator:

- `"echo"` (theory §3c, the practical one): free pass forward keeping only the final node,
  then two echo passes at `±β` (run together with `vmap`) from the reversed final momentum,
  inputs fed backwards, with momentum kicks `β∇c_k`; `∂_θ L_d` is accumulated on the fly, so
  memory does not grow with the number of steps. Loss `ℒ = Σ_{k=1..N} c_k(q_k)`.
- `"bvp"` (theory §3a, the thesis' formulation): fixed endpoints; free and nudged two-point
  solves. Loss `ℒ = Σ_{k=0..N} c_k(q_k)`.
- `"naive"` (theory §3b): initial-value problem nudged forward in time. Biased unless the
  boundary term at the final node (which needs forward sensitivities, RTRL cost) is added.

Variants: `"centered"` (bias O(β²)), `"positive"` / `"negative"` (one-sided, bias O(β)).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import EstimatorError
from .integrate import VariationalIntegrator, as_arrays, check_status
from .model import Params

METHODS = ("echo", "bvp", "naive")
VARIANTS = {"centered": (1.0, -1.0), "positive": (1.0, 0.0), "negative": (0.0, -1.0)}


class GradientResult(eqx.Module):
    """Everything an estimator returns when asked for more than the parameter gradient.

    **Fields** (`None` where not applicable):
    - `params`: `dℒ/dθ`, a dict shaped like `params`.
    - `loss`: `ℒ` on the free trajectory.
    - `q0`: `dℒ/dq_0` (with `v0` or `p0` held fixed, whichever was given), shape `(n,)`.
    - `v0` / `p0`: gradient w.r.t. the given initial velocity / momentum, shape `(n,)`.
    - `inputs`: `dℒ/du_k` for the node-sampled inputs, shape `(N+1, m)`.
    - `q_start`, `q_end`: for the BVP estimator, gradients w.r.t. the fixed endpoints are not
      estimated (they would need the endpoint momenta's sensitivities) and stay `None`.
    """

    params: Any
    loss: Any = None
    q0: Any = None
    v0: Any = None
    p0: Any = None
    inputs: Any = None


# --------------------------------------------------------------------------- helpers
def validate_beta(beta) -> None:
    """`β` must be a non-zero finite number (checked when concrete)."""
    if isinstance(beta, jax.core.Tracer):
        return
    b = np.asarray(beta)
    if b.shape != ():
        raise EstimatorError(f"beta must be a scalar, got shape {b.shape}.")
    if not np.isfinite(b) or b == 0:
        raise EstimatorError(
            f"beta must be a non-zero finite number, got {beta!r}: the estimator divides by β "
            "(β = 0 gives no nudge, so no gradient information)."
        )


def nudge_pair(beta, variant: str):
    """The two nudging strengths `(β₁, β₂)` of a variant, as an array of shape `(2,)`.

    The estimate is `(G(β₁) − G(β₂)) / (β₁ − β₂)`.
    """
    if variant not in VARIANTS:
        raise EstimatorError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    s1, s2 = VARIANTS[variant]
    return jnp.stack([s1 * jnp.asarray(beta), s2 * jnp.asarray(beta)])


def _contrast(values, betas):
    """`(X(β₁) − X(β₂)) / (β₁ − β₂)` leafwise, for stacked values of leading axis 2."""
    denom = betas[0] - betas[1]
    return jax.tree_util.tree_map(lambda x: (x[0] - x[1]) / denom, values)


def _zeros_like_params(params):
    return jax.tree_util.tree_map(lambda x: jnp.zeros_like(jnp.asarray(x, dtype=jnp.result_type(float))), params)


def check_echo_exact(integ: VariationalIntegrator) -> None:
    """Refuse (with `EstimatorError`) systems where the echo does not retrace the free run."""
    model = integ.model
    if model.force_fn is not None:
        raise EstimatorError(
            "The echo estimator is not exact for this model: it has a non-variational "
            "Lagrange–d'Alembert force, so momentum reversal does not retrace the free "
            "trajectory. Model dissipation variationally (e.g. a Caldirola–Kanai Lagrangian "
            "e^{γt}(T − V)) or use bptt_gradient."
        )
    if not model.time_reversible:
        raise EstimatorError(
            "The echo estimator is not exact for this model: its Lagrangian is not even in "
            "the velocities (L(q, −v, t) ≠ L(q, v, t), e.g. a magnetic or gyroscopic term), so "
            "the discrete Lagrangian is not time-reversible. Use method='bvp' or bptt_gradient."
        )


def check_variational(integ: VariationalIntegrator, method: str) -> None:
    """Refuse (with `EstimatorError`) models with a Lagrange–d'Alembert force for `method`.

    Every estimator rests on `dℒ/dθ = d/dβ ∂_θ S_d(θ; q^β)` (theory §2–3), which needs the
    trajectory to be a stationary point of an action; a non-variational force breaks it, so the
    contrast is silently wrong (not merely noisy).
    """
    if integ.model.force_fn is not None:
        raise EstimatorError(
            f"method={method!r} is not exact for this model: it has a non-variational "
            "Lagrange–d'Alembert force, so the trajectory is not a stationary point of the discrete "
            "action and the EqProp contrast is biased. Model dissipation variationally (e.g. a "
            "Caldirola–Kanai Lagrangian e^{γt}(T − V)) or use bptt_gradient."
        )


def validate_variant(variant) -> None:
    """`variant` must be one of `VARIANTS` (checked before any simulation runs)."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise EstimatorError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")


def _node_data(integ, num_steps, inputs, dtype):
    return integ.node_times(num_steps, dtype), integ.node_inputs(num_steps, inputs, dtype)


def _initial_data(integ, params, q0, v0, p0, num_steps, inputs):
    """Validated `(q0, v0_or_None, p0, times, us, p0_fn)`; `p0_fn(params, q0, v0, u0)` when v0 is given."""
    q0, v0, p0 = integ._initial_state(params, q0, v0, p0, num_steps, inputs)
    times, us = _node_data(integ, num_steps, inputs, q0.dtype)

    def p0_fn(prm, q, v, u):
        return integ.initial_momentum(prm, q, v, times[0], u)

    if p0 is None:
        p0 = p0_fn(params, q0, v0, us[0])
    return q0, v0, p0, times, us, p0_fn


def _theta_grad_ld(integ, params, q_a, q_b, node_a, node_b):
    """`∂_θ L_d(θ; q_a, q_b)` (a dict shaped like params)."""
    return jax.grad(integ.discrete, argnums=0)(params, q_a, q_b, node_a, node_b)


# --------------------------------------------------------------------------- echo
def free_pass(integ, params, cost, q0, p0, times, us, v0=None, throw=True):
    """Free forward pass keeping only the final node; also sums the loss `Σ_{k≥1} c_k(q_k)`.

    **Returns:** `(q_N, p_N, loss)`.
    """

    def accumulate(j, q_a, q_b, node_a, node_b):
        return cost(j + 1, q_b)

    q_n, p_n, loss, status, _, _ = integ.rollout(
        params, q0, p0, times, us, accumulate=accumulate,
        accumulator_init=jnp.zeros((), q0.dtype), save_trajectory=False, v0_hint=v0,
    )
    q_n, p_n, loss = check_status((q_n, p_n, loss), status, "echo estimator, free pass", throw)
    return q_n, p_n, loss


def echo_pass(
    integ: VariationalIntegrator,
    params: Params,
    cost,
    beta,
    q_final,
    p_final,
    times,
    us,
    *,
    with_inputs: bool = False,
    save_trajectory: bool = False,
):
    """One echo pass at nudging strength `beta` (theory §3c, steps 2–3).

    Starts at `Q_0 = q_N`, `P_0 = −p⁺_N + β∇c_N(q_N)`, steps with node data reversed and kicks
    `P_{j+1} += β∇c_{N−1−j}(Q_{j+1})` for `j ≤ N−2`, and accumulates
    `G(β) = Σ_j ∂_θ L_d(θ; Q_{j+1}, Q_j)` in the forward-time orientation.

    **Returns:** a dict with `G` (shaped like params), `q_end`, `p_end` (`Q_N`, `P_N`),
    `G_inputs` (`Σ ∂L_d/∂u_k`, shape `(N+1, m)`, when `with_inputs`), `status`, and
    `q`, `p` (`(N, n)`, the echo's nodes 1..N in echo order) when `save_trajectory`.
    """
    num_steps = times.shape[0] - 1
    rev_t, rev_u = times[::-1], us[::-1]
    grad_cost = jax.grad(cost, argnums=1)
    disc = integ.discrete
    p_start = -p_final + beta * grad_cost(num_steps, q_final)

    def kick(j, q):
        k = num_steps - 1 - j
        return jnp.where(j <= num_steps - 2, beta * grad_cost(k, q), jnp.zeros_like(q))

    def accumulate(j, q_a, q_b, node_a, node_b):
        # The echo step Q_j → Q_{j+1} is the forward interval (Q_{j+1} at node N−1−j,
        # Q_j at node N−j).
        if not with_inputs:
            return _theta_grad_ld(integ, params, q_b, q_a, node_b, node_a), None
        g_theta, g_node_b, g_node_a = jax.grad(disc, argnums=(0, 3, 4))(params, q_b, q_a, node_b, node_a)
        g_u = jnp.zeros_like(us)
        g_u = g_u.at[num_steps - 1 - j].add(g_node_b[1]).at[num_steps - j].add(g_node_a[1])
        return g_theta, g_u

    acc0 = (_zeros_like_params(params), jnp.zeros_like(us) if with_inputs else None)
    q_end, p_end, (g, g_u), status, qs, ps = integ.rollout(
        params, q_final, p_start, rev_t, rev_u, kick=kick, accumulate=accumulate,
        accumulator_init=acc0, save_trajectory=save_trajectory,
    )
    out = {"G": g, "q_end": q_end, "p_end": p_end, "status": status}
    if with_inputs:
        out["G_inputs"] = g_u
    if save_trajectory:
        out["q"], out["p"] = qs, ps
    return out


def echo_trajectory(integ, params, cost, beta, *, q0, v0=None, p0=None, num_steps, inputs=None):
    """Free trajectory and the echo trajectory at `beta`, both in forward-time order.

    For diagnostics and tests: at `β = 0` the echo retraces the free run. **Returns:**
    `(free: Trajectory, echo_q: (N+1, n))` where `echo_q[k]` is the echo's position at node k.
    """
    check_echo_exact(integ)
    q0, v0, p0, times, us, _ = _initial_data(integ, params, q0, v0, p0, num_steps, inputs)
    free = integ.simulate(params, q0, None, num_steps, inputs, p0=p0)
    out = echo_pass(integ, params, cost, jnp.asarray(beta, q0.dtype), free.q[-1], free.p[-1], times, us,
                    save_trajectory=True)
    check_status(out["q_end"], out["status"], "echo pass", True)
    echo_q = jnp.concatenate([free.q[-1][None], out["q"]], axis=0)[::-1]
    return free, echo_q


def echo_estimate(
    integ: VariationalIntegrator,
    params: Params,
    cost,
    beta,
    variant: str = "centered",
    *,
    q0,
    v0=None,
    p0=None,
    num_steps: int,
    inputs=None,
    with_inputs: bool = False,
    throw: bool = True,
) -> GradientResult:
    """The echo estimator (theory §3c) with the initial-state and input gradients.

    See `eqprop_gradient` for the arguments. The two echo passes run together under `vmap`.
    """
    check_echo_exact(integ)
    validate_beta(beta)
    validate_variant(variant)
    given_velocity = v0 is not None
    q0, v0, p0, times, us, p0_fn = _initial_data(integ, params, q0, v0, p0, num_steps, inputs)
    q_n, p_n, loss = free_pass(integ, params, cost, q0, p0, times, us, v0=v0, throw=throw)
    betas = nudge_pair(beta, variant).astype(q0.dtype)
    passes = jax.vmap(
        lambda b: echo_pass(integ, params, cost, b, q_n, p_n, times, us, with_inputs=with_inputs)
    )(betas)
    statuses = passes.pop("status")
    status = jax.tree_util.tree_map(lambda x: jnp.max(x), statuses)
    passes = check_status(passes, status, "echo estimator, echo pass", throw)
    est = _contrast(passes, betas)
    grad_params = est["G"]
    # Initial-state gradients come for free: Q_N responds like dℒ/dp_0, P_N like dℒ/dq_0.
    grad_p0 = est["q_end"]
    grad_q0 = est["p_end"]
    grad_inputs = est.get("G_inputs")
    grad_v0 = None
    if given_velocity:
        # p_0 = ∂L/∂v(q_0, v_0; θ, u_0) depends on θ (e.g. trained masses), q_0 and v_0.
        _, pullback = jax.vjp(p0_fn, params, q0, v0, us[0])
        d_params, d_q0, d_v0, d_u0 = pullback(grad_p0)
        grad_params = jax.tree_util.tree_map(jnp.add, grad_params, d_params)
        grad_q0 = grad_q0 + d_q0
        grad_v0 = d_v0
        if grad_inputs is not None:
            grad_inputs = grad_inputs.at[0].add(d_u0)
    return GradientResult(
        params=grad_params, loss=loss, q0=grad_q0,
        v0=grad_v0, p0=None if given_velocity else grad_p0, inputs=grad_inputs,
    )


# ---------------------------------------------------------------------------- bvp
def bvp_estimate(
    integ, params, cost, beta, variant="centered", *, q_start, q_end, num_steps, inputs=None, throw=True
) -> GradientResult:
    """The fixed-endpoint estimator (theory §3a): exact `B = 0`, free and nudged BVP solves.

    Nudged solves are warm-started from the free one. Loss `Σ_{k=0..N} c_k(q_k)`.
    """
    check_variational(integ, "bvp")
    validate_beta(beta)
    validate_variant(variant)
    from .costs import trajectory_cost

    free = integ.solve_bvp(params, q_start, q_end, num_steps, inputs, throw=throw)
    times, us = _node_data(integ, num_steps, inputs, free.q.dtype)
    betas = nudge_pair(beta, variant).astype(free.q.dtype)

    def contrast_term(q):
        grads = jax.vmap(lambda a, b, ta, tb, ua, ub: _theta_grad_ld(integ, params, a, b, (ta, ua), (tb, ub)))(
            q[:-1], q[1:], times[:-1], times[1:], us[:-1], us[1:]
        )
        return jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0), grads)

    terms = []
    for b in (betas[0], betas[1]):
        if isinstance(b, jax.core.Tracer) or float(b) != 0.0:
            traj = integ.solve_bvp(params, q_start, q_end, num_steps, inputs, cost=cost, beta=b,
                                   q_guess=free.q, throw=throw)
        else:
            traj = free
        terms.append(contrast_term(traj.q))
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), terms[0], terms[1])
    return GradientResult(params=_contrast(stacked, betas), loss=trajectory_cost(cost, free.q, start=0))


# -------------------------------------------------------------------------- naive
def naive_estimate(
    integ, params, cost, beta, variant="centered", *, q0, v0=None, p0=None, num_steps, inputs=None,
    correction: bool = False, throw: bool = True,
) -> GradientResult:
    """Initial-value nudging forward in time (theory §3b) — biased without `correction`.

    Kicks `p_k += β∇c_k(q_k)` for `k = 1..N−1` while integrating forward; contrast
    `Σ_k ∂_θ L_d(q_k, q_{k+1})`. With `correction=True` the boundary term of the final node,

        B = (∂_β p⁺_N + ∇c_N)·d_θ q_N − (d_θ p⁺_N)·∂_β q_N,

    is added; it needs the forward sensitivities `d_θ q_N`, `d_θ p_N` (forward-mode through the
    whole trajectory, RTRL cost) — which is exactly why the echo exists.
    """
    check_variational(integ, "naive")
    validate_beta(beta)
    validate_variant(variant)
    q0, v0, p0_given, times, us, p0_fn = _initial_data(integ, params, q0, v0, p0, num_steps, inputs)
    grad_cost = jax.grad(cost, argnums=1)
    betas = nudge_pair(beta, variant).astype(q0.dtype)

    def nudged_run(prm, b):
        p_init = p0_given if v0 is None else p0_fn(prm, q0, v0, us[0])

        def kick(j, q):
            return jnp.where(j + 1 <= num_steps - 1, b * grad_cost(j + 1, q), jnp.zeros_like(q))

        def accumulate(j, q_a, q_b, node_a, node_b):
            return _theta_grad_ld(integ, prm, q_a, q_b, node_a, node_b), cost(j + 1, q_b)

        acc0 = (_zeros_like_params(prm), jnp.zeros((), q0.dtype))
        q_n, p_n, (g, loss), status, _, _ = integ.rollout(
            prm, q0, p_init, times, us, kick=kick, accumulate=accumulate, accumulator_init=acc0,
            save_trajectory=False, v0_hint=v0,
        )
        return {"G": g, "q_n": q_n, "p_n": p_n, "loss": loss, "status": status}

    runs = jax.vmap(lambda b: nudged_run(params, b))(betas)
    status = jax.tree_util.tree_map(jnp.max, runs.pop("status"))
    runs = check_status(runs, status, "naive estimator", throw)
    runs.pop("loss")  # ℒ is read from the free run below
    est = _contrast(runs, betas)
    grads = est["G"]
    zero = jnp.zeros((), q0.dtype)
    if correction:
        def final(prm):
            run = nudged_run(prm, zero)
            return (run["q_n"], run["p_n"]), run

        # Forward sensitivities d_θ q_N, d_θ p_N (RTRL cost); the free run comes along as aux.
        (dq_dtheta, dp_dtheta), free = jax.jacfwd(final, has_aux=True)(params)
        dbeta_q, dbeta_p = est["q_n"], est["p_n"]
        weight_q = dbeta_p + grad_cost(num_steps, free["q_n"])

        def boundary(dq, dp):
            return jnp.tensordot(weight_q, dq, axes=1) - jnp.tensordot(dbeta_q, dp, axes=1)

        grads = jax.tree_util.tree_map(jnp.add, grads, jax.tree_util.tree_map(boundary, dq_dtheta, dp_dtheta))
    else:
        free = nudged_run(params, zero)
    return GradientResult(params=grads, loss=free["loss"])


# ------------------------------------------------------------------------ public
def default_beta(dtype) -> float:
    """Default nudging strength `ε^{1/3}` of the floating dtype (≈ 6e-6 in float64, 5e-3 in
    float32): it balances the centered estimator's O(β²) bias against its round-off ε/β."""
    return float(jnp.finfo(dtype).eps) ** (1.0 / 3.0)


def eqprop_gradient(
    integ: VariationalIntegrator,
    params: Params,
    cost,
    method: str = "echo",
    beta: float | None = None,
    variant: str = "centered",
    *,
    q0=None,
    v0=None,
    p0=None,
    q_start=None,
    q_end=None,
    num_steps: int,
    inputs=None,
    return_all: bool = False,
    correction: bool = False,
    throw: bool = True,
):
    """EqProp estimate of the loss gradient `dℒ/dθ` from free and nudged trajectories.

    **Arguments:**
    - `integ`: the `VariationalIntegrator` (the discrete scheme the gradient is exact for).
    - `params`: `{name: array}`.
    - `cost`: `cost(k, q) -> scalar` for node `k` (e.g. `TrackingCost`; an equinox Module
      keeps its data as traced leaves, a plain closure is compiled with its data baked in).
    - `method`: `"echo"` (needs `q0` and `v0` or `p0`; loss `Σ_{k=1..N} c_k`), `"bvp"` (needs
      `q_start`, `q_end`; loss `Σ_{k=0..N} c_k`) or `"naive"` (like echo; biased unless
      `correction=True`).
    - `beta`: nudging strength (non-zero, finite); default `default_beta(dtype)`. The bias is
      O(β²) (centered) or O(β) (one-sided) with a constant that grows with the horizon and
      the cost's size; the round-off floor is ~ε/β.
    - `variant`: `"centered"` (O(β²)), `"positive"` or `"negative"` (O(β)).
    - `num_steps`, `inputs`: as in `VariationalIntegrator.simulate`.
    - `return_all`: return a `GradientResult` (loss, initial-state and — for the echo — input
      gradients) instead of the parameter gradient alone.
    - `throw`: raise on a failed Newton solve.

    The estimator is compiled once per integrator, cost structure and shapes (`eqx.filter_jit`),
    so calling it in a Python training loop does not re-trace.

    **Returns:** a dict shaped like `params`, or a `GradientResult` when `return_all`.
    """
    if method not in METHODS:
        raise EstimatorError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    validate_variant(variant)
    if method == "bvp":
        _require(method, q_start=q_start, q_end=q_end)
        problem = dict(q_start=_float_array(q_start), q_end=_float_array(q_end))
        estimator = bvp_estimate
    else:
        _require(method, q0=q0)
        _require_initial_velocity_or_momentum(method, v0, p0)
        problem = dict(q0=_float_array(q0), v0=_float_array(v0), p0=_float_array(p0))
        if method == "echo":
            check_echo_exact(integ)
            problem["with_inputs"] = return_all and integ.model.num_inputs > 0
            estimator = echo_estimate
        else:
            check_variational(integ, method)
            problem["correction"] = correction
            estimator = naive_estimate
    dtype = (problem.get("q0") if method != "bvp" else problem["q_start"]).dtype
    beta = default_beta(dtype) if beta is None else beta
    validate_beta(beta)
    if not callable(inputs) and inputs is not None:
        inputs = jnp.asarray(inputs, dtype)
    result = _run_estimator(
        estimator, integ, as_arrays(params), cost, jnp.asarray(beta, dtype), variant,
        num_steps=num_steps, inputs=inputs, throw=throw, **problem,
    )
    return result if return_all else result.params


@eqx.filter_jit
def _run_estimator(estimator, *args, **kwargs):
    return estimator(*args, **kwargs)


def _float_array(x):
    if x is None:
        return None
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _require_initial_velocity_or_momentum(method, v0, p0):
    if (v0 is None) == (p0 is None):
        raise EstimatorError(
            f"method={method!r} needs exactly one of v0 (initial velocity) or p0 (initial momentum)."
        )


def _require(method, **values):
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise EstimatorError(f"method={method!r} needs {', '.join(missing)}.")


# -------------------------------------------------------- custom-VJP loss wrapper
@eqx.filter_custom_vjp
def _echo_loss(diff, integ, cost, settings):
    params, q0, x0, inputs = diff
    given_velocity, num_steps, beta, variant = settings
    v0, p0 = (x0, None) if given_velocity else (None, x0)
    q0, v0, p0, times, us, _ = _initial_data(integ, params, q0, v0, p0, num_steps, inputs)
    return free_pass(integ, params, cost, q0, p0, times, us, v0=v0)[2]


@_echo_loss.def_fwd
def _echo_loss_fwd(perturbed, diff, integ, cost, settings):
    params, q0, x0, inputs = diff
    given_velocity, num_steps, beta, variant = settings
    kwargs = {"v0": x0} if given_velocity else {"p0": x0}
    result = echo_estimate(integ, params, cost, beta, variant, q0=q0, num_steps=num_steps, inputs=inputs,
                           with_inputs=integ.model.num_inputs > 0, **kwargs)
    return result.loss, result


@_echo_loss.def_bwd
def _echo_loss_bwd(result, g_loss, perturbed, diff, integ, cost, settings):
    params, q0, x0, inputs = diff
    given_velocity = settings[0]
    scale = lambda tree: jax.tree_util.tree_map(lambda x: g_loss * x, tree)
    g_x0 = result.v0 if given_velocity else result.p0
    g_inputs = result.inputs if result.inputs is not None else jnp.zeros_like(inputs)
    return scale((result.params, result.q0, g_x0, g_inputs))


def echo_loss(
    integ: VariationalIntegrator,
    params: Params,
    cost,
    *,
    q0,
    v0=None,
    p0=None,
    num_steps: int,
    inputs=None,
    beta: float | None = None,
    variant: str = "centered",
):
    """`ℒ = Σ_{k=1..N} cost(k, q_k)` on the free trajectory, differentiable by the echo.

    `jax.grad` of any function built on this loss routes through the echo estimator (no BPTT
    tape; memory independent of N), w.r.t. `params`, `q0`, `v0`/`p0` and `inputs`. So optax
    training code does not change when the estimator changes. `cost` should carry its data as
    pytree leaves (e.g. `TrackingCost`) or be a closure over constants.

    **Returns:** the scalar loss.
    """
    check_echo_exact(integ)
    validate_variant(variant)
    _require_initial_velocity_or_momentum("echo", v0, p0)
    x0 = v0 if v0 is not None else p0
    q0 = _float_array(q0)
    dtype = q0.dtype
    beta = default_beta(dtype) if beta is None else beta
    validate_beta(beta)
    us = integ.node_inputs(num_steps, inputs, dtype)
    settings = (v0 is not None, int(num_steps), float(beta), variant)
    return _echo_loss((params, q0.astype(dtype), jnp.asarray(x0, dtype), us), integ, cost, settings)
