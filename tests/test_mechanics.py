"""from_mechanics: sympy.physics.mechanics models compiled through `compile_lagrangian`, checked
against SymPy's own equations of motion at random states — KanesMethod's `mass_matrix_full` /
`forcing_full` (an independent derivation: Kane's method, not a Lagrangian) and a
`LagrangesMethod` built from the same bodies and loads — for sympy's model builders (n-link
pendulum on a cart, multi-mass spring–damper), a `System` of pin joints with a damper torque
and a torque actuator, a Cartesian pendulum with a rod constraint (`hol_coneqs`), and a plain
Lagrangian expression; and the refusals (nonholonomic constraints, undeclared inputs, ...)."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from sympy.physics import mechanics as me
from sympy.physics.mechanics import dynamicsymbols, models

import lagrangian_eqprop as lep
from lagrangian_eqprop._symbolic.mechanics import from_mechanics

t = dynamicsymbols._t
NUM_STATES = 4
RTOL = 1e-12


# ------------------------------------------------------------------ references
def evaluate(matrix, values: dict) -> np.ndarray:
    """A SymPy matrix at numbers: `values` maps symbols, functions of time and their
    derivatives to floats (xreplace works top-down, so q̇ is replaced before q)."""
    plain = {key: sp.Symbol(f"_x{i}") for i, key in enumerate(values)}
    expr = sp.Matrix(matrix).xreplace(plain)
    assert expr.free_symbols <= set(plain.values()), expr.free_symbols - set(plain.values())
    return np.asarray(sp.lambdify(list(plain.values()), expr, "numpy")(*values.values()), dtype=float)


def solve_full(method, values: dict, n: int) -> np.ndarray:
    """Accelerations from SymPy's first-order form `M_full x' = f_full` (`x' = [q̇, q̈ or u̇, (λ)]`)."""
    x = np.linalg.solve(evaluate(method.mass_matrix_full, values), evaluate(method.forcing_full, values).ravel())
    return x[n:2 * n]


def random_values(rng, model, coordinates, speeds=None):
    """Random (q, v, params, u) and the same as a SymPy substitution dict (speeds = q̇)."""
    n = len(coordinates)
    q, v = rng.normal(size=n), rng.normal(size=n)
    params = {name: rng.uniform(0.5, 2.0) for name in model.parameter_shapes}
    u = rng.normal(size=model.num_inputs)
    values = {sp.Symbol(name): value for name, value in params.items()}
    values.update({dynamicsymbols(name): value for name, value in zip(model.input_names, u)})
    values.update({c.diff(t): vi for c, vi in zip(coordinates, v)})
    values.update(dict(zip(speeds if speeds is not None else [], v)))
    values.update(dict(zip(coordinates, q)))
    return q, v, params, u, values


def compiled_accelerations(model, states):
    """`model.acceleration` at a batch of states, compiled once (vmapped over states and parameters)."""
    q = jnp.asarray(np.stack([s[0] for s in states]))
    v = jnp.asarray(np.stack([s[1] for s in states]))
    params = {name: jnp.asarray([s[2][name] for s in states]) for name in model.parameter_shapes}
    u = jnp.asarray(np.stack([s[3] for s in states]).reshape(len(states), model.num_inputs))
    acceleration = jax.jit(jax.vmap(model.acceleration, in_axes=(0, 0, None, 0, 0)))
    return np.asarray(acceleration(q, v, jnp.asarray(0.0), params, u))


def lagranges_method_of(kane):
    """A LagrangesMethod of a KanesMethod model whose speeds are the q̇: L of its bodies and its
    loads, with every point velocity and frame angular velocity rewritten in q̇ (SymPy takes
    partial velocities with respect to q̇)."""
    frame = kane._inertial
    speeds = dict(zip(kane.u, kane.q.diff(t)))
    for location, _ in kane.loads:
        if isinstance(location, me.ReferenceFrame):
            location.set_ang_vel(frame, location.ang_vel_in(frame).subs(speeds))
        else:
            location.set_vel(frame, location.vel(frame).subs(speeds))
    L = me.Lagrangian(frame, *kane.bodies).subs(speeds)
    loads = [(location, vector.subs(speeds)) for location, vector in kane.loads]
    lm = me.LagrangesMethod(L, list(kane.q), forcelist=loads, frame=frame)
    lm.form_lagranges_equations()
    return lm


