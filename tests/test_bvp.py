"""Two-point boundary-value solver (`lagrangian_eqprop.bvp`): linear algebra, accuracy against
analytic solutions, saddle trajectories, agreement with initial-value stepping, implicit
gradients against finite differences and a dense reference, nudging, failures, long horizons.

Test systems are hand-written JAX Lagrangians (independent of the SymPy compiler).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lagrangian_eqprop import (
    block_tridiagonal_matvec,
    interior_del_residual,
    solve_block_tridiagonal,
    solve_bvp,
)
import lagrangian_eqprop as lep
from lagrangian_eqprop.errors import ConvergenceError
from lagrangian_eqprop import VariationalIntegrator
from lagrangian_eqprop import LagrangianModel, SeparableStructure


# ---------------------------------------------------------------------------- test systems
# Builders are cached so that tests share one model object (and hence compiled solves); each
# call returns a fresh params dict.
def _cached_builder(build):
    cached = functools.lru_cache(maxsize=None)(build)

    @functools.wraps(build)
    def builder(*args, **kwargs):
        model, params = cached(*args, **kwargs)
        return model, dict(params)

    return builder


@_cached_builder
def harmonic(n=1, separable=True):
    """Uncoupled oscillators `L = Σ ½ m v² − ½ k q²`, params `m`, `k` of shape `(n,)`."""

    def potential(q, t, params, u):
        return 0.5 * jnp.sum(params["k"] * q**2)

    def lagrangian(q, v, t, params, u):
        return 0.5 * jnp.sum(params["m"] * v**2) - potential(q, t, params, u)

    sep = SeparableStructure(lambda params: params["m"], potential, True) if separable else None
    model = LagrangianModel(lagrangian, tuple(f"x{i}" for i in range(n)), {"m": (n,), "k": (n,)}, separable=sep)
    return model, {"m": jnp.ones(n), "k": jnp.ones(n)}


@_cached_builder
def coupled_pendulums(separable=False, damping=False):
    """Two pendulum-like coordinates with a spring coupling and an input force on the first.

    Non-separable variant: the first mass grows with `q₁²` (position-dependent mass).
    With `damping`, a Lagrange–d'Alembert force `−γ v` (non-symmetric BVP Jacobian).
    """

    def potential(q, t, params, u):
        return (
            params["k1"] * (1.0 - jnp.cos(q[0]))
            + 0.5 * params["k2"] * q[1] ** 2
            + 0.5 * params["c"] * (q[0] - q[1]) ** 2
            - u[0] * q[0]
        )

    def lagrangian(q, v, t, params, u):
        mass0 = params["m1"] + (0.0 if separable else params["a"] * q[1] ** 2)
        return 0.5 * mass0 * v[0] ** 2 + 0.5 * params["m2"] * v[1] ** 2 - potential(q, t, params, u)

    sep = None
    if separable:
        sep = SeparableStructure(lambda p: jnp.stack([p["m1"], p["m2"]]), potential, True)
    force = (lambda q, v, t, params, u: -params["gamma"] * v) if damping else None
    shapes = {"m1": (), "m2": (), "a": (), "k1": (), "k2": (), "c": (), "gamma": ()}
    model = LagrangianModel(
        lagrangian, ("x", "y"), shapes, input_names=("u",), force_fn=force, separable=sep,
        time_reversible=not damping,
    )
    params = {k: jnp.asarray(np.float64(v)) for k, v in dict(m1=1.0, m2=1.3, a=0.4, k1=2.0, k2=1.5, c=0.7, gamma=0.3).items()}
    return model, params


def harmonic_bvp_exact(t, q_a, q_b, omega, T):
    """`q(t) = [q_a sin(ω(T − t)) + q_b sin(ω t)] / sin(ω T)`."""
    return (q_a * np.sin(omega * (T - t)) + q_b * np.sin(omega * t)) / np.sin(omega * T)


def midpoint_harmonic_discrete_exact(k, q_a, q_b, omega, h, num_steps):
    """Exact solution of the midpoint-rule DEL equations of `½v² − ½ω²q²` with fixed ends.

    `(q_{k+1} − 2q_k + q_{k−1})/h² = −ω²(q_{k+1} + 2q_k + q_{k−1})/4` is solved by
    `sin(θk)`, `cos(θk)` with `tan(θ/2) = hω/2`.
    """
    theta = 2.0 * np.arctan(h * omega / 2.0)
    return (q_a * np.sin(theta * (num_steps - k)) + q_b * np.sin(theta * k)) / np.sin(theta * num_steps)


def tracking_cost(targets, weight=1.0):
    """`c_k(q) = ½ w |q − y_k|²` with node targets `y` of shape `(N+1, n)`."""

    def cost(k, q):
        return 0.5 * weight * jnp.sum((q - targets[k]) ** 2)

    return cost


def input_signal(num_steps, dt):
    t = np.arange(num_steps + 1) * dt
    return jnp.asarray(0.3 * np.sin(2.0 * t))[:, None]


# ---------------------------------------------------------------------------- (1) linear algebra
@pytest.mark.parametrize("num_rhs", [None, 3])
def test_block_tridiagonal_solver_matches_dense(num_rhs):
    rng = np.random.default_rng(0)
    num_blocks, n = 9, 3
    lower = rng.normal(size=(num_blocks - 1, n, n))
    upper = rng.normal(size=(num_blocks - 1, n, n))
    # Non-symmetric, well-conditioned: diagonal blocks dominate.
    diag = rng.normal(size=(num_blocks, n, n)) + 6.0 * np.eye(n)
    rhs_shape = (num_blocks, n) if num_rhs is None else (num_blocks, n, num_rhs)
    rhs = rng.normal(size=rhs_shape)
    dense = np.zeros((num_blocks * n, num_blocks * n))
    for i in range(num_blocks):
        dense[i * n:(i + 1) * n, i * n:(i + 1) * n] = diag[i]
        if i + 1 < num_blocks:
            dense[(i + 1) * n:(i + 2) * n, i * n:(i + 1) * n] = lower[i]
            dense[i * n:(i + 1) * n, (i + 1) * n:(i + 2) * n] = upper[i]
    assert np.linalg.cond(dense) < 1e3
    x = solve_block_tridiagonal(jnp.asarray(lower), jnp.asarray(diag), jnp.asarray(upper), jnp.asarray(rhs))
    expected = np.linalg.solve(dense, rhs.reshape(num_blocks * n, -1)).reshape(rhs_shape)
    assert x.shape == rhs_shape
    np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-12, atol=1e-12)
    if num_rhs is None:
        y = block_tridiagonal_matvec(jnp.asarray(lower), jnp.asarray(diag), jnp.asarray(upper), jnp.asarray(rhs))
        np.testing.assert_allclose(np.asarray(y), (dense @ rhs.reshape(-1)).reshape(num_blocks, n), rtol=1e-13, atol=1e-13)


def test_block_tridiagonal_solver_single_block_and_singular():
    diag = jnp.asarray([[[2.0, 1.0], [1.0, 3.0]]])
    empty = jnp.zeros((0, 2, 2))
    rhs = jnp.asarray([[1.0, 2.0]])
    np.testing.assert_allclose(solve_block_tridiagonal(empty, diag, empty, rhs), np.linalg.solve(diag[0], rhs[0])[None])
    x = solve_block_tridiagonal(empty, jnp.zeros((1, 2, 2)), empty, rhs)
    assert not np.all(np.isfinite(np.asarray(x)))


# ---------------------------------------------------------------------------- (2) convergence order
def _harmonic_error(rule, num_steps, T=2.0, degree=2):
    model, params = harmonic(1)
    integ = VariationalIntegrator(model, T / num_steps, rule, degree=degree)
    q_a, q_b = 0.4, -0.7
    traj = solve_bvp(integ, params, jnp.asarray([q_a]), jnp.asarray([q_b]), num_steps)
    exact = harmonic_bvp_exact(np.asarray(traj.t), q_a, q_b, 1.0, T)
    return float(np.max(np.abs(np.asarray(traj.q[:, 0]) - exact)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule, steps, order",
    [("midpoint", (10, 20, 40), 2), ("trapezoid", (10, 20, 40), 2), ("galerkin", (4, 8, 16), 4)],
)
def test_harmonic_bvp_order(rule, steps, order):
    errors = [_harmonic_error(rule, n) for n in steps]
    slope = np.polyfit(np.log([2.0 / n for n in steps]), np.log(errors), 1)[0]
    print(f"{rule}: errors {errors}, fitted order {slope:.3f}")
    assert abs(slope - order) < 0.3
    assert errors[-1] < (1e-3 if order == 2 else 1e-6)


# ---------------------------------------------------------------------------- (3) saddle
def test_saddle_trajectory_is_solved():
    """ωT = 4 > π: the trajectory is a saddle of the discrete action (indefinite Hessian)."""
    model, params = harmonic(1)
    T, num_steps = 4.0, 40  # N = 40 shares its compilation with the order test
    integ = VariationalIntegrator(model, T / num_steps, "midpoint")
    q_a, q_b = jnp.asarray([0.5]), jnp.asarray([0.2])
    traj = solve_bvp(integ, params, q_a, q_b, num_steps)
    residual = eqx.filter_jit(interior_del_residual)(integ, params, traj.q)
    assert float(jnp.max(jnp.abs(residual))) < 1e-12
    exact = midpoint_harmonic_discrete_exact(np.arange(num_steps + 1), 0.5, 0.2, 1.0, T / num_steps, num_steps)
    np.testing.assert_allclose(np.asarray(traj.q[:, 0]), exact, atol=1e-13, rtol=0)

    def interior_residual(interior):
        q = jnp.concatenate([q_a[None], interior, q_b[None]])
        return interior_del_residual(integ, params, q).reshape(-1)

    hessian = jax.jit(jax.jacfwd(interior_residual))(traj.q[1:-1])
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian).reshape(num_steps - 1, num_steps - 1))
    assert eigenvalues.min() < 0 < eigenvalues.max()


# ---------------------------------------------------------------------------- (4) vs simulate
# Galerkin momenta go through the same code path; its accuracy is checked by the order test.
@pytest.mark.parametrize("rule, separable", [("midpoint", False), ("trapezoid", True)])
def test_bvp_matches_initial_value_stepping(rule, separable):
    model, params = coupled_pendulums(separable=separable)
    num_steps, T = 20, 1.5
    integ = VariationalIntegrator(model, T / num_steps, rule)
    if rule == "trapezoid":
        assert integ.explicit  # Störmer–Verlet fast path on the initial-value side
    inputs = input_signal(num_steps, T / num_steps)
    traj = solve_bvp(integ, params, jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4]), num_steps, inputs)
    assert int(traj.num_failures) == 0
    ivp = integ.simulate(params, traj.q[0], p0=traj.p[0], num_steps=num_steps, inputs=inputs)
    np.testing.assert_allclose(np.asarray(ivp.q), np.asarray(traj.q), atol=1e-10, rtol=0)
    np.testing.assert_allclose(np.asarray(ivp.p), np.asarray(traj.p), atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------- (5) gradients
def _dense_newton_q(integ, params, q_start, q_end, num_steps, inputs, iterations=10):
    """Reference: plain Newton with a dense Jacobian and a fixed number of iterations,
    differentiated by jax.grad *through* the iterations (converges to the IFT derivative)."""
    interior = jnp.linspace(q_start, q_end, num_steps + 1)[1:-1]

    def residual(z):
        q = jnp.concatenate([q_start[None], z, q_end[None]])
        return interior_del_residual(integ, params, q, inputs).reshape(-1)

    def newton_step(_, z):
        jac = jax.jacfwd(residual)(z).reshape(z.size, z.size)
        return z - jnp.linalg.solve(jac, residual(z)).reshape(z.shape)

    interior = jax.lax.fori_loop(0, iterations, newton_step, interior)
    return jnp.concatenate([q_start[None], interior, q_end[None]])


def _flatten(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(tree)])


def _central_differences(fun, args, select):
    """Central differences of scalar `fun(*args)` for the scalars `select(leaf_index, leaf)` picks."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    leaves = [jnp.asarray(np.asarray(leaf)) for leaf in leaves]  # no weak types: compile once
    fun = jax.jit(fun)
    eps = 1e-5
    result = {}
    for li, leaf in enumerate(leaves):
        leaf = np.asarray(leaf)
        for idx in select(li, list(np.ndindex(leaf.shape))):
            shifted = []
            for sign in (1.0, -1.0):
                moved = leaf.copy()
                moved[idx] += sign * eps
                new_leaves = leaves[:li] + [jnp.asarray(moved)] + leaves[li + 1:]
                shifted.append(float(fun(*jax.tree_util.tree_unflatten(treedef, new_leaves))))
            result[(li, idx)] = (shifted[0] - shifted[1]) / (2 * eps)
    return result


