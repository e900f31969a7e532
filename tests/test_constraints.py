"""Holonomic constraints φ(q, t) = 0 with Lagrange multipliers (theory §7): Cartesian pendula
against their angle formulation, a rolling disc against 2g·sinα/3, the echo against BPTT on a
constrained system with a trainable constraint, constraint drift, and the refusals."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from sympy.physics.mechanics import dynamicsymbols

import lagrangian_eqprop as lep
from lagrangian_eqprop import systems

t = dynamicsymbols._t


@functools.lru_cache(maxsize=None)
def cartesian_double_pendulum():
    """Two unit masses on rods of lengths l1, l2, in Cartesian coordinates with two constraints."""
    x1, y1, x2, y2 = dynamicsymbols("x1 y1 x2 y2")
    m, g, l1, l2 = sp.symbols("m g l1 l2")
    L = m / 2 * sum(c.diff(t) ** 2 for c in (x1, y1, x2, y2)) - m * g * (y1 + y2)
    constraints = [x1**2 + y1**2 - l1**2, (x2 - x1) ** 2 + (y2 - y1) ** 2 - l2**2]
    return lep.compile_lagrangian(L, [x1, y1, x2, y2], [m, g, l1, l2], time=t, constraints=constraints)


PARAMS = {"m": jnp.asarray(1.0), "g": jnp.asarray(9.81), "l1": jnp.asarray(1.0), "l2": jnp.asarray(1.0)}
ANGLES = (0.8, -0.3, 0.2, 0.0)  # θ1, θ2, ω1, ω2


def cartesian_state(th1, th2, w1, w2):
    q = jnp.asarray([np.sin(th1), -np.cos(th1), np.sin(th1) + np.sin(th2), -np.cos(th1) - np.cos(th2)])
    v = jnp.asarray([np.cos(th1) * w1, np.sin(th1) * w1, np.cos(th1) * w1 + np.cos(th2) * w2,
                     np.sin(th1) * w1 + np.sin(th2) * w2])
    return q, v


def test_compiler_marks_constrained_models():
    model = cartesian_double_pendulum()
    assert model.constrained and model.num_constraints == 2 and model.time_reversible
    # a constrained model never takes the explicit Störmer–Verlet step
    assert not lep.VariationalIntegrator(model, 0.01, "trapezoid").explicit


def test_accelerations_equal_the_angle_formulation():
    model = cartesian_double_pendulum()
    q, v = cartesian_state(*ANGLES)
    angles = systems.double_pendulum()
    th = jnp.asarray(ANGLES[:2])
    w = jnp.asarray(ANGLES[2:])
    alpha = angles.model.acceleration(th, w, 0.0, angles.params)
    # d²/dt² of (sin θ1, −cos θ1): (cos θ1 α1 − sin θ1 ω1², sin θ1 α1 + cos θ1 ω1²), and for mass 2 the sum
    def cart(th, w, a):
        return np.array([np.cos(th) * a - np.sin(th) * w**2, np.sin(th) * a + np.cos(th) * w**2])

    a1 = cart(ANGLES[0], ANGLES[2], float(alpha[0]))
    a2 = a1 + cart(ANGLES[1], ANGLES[3], float(alpha[1]))
    np.testing.assert_allclose(model.acceleration(q, v, 0.0, PARAMS), np.concatenate([a1, a2]), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["trapezoid", "midpoint"])
def test_cartesian_double_pendulum_converges_to_the_angle_formulation(rule):
    model = cartesian_double_pendulum()
    q0, v0 = cartesian_state(*ANGLES)
    horizon = 1.0
    angles = systems.double_pendulum(theta0=ANGLES[:2], omega0=ANGLES[2:])
    ref = lep.VariationalIntegrator(angles.model, 1e-4, "galerkin").simulate(
        angles.params, angles.q0, angles.v0, 10_000).q[-1]
    th1, th2 = float(ref[0]), float(ref[1])
    exact = np.array([np.sin(th1), -np.cos(th1), np.sin(th1) + np.sin(th2), -np.cos(th1) - np.cos(th2)])
    errors = []
    for dt in (0.02, 0.01):
        traj = lep.VariationalIntegrator(model, dt, rule).simulate(PARAMS, q0, v0, round(horizon / dt))
        phi = jax.vmap(lambda q: model.constraint(q, 0.0, PARAMS))(traj.q)
        assert float(jnp.max(jnp.abs(phi))) < 1e-12  # on the manifold at every node
        errors.append(float(np.max(np.abs(np.asarray(traj.q[-1]) - exact))))
    order = np.log2(errors[0] / errors[1])
    assert 1.7 < order < 2.3, errors


def test_disc_rolling_down_an_incline():
    """x along the incline, φ the disc's rotation, rolling without slipping x − Rφ = 0:
    a = g sin α / (1 + I/(mR²)) = 2 g sin α / 3 for a uniform disc (I = ½mR²)."""
    x, phi = dynamicsymbols("x phi")
    m, radius, g, alpha = sp.symbols("m R g alpha")
    inertia = m * radius**2 / 2
    L = m * x.diff(t) ** 2 / 2 + inertia * phi.diff(t) ** 2 / 2 + m * g * sp.sin(alpha) * x
    model = lep.compile_lagrangian(L, [x, phi], [m, radius, g, alpha], time=t, constraints=[x - radius * phi])
    params = {"m": 2.0, "R": 0.3, "g": 9.81, "alpha": 0.4}
    integ = lep.VariationalIntegrator(model, 0.01, "midpoint")
    traj = integ.simulate(params, jnp.zeros(2), jnp.zeros(2), 100)
    a = 2 * 9.81 * np.sin(0.4) / 3
    np.testing.assert_allclose(np.asarray(traj.q[:, 0]), 0.5 * a * np.asarray(traj.t) ** 2, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(traj.q[:, 1]), np.asarray(traj.q[:, 0]) / 0.3, rtol=1e-10, atol=1e-12)


def test_echo_equals_bptt_on_a_constrained_system_with_trainable_rods():
    model = cartesian_double_pendulum()
    integ = lep.VariationalIntegrator(model, 0.01, "trapezoid")
    q0, v0 = cartesian_state(*ANGLES)
    cost = lep.TrackingCost(0.2 * jnp.ones((101, 2)), [0, 2], weight=0.01)
    kw = dict(q0=q0, v0=v0, num_steps=100)
    echo = lep.eqprop_gradient(integ, PARAMS, cost, method=lep.Echo(beta=1e-6), **kw)
    bptt = lep.bptt_gradient(integ, PARAMS, cost, **kw)
    for name in ("g", "l1", "l2"):  # the rod lengths enter only through the constraints
        np.testing.assert_allclose(echo[name], bptt[name], rtol=1e-6)
    assert abs(float(bptt["l2"])) > 1e-3


@pytest.mark.slow
def test_constraint_drift_over_a_hundred_thousand_steps():
    x, y = dynamicsymbols("x y")
    m, g, length = sp.symbols("m g l")
    L = m / 2 * (x.diff(t) ** 2 + y.diff(t) ** 2) - m * g * y
    model = lep.compile_lagrangian(L, [x, y], [m, g, length], time=t, constraints=[x**2 + y**2 - length**2])
    integ = lep.VariationalIntegrator(model, 0.01, "trapezoid")
    params = {"m": 1.0, "g": 9.81, "l": 1.0}
    final = integ.final_state(params, jnp.asarray([np.sin(1.0), -np.cos(1.0)]), jnp.zeros(2), 100_000)
    assert abs(float(model.constraint(final.q, 0.0, params)[0])) < 1e-12
    assert final.result == lep.RESULTS.successful and float(final.stats.energy_error) < 1e-2


def test_refusals_name_the_problem():
    x, y = dynamicsymbols("x y")
    m, radius = sp.symbols("m R")
    L = m / 2 * (x.diff(t) ** 2 + y.diff(t) ** 2)
    with pytest.raises(lep.LagrangianError, match="nonholonomic"):
        lep.compile_lagrangian(L, [x, y], [m, radius], time=t, constraints=[x.diff(t) - radius * y.diff(t)])
    model = cartesian_double_pendulum()
    integ = lep.VariationalIntegrator(model, 0.01, "midpoint")
    q0, v0 = cartesian_state(*ANGLES)
    with pytest.raises(lep.InputError, match="q0 violates holonomic constraint #1"):
        integ.simulate(PARAMS, q0.at[2].add(0.1), v0, 10)
    with pytest.raises(lep.InputError, match="v0 violates holonomic constraint #0"):
        integ.simulate(PARAMS, q0, v0.at[0].add(0.5), 10)
    with pytest.raises(lep.InputError, match="constrained models are not supported"):
        integ.solve_bvp(PARAMS, q0, q0, 10)
    with pytest.raises(lep.EstimatorError, match="constrained"):
        lep.eqprop_gradient(integ, PARAMS, lep.TrackingCost(jnp.zeros((11, 1)), [0]), method=lep.FixedEndpoints(),
                            q_start=q0, q_end=q0, num_steps=10)
