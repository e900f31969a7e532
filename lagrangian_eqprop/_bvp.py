"""Two-point boundary-value problems for variational integrators (theory §3a).

The positions at the end nodes are prescribed, `q_0 = q_start` and `q_N = q_end`; the unknowns
are the interior nodes `q_1..q_{N−1}`. They solve the (nudged) discrete Euler–Lagrange
equations

    R_k(q) = p⁺_k − p⁻_k + β ∇c_k(q_k) = 0,        k = 1..N−1,

where `p⁻_k = −D₁L_d(q_k, q_{k+1})` leaves node k and `p⁺_k = D₂L_d(q_{k−1}, q_k)` arrives at it
(non-conservative forces and Galerkin internal points included, see `_discrete.py`).

The trajectory is a stationary point of the discrete action, in general a *saddle* (e.g. a
harmonic oscillator for longer than half a period), so the equations are solved with Newton's
method on the whole trajectory, never by minimisation. The Jacobian `∂R/∂q` couples only
neighbouring nodes: it is block-tridiagonal with `n × n` blocks (symmetric for a purely
variational system, since it is the Hessian of the action), and each Newton step is a block
Thomas solve in O(N n³) time — the dense `(N n)²` matrix is never formed.

Derivatives of the solution with respect to `params`, `q_start`, `q_end`, `inputs` (and `beta`
and arrays closed over by `cost`) follow from the implicit function theorem, never from
differentiating the Newton iterations: the converged interior `q*` passes through a
`filter_custom_jvp` identity whose tangent rule is `dq = −J⁻¹ (∂R/∂θ) dθ`, with `J⁻¹` a
`lax.custom_linear_solve` backed by the block-tridiagonal solver. Reverse mode (`jax.grad`)
transposes it: the cotangent goes through the transposed block-tridiagonal solve (same
solver) and is pulled back through the residual's VJP. The same rule gives forward mode
(`jvp`, `jacfwd`), and everything composes with `vmap` and `jit`.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from ._block_tridiagonal import (
    block_tridiagonal_condition,
    block_tridiagonal_matvec,
    solve_block_tridiagonal,
    transpose_blocks,
)
from ._checks import as_vector, check_num_steps, check_params, finite_or_raise
from ._discrete import DiscreteLagrangian
from ._typing import NodeInputs, Number, Params, StateVector
from ._root import newton_tolerances
from ._solution import RESULTS, SolveStats, Trajectory, check_solution
from .errors import InputError

__all__ = ["MAX_RELATIVE_CONDITION", "boundary_trajectory", "interior_del_residual", "solve_bvp"]

MAX_RELATIVE_CONDITION = 1e3

# ------------------------------------------------------------------------------------------
# The discrete Euler–Lagrange system on a whole trajectory.
# ------------------------------------------------------------------------------------------


def _interval_momenta(disc: DiscreteLagrangian, params: Params, q_a, q_b, t_a, u_a, t_b, u_b):
    """`(p⁻_a, p⁺_b)` of one interval stacked as shape `(2, n)`.

    Same as `disc.momentum_minus` / `disc.momentum_plus`, but the Galerkin internal points are
    solved once for both.
    """
    node_a, node_b = (t_a, u_a), (t_b, u_b)
    internal = disc.internal_points(params, q_a, q_b, node_a, node_b)
    control = disc.control_residual(params, q_a, internal, q_b, node_a, node_b)
    return jnp.stack([-control[0], control[-1]])


def _all_interval_momenta(disc, params, q, times, us):
    """`p⁻` of intervals 0..N−1 (leaving nodes 0..N−1) and `p⁺` (arriving at nodes 1..N)."""
    momenta = jax.vmap(lambda *a: _interval_momenta(disc, params, *a))(
        q[:-1], q[1:], times[:-1], us[:-1], times[1:], us[1:]
    )
    return momenta[:, 0], momenta[:, 1]


def _nudge(cost, beta, ks, q_interior, with_hessian: bool):
    """`β ∇c_k(q_k)` (and `β ∇²c_k`) at the interior nodes, or zeros without a cost."""
    num, n = q_interior.shape
    if cost is None:
        zeros = jnp.zeros_like(q_interior)
        return (zeros, jnp.zeros((num, n, n), q_interior.dtype)) if with_hessian else (zeros, None)
    beta = jnp.asarray(beta, q_interior.dtype)
    gradient = jax.vmap(jax.grad(cost, argnums=1))(ks, q_interior)
    hessian = jax.vmap(jax.hessian(cost, argnums=1))(ks, q_interior) if with_hessian else None
    return beta * gradient, (beta * hessian if with_hessian else None)


def _residual(disc, params, q, times, us, cost, beta, ks):
    """Nudged DEL residual `p⁺_k − p⁻_k + β∇c_k` at interior nodes, shape `(N−1, n)`."""
    p_minus, p_plus = _all_interval_momenta(disc, params, q, times, us)
    kick, _ = _nudge(cost, beta, ks, q[1:-1], with_hessian=False)
    return p_plus[:-1] - p_minus[1:] + kick


class _NewtonSystem(eqx.Module):
    """Residual, Jacobian blocks and the residual's round-off scale at one Newton iterate."""

    residual: Float[Array, "K n"]
    lower: Float[Array, "K1 n n"]
    diag: Float[Array, "K n n"]
    upper: Float[Array, "K1 n n"]
    scale: Float[Array, "K n"]