def _compare_with_differences(grads, differences):
    grad_leaves = jax.tree_util.tree_leaves(grads)
    ad = np.asarray([np.asarray(grad_leaves[li])[idx] for (li, idx) in differences])
    fd = np.asarray(list(differences.values()))
    return np.max(np.abs(fd - ad)) / np.max(np.abs(ad))


def _pendulum_gradient_problem(damping):
    model, params = coupled_pendulums(damping=damping)
    num_steps, T = 16, 1.6
    integ = VariationalIntegrator(model, T / num_steps, "midpoint")
    inputs = input_signal(num_steps, T / num_steps)
    targets = jnp.asarray(np.random.default_rng(1).normal(size=(num_steps + 1, 2)) * 0.3)
    cost = tracking_cost(targets)

    def loss_from_q(q):
        return jnp.sum(jax.vmap(cost)(jnp.arange(num_steps + 1), q))

    def loss(params, q_start, q_end, inputs):
        return loss_from_q(solve_bvp(integ, params, q_start, q_end, num_steps, inputs).q)

    args = (params, jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4]), inputs)
    return integ, num_steps, loss_from_q, loss, args


@pytest.mark.slow
def test_implicit_gradient_matches_finite_differences_and_dense_newton():
    """Loss Σ_k c(q_k) of the BVP solution: IFT gradient w.r.t. params, both endpoints and the
    inputs, against a dense Newton solve differentiated through its iterations and against
    central finite differences; forward mode (jvp) against reverse mode."""
    integ, num_steps, loss_from_q, loss, args = _pendulum_gradient_problem(damping=False)

    def dense_loss(params, q_start, q_end, inputs):
        return loss_from_q(_dense_newton_q(integ, params, q_start, q_end, num_steps, inputs))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(*args)
    dense_grads = jax.jit(jax.grad(dense_loss, argnums=(0, 1, 2, 3)))(*args)
    flat, flat_dense = _flatten(grads), _flatten(dense_grads)
    rel_dense = np.max(np.abs(flat - flat_dense)) / np.max(np.abs(flat_dense))

    num_leaves = len(jax.tree_util.tree_leaves(args))
    differences = _central_differences(
        loss, args, lambda li, idx: idx[::6] if li == num_leaves - 1 else idx  # inputs: a sample
    )
    rel_fd = _compare_with_differences(grads, differences)
    print(f"conservative: rel. error vs dense Newton {rel_dense:.2e}, vs central FD {rel_fd:.2e}")
    assert rel_dense < 1e-9, rel_dense
    assert rel_fd < 1e-6, rel_fd

    # Forward mode (the custom JVP rule itself) agrees with reverse mode.
    params, q_start, q_end, inputs = args
    direction = jax.tree_util.tree_map(jnp.ones_like, params)
    _, tangent = jax.jvp(lambda p: loss(p, q_start, q_end, inputs), (params,), (direction,))
    np.testing.assert_allclose(float(tangent), float(sum(jnp.sum(g) for g in jax.tree_util.tree_leaves(grads[0]))), rtol=1e-10)


