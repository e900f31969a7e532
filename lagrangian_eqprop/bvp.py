"""Two-point boundary-value problems for variational integrators (theory §3a).

The positions at the end nodes are prescribed, `q_0 = q_start` and `q_N = q_end`; the unknowns
are the interior nodes `q_1..q_{N−1}`. They solve the (nudged) discrete Euler–Lagrange
equations

    R_k(q) = p⁺_k − p⁻_k + β ∇c_k(q_k) = 0,        k = 1..N−1,

where `p⁻_k = −D₁L_d(q_k, q_{k+1})` leaves node k and `p⁺_k = D₂L_d(q_{k−1}, q_k)` arrives at it
(non-conservative forces and Galerkin internal points included, see `discrete.py`).

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
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .discrete import DiscreteLagrangian, newton_tolerances
from .errors import ConvergenceError
from .integrate import SolveStatus, Trajectory, VariationalIntegrator, check_status
from .model import Params

# ------------------------------------------------------------------------------------------
# Block-tridiagonal linear algebra.
#
# lineax (0.1.x) offers only a scalar `TridiagonalLinearOperator`; there is no block-
# tridiagonal operator or solver, hence the small block Thomas solver below.
# ------------------------------------------------------------------------------------------


def _transpose_blocks(blocks: Array) -> Array:
    return jnp.swapaxes(blocks, -1, -2)


def block_tridiagonal_matvec(
    lower: Float[Array, "K-1 n n"],
    diag: Float[Array, "K n n"],
    upper: Float[Array, "K-1 n n"],
    x: Float[Array, "K n"],
) -> Float[Array, "K n"]:
    """Product `A x` with a block-tridiagonal matrix `A`, without forming `A`.

    **Arguments:**
    - `lower`: sub-diagonal blocks, `lower[i] = A[i+1, i]`, shape `(K−1, n, n)`.
    - `diag`: diagonal blocks, `diag[i] = A[i, i]`, shape `(K, n, n)`.
    - `upper`: super-diagonal blocks, `upper[i] = A[i, i+1]`, shape `(K−1, n, n)`.
    - `x`: block vector, shape `(K, n)`.

    **Returns:** `A x`, shape `(K, n)`.
    """
    y = jnp.einsum("kij,kj->ki", diag, x)
    if x.shape[0] > 1:
        y = y.at[1:].add(jnp.einsum("kij,kj->ki", lower, x[:-1]))
        y = y.at[:-1].add(jnp.einsum("kij,kj->ki", upper, x[1:]))
    return y


def solve_block_tridiagonal(
    lower: Float[Array, "K-1 n n"],
    diag: Float[Array, "K n n"],
    upper: Float[Array, "K-1 n n"],
    rhs: Float[Array, "K n *r"],
) -> Float[Array, "K n *r"]:
    """Solve `A x = rhs` for a block-tridiagonal `A` by block Gaussian elimination (block Thomas).

    Cost O(K n³) time and O(K n²) memory, with `lax.scan` over the K block rows (a forward
    elimination sweep, then back substitution). Each pivot block, the Schur complement
    `S_i = A[i, i] − A[i, i−1] S_{i−1}⁻¹ A[i−1, i]`, is LU-factorised with partial pivoting
    *inside* the block; there is no pivoting *across* blocks, so every leading block principal
    submatrix of `A` must be nonsingular. For a two-point BVP this means no interior node is a
    (discrete) conjugate point of the start node. A singular pivot block yields non-finite
    entries in `x`, which callers must check (`solve_bvp` does).

    **Arguments:**
    - `lower`: sub-diagonal blocks, `lower[i] = A[i+1, i]`, shape `(K−1, n, n)`.
    - `diag`: diagonal blocks, `diag[i] = A[i, i]`, shape `(K, n, n)`.
    - `upper`: super-diagonal blocks, `upper[i] = A[i, i+1]`, shape `(K−1, n, n)`.
    - `rhs`: right-hand side, shape `(K, n)` or `(K, n, r)` for `r` right-hand sides.

    **Returns:** `x` with the shape of `rhs`.
    """
    num_blocks, n = diag.shape[0], diag.shape[-1]
    if diag.shape != (num_blocks, n, n):
        raise ValueError(f"diag must have shape (K, n, n), got {diag.shape}.")
    if lower.shape != (max(num_blocks - 1, 0), n, n) or upper.shape != lower.shape:
        raise ValueError(
            f"lower and upper must have shape (K−1, n, n) = ({num_blocks - 1}, {n}, {n}), "
            f"got {lower.shape} and {upper.shape}."
        )
    if rhs.shape[:2] != (num_blocks, n) or rhs.ndim not in (2, 3):
        raise ValueError(f"rhs must have shape (K, n) or (K, n, r) = ({num_blocks}, {n}[, r]), got {rhs.shape}.")
    if num_blocks == 0:
        return rhs
    vector = rhs.ndim == 2
    b = rhs[..., None] if vector else rhs
    dtype = jnp.result_type(lower, diag, upper, b)
    zero_block = jnp.zeros((1, n, n), dtype)
    # Pad so every row has the same form: A[0, −1] = 0 and A[K−1, K] = 0.
    lower_padded = jnp.concatenate([zero_block, lower.astype(dtype)], axis=0)
    upper_padded = jnp.concatenate([upper.astype(dtype), zero_block], axis=0)

    def eliminate(carry, row):
        # carry: (C_{i−1} = S_{i−1}⁻¹ A[i−1, i], d_{i−1} = S_{i−1}⁻¹ (b_{i−1} − ...)).
        coupling_prev, reduced_prev = carry
        low, dia, up, b_i = row
        schur = dia - low @ coupling_prev
        lu_piv = jsl.lu_factor(schur)
        coupling = jsl.lu_solve(lu_piv, up)
        reduced = jsl.lu_solve(lu_piv, b_i - low @ reduced_prev)
        return (coupling, reduced), (coupling, reduced)

    init = (jnp.zeros((n, n), dtype), jnp.zeros(b.shape[1:], dtype))
    _, (couplings, reduced) = jax.lax.scan(
        eliminate, init, (lower_padded, diag.astype(dtype), upper_padded, b.astype(dtype))
    )

    def back_substitute(x_next, row):
        coupling, reduced_i = row
        x_i = reduced_i - coupling @ x_next
        return x_i, x_i

    _, x = jax.lax.scan(back_substitute, jnp.zeros(b.shape[1:], dtype), (couplings, reduced), reverse=True)
    return x[..., 0] if vector else x


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
    lower: Float[Array, "K-1 n n"]
    diag: Float[Array, "K n n"]
    upper: Float[Array, "K-1 n n"]
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
    integ: VariationalIntegrator,
    params: Params,
    q: Float[Array, "N1 n"],
    inputs=None,
    *,
    cost: Callable | None = None,
    beta=0.0,
) -> Float[Array, "N-1 n"]:
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

_SUCCESS, _MAX_STEPS, _NONFINITE = 0, 1, 2


def _stop_gradient_arrays(tree):
    return jax.tree_util.tree_map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def _newton(disc, params, q_start, q_end, times, us, cost, beta, ks, interior_guess, rtol, atol, max_steps):
    """Newton iterations on the interior nodes (not differentiated: inputs are constants here).

    **Returns:** `(q_interior, system, iterations, result)` with `system` the `_NewtonSystem`
    at the last evaluated iterate, `iterations` the number of Newton steps before the residual
    test passed, and `result` one of `_SUCCESS`, `_MAX_STEPS`, `_NONFINITE`.
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
        singular = ~jnp.all(jnp.isfinite(step))  # a singular pivot block (or overflow)
        take = ~stop & ~singular
        interior = jnp.where(take, interior - step, interior)
        iterations = iterations + (~ok & take).astype(jnp.int32)
        return interior, system, iterations, ok | stop | singular, singular

    system_shape = jax.eval_shape(evaluate, interior_guess)
    empty_system = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), system_shape)
    false = jnp.zeros((), bool)
    init = (interior_guess, empty_system, jnp.zeros((), jnp.int32), false, false)
    interior, system, iterations, _, singular = jax.lax.while_loop(lambda carry: ~carry[3], body, init)
    is_finite = finite(interior, system) & ~singular
    result = jnp.where(
        ~is_finite, _NONFINITE, jnp.where(converged(system), _SUCCESS, _MAX_STEPS)
    ).astype(jnp.int32)
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
        return solve_block_tridiagonal(
            _transpose_blocks(upper), _transpose_blocks(diag), _transpose_blocks(lower), b
        )

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
    raise ValueError(
        f"q_guess must have shape (N+1, n) = ({num_steps + 1}, {n}) (all nodes) or "
        f"(N−1, n) = ({num_steps - 1}, {n}) (interior nodes), got {q_guess.shape}."
    )