def _newton_system(disc, params, q, times, us, cost, beta, ks) -> _NewtonSystem:
    """Evaluate the residual and its block-tridiagonal Jacobian in one pass over intervals.

    Per interval, `jax.jacfwd` of `(p⁻_a, p⁺_b)` w.r.t. `(q_a, q_b)` gives four `n × n` blocks
    (vmapped over intervals); node k collects `∂p⁺_k/∂q_{k−1}` (lower), `∂p⁺_k/∂q_k − ∂p⁻_k/∂q_k
    + β∇²c_k` (diagonal) and `−∂p⁻_k/∂q_{k+1}` (upper).

    `scale` bounds the magnitude of the terms summed into each residual entry,
    `|p⁺_k| + |p⁻_k| + |∂p/∂q| |q| + |β∇c_k|`, so `|R| ≤ rtol · scale` is a componentwise
    backward-error test that round-off can actually meet (a plain `|R| ≤ rtol |p|` cannot
    when `h` is small, since `p ~ M (q_{k+1} − q_k)/h` cancels).
    """

    def momenta_with_aux(q_a, q_b, t_a, u_a, t_b, u_b):
        p = _interval_momenta(disc, params, q_a, q_b, t_a, u_a, t_b, u_b)
        return p, p

    jac = jax.jacfwd(momenta_with_aux, argnums=(0, 1), has_aux=True)
    (d_qa, d_qb), momenta = jax.vmap(jac)(q[:-1], q[1:], times[:-1], us[:-1], times[1:], us[1:])
    # momenta: (N, 2, n) = (p⁻ of interval, p⁺ of interval); d_qa, d_qb: (N, 2, n, n).
    p_minus, p_plus = momenta[:, 0], momenta[:, 1]
    kick, kick_hessian = _nudge(cost, beta, ks, q[1:-1], with_hessian=True)
    residual = p_plus[:-1] - p_minus[1:] + kick
    diag = d_qb[:-1, 1] - d_qa[1:, 0] + kick_hessian
    lower = d_qa[1:-1, 1]
    upper = -d_qb[1:-1, 0]
    abs_q = jnp.abs(q)
    magnitude = jnp.abs(momenta) + jnp.einsum("kpij,kj->kpi", jnp.abs(d_qa), abs_q[:-1]) + jnp.einsum(
        "kpij,kj->kpi", jnp.abs(d_qb), abs_q[1:]
    )
    scale = magnitude[:-1, 1] + magnitude[1:, 0] + jnp.abs(kick)
    return _NewtonSystem(residual, lower, diag, upper, scale)