@pytest.mark.slow
def test_implicit_gradient_with_nonconservative_force():
    """With a friction force the BVP Jacobian is not symmetric: reverse mode must use the
    transposed block-tridiagonal solve (checked against central finite differences)."""
    integ, num_steps, _, loss, args = _pendulum_gradient_problem(damping=True)
    grads = jax.grad(loss, argnums=(0, 1, 2))(*args[:3], args[3])
    differences = _central_differences(lambda *a: loss(*a, args[3]), args[:3], lambda li, idx: idx)
    rel_fd = _compare_with_differences(grads, differences)
    print(f"damped: rel. error vs central FD {rel_fd:.2e}")
    assert rel_fd < 1e-6, rel_fd


def test_gradient_with_respect_to_cost_closure_and_beta():
    """Arrays closed over by `cost` and `beta` are differentiable too (vs finite differences)."""
    model, params = coupled_pendulums()
    num_steps, T = 12, 1.2
    integ = VariationalIntegrator(model, T / num_steps, "midpoint")
    q_start, q_end = jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4])
    targets = jnp.asarray(np.random.default_rng(2).normal(size=(num_steps + 1, 2)) * 0.3)

    def loss(targets, beta):
        traj = solve_bvp(integ, params, q_start, q_end, num_steps, cost=tracking_cost(targets), beta=beta)
        return jnp.sum(traj.q**2)

    args = (targets, jnp.asarray(0.2))
    grads = jax.grad(loss, argnums=(0, 1))(*args)
    differences = _central_differences(loss, args, lambda li, idx: idx[7:9] if li == 0 else idx)
    rel_fd = _compare_with_differences(grads, differences)
    assert rel_fd < 1e-6, rel_fd