def max_relative_error(a, ref):
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def check_against_sympy(kane, inputs, seed=0, lagrange=True):
    model = from_mechanics(kane, inputs=inputs)
    coordinates = list(kane.q)
    assert model.coordinate_names == tuple(c.func.__name__ for c in coordinates)
    assert model.input_names == tuple(i.func.__name__ for i in inputs)
    rng = np.random.default_rng(seed)
    states = [random_values(rng, model, coordinates, list(kane.u)) for _ in range(NUM_STATES)]
    ours = compiled_accelerations(model, states)
    n = len(coordinates)
    references = [np.stack([solve_full(kane, s[4], n) for s in states])]
    if lagrange:
        lm = lagranges_method_of(kane)
        references.append(np.stack([solve_full(lm, s[4], n) for s in states]))
    errors = [max_relative_error(ours, ref) for ref in references]
    for ref in references:
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * np.max(np.abs(ref)))
    # the inputs matter: a zero input changes the accelerations
    zeroed = [(q, v, p, np.zeros_like(u), vals) for q, v, p, u, vals in states]
    assert np.max(np.abs(compiled_accelerations(model, zeroed) - ours)) > 1e-3
    return model, errors


# ------------------------------------------------------------------ sympy's model builders
@pytest.mark.parametrize("n", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_n_link_pendulum_on_cart_matches_sympy(n):
    kane = models.n_link_pendulum_on_cart(n, cart_force=True, joint_torques=False)
    model, errors = check_against_sympy(kane, [dynamicsymbols("F")], seed=n)
    assert set(model.parameter_shapes) == {"g", *(f"l{i}" for i in range(n)), *(f"m{i}" for i in range(n + 1))}
    assert model.force_fn is not None and not model.time_reversible and max(errors) < RTOL


def test_n_link_pendulum_with_joint_torques_matches_sympy():
    """Torques on frames, (I, −T₁), (B_i, T_i − T_{i+1}): the ω-part of the generalised forces."""
    n = 2
    kane = models.n_link_pendulum_on_cart(n, cart_force=True, joint_torques=True)
    check_against_sympy(kane, [*dynamicsymbols(f"T1:{n + 1}"), dynamicsymbols("F")], seed=5)


@pytest.mark.slow
def test_eight_link_pendulum_on_cart_matches_kane():
    kane = models.n_link_pendulum_on_cart(8, cart_force=True, joint_torques=False)
    check_against_sympy(kane, [dynamicsymbols("F")], seed=8, lagrange=False)


def test_multi_mass_spring_damper_matches_sympy():
    """Velocity-dependent damper forces (in the speeds v_i, eliminated through the kinematic
    equations) and external input forces f_i."""
    n = 3
    kane = models.multi_mass_spring_damper(n, apply_gravity=True, apply_external_forces=True)
    model, errors = check_against_sympy(kane, list(dynamicsymbols(f"f:{n}")), seed=2)
    assert list(model.parameter_shapes) == sorted(["g", *(f"{s}{i}" for s in "ckm" for i in range(n))])
    assert model.separable is not None and max(errors) < RTOL  # L = ½ vᵀMv with constant M


# ------------------------------------------------------------------ System, pydy
def double_pendulum_system():
    """Two rigid links on pin joints: gravity, a damper torque −c·u1 (in a speed), and a torque
    actuator T(t) between the links."""
    q1, q2, u1, u2, torque = dynamicsymbols("q1 q2 u1 u2 T")
    l1, l2, m1, m2, g, c, i1, i2 = sp.symbols("l1 l2 m1 m2 g c I1 I2")
    ground = me.RigidBody("ground")
    system = me.System.from_newtonian(ground)
    frame1, frame2 = me.ReferenceFrame("F1"), me.ReferenceFrame("F2")
    link1 = me.RigidBody("B1", frame=frame1, mass=m1)
    link1.central_inertia = me.inertia(frame1, 0, 0, i1)
    link2 = me.RigidBody("B2", frame=frame2, mass=m2)
    link2.central_inertia = me.inertia(frame2, 0, 0, i2)
    system.add_joints(
        me.PinJoint("J1", ground, link1, q1, u1, child_point=l1 / 2 * frame1.y, joint_axis=system.z),
        me.PinJoint("J2", link1, link2, q2, u2, parent_point=-l1 / 2 * frame1.y, child_point=l2 / 2 * frame2.y,
                    joint_axis=frame1.z))
    system.apply_uniform_gravity(-g * system.y)
    system.add_loads(me.Torque(link1, -c * u1 * system.z))
    system.add_actuators(me.TorqueActuator(torque, system.z, link2, link1))
    return system, torque


def test_system_with_joints_and_actuators_matches_kane():
    system, torque = double_pendulum_system()
    model = from_mechanics(system, inputs=[torque])
    # the fixed ground's mass and inertia drop out (zero velocity), so they are no parameters
    assert list(model.parameter_shapes) == ["I1", "I2", "c", "g", "l1", "l2", "m1", "m2"]
    system.form_eoms()
    rng = np.random.default_rng(3)
    states = [random_values(rng, model, list(system.q), list(system.u)) for _ in range(NUM_STATES)]
    ours = compiled_accelerations(model, states)
    ref = np.stack([solve_full(system, s[4], 2) for s in states])
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * np.max(np.abs(ref)))