def interior_del_residual(
    integ,
    params: Params,
    q: Float[Array, "N1 n"],
    inputs=None,
    *,
    cost: Callable | None = None,
    beta=0.0,
) -> Float[Array, "N1m n"]:
    """Nudged discrete Euler–Lagrange residual of a whole trajectory at its interior nodes.

    **Arguments:**
    - `integ`: the `VariationalIntegrator` (its discrete Lagrangian, `dt` and `t0`).
    - `params`: `{name: array}`.
    - `q`: positions at all nodes, shape `(N+1, n)`.
    - `inputs`: node-sampled inputs `(N+1, m)` or a callable `u(t)` (see `node_inputs`).
    - `cost`, `beta`: nudging cost `cost(k, q_k) -> ()` and its strength.

    **Returns:** `p⁺_k − p⁻_k + β∇c_k(q_k)` for `k = 1..N−1`, shape `(N−1, n)`; zero on a
    (nudged) stationary trajectory.
    """
    q = jnp.asarray(q)
    num_steps = q.shape[0] - 1
    times = integ.node_times(num_steps, q.dtype)
    us = integ.node_inputs(num_steps, inputs, q.dtype)
    ks = jnp.arange(1, num_steps)
    return _residual(integ.discrete, params, q, times, us, cost, beta, ks)


# ------------------------------------------------------------------------------------------
# The solver.
# ------------------------------------------------------------------------------------------

def _stop_gradient_arrays(tree):
    return jax.tree_util.tree_map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def _newton(disc, params, q_start, q_end, times, us, cost, beta, ks, interior_guess, rtol, atol, max_steps):
    """Newton iterations on the interior nodes (not differentiated: inputs are constants here).

    **Returns:** `(q_interior, system, iterations, result)` with `system` the `_NewtonSystem`
    at the last evaluated iterate, `iterations` the number of Newton steps before the residual
    test passed, and `result` an `RESULTS` item.
    """

    def assemble(interior):
        return jnp.concatenate([q_start[None], interior, q_end[None]], axis=0)

    def evaluate(interior):
        return _newton_system(disc, params, assemble(interior), times, us, cost, beta, ks)

    def converged(system):
        return jnp.all(jnp.abs(system.residual) <= atol + rtol * system.scale)

    def finite(interior, system):
        return jnp.all(jnp.isfinite(interior)) & jnp.all(jnp.isfinite(system.residual))

    # Each pass evaluates the residual and Jacobian at the current iterate (a single copy of
    # the expensive Jacobian code in the program), then takes the Newton step, and stops when
    # the residual test passed, something is non-finite, or the steps are used up. The step
    # computed in the converged pass is still applied: it is free, and by quadratic convergence
    # it takes the iterate from the tolerance down to round-off (this matters in float32, where
    # the default tolerance is √ε). The returned `system` is that of the last evaluated iterate,
    # which differs from the returned one by this last, tolerance-sized step.
    def body(carry):
        interior, _, iterations, _, _ = carry
        system = evaluate(interior)
        ok = converged(system)
        stop = ~finite(interior, system) | (iterations >= max_steps)
        step = solve_block_tridiagonal(system.lower, system.diag, system.upper, system.residual)
        blocks_finite = (jnp.all(jnp.isfinite(system.diag)) & jnp.all(jnp.isfinite(system.lower))
                         & jnp.all(jnp.isfinite(system.upper)) & jnp.all(jnp.isfinite(system.residual)))
        # A non-finite step from finite blocks and residual: a singular pivot block.
        singular = ~jnp.all(jnp.isfinite(step)) & blocks_finite
        take = ~stop & jnp.all(jnp.isfinite(step))
        interior = jnp.where(take, interior - step, interior)
        iterations = iterations + (~ok & take).astype(jnp.int32)
        return interior, system, iterations, ok | stop | ~jnp.all(jnp.isfinite(step)), singular

    system_shape = jax.eval_shape(evaluate, interior_guess)
    empty_system = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), system_shape)
    false = jnp.zeros((), bool)
    init = (interior_guess, empty_system, jnp.zeros((), jnp.int32), false, false)
    interior, system, iterations, _, singular = jax.lax.while_loop(lambda carry: ~carry[3], body, init)
    result = RESULTS.where(converged(system), RESULTS.successful, RESULTS.max_steps_reached)
    result = RESULTS.where(finite(interior, system), result, RESULTS.newton_nonfinite)
    result = RESULTS.where(singular, RESULTS.singular, result)
    return interior, system, iterations, result


