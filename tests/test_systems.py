"""The systems catalog (`lagrangian_eqprop.systems`): registry, defaults, physics by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian_eqprop as lep
from lagrangian_eqprop import systems
from lagrangian_eqprop.errors import LagrangianError

EXPECTED = {
    "caldirola_kanai_oscillator", "damped_oscillator", "double_pendulum", "driven_oscillator",
    "free_chain", "harmonic_oscillator", "mass_spring_chain", "mass_spring_network", "oscillator_network",
    "pendulum_chain",
}


def f64(d):
    return {key: jnp.asarray(value, dtype=jnp.float64) for key, value in d.items()}


def derived(model, q, v, t, params, u=None):
    """Lagrangian, momentum and acceleration in one jitted call."""

    @jax.jit
    def run(q, v, t, params, u):
        return (model.lagrangian(q, v, t, params, u), model.momentum(q, v, t, params, u),
                model.acceleration(q, v, t, params, u))

    return run(jnp.asarray(q), jnp.asarray(v), t, params, u)


def test_registry_lists_and_rejects():
    assert set(systems.available()) == EXPECTED
    assert systems.available() == sorted(systems.available())
    with pytest.raises(LagrangianError, match="unknown system 'triple_pendulum'.*double_pendulum"):
        systems.get("triple_pendulum")
    with pytest.raises(ValueError, match="mass_spring_chain"):  # LagrangianError is a ValueError
        systems.get("nope")


def symbolic_acceleration(model, q, v, t, params, u):
    """Accelerations from the SymPy Euler–Lagrange equations of the model (formed by
    `euler_lagrange_equations`, the display path), solved numerically: independent of the
    compiled L and of JAX autodiff."""
    import sympy

    record = model.symbolic
    equations = lep.euler_lagrange_equations(model)
    time = record.time
    if isinstance(record, lep._symbolic.SymbolicNetwork):
        _, coordinates, _ = lep._symbolic.display._network_expression(record)
    else:
        coordinates = list(record.coordinates)
    accelerations = [c.diff(time, 2) for c in coordinates]
    values = {}
    for c, vel, qi, vi in zip(coordinates, [c.diff(time) for c in coordinates], np.asarray(q), np.asarray(v)):
        values[vel] = float(vi)
        values[c] = float(qi)
    for name, value in params.items():
        value = np.asarray(value)
        if value.ndim == 0:
            values[sympy.Symbol(name)] = float(value)
        else:
            for i, x in enumerate(value):
                values[sympy.Symbol(f"{name}_{i}")] = float(x)
    inputs = [i for i in (record.inputs or ())]
    for inp, ui in zip(inputs, np.asarray(u)):
        values[inp] = float(ui)
    lhs = [sympy.sympify(eq.lhs - eq.rhs) for eq in equations]
    matrix, rhs = sympy.linear_eq_to_matrix(lhs, accelerations)

    def numeric(expr):
        expr = expr.subs({**{a: 0 for a in accelerations}})
        expr = expr.xreplace({k: sympy.Float(v) for k, v in values.items() if not isinstance(k, sympy.Symbol)})
        expr = expr.subs({k: v for k, v in values.items() if isinstance(k, sympy.Symbol)}).subs(time, t)
        return float(expr.evalf())

    a = np.array([[numeric(e) for e in row] for row in matrix.tolist()])
    b = np.array([numeric(e) for e in rhs])
    return np.linalg.solve(a, b)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_system_has_consistent_defaults(name):
    model, params, q0, v0 = systems.get(name)
    assert set(params) == set(model.parameter_shapes)
    for key, shape in model.parameter_shapes.items():
        assert params[key].shape == shape, key
    assert q0.shape == v0.shape == (model.num_dof,)
    # A generic state (not the rest state, where many terms vanish), default parameters.
    rng = np.random.default_rng(0)
    q = jnp.asarray(q0) + 0.1 * jnp.asarray(rng.standard_normal(model.num_dof))
    v = jnp.asarray(v0) + 0.2 * jnp.asarray(rng.standard_normal(model.num_dof))
    u = jnp.full(model.num_inputs, 0.3)
    lagrangian, momentum, acceleration = derived(model, q, v, 0.1, params, u)
    assert np.isfinite(lagrangian) and bool(jnp.all(jnp.isfinite(momentum)))
    reference = symbolic_acceleration(model, q, v, 0.1, params, u)
    np.testing.assert_allclose(np.asarray(acceleration), reference, rtol=1e-9, atol=1e-9)
    assert np.max(np.abs(reference)) > 1e-3  # a state where the dynamics is not trivial


def test_structure_flags_of_catalog():
    models = {name: systems.get(name).model
              for name in ("double_pendulum", "caldirola_kanai_oscillator", "damped_oscillator",
                          "driven_oscillator", "pendulum_chain")}
    flags = {name: (model.separable is not None, model.time_reversible)
             for name, model in models.items()}
    assert flags == {
        "double_pendulum": (False, True),
        "caldirola_kanai_oscillator": (False, True),
        "damped_oscillator": (True, False),
        "driven_oscillator": (True, True),
        "pendulum_chain": (True, True),
    }


def test_double_pendulum_mass_matrix():
    model, _, _, _ = systems.double_pendulum(gravity=9.81)
    m1, m2, l1, l2 = 1.2, 0.8, 0.9, 1.3
    params = f64({"m1": m1, "m2": m2, "l1": l1, "l2": l2})
    q, v = jnp.array([0.3, -0.4]), jnp.array([0.5, 0.2])
    d = 0.7
    expected = [[(m1 + m2) * l1**2, m2 * l1 * l2 * np.cos(d)],
                [m2 * l1 * l2 * np.cos(d), m2 * l2**2]]
    np.testing.assert_allclose(jax.jit(model.mass_matrix)(q, v, 0.0, params), expected, rtol=1e-13)


def test_oscillators_against_formulas():
    q, v = jnp.array([0.6]), jnp.array([-0.3])
    ck = systems.caldirola_kanai_oscillator()
    params = f64({"m": 2.0, "k": 5.0, "gamma": 0.3})
    _, momentum, acceleration = derived(ck.model, q, v, 1.5, params)
    np.testing.assert_allclose(momentum, [np.exp(0.3 * 1.5) * 2.0 * -0.3], rtol=1e-13)
    np.testing.assert_allclose(acceleration, [-0.3 * -0.3 - 5.0 / 2.0 * 0.6], rtol=1e-13)

    driven = systems.driven_oscillator()
    assert driven.model.input_names == ("u",)
    _, _, acceleration = derived(driven.model, q, v, 0.0, f64({"m": 2.0, "k": 5.0}),
                                 jnp.array([1.5]))
    np.testing.assert_allclose(acceleration, [(1.5 - 5.0 * 0.6) / 2.0], rtol=1e-13)

    damped = systems.damped_oscillator()
    _, _, acceleration = derived(damped.model, q, v, 0.0, f64({"m": 2.0, "k": 5.0, "c": 0.4}))
    np.testing.assert_allclose(acceleration, [(-5.0 * 0.6 - 0.4 * -0.3) / 2.0], rtol=1e-13)


def test_mass_spring_chain_rest_state_and_fpu_force():
    chain = systems.mass_spring_chain(4, walls=True, nonlinear=True, input_mass=2, beta=0.3)
    model = chain.model
    assert model.coordinate_names == ("x_0", "x_1", "x_2", "x_3")
    assert dict(model.parameter_shapes) == {"b": (6,), "m": (6,), "beta": (5,), "k": (5,),
                                            "l": (5,)}
    rest = jnp.arange(4.0)
    _, _, acceleration = derived(model, rest, jnp.zeros(4), 0.0, chain.params, jnp.zeros(1))
    np.testing.assert_allclose(acceleration, np.zeros(4), atol=1e-12)  # rest layout = equilibrium
    # Hand-written FPU-β forces with walls at −1 and 4, plus the input force on mass 2.
    q = jnp.array([0.1, 0.8, 2.3, 2.9])
    positions = np.concatenate([[-1.0], np.asarray(q), [4.0]])
    stretch = np.diff(positions) - 1.0
    tension = 1.0 * stretch + 0.3 * stretch**3
    force = tension[1:] - tension[:-1]
    force[2] += 0.5
    _, _, acceleration = derived(model, q, jnp.zeros(4), 0.0, chain.params, jnp.array([0.5]))
    np.testing.assert_allclose(acceleration, force, rtol=1e-12)


def test_chain_wall_options():
    left = systems.mass_spring_chain(3, walls="left")
    assert left.model.parameter_shapes["k"] == (3,)
    none = systems.mass_spring_chain(3, walls=False)
    assert none.model.parameter_shapes["k"] == (2,)
    with pytest.raises(LagrangianError, match="walls must be one of"):
        systems.mass_spring_chain(3, walls="top")


def test_free_chain_is_translation_invariant():
    model, params, q0, v0 = systems.free_chain(5, nonlinear=True)
    assert float(jnp.sum(params["m"] * v0)) != 0.0  # non-trivial Noether momentum
    params = dict(params, m=jnp.array([1.0, 2.0, 0.5, 1.5, 1.0]))
    _, momentum, acceleration = derived(model, q0 + jnp.linspace(0, 0.3, 5), v0, 0.0, params)
    # Σ ∂L/∂q = 0  ⇒  d/dt Σ p = Σ m a = 0 (Noether: total momentum is conserved).
    np.testing.assert_allclose(jnp.sum(params["m"] * acceleration), 0.0, atol=1e-12)
    np.testing.assert_allclose(momentum, params["m"] * v0, rtol=1e-14)
    shifted = jax.jit(model.lagrangian)(q0 + 3.0, v0, 0.0, params)
    np.testing.assert_allclose(shifted, jax.jit(model.lagrangian)(q0, v0, 0.0, params), rtol=1e-12)


def test_mass_spring_network_grid_and_fixed_nodes():
    network = systems.mass_spring_network(rows=2, cols=3, diagonals=True, fixed_nodes=[0, 2])
    model = network.model
    assert model.num_dof == 2 * 4 and model.coordinate_names[:2] == ("x_1", "y_1")
    positions, edges = systems.grid_graph(2, 3, diagonals=True)
    free = [1, 3, 4, 5]
    rest = jnp.asarray(positions[free].ravel())
    _, _, acceleration = derived(model, rest, jnp.zeros(8), 0.0, network.params)
    np.testing.assert_allclose(acceleration, np.zeros(8), atol=1e-12)

    rng = np.random.default_rng(3)
    params = dict(network.params, k=jnp.asarray(rng.uniform(0.5, 2.0, len(edges))))
    q = rest + 0.1 * jnp.asarray(rng.normal(size=8))

    def potential(q_free):
        pos = jnp.asarray(positions).at[jnp.array(free)].set(q_free.reshape(4, 2))
        d = pos[edges[:, 1]] - pos[edges[:, 0]]
        return jnp.sum(0.5 * params["k"] * (jnp.linalg.norm(d, axis=1) - params["l"]) ** 2)

    _, _, acceleration = derived(model, q, jnp.zeros(8), 0.0, params)
    np.testing.assert_allclose(acceleration, -jax.jit(jax.grad(potential))(q), rtol=1e-11)


def test_mass_spring_network_dims_and_random_graph():
    one_d = systems.mass_spring_network(dim=1, rows=1, cols=4)
    assert one_d.model.coordinate_names == ("x_0", "x_1", "x_2", "x_3")
    positions, edges = systems.random_graph(12, dim=3, neighbours=3, seed=1)
    three_d = systems.mass_spring_network(positions, edges, dim=3)
    assert three_d.model.num_dof == 36 and three_d.model.separable.diagonal
    with pytest.raises(LagrangianError, match=r"expected \(num_nodes, 2\)"):
        systems.mass_spring_network(positions, edges, dim=2)


def test_pendulum_chain_against_formula():
    chain = systems.pendulum_chain(3, gravity=9.81, input_pendulum=1)
    model = chain.model
    assert model.coordinate_names == ("theta_0", "theta_1", "theta_2")
    params = dict(chain.params, m=jnp.array([1.0, 2.0, 0.5]), l=jnp.array([1.0, 0.5, 2.0]),
                  kappa=jnp.array([0.3, 0.7]))
    theta = jnp.array([0.2, -0.1, 0.4])
    _, _, acceleration = derived(model, theta, jnp.zeros(3), 0.0, params, jnp.array([0.9]))
    m, l, kappa = (np.asarray(params[key]) for key in ("m", "l", "kappa"))
    torque = -m * 9.81 * l * np.sin(np.asarray(theta))
    twist = kappa * np.diff(np.asarray(theta))
    torque[:-1] += twist
    torque[1:] -= twist
    torque[1] += 0.9
    np.testing.assert_allclose(acceleration, torque / (m * l**2), rtol=1e-12)
    np.testing.assert_allclose(model.separable.mass_fn(params), m * l**2, rtol=1e-14)