# ---------------------------------------------------------------------------- jit / vmap
def test_jit_and_vmap_over_params_and_endpoints():
    model, params = harmonic(2, separable=False)
    num_steps, T = 20, 2.0
    h = T / num_steps
    integ = VariationalIntegrator(model, h, "midpoint")
    q_a = jnp.asarray([0.4, 0.1])

    def solve(params, q_end):
        return solve_bvp(integ, params, q_a, q_end, num_steps).q

    stiffness = jnp.asarray([[0.5, 1.0], [1.0, 2.0], [1.5, 0.8]])
    ends = jnp.asarray([[-0.7, 0.3], [0.2, 0.0], [0.1, -0.4]])
    batched = jax.jit(jax.vmap(lambda k, b: solve(dict(params, k=k), b)))(stiffness, ends)
    for i in range(len(stiffness)):
        eager = solve(dict(params, k=stiffness[i]), ends[i])
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(eager), atol=1e-13, rtol=0)
        for d in range(2):  # each coordinate against the exact discrete solution
            exact = midpoint_harmonic_discrete_exact(
                np.arange(num_steps + 1), float(q_a[d]), float(ends[i, d]), float(np.sqrt(stiffness[i, d])), h, num_steps
            )
            np.testing.assert_allclose(np.asarray(batched[i, :, d]), exact, atol=1e-13, rtol=0)