@eqx.filter_custom_jvp
def _implicit_solution(interior_star, live, system):
    """The converged interior nodes, with implicit-function-theorem tangents.

    The primal is the identity on `interior_star` (the Newton solution, a constant). The JVP
    rule differentiates the residual `R(q*; live)` with respect to the live data (params,
    endpoints, inputs, beta, cost arrays) and returns `−J⁻¹ ∂R/∂live · t`, with `J` the
    Jacobian blocks at the solution (evaluated at the last Newton iterate, one
    tolerance-sized step away). The solve is a `lax.custom_linear_solve`, so reverse mode
    solves the transposed block-tridiagonal system with the same block Thomas solver and then
    pulls back through the residual's VJP.

    **Arguments:**
    - `interior_star`: converged interior nodes, shape `(N−1, n)` (no tangent).
    - `live`: `(disc, params, q_start, q_end, times, us, cost, beta, ks)`.
    - `system`: `_NewtonSystem` of the last Newton iterate (no tangent).
    """
    return interior_star


@_implicit_solution.def_jvp
def _implicit_solution_jvp(primals, tangents):
    interior_star, live, system = primals
    _, live_tangent, _ = tangents

    def residual_of(live):
        disc, params, q_start, q_end, times, us, cost, beta, ks = live
        q = jnp.concatenate([q_start[None], interior_star, q_end[None]])
        return _residual(disc, params, q, times, us, cost, beta, ks)

    _, residual_tangent = eqx.filter_jvp(residual_of, (live,), (live_tangent,))
    lower, diag, upper = system.lower, system.diag, system.upper

    def matvec(x):
        return block_tridiagonal_matvec(lower, diag, upper, x)

    def solve(_, b):
        return solve_block_tridiagonal(lower, diag, upper, b)

    def transpose_solve(_, b):
        # (Aᵀ)[i+1, i] = A[i, i+1]ᵀ and (Aᵀ)[i, i+1] = A[i+1, i]ᵀ.
        return solve_block_tridiagonal(transpose_blocks(upper), transpose_blocks(diag), transpose_blocks(lower), b)

    interior_tangent = -jax.lax.custom_linear_solve(matvec, residual_tangent, solve, transpose_solve)
    return interior_star, interior_tangent


def _interior_guess(q_guess, q_start, q_end, num_steps: int, n: int):
    if q_guess is None:
        tau = jnp.arange(1, num_steps, dtype=q_start.dtype) / num_steps
        return (1.0 - tau)[:, None] * q_start[None, :] + tau[:, None] * q_end[None, :]
    q_guess = jnp.asarray(q_guess, dtype=q_start.dtype)
    if q_guess.shape == (num_steps + 1, n):
        return q_guess[1:-1]
    if q_guess.shape == (num_steps - 1, n):
        return q_guess
    raise InputError(
        f"q_guess must have shape (N+1, n) = ({num_steps + 1}, {n}) (all nodes) or "
        f"(N−1, n) = ({num_steps - 1}, {n}) (interior nodes), got {q_guess.shape}."
    )