def test_a_pydy_style_system_is_read_through_its_eom_method():
    kane = models.multi_mass_spring_damper(1, apply_gravity=True)
    wrapper = types.SimpleNamespace(eom_method=kane, constants={}, specifieds={})
    model = from_mechanics(wrapper)
    params = {"m0": 2.0, "k0": 3.0, "c0": 0.5, "g": 9.81}
    a = model.acceleration(jnp.asarray([0.3]), jnp.asarray([-0.2]), 0.0, params)
    np.testing.assert_allclose(a, [(-3.0 * 0.3 - 0.5 * -0.2 + 2.0 * 9.81) / 2.0], rtol=1e-14)


# ------------------------------------------------------------------ holonomic constraints
def cartesian_pendulum():
    """A point mass on a rod of length l in Cartesian (x, y), with a viscous damper −c·v and a
    horizontal input force f(t) at the bob: LagrangesMethod with `hol_coneqs`."""
    x, y, f = dynamicsymbols("x y f")
    m, g, length, c = sp.symbols("m g l c")
    frame = me.ReferenceFrame("N")
    origin = me.Point("O")
    origin.set_vel(frame, 0)
    bob = origin.locatenew("P", x * frame.x + y * frame.y)
    particle = me.Particle("bob", bob, m)
    particle.potential_energy = m * g * y
    loads = [(bob, -c * bob.vel(frame)), (bob, f * frame.x)]
    lm = me.LagrangesMethod(me.Lagrangian(frame, particle), [x, y], forcelist=loads, frame=frame,
                            hol_coneqs=[x**2 + y**2 - length**2])
    return lm, f


CART_PARAMS = {"c": 0.3, "g": 9.81, "l": 1.3, "m": 0.7}


def on_the_rod(theta, omega, length=CART_PARAMS["l"]):
    q = np.array([length * np.sin(theta), -length * np.cos(theta)])
    v = np.array([length * np.cos(theta) * omega, length * np.sin(theta) * omega])
    return q, v


def test_hol_coneqs_become_constraints_and_match_sympy():
    lm, f = cartesian_pendulum()
    model = from_mechanics(lm, inputs=[f])
    assert model.constrained and model.num_constraints == 1
    assert list(model.parameter_shapes) == ["c", "g", "l", "m"]
    lm.form_lagranges_equations()
    x, y = lm.q
    for theta, omega, force in [(0.8, -0.4, 0.5), (-2.0, 1.5, -1.2), (2.9, 0.1, 0.0)]:
        q, v = on_the_rod(theta, omega)
        ours = np.asarray(model.acceleration(jnp.asarray(q), jnp.asarray(v), 0.0, CART_PARAMS, jnp.asarray([force])))
        values = {sp.Symbol(k): val for k, val in CART_PARAMS.items()} | {f: force}
        values |= {x.diff(t): v[0], y.diff(t): v[1], x: q[0], y: q[1]}
        np.testing.assert_allclose(ours, solve_full(lm, values, 2), rtol=RTOL, atol=1e-12)
        # and the angle formulation: m l θ̈ = −m g sinθ − c l θ̇ + f cosθ
        m, g, length, c = (CART_PARAMS[k] for k in "mglc")
        alpha = (-m * g * np.sin(theta) - c * length * omega + force * np.cos(theta)) / (m * length)
        exact = length * np.array([np.cos(theta) * alpha - np.sin(theta) * omega**2,
                                   np.sin(theta) * alpha + np.cos(theta) * omega**2])
        np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=1e-12)