def solve_bvp(
    integ: VariationalIntegrator,
    params: Params,
    q_start: Float[Array, " n"],
    q_end: Float[Array, " n"],
    num_steps: int,
    inputs=None,
    *,
    cost: Callable | None = None,
    beta=0.0,
    q_guess=None,
    throw: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 50,
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
    - `throw`: raise `ConvergenceError` (eagerly) or a runtime error (under `jit`) on failure;
      with `False`, read `Trajectory.num_failures`.
    - `rtol`, `atol`: Newton tolerances (default `discrete.newton_tolerances(dtype)`); a
      solve has converged when `|R_k| ≤ atol + rtol · scale_k` componentwise, `scale_k` being
      the magnitude of the momenta and Jacobian-times-position terms that make up `R_k` (a
      backward-error test that round-off can meet even when `h` is small). The Newton step
      computed at the converged iterate is still applied (it costs nothing extra).
    - `max_steps`: maximum number of Newton iterations.

    Plain Newton without globalisation (a line search on the action is meaningless at a
    saddle): for strongly nonlinear problems, or horizons near a conjugate point, pass a
    `q_guess` close to the solution (e.g. a solve at a nearby parameter, or a continuation
    in `beta`).

    **Returns:** a `Trajectory` with `t` `(N+1,)`, `q` `(N+1, n)` and `p` `(N+1, n)`:
    `p_k = p⁻_k` (momentum leaving node k) for `k < N`, `p_N = p⁺_N`. On failure
    `num_failures = 1` and `first_failed_step` is the node with the largest scaled residual.
    """
    model = integ.model
    n = model.num_dof
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
    num_steps = int(num_steps)
    missing = set(model.parameter_shapes) - set(params)
    if missing:
        raise ValueError(f"params is missing parameter(s): {', '.join(sorted(missing))}.")
    q_start = jnp.asarray(q_start)
    if not jnp.issubdtype(q_start.dtype, jnp.floating):
        q_start = q_start.astype(jnp.result_type(float))
    q_end = jnp.asarray(q_end, dtype=q_start.dtype)
    for name, value in (("q_start", q_start), ("q_end", q_end)):
        if value.shape != (n,):
            raise ValueError(
                f"{name} must have shape ({n},) for coordinates {model.coordinate_names}, got {value.shape}."
            )
    dtype = q_start.dtype
    default_rtol, default_atol = newton_tolerances(dtype)
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")

    # `dt` travels as an array so that solves differing only in the step share one compilation.
    disc = eqx.tree_at(lambda d: d.dt, integ.discrete, jnp.asarray(integ.discrete.dt, dtype))
    times = integ.node_times(num_steps, dtype)
    us = integ.node_inputs(num_steps, inputs, dtype)
    ks = jnp.arange(1, num_steps)
    guess = _interior_guess(q_guess, q_start, q_end, num_steps, n)

    if jnp.iscomplexobj(beta):
        raise ValueError(
            "solve_bvp needs a real beta (complex/holomorphic nudging would need a complex "
            f"trajectory, which this solver does not support); got {beta!r}."
        )
    beta = jnp.asarray(beta, dtype)
    if cost is not None and num_steps > 1:
        # Hoist arrays closed over by `cost` into its pytree, so the Newton loop can hold them
        # constant and the implicit correction can still differentiate through them.
        cost = eqx.filter_closure_convert(cost, ks[0], q_start)
    # Tolerances and max_steps are passed as arrays so that changing them does not recompile.
    q, p, status, diagnostics = _solve(
        disc, params, q_start, q_end, times, us, cost, beta, guess,
        jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype), jnp.asarray(int(max_steps), jnp.int32),
    )
    traj = Trajectory(times, q, p, status.num_failures, status.first_failed_step)
    what = f"solve_bvp (two-point boundary-value Newton solve over N={num_steps} steps, rule {disc.rule.name})"
    if throw and not isinstance(status.num_failures, jax.core.Tracer):
        _raise_if_failed(what, status, *diagnostics, max_steps)
    return check_status(traj, status, what, throw)


@eqx.filter_jit
def _solve(disc, params, q_start, q_end, times, us, cost, beta, guess, rtol, atol, max_steps):
    """Newton solve, implicit-function-theorem tangents and output momenta, compiled as one
    program (cached across calls that differ only in array values, `dt` included).

    **Returns:** `(q (N+1, n), p (N+1, n), SolveStatus, (residual, iterations, result))`.
    """
    num_steps = times.shape[0] - 1
    ks = jnp.arange(1, num_steps)
    if num_steps == 1:
        # No interior node: the trajectory is the single prescribed interval.
        interior = guess
        status = SolveStatus.fresh()
        diagnostics = (jnp.zeros_like(guess), jnp.zeros((), jnp.int32), jnp.asarray(_SUCCESS, jnp.int32))
    else:
        constant = _stop_gradient_arrays((disc, params, q_start, q_end, times, us, cost, beta, guess))
        interior_star, system, iterations, result = _newton(
            *constant[:-1], ks, constant[-1], rtol, atol, max_steps
        )
        interior = _implicit_solution(
            interior_star, (disc, params, q_start, q_end, times, us, cost, beta, ks), system
        )
        failed = result != _SUCCESS
        scaled = jnp.max(jnp.abs(system.residual) / (atol + rtol * system.scale), axis=1)
        worst_node = 1 + jnp.argmax(jnp.where(jnp.isfinite(scaled), scaled, jnp.inf))
        status = SolveStatus(failed.astype(jnp.int32), jnp.where(failed, worst_node, -1).astype(jnp.int32))
        diagnostics = (system.residual, iterations, result)
    q = jnp.concatenate([q_start[None], interior, q_end[None]], axis=0)
    p_minus, p_plus = _all_interval_momenta(disc, params, q, times, us)
    p = jnp.concatenate([p_minus, p_plus[-1:]], axis=0)
    return q, p, status, diagnostics


def _raise_if_failed(what, status, residual, iterations, result, max_steps):
    """Eager failure report with the cause, iteration count and residual norm."""
    if int(np.asarray(status.num_failures)) == 0:
        return
    residual = np.asarray(residual)
    norm = float(np.max(np.abs(residual))) if residual.size else 0.0
    cause = {
        _MAX_STEPS: f"no convergence within max_steps={max_steps} Newton iterations",
        _NONFINITE: "non-finite values (singular Jacobian block — a conjugate point? — or NaN/inf "
        "in the inputs, parameters or model)",
    }[int(np.asarray(result))]
    raise ConvergenceError(
        f"{what} failed: {cause}; after {int(np.asarray(iterations))} iteration(s) the max |DEL residual| "
        f"is {norm:.3e}, largest (scaled) at node {int(np.asarray(status.first_failed_step))}. Try a "
        "better q_guess, more max_steps or a smaller dt; pass throw=False to get the last iterate."
    )


__all__ = [
    "block_tridiagonal_matvec",
    "interior_del_residual",
    "solve_block_tridiagonal",
    "solve_bvp",
]