def solve_bvp(
    integ,
    params: Params,
    q_start: StateVector,
    q_end: StateVector,
    num_steps: int,
    inputs: NodeInputs = None,
    *,
    cost: Callable | None = None,
    beta: Number = 0.0,
    q_guess: Real[ArrayLike, "..."] | None = None,
    throw: bool = True,
    rtol: Number | None = None,
    atol: Number | None = None,
    max_steps: int = 50,
    max_relative_condition: Number = MAX_RELATIVE_CONDITION,
) -> Trajectory:
    """Stationary discrete trajectory between two prescribed positions (theory §3a).

    Solves `p⁺_k − p⁻_k + β ∇c_k(q_k) = 0` at the interior nodes `k = 1..N−1` with
    `q_0 = q_start`, `q_N = q_end`, by Newton's method over the whole trajectory with
    block-tridiagonal (O(N n³)) linear solves. The trajectory is a stationary point of the
    nudged discrete action `S_d + β Σ_k c_k(q_k)` — a saddle in general, never minimised.

    Differentiable (`jax.grad`, `jax.jvp`) with respect to `params`, `q_start`, `q_end`,
    `inputs`, `beta` and arrays closed over by `cost`, exactly through the implicit function
    theorem (no differentiation through the Newton iterations); works under `jit` and `vmap`.

    **Arguments:**
    - `integ`: the `VariationalIntegrator` (discrete Lagrangian, `dt`, `t0`).
    - `params`: `{name: array}`.
    - `q_start`, `q_end`: prescribed positions at nodes 0 and N, shape `(n,)`.
    - `num_steps`: `N ≥ 1` (static).
    - `inputs`: node-sampled inputs `(N+1, m)` or a callable `u(t)` (see `node_inputs`).
    - `cost`: nudging cost `cost(k, q) -> ()` for node k (`k` a traced integer), or `None`.
      Only interior nodes are nudged (the end nodes are fixed).
    - `beta`: nudging strength (scalar).
    - `q_guess`: initial guess, shape `(N+1, n)` (end rows ignored) or `(N−1, n)` (interior);
      default: linear interpolation between the endpoints.
    - `throw`: raise `ConvergenceError` (eagerly) or a runtime error (under `jit`) on failure,
      naming the cause and the node with the largest residual; with `False`, read `.result`.
    - `rtol`, `atol`: Newton tolerances (default `newton_tolerances(dtype)`); a
      solve has converged when `|R_k| ≤ atol + rtol · scale_k` componentwise, `scale_k` being
      the magnitude of the momenta and Jacobian-times-position terms that make up `R_k` (a
      backward-error test that round-off can meet even when `h` is small). The Newton step
      computed at the converged iterate is still applied (it costs nothing extra).
    - `max_steps`: maximum number of Newton iterations.
    - `max_relative_condition`: the converged solve is reported as `ill_conditioned` (and
      raises) when the condition-number estimate of its Jacobian, divided by `2 N²` (a free
      particle's at the same resolution), exceeds this (default 1e3; well-posed problems,
      saddles included, sit near 0.2–0.5): the end node is at or near a conjugate point.

    Plain Newton without globalisation (a line search on the action is meaningless at a
    saddle): for strongly nonlinear problems, or horizons near a conjugate point, pass a
    `q_guess` close to the solution (e.g. a solve at a nearby parameter, or a continuation
    in `beta`).

    **Returns:** a `Trajectory` with `t` `(N+1,)`, `q` `(N+1, n)` and `p` `(N+1, n)`:
    `p_k = p⁻_k` (momentum leaving node k) for `k < N`, `p_N = p⁺_N`, and `result`, `stats`
    (Newton iterations, the largest residual; on failure `stats.first_failed` is the node with
    the largest scaled residual).
    """
    model = integ.model
    if model.constrained:
        raise InputError("two-point solves of constrained models are not supported yet: the Newton system would "
                         "need the multipliers at every node; use an initial-value estimator (the echo, BPTT).")
    check_params(model, params)
    num_steps = check_num_steps(num_steps)
    q_start = as_vector(q_start, "q_start", model)
    q_end = as_vector(q_end, "q_end", model, q_start.dtype)
    dtype = q_start.dtype
    rtol = None if rtol is None else float(rtol)
    atol = None if atol is None else float(atol)
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1:
        raise InputError(f"max_steps must be a positive integer, got {max_steps!r}.")
    if jnp.iscomplexobj(beta):
        raise InputError(
            "solve_bvp needs a real beta (complex/holomorphic nudging would need a complex "
            f"trajectory, which this solver does not support); got {beta!r}."
        )

    us = integ.node_inputs(num_steps, inputs, dtype)
    finite_or_raise({"q_start": q_start, "q_end": q_end, "inputs": us})
    guess = _interior_guess(q_guess, q_start, q_end, num_steps, model.num_dof)
    traj = boundary_trajectory(integ, jax.tree_util.tree_map(jnp.asarray, params), q_start, q_end, us,
                               cost=cost, beta=beta, interior_guess=guess, rtol=rtol, atol=atol,
                               max_steps=max_steps, max_relative_condition=max_relative_condition)
    what = (f"solve_bvp (two-point boundary-value Newton over N={num_steps} steps, {integ.rule.name} rule, "
            f"max_steps={max_steps})")
    return check_solution(traj, traj.result, traj.stats, what=what, unit="node", throw=throw)


