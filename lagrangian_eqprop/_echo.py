"""The echo (theory §3c): free pass forward, momentum reversed, nudged replays, contrast.

1. Free pass from `(q_0, p_0)` keeping only the final node (and the loss, summed on the fly).
2. Echo passes at the contrast's nudging strengths (run together under `vmap`): start at
   `Q_0 = q_N`, `P_0 = −p⁺_N + β∇c_N(q_N)`, step with the node data reversed, kick
   `P_{j+1} += β∇c_{N−1−j}(Q_{j+1})` for `j ≤ N−2`, and accumulate
   `G(β) = Σ_j ∂_θ L_d(θ; Q_{j+1}, Q_j)` in the forward-time orientation.
3. The contrast of `G` (`_contrasts.py`) is `dℒ/dθ`; `Q_N` and `P_N` give `dℒ/dp_0` and
   `dℒ/dq_0`, the per-step `∂L_d/∂u` give `dℒ/du_k`; a θ-dependent `p_0` (given velocity,
   trained masses) adds its pull-back.

Memory is O(1) in N, apart from the inputs (and their gradients when asked for).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _autodiff as autodiff
from ._contrasts import AbstractContrast
from ._solution import RESULTS, GradientResult, check_solution, first_failure
from .errors import EstimatorError

__all__ = ["check_echo_exact", "echo_gradient", "echo_pass", "free_pass", "theta_gradient"]


def check_echo_exact(integ) -> None:
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


def theta_gradient(integ, params, q_a, q_b, node_a, node_b):
    """`∂_θ L_d(θ; q_a, q_b)` (a dict shaped like params)."""
    return autodiff.grad(integ.discrete, argnums=0)(params, q_a, q_b, node_a, node_b)


def free_pass(integ, params, cost, q0, p0, times, us, v0=None):
    """Free forward pass keeping only the final node; sums the loss `Σ_{k≥1} c_k(q_k)`.

    **Returns:** `(q_N, p_N, loss, result, stats)`.
    """

    def accumulate(j, q_a, q_b, node_a, node_b, *multipliers):
        return cost(j + 1, q_b)

    run = integ.rollout(params, q0, p0, times, us, accumulate=accumulate,
                        accumulator_init=jnp.zeros((), q0.dtype), save_trajectory=False, v0_hint=v0,
                        monitor_energy=True)
    return run.q, run.p, run.accumulated, run.result, run.stats


def echo_pass(integ, params, cost, beta, q_final, p_final, times, us, *, with_inputs: bool = False,
              save_trajectory: bool = False):
    """One echo pass at nudging strength `beta` (module docstring, step 2).

    **Returns:** `(values, (result, stats))`; `values` is a dict with `G` (shaped like params),
    `q_end`, `p_end` (`Q_N`, `P_N`), `G_inputs` (`Σ ∂L_d/∂u_k`, `(N+1, m)`, when
    `with_inputs`) and `q`, `p` (`(N, n)`, the echo's nodes 1..N in echo order) when
    `save_trajectory`.
    """
    num_steps = times.shape[0] - 1
    grad_cost = autodiff.grad(cost, argnums=1)
    # A complex β (the holomorphic contrast) makes the whole pass complex, from its first node.
    dtype = jnp.result_type(q_final, beta)
    q_final = q_final.astype(dtype)
    p_start = -p_final.astype(dtype) + beta * grad_cost(num_steps, q_final)

    def kick(j, q):
        k = num_steps - 1 - j
        return jnp.where(j <= num_steps - 2, beta * grad_cost(k, q), jnp.zeros_like(q))

    # The echo step Q_j → Q_{j+1} runs over the forward interval from node N−1−j (Q_{j+1}) to
    # N−j (Q_j). Every rule is symmetric and L is even in v, so its L_d equals the rollout's
    # L_d(Q_j, Q_{j+1}) with the node data in echo order: the rollout's own action gradient is
    # G (fused with the force evaluation on the explicit path). With constraints the action is
    # the augmented one, L_d − λ_j·φ(Q_j), λ_j the echo's multipliers at Q_j.
    run = integ.rollout(params, q_final, p_start, times[::-1], us[::-1], kick=kick, save_trajectory=save_trajectory,
                        action_gradient=True, action_input_gradient=with_inputs)
    values = {"G": run.action_gradient, "q_end": run.q, "p_end": run.p}
    if with_inputs:
        values["G_inputs"] = run.action_input_gradient[::-1]  # forward node order (complex in a holomorphic pass)
    if save_trajectory:
        values["q"], values["p"] = run.qs, run.ps
    return values, (run.result, run.stats)


def echo_gradient(integ, params, cost, contrast: AbstractContrast, beta, *, q0, v0, p0, times, us,
                  p0_fn, with_inputs: bool) -> GradientResult:
    """The echo estimate (traceable; never raises on a failed pass: read `result`).

    `p0` is the initial momentum; when the velocity `v0` was given, `p0_fn(params, q0, v0,
    u0)` is the Legendre transform that produced it (its pull-back is added).
    """
    q_n, p_n, loss, free_result, free_stats = free_pass(integ, params, cost, q0, p0, times, us, v0=v0)

    def nudged(b):
        return echo_pass(integ, params, cost, b, q_n, p_n, times, us, with_inputs=with_inputs)

    est, echo_result, echo_stats = contrast.estimate(nudged, beta, q0.dtype)
    grad_params = est["G"]
    # Initial-state gradients come for free: Q_N responds like dℒ/dp_0, P_N like dℒ/dq_0.
    grad_p0, grad_q0 = est["q_end"], est["p_end"]
    grad_inputs = est.get("G_inputs")
    grad_v0 = None
    if v0 is not None:
        # p_0 = ∂L/∂v(q_0, v_0; θ, u_0) depends on θ (e.g. trained masses), q_0 and v_0.
        _, pullback = jax.vjp(p0_fn, params, q0, v0, us[0])
        d_params, d_q0, d_v0, d_u0 = pullback(grad_p0)
        grad_params = jax.tree_util.tree_map(jnp.add, grad_params, d_params)
        grad_q0 = grad_q0 + d_q0
        grad_v0 = d_v0
        if grad_inputs is not None:
            grad_inputs = grad_inputs.at[0].add(d_u0)
    # A failed free pass is reported first (the echo of a bad free run is meaningless).
    result = first_failure(free_result, echo_result)
    # Echo step j runs over the forward interval N−1−j: report failures in forward numbering.
    num_steps = times.shape[0] - 1
    echo_stats = eqx.tree_at(lambda s: s.first_failed, echo_stats,
                             jnp.where(echo_stats.first_failed >= 0, num_steps - 1 - echo_stats.first_failed, -1))
    free_ok = free_result == RESULTS.successful
    stats = jax.tree_util.tree_map(lambda a, b: jnp.where(free_ok, b, a), free_stats, echo_stats)
    return GradientResult(params=grad_params, loss=loss, q0=grad_q0, v0=grad_v0,
                          p0=None if v0 is not None else grad_p0, inputs=grad_inputs, result=result, stats=stats)


def echo_trajectory(integ, params, cost, beta, *, q0, v0=None, p0=None, num_steps, inputs=None):
    """Free trajectory and the echo trajectory at `beta`, both in forward-time order.

    For diagnostics and tests: at `β = 0` the echo retraces the free run. **Returns:**
    `(free: Trajectory, echo_q: (N+1, n))` where `echo_q[k]` is the echo's position at node k.
    """
    check_echo_exact(integ)
    params, q0, v0, p0, us, num_steps = integ.prepare(params, q0, v0, p0, num_steps, inputs)
    free = integ.simulate(params, q0, v0, num_steps, us, p0=p0)
    values, (result, stats) = _echo_trajectory_jit(integ, params, cost, jnp.asarray(beta, q0.dtype), free, us)
    check_solution(values, result, stats, what=f"echo pass ({integ.describe()})")
    return free, jnp.concatenate([free.q[-1][None], values["q"]], axis=0)[::-1]


@eqx.filter_jit
def _echo_trajectory_jit(integ, params, cost, beta, free, us):
    return echo_pass(integ, params, cost, beta, free.q[-1], free.p[-1], free.t, us, save_trajectory=True)