# ---------------------------------------------------------------------------- (6) nudging
def test_nudged_solve_satisfies_kicked_del_equations():
    model, params = coupled_pendulums()
    num_steps, T = 20, 1.5
    integ = VariationalIntegrator(model, T / num_steps, "midpoint")
    inputs = input_signal(num_steps, T / num_steps)
    targets = jnp.asarray(np.random.default_rng(3).normal(size=(num_steps + 1, 2)))
    cost = tracking_cost(targets, weight=2.0)
    beta = 0.3
    q_start, q_end = jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4])
    nudged = solve_bvp(integ, params, q_start, q_end, num_steps, inputs, cost=cost, beta=beta)

    times = integ.node_times(num_steps)
    us = integ.node_inputs(num_steps, inputs)
    ks = jnp.arange(1, num_steps)
    kicks = beta * jax.vmap(jax.grad(cost, argnums=1))(ks, nudged.q[1:-1])

    def del_residual(k, kick):
        node = lambda j: (times[j], us[j])
        return integ.discrete.del_residual(
            params, nudged.q[k - 1], nudged.q[k], nudged.q[k + 1], node(k - 1), node(k), node(k + 1), kick=kick
        )

    residuals = jax.jit(jax.vmap(del_residual))
    kicked = residuals(ks, kicks)
    unkicked = residuals(ks, jnp.zeros_like(kicks))
    assert float(jnp.max(jnp.abs(kicked))) < 1e-12
    # Without the kick the free DEL equations are violated by exactly −β∇c_k (≠ 0).
    assert float(jnp.min(jnp.max(jnp.abs(kicks), axis=1))) > 1e-2
    np.testing.assert_allclose(np.asarray(unkicked), -np.asarray(kicks), atol=1e-12)