def boundary_trajectory(integ, params, q_start, q_end, us, *, cost=None, beta=0.0, interior_guess=None,
                        rtol=None, atol=None, max_steps: int = 50,
                        max_relative_condition: float = MAX_RELATIVE_CONDITION) -> Trajectory:
    """`solve_bvp` without the eager checks and without raising (traceable): the caller reads
    `result`. `us` are the node inputs `(N+1, m)`; `interior_guess` `(N−1, n)` or `None`."""
    dtype = q_start.dtype
    num_steps = us.shape[0] - 1
    default_rtol, default_atol = newton_tolerances(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    # `dt` travels as an array so that solves differing only in the step share one compilation.
    disc = eqx.tree_at(lambda d: d.dt, integ.discrete, jnp.asarray(integ.discrete.dt, dtype))
    times = integ.node_times(num_steps, dtype)
    ks = jnp.arange(1, num_steps)
    if interior_guess is None:
        interior_guess = _interior_guess(None, q_start, q_end, num_steps, q_start.shape[0])
    if cost is not None and num_steps > 1:
        # Hoist arrays closed over by `cost` into its pytree, so the Newton loop can hold them
        # constant and the implicit correction can still differentiate through them.
        cost = eqx.filter_closure_convert(cost, ks[0], q_start)
    # Tolerances and max_steps are passed as arrays so that changing them does not recompile.
    return _solve(disc, params, q_start, q_end, times, us, cost, jnp.asarray(beta, dtype), interior_guess,
                  jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype), jnp.asarray(max_steps, jnp.int32),
                  jnp.asarray(max_relative_condition, dtype))


@eqx.filter_jit
def _solve(disc, params, q_start, q_end, times, us, cost, beta, guess, rtol, atol, max_steps,
           max_relative_condition) -> Trajectory:
    """Newton solve, implicit-function-theorem tangents and output momenta, compiled as one
    program (cached across calls that differ only in array values, `dt` included)."""
    num_steps = times.shape[0] - 1
    ks = jnp.arange(1, num_steps)
    dtype = q_start.dtype
    if num_steps == 1:
        # No interior node: the trajectory is the single prescribed interval.
        interior = guess
        result, stats = RESULTS.successful, SolveStats.empty(dtype)
    else:
        constant = _stop_gradient_arrays((disc, params, q_start, q_end, times, us, cost, beta, guess))
        interior_star, system, iterations, result = _newton(
            *constant[:-1], ks, constant[-1], rtol, atol, max_steps
        )
        interior = _implicit_solution(
            interior_star, (disc, params, q_start, q_end, times, us, cost, beta, ks), system
        )
        scaled = jnp.max(jnp.abs(system.residual) / (atol + rtol * system.scale), axis=1)
        worst_node = 1 + jnp.argmax(jnp.where(jnp.isfinite(scaled), scaled, jnp.inf))
        # Conditioning relative to a free particle at the same resolution, whose DEL Jacobian is a
        # discrete Laplacian with condition ≈ 4N²/π² (2N² bounds it): about 0.2–0.5 for a
        # well-posed problem, saddles included; it grows without bound as the end node nears a
        # conjugate point of the start node, where the solve returns garbage or a solution whose
        # gradients are dominated by the near-singularity.
        condition, worst_block = block_tridiagonal_condition(system.lower, system.diag, system.upper)
        relative_condition = condition / (2.0 * num_steps**2)
        ill = (result == RESULTS.successful) & (relative_condition > max_relative_condition)
        result = RESULTS.where(ill, RESULTS.ill_conditioned, result)
        failed = result != RESULTS.successful
        worst_node = jnp.where(ill, 1 + worst_block, worst_node.astype(jnp.int32))
        residual = jnp.max(jnp.abs(system.residual))
        stats = SolveStats(failed.astype(jnp.int32), jnp.where(failed, worst_node, -1).astype(jnp.int32),
                           iterations.astype(dtype), iterations, jnp.where(jnp.isfinite(residual), residual, jnp.inf),
                           condition.astype(dtype), jnp.full((), jnp.nan, dtype))
    q = jnp.concatenate([q_start[None], interior, q_end[None]], axis=0)
    p_minus, p_plus = _all_interval_momenta(disc, params, q, times, us)
    p = jnp.concatenate([p_minus, p_plus[-1:]], axis=0)
    return Trajectory(times, q, p, result, stats)
