"""The fast paths of the explicit step and of network models, against independent references.

- The action's gradients that the explicit Störmer–Verlet step accumulates from its own force
  evaluation (`rollout(action_gradient=..., action_input_gradient=...)`, one reverse pass per
  step) equal `Σ_j jax.grad` of the discrete Lagrangian along the same stored trajectory, for
  diagonal and full mass matrices and in complex arithmetic (the holomorphic echo);
- the echo built on it equals its per-step-`jax.grad` version pass by pass, BPTT (centered and
  tangent contrasts, parameters, initial state and inputs), and the root-finding path of the
  same rule;
- a network potential's gradient on an irregular graph (lattice, random extra edges, fixed
  nodes) equals a force written by hand with NumPy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import lagrangian_eqprop as lep
from lagrangian_eqprop import _echo, systems

N = 60
DT = 0.05


def rel_err(estimate, reference):
    return max(float(np.max(np.abs(np.asarray(estimate[k]) - np.asarray(reference[k]))))
               / float(np.max(np.abs(np.asarray(reference[k])))) for k in reference)


@functools.lru_cache(maxsize=None)
def driven_chain(n=5):
    """n Duffing units with nearest-neighbour springs, two inputs through per-unit gains, all
    parameters trained (masses too): `(integ, params, q0, v0, us, cost)`."""
    t = sp.Symbol("t")
    x, xa, xb = (sp.Function(s)(t) for s in ("x", "xa", "xb"))
    m, kappa, gamma, b1, b2, k = sp.symbols("m kappa gamma b1 b2 k")
    u1, u2 = sp.Function("u1")(t), sp.Function("u2")(t)
    node = lep.NodeTerm(m * x.diff(t) ** 2 / 2 - kappa * x**2 / 2 - gamma * x**4 / 4 + (b1 * u1 + b2 * u2) * x,
                        [x], [m, kappa, gamma, b1, b2], [u1, u2])
    edge = lep.EdgeTerm(-k * (xb - xa) ** 2 / 2, ([xa], [xb]), [k])
    model = lep.compile_network(n, [(i, i + 1) for i in range(n - 1)], [node], [edge], dim=1, time=t, inputs=[u1, u2])
    rng = np.random.default_rng(1)
    params = {"m": 1.0 + 0.2 * rng.random(n), "kappa": 1.0 + rng.random(n), "gamma": 0.5 * rng.random(n),
              "b1": rng.standard_normal(n), "b2": rng.standard_normal(n), "k": 0.5 + rng.random(n - 1)}
    params = {name: jnp.asarray(value) for name, value in params.items()}
    times = DT * np.arange(N + 1)
    us = jnp.asarray(np.stack([np.sin(0.7 * times), np.cos(1.3 * times)], axis=1))
    cost = lep.TrackingCost(jnp.asarray(0.2 * np.sin(0.5 * times))[:, None], [n - 1])
    integ = lep.VariationalIntegrator(model, DT, "trapezoid")
    assert integ.explicit and model.separable.diagonal
    return integ, params, jnp.asarray(0.3 * rng.standard_normal(n)), jnp.asarray(0.2 * rng.standard_normal(n)), us, cost


@functools.lru_cache(maxsize=None)
def coupled_masses():
    """Two coordinates with a full (non-diagonal) trainable mass matrix and an input:
    `L = ½(m1 ẋ² + m2 ẏ²) + c ẋẏ − ½ k (x² + y²) − ¼ a x⁴ + b u y`."""
    t = sp.Symbol("t")
    x, y, u = (sp.Function(s)(t) for s in ("x", "y", "u"))
    m1, m2, c, k, a, b = sp.symbols("m1 m2 c k a b")
    L = (m1 * x.diff(t) ** 2 + m2 * y.diff(t) ** 2) / 2 + c * x.diff(t) * y.diff(t) - k * (x**2 + y**2) / 2 \
        - a * x**4 / 4 + b * u * y
    model = lep.compile_lagrangian(L, [x, y], [m1, m2, c, k, a, b], inputs=[u], time=t)
    params = {name: jnp.asarray(value) for name, value in
              dict(m1=1.2, m2=0.8, c=0.3, k=1.5, a=0.4, b=0.7).items()}
    integ = lep.VariationalIntegrator(model, DT, "trapezoid")
    assert integ.explicit and not model.separable.diagonal
    us = jnp.asarray(np.sin(0.9 * DT * np.arange(N + 1)))[:, None]
    return integ, params, jnp.asarray([0.4, -0.3]), jnp.asarray([0.1, 0.2]), us


def reference_action_gradients(integ, params, qs, times, us):
    """`Σ_j ∂_θ L_d(q_j, q_{j+1})` and `∂/∂u_k` of the same sum, by `jax.grad` of the discrete
    Lagrangian on every interval of a stored trajectory `qs (N+1, n)`."""
    def interval(a, b, ta, tb, ua, ub):
        g_params, g_node_a, g_node_b = lep._autodiff.grad(integ.discrete, (0, 3, 4))(
            params, a, b, (ta, ua), (tb, ub))
        return g_params, g_node_a[1], g_node_b[1]

    g_params, at_a, at_b = jax.vmap(interval)(qs[:-1], qs[1:], times[:-1], times[1:], us[:-1], us[1:])
    g_inputs = jnp.zeros((qs.shape[0], us.shape[1]), at_a.dtype).at[:-1].add(at_a).at[1:].add(at_b)
    return jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0), g_params), g_inputs


def fused_and_reference(integ, params, q0, p0, us, kick=None):
    times = integ.node_times(us.shape[0] - 1, jnp.float64)
    run = integ.rollout(params, q0, p0, times, us, kick=kick, save_trajectory=True, action_gradient=True,
                        action_input_gradient=True)
    qs = jnp.concatenate([q0[None], run.qs], axis=0)
    return run, reference_action_gradients(integ, params, qs, times, us)


def test_fused_action_gradient_equals_per_step_autodiff_with_kicks_and_inputs():
    integ, params, q0, v0, us, cost = driven_chain()
    grad_cost = jax.grad(cost, argnums=1)
    p0 = integ.initial_momentum(params, q0, v0, 0.0, us[0])
    run, (g_params, g_inputs) = jax.jit(lambda prm, q, p, u: fused_and_reference(
        integ, prm, q, p, u, kick=lambda j, q_b: 0.1 * grad_cost(j + 1, q_b)))(params, q0, p0, us)
    assert rel_err(run.action_gradient, g_params) <= 1e-12
    np.testing.assert_allclose(run.action_input_gradient, g_inputs, rtol=1e-12, atol=1e-14)
    assert not np.allclose(run.action_gradient["m"], 0.0)  # the kinetic part is exercised


def test_fused_action_gradient_with_a_full_mass_matrix():
    integ, params, q0, v0, us = coupled_masses()
    p0 = integ.initial_momentum(params, q0, v0, 0.0, us[0])
    run, (g_params, g_inputs) = jax.jit(lambda prm: fused_and_reference(integ, prm, q0, p0, us))(params)
    assert rel_err(run.action_gradient, g_params) <= 1e-12
    np.testing.assert_allclose(run.action_input_gradient, g_inputs, rtol=1e-12, atol=1e-14)


def test_fused_action_gradient_in_complex_arithmetic():
    # The holomorphic echo runs passes with complex states and real parameters and inputs.
    integ, params, q0, v0, us, _ = driven_chain()
    p0 = integ.initial_momentum(params, q0, v0, 0.0, us[0])
    index = jnp.arange(q0.shape[0], dtype=q0.dtype)
    zq, zp = jax.lax.complex(q0, 0.05 * jnp.sin(index)), jax.lax.complex(p0, -0.03 * jnp.cos(index))

    @jax.jit
    def run(prm, zq, zp, us):
        with jax.numpy_dtype_promotion("standard"):  # as in the holomorphic contrast
            return fused_and_reference(integ, prm, zq, zp, us)

    run, (g_params, g_inputs) = run(params, zq, zp, us)
    assert jnp.iscomplexobj(run.action_gradient["k"]) and jnp.iscomplexobj(run.action_input_gradient)
    assert float(np.max(np.abs(np.imag(run.action_gradient["kappa"])))) > 1e-6  # a genuinely complex pass
    assert rel_err(run.action_gradient, g_params) <= 1e-12
    np.testing.assert_allclose(run.action_input_gradient, g_inputs, rtol=1e-12, atol=1e-14)


def test_fused_echo_pass_equals_the_per_step_grad_echo_pass():
    # The echo's G as it was computed before the fusion: one jax.grad of L_d per echo step, in
    # the forward-time orientation L_d(Q_{j+1}, Q_j).
    integ, params, q0, v0, us, cost = driven_chain()
    times = integ.node_times(N, jnp.float64)
    p0 = integ.initial_momentum(params, q0, v0, 0.0, us[0])
    grad_cost = jax.grad(cost, argnums=1)

    def passes(beta):
        q_n, p_n, *_ = _echo.free_pass(integ, params, cost, q0, p0, times, us)
        fused, _ = _echo.echo_pass(integ, params, cost, beta, q_n, p_n, times, us)

        def kick(j, q):
            return jnp.where(j <= N - 2, beta * grad_cost(N - 1 - j, q), jnp.zeros_like(q))

        def accumulate(j, q_a, q_b, node_a, node_b):
            return jax.grad(integ.discrete)(params, q_b, q_a, node_b, node_a)

        old = integ.rollout(params, q_n, -p_n + beta * grad_cost(N, q_n), times[::-1], us[::-1], kick=kick,
                            accumulate=accumulate, save_trajectory=False,
                            accumulator_init=jax.tree_util.tree_map(jnp.zeros_like, params))
        return fused["G"], old.accumulated, fused["q_end"], old.q

    for beta in (0.0, 1e-3):
        g_fused, g_old, q_fused, q_old = jax.jit(passes)(jnp.asarray(beta))
        assert rel_err(g_fused, g_old) <= 1e-12, beta
        np.testing.assert_allclose(q_fused, q_old, rtol=0, atol=1e-15)


@pytest.mark.parametrize("variant, tolerance", [("centered", 1e-6), ("tangent", 1e-10)])
def test_echo_on_the_fused_path_matches_bptt(variant, tolerance):
    integ, params, q0, v0, us, cost = driven_chain()
    kw = dict(q0=q0, v0=v0, num_steps=N, inputs=us, return_all=True)
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    echo = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-5, variant=variant), **kw)
    assert rel_err(echo.params, bptt.params) <= tolerance
    for field in ("q0", "v0", "inputs"):
        scale = float(np.max(np.abs(getattr(bptt, field))))
        np.testing.assert_allclose(getattr(echo, field), getattr(bptt, field), rtol=0, atol=tolerance * scale)


@pytest.mark.slow
def test_explicit_and_root_finding_steps_give_the_same_echo():
    # The same trapezoid rule stepped by Newton takes the generic (per-step jax.grad) path.
    integ, params, q0, v0, us, cost = driven_chain()
    implicit = lep.VariationalIntegrator(integ.model, DT, "trapezoid", explicit=False, newton_rtol=1e-13,
                                         newton_atol=1e-14)
    assert not implicit.explicit
    kw = dict(q0=q0, v0=v0, num_steps=N, inputs=us, method=lep.Echo(variant="tangent"), return_all=True)
    fast = lep.eqprop_gradient(integ, params, cost, **kw)
    slow = lep.eqprop_gradient(implicit, params, cost, **kw)
    assert rel_err(fast.params, slow.params) <= 1e-9
    np.testing.assert_allclose(fast.inputs, slow.inputs, rtol=0, atol=1e-9 * float(np.max(np.abs(slow.inputs))))


def test_irregular_network_force_matches_a_hand_written_one():
    # Lattice + random extra edges + pinned nodes: index arrays that are no arithmetic runs, so
    # the network runtime gathers (and its gradient scatters); the reference is NumPy.
    rows, cols = 6, 7
    positions, edges = systems.grid_graph(rows, cols)
    rng = np.random.default_rng(3)
    extra = rng.integers(0, rows * cols, (15, 2))
    edges = np.concatenate([edges, extra[extra[:, 0] != extra[:, 1]]])
    fixed = [0, 5, 20, 41]
    model, params, q0, _ = systems.mass_spring_network(positions, edges, dim=2, fixed_nodes=fixed)
    params = {"m": jnp.ones(rows * cols), "k": jnp.asarray(0.5 + rng.random(len(edges))),
              "l": jnp.asarray(params["l"]) * (1.0 + 0.1 * rng.standard_normal(len(edges)))}
    q = jnp.asarray(q0) + 0.1 * jnp.asarray(rng.standard_normal(q0.shape))
    force = jax.jit(jax.grad(model.separable.potential_fn))(q, 0.0, params, model.default_input(jnp.float64))

    free = np.array([i for i in range(rows * cols) if i not in fixed])
    x = positions.copy()
    x[free] = np.asarray(q).reshape(-1, 2)
    delta = x[edges[:, 1]] - x[edges[:, 0]]
    length = np.linalg.norm(delta, axis=1)
    pull = (np.asarray(params["k"]) * (length - np.asarray(params["l"])) / length)[:, None] * delta
    grad = np.zeros_like(x)
    np.add.at(grad, edges[:, 1], pull)
    np.add.at(grad, edges[:, 0], -pull)
    np.testing.assert_allclose(force, grad[free].reshape(-1), rtol=1e-12, atol=1e-13)


def test_rows_by_blocks_runs_and_gathers_equal_plain_indexing():
    # A 2-D lattice's edge endpoints (blocks of equal runs one row apart), a long run, and an
    # irregular tail of random springs, some endpoints among the fixed rows: the runtime cuts
    # the index into slices and gathers (`index_pieces`); values and gradients must equal plain
    # indexing of `concatenate([x, fixed])`.
    from lagrangian_eqprop._graph import Rows, index_pieces

    rows, cols, boundary = 12, 40, 12 * 40
    lattice = (np.arange(rows)[:, None] * cols + np.arange(cols - 1)[None, :]).ravel()
    rng = np.random.default_rng(0)
    index = np.concatenate([lattice, np.arange(5, 5 + 3 * 60, 3), rng.integers(0, boundary + 6, 50)])
    pieces = index_pieces(index, boundary)
    assert pieces is not None and {p[0] for p in pieces} >= {"block", "run", "gather"}
    x = jnp.asarray(rng.standard_normal((boundary, 2)))
    fixed = rng.standard_normal((6, 2))
    take = Rows(index, boundary)
    np.testing.assert_array_equal(take(x, fixed), np.concatenate([np.asarray(x), fixed])[index])
    weights = jnp.asarray(rng.standard_normal((index.size, 2)))
    grad = jax.grad(lambda y: jnp.sum(weights * take(y, fixed) ** 2))(x)
    expected = jax.grad(lambda y: jnp.sum(weights * jnp.concatenate([y, jnp.asarray(fixed)])[index] ** 2))(x)
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-13)