# ---------------------------------------------------------------------------- (7) failures
def test_failed_solves_raise_convergence_error():
    model, params = coupled_pendulums()
    num_steps = 20
    integ = VariationalIntegrator(model, 0.075, "midpoint")
    q_start, q_end = jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4])
    # Far enough from the solution that one Newton step is not enough, close enough for 50.
    linear = jnp.linspace(q_start, q_end, num_steps + 1)
    bad_guess = linear + jnp.asarray(np.random.default_rng(4).normal(size=(num_steps + 1, 2)) * 0.5)
    with pytest.raises(ConvergenceError, match=r"solve_bvp .*N=20.*max_steps=1.*residual"):
        solve_bvp(integ, params, q_start, q_end, num_steps, q_guess=bad_guess, max_steps=1)
    with pytest.raises(lep.InputError, match=r"q_end contains non-finite"):  # refused before any solve
        solve_bvp(integ, params, q_start, jnp.asarray([jnp.nan, 0.0]), num_steps)
    # Under jit the same NaN reaches the solver, which reports it as non-finite.
    nan_end = jax.jit(lambda b: solve_bvp(integ, params, q_start, b, num_steps, throw=False))(
        jnp.asarray([jnp.nan, 0.0]))
    assert nan_end.result == lep.RESULTS.newton_nonfinite

    traj = solve_bvp(integ, params, q_start, q_end, num_steps, q_guess=bad_guess, max_steps=1, throw=False)
    assert int(traj.num_failures) == 1 and 1 <= int(traj.first_failed_step) < num_steps
    assert traj.result == lep.RESULTS.max_steps_reached and int(traj.stats.newton_iterations_max) == 1
    ok = solve_bvp(integ, params, q_start, q_end, num_steps, q_guess=bad_guess, throw=False)
    assert int(ok.num_failures) == 0 and int(ok.first_failed_step) == -1

    jitted = jax.jit(lambda b: solve_bvp(integ, params, q_start, b, num_steps, max_steps=1, q_guess=bad_guess).q)
    with pytest.raises(Exception, match="solve_bvp"):
        jax.block_until_ready(jitted(q_end))


# ---------------------------------------------------------------------------- (8) long horizon
def test_long_horizon_two_dof():
    """N = 2000 on a nonlinear 2-dof system: the BVP Newton solve converges (its tolerance is
    met despite the O(1/h) momentum terms) and matches explicit Störmer–Verlet stepping."""
    model, params = coupled_pendulums(separable=True)
    num_steps, T = 2000, 1.5
    integ = VariationalIntegrator(model, T / num_steps, "trapezoid")
    q_start, q_end = jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.4])
    traj = solve_bvp(integ, params, q_start, q_end, num_steps)
    assert traj.q.shape == (num_steps + 1, 2)
    residual = eqx.filter_jit(interior_del_residual)(integ, params, traj.q)
    assert float(jnp.max(jnp.abs(residual))) < 1e-9
    assert integ.explicit
    ivp = integ.simulate(params, q_start, p0=traj.p[0], num_steps=num_steps)
    np.testing.assert_allclose(np.asarray(ivp.q), np.asarray(traj.q), atol=1e-9, rtol=0)


def test_single_step_and_bad_shapes(without_runtime_types):
    model, params = harmonic(1)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    traj = solve_bvp(integ, params, jnp.asarray([0.0]), jnp.asarray([0.1]), 1)
    np.testing.assert_allclose(np.asarray(traj.q[:, 0]), [0.0, 0.1])
    # p⁻_0 = −D₁L_d = m (b − a)/h + h k (a + b)/4 for the midpoint rule.
    np.testing.assert_allclose(float(traj.p[0, 0]), 0.1 / 0.1 + 0.1 * 0.1 / 4, rtol=1e-12)
    with pytest.raises(ValueError, match="q_guess"):
        solve_bvp(integ, params, jnp.asarray([0.0]), jnp.asarray([0.1]), 5, q_guess=jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="real beta"):
        solve_bvp(integ, params, jnp.asarray([0.0]), jnp.asarray([0.1]), 5, cost=lambda k, q: q[0], beta=1j)
    with pytest.raises(ValueError, match="q_end"):
        solve_bvp(integ, params, jnp.asarray([0.0]), jnp.asarray([0.1, 0.2]), 5)