def test_configuration_constraints_of_a_system_and_its_kanes_method():
    """The same rod pendulum as a `System` with a dependent coordinate y, a dependent speed u_y and
    the holonomic constraint; then the `KanesMethod` the System forms (configuration constraints)."""
    x, y, ux, uy = dynamicsymbols("x y u_x u_y")
    m, g, length = sp.symbols("m g l")
    system = me.System()
    bob = system.fixed_point.locatenew("P", x * system.x + y * system.y)
    bob.set_vel(system.frame, ux * system.x + uy * system.y)
    system.add_coordinates(x)
    system.add_coordinates(y, independent=False)
    system.add_speeds(ux)
    system.add_speeds(uy, independent=False)
    system.add_kdes(ux - x.diff(t), uy - y.diff(t))
    system.add_holonomic_constraints(x**2 + y**2 - length**2)
    system.add_bodies(me.Particle("bob", bob, m))
    system.apply_uniform_gravity(-g * system.y)
    params = {"g": 9.81, "l": 1.3, "m": 0.7}
    theta, omega = 0.7, -0.3
    q, v = on_the_rod(theta, omega, params["l"])
    alpha = -params["g"] / params["l"] * np.sin(theta)
    exact = params["l"] * np.array([np.cos(theta) * alpha - np.sin(theta) * omega**2,
                                    np.sin(theta) * alpha + np.cos(theta) * omega**2])
    system.form_eoms()
    for source in (system, system.eom_method):
        model = from_mechanics(source)
        assert model.coordinate_names == ("x", "y") and model.num_constraints == 1
        np.testing.assert_allclose(model.acceleration(jnp.asarray(q), jnp.asarray(v), 0.0, params), exact,
                                   rtol=1e-12, atol=1e-12)


def test_a_simulation_stays_on_the_rod():
    lm, f = cartesian_pendulum()
    model = from_mechanics(lm, inputs=[f])
    q0, v0 = on_the_rod(1.0, 0.0)
    num_steps = 200
    inputs = 0.5 * jnp.sin(jnp.linspace(0.0, 2.0, num_steps + 1))[:, None]
    traj = lep.VariationalIntegrator(model, 0.01, "midpoint").simulate(CART_PARAMS, q0, v0, num_steps, inputs)
    phi = jax.vmap(lambda q: model.constraint(q, 0.0, CART_PARAMS))(traj.q)
    assert float(jnp.max(jnp.abs(phi))) < 1e-12
    assert float(jnp.max(jnp.abs(traj.q[-1] - traj.q[0]))) > 0.1  # it moved


# ------------------------------------------------------------------ expressions
def test_a_lagrangian_expression_with_coordinates_frame_and_loads():
    x = dynamicsymbols("x")
    m, k, c = sp.symbols("m k c")
    frame = me.ReferenceFrame("N")
    point = me.Point("O").locatenew("P", x * frame.x)
    point.set_vel(frame, x.diff(t) * frame.x)
    L = m * x.diff(t) ** 2 / 2 - k * x**2 / 2
    model = from_mechanics(L, coordinates=[x], frame=frame, forcelist=[(point, -c * point.vel(frame))])
    assert list(model.parameter_shapes) == ["c", "k", "m"]
    params = {"m": 2.0, "k": 3.0, "c": 0.5}
    a = model.acceleration(jnp.asarray([0.4]), jnp.asarray([1.1]), 0.0, params)
    np.testing.assert_allclose(a, [(-3.0 * 0.4 - 0.5 * 1.1) / 2.0], rtol=1e-14)
    # explicit parameters, by Symbol or by name, in the order given
    assert from_mechanics(L, [k, "m"], coordinates=[x]).parameter_shapes.keys() == {"k", "m"}
    assert list(from_mechanics(L, ["m", k], coordinates=[x]).parameter_shapes) == ["m", "k"]
    # SymPy matrices are accepted where lists are (coordinates, inputs, constraints)
    assert from_mechanics(L, coordinates=sp.Matrix([x]), inputs=sp.Matrix([])).num_dof == 1
    # without loads the model stays variational (time-reversible, no force)
    plain = from_mechanics(L, coordinates=[x])
    assert plain.force_fn is None and plain.time_reversible


# ------------------------------------------------------------------ refusals
def test_nonholonomic_constraints_are_refused():
    x, y = dynamicsymbols("x y")
    m, radius = sp.symbols("m R")
    L = m / 2 * (x.diff(t) ** 2 + y.diff(t) ** 2)
    lm = me.LagrangesMethod(L, [x, y], nonhol_coneqs=[x.diff(t) - radius * y.diff(t)])
    with pytest.raises(lep.LagrangianError, match="nonholonomic"):
        from_mechanics(lm)
    with pytest.raises(lep.LagrangianError, match="nonholonomic"):  # an expression's constraints= too
        from_mechanics(L, coordinates=[x, y], constraints=[x.diff(t) - radius * y.diff(t)])
    assert from_mechanics(L, coordinates=[x, y], constraints=[x - radius * y]).constrained
    # a KanesMethod with a velocity constraint u2 = x·u1 and no configuration constraint
    u1, u2 = dynamicsymbols("u1 u2")
    frame = me.ReferenceFrame("N")
    point = me.Point("O").locatenew("P", x * frame.x + y * frame.y)
    point.set_vel(frame, u1 * frame.x + u2 * frame.y)
    kane = me.KanesMethod(frame, [x, y], [u1], kd_eqs=[x.diff(t) - u1, y.diff(t) - u2], u_dependent=[u2],
                          velocity_constraints=[u2 - x * u1])
    kane.kanes_equations([me.Particle("p", point, m)], [])
    with pytest.raises(lep.LagrangianError, match="nonholonomic"):
        from_mechanics(kane)
    system = me.System()
    system.add_coordinates(x, y)
    system.add_speeds(u1, u2)
    system.add_kdes(u1 - x.diff(t), u2 - y.diff(t))
    system.add_nonholonomic_constraints(u2 - x * u1)
    with pytest.raises(lep.LagrangianError, match="nonholonomic"):
        from_mechanics(system)


def test_refusals_name_the_culprit():
    kane = models.n_link_pendulum_on_cart(1, cart_force=True)
    with pytest.raises(lep.LagrangianError, match=r"function\(s\) of time F .*inputs="):
        from_mechanics(kane)
    with pytest.raises(lep.LagrangianError, match="coordinates= may only be passed with a Lagrangian"):
        from_mechanics(kane, inputs=[dynamicsymbols("F")], coordinates=list(kane.q))
    x = dynamicsymbols("x")
    m = sp.Symbol("m")
    L = m * x.diff(t) ** 2 / 2
    with pytest.raises(lep.LagrangianError, match="without coordinates="):
        from_mechanics(L)
    frame = me.ReferenceFrame("N")
    point = me.Point("P")
    point.set_vel(frame, x.diff(t) * frame.x)
    with pytest.raises(lep.LagrangianError, match="inertial frame"):
        from_mechanics(L, coordinates=[x], forcelist=[(point, frame.x)])
    with pytest.raises(lep.LagrangianError, match="load #0 .*neither a Point"):
        from_mechanics(L, coordinates=[x], frame=frame, forcelist=[(m, frame.x)])
    with pytest.raises(lep.LagrangianError, match="parameter 'k' does not occur"):
        from_mechanics(L, ["k"], coordinates=[x])
    with pytest.raises(lep.LagrangianError, match="cannot read a str"):
        from_mechanics("L")
    lonely = me.Point("Q")  # no velocity anywhere
    with pytest.raises(lep.LagrangianError, match="velocity of point Q"):
        from_mechanics(L, coordinates=[x], frame=frame, forcelist=[(lonely, frame.x)])
    u = dynamicsymbols("u")
    kane = me.KanesMethod(frame, [x], [u])  # no kinematic differential equations
    with pytest.raises(lep.LagrangianError, match="kinematic differential equations"):
        from_mechanics(kane)
