"""SymPy → JAX compiler: values against hand-written formulas, validation, structure, networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from sympy.physics.mechanics import dynamicsymbols

from lagrangian_eqprop.errors import LagrangianError
from lagrangian_eqprop import (
    EdgeTerm,
    ExtraTerm,
    NodeTerm,
    compile_lagrangian,
    compile_network,
    euler_lagrange_equations,
    lagrangian_expression,
    network_coordinates,
)

t = dynamicsymbols._t
x, y, z = dynamicsymbols("x y z")
xd, yd, zd = x.diff(t), y.diff(t), z.diff(t)
m, k, c = sp.symbols("m k c")
half = sp.Rational(1, 2)


def f64(d):
    return {key: jnp.asarray(value, dtype=jnp.float64) for key, value in d.items()}


QUANTITIES = ("lagrangian", "momentum", "energy", "mass_matrix", "acceleration")


def evaluate(model, q, v, t, params, u=None):
    """All derived quantities in one jitted call (eager mode would compile every primitive)."""

    @jax.jit
    def run(q, v, t, params, u):
        return {name: getattr(model, name)(q, v, t, params, u) for name in QUANTITIES}

    return run(q, v, t, params, u)


# ============================================================== whole expression
@pytest.fixture(scope="module")
def oscillator():
    return compile_lagrangian(half * m * xd**2 - half * k * x**2, [x], [m, k])


def test_harmonic_oscillator_against_formulas(oscillator):
    model = oscillator
    params = f64({"m": 2.0, "k": 3.0})
    q, v = jnp.array([0.7]), jnp.array([-0.4])
    assert model.coordinate_names == ("x",)
    assert dict(model.parameter_shapes) == {"m": (), "k": ()}
    assert model.num_inputs == 0
    out = evaluate(model, q, v, 0.0, params)
    np.testing.assert_allclose(out["lagrangian"], 0.5 * 2 * 0.16 - 0.5 * 3 * 0.49, rtol=1e-14)
    np.testing.assert_allclose(out["momentum"], [2.0 * -0.4], rtol=1e-14)
    np.testing.assert_allclose(out["energy"], 0.5 * 2 * 0.16 + 0.5 * 3 * 0.49, rtol=1e-14)
    np.testing.assert_allclose(out["mass_matrix"], [[2.0]], rtol=1e-14)
    np.testing.assert_allclose(out["acceleration"], [-3.0 * 0.7 / 2.0], rtol=1e-14)


def _double_pendulum():
    th1, th2 = dynamicsymbols("theta1 theta2")
    m1, m2, l1, l2, g = sp.symbols("m1 m2 l1 l2 g")
    w1, w2 = th1.diff(t), th2.diff(t)
    L = (half * (m1 + m2) * l1**2 * w1**2 + half * m2 * l2**2 * w2**2
         + m2 * l1 * l2 * w1 * w2 * sp.cos(th1 - th2)
         + (m1 + m2) * g * l1 * sp.cos(th1) + m2 * g * l2 * sp.cos(th2))
    return compile_lagrangian(L, [th1, th2], [m1, m2, l1, l2, g])


@pytest.fixture(scope="module")
def double_pendulum():
    return _double_pendulum()


def test_double_pendulum_mass_matrix_energy_and_accelerations(double_pendulum):
    model = double_pendulum
    m1, m2, l1, l2, g = 1.3, 0.7, 1.1, 0.8, 9.81
    params = f64({"m1": m1, "m2": m2, "l1": l1, "l2": l2, "g": g})
    th1, th2, w1, w2 = 0.4, -0.9, 0.3, -1.2
    q, v = jnp.array([th1, th2]), jnp.array([w1, w2])
    d = th1 - th2
    mass = np.array([[(m1 + m2) * l1**2, m2 * l1 * l2 * np.cos(d)],
                     [m2 * l1 * l2 * np.cos(d), m2 * l2**2]])
    out = evaluate(model, q, v, 0.0, params)
    np.testing.assert_allclose(out["mass_matrix"], mass, rtol=1e-13)
    np.testing.assert_allclose(out["momentum"], mass @ np.array([w1, w2]), rtol=1e-13)
    kinetic = 0.5 * np.array([w1, w2]) @ mass @ np.array([w1, w2])
    potential = -(m1 + m2) * g * l1 * np.cos(th1) - m2 * g * l2 * np.cos(th2)
    np.testing.assert_allclose(out["energy"], kinetic + potential, rtol=1e-13)
    # Closed-form accelerations (textbook form, derived independently of the compiler).
    den = 2 * m1 + m2 - m2 * np.cos(2 * d)
    a1 = (-g * (2 * m1 + m2) * np.sin(th1) - m2 * g * np.sin(th1 - 2 * th2)
          - 2 * np.sin(d) * m2 * (w2**2 * l2 + w1**2 * l1 * np.cos(d))) / (l1 * den)
    a2 = (2 * np.sin(d) * (w1**2 * l1 * (m1 + m2) + g * (m1 + m2) * np.cos(th1)
                           + w2**2 * l2 * m2 * np.cos(d))) / (l2 * den)
    np.testing.assert_allclose(out["acceleration"], [a1, a2], rtol=1e-12)
    assert model.separable is None
    assert model.time_reversible


def test_literals_are_not_parameters():
    model = compile_lagrangian(half * 2.5 * xd**2 - 3 * k * x**2 + sp.pi * x, [x], [k])
    assert dict(model.parameter_shapes) == {"k": ()}
    value = model.lagrangian(jnp.array([0.5]), jnp.array([2.0]), 0.0, f64({"k": 1.5}))
    np.testing.assert_allclose(value, 0.5 * 2.5 * 4.0 - 3 * 1.5 * 0.25 + np.pi * 0.5, rtol=1e-14)
    np.testing.assert_allclose(model.separable.mass_fn(f64({"k": 1.5})), [2.5])


def test_inputs_time_and_function_coordinates():
    tau = sp.Symbol("tau")
    q = sp.Function("q")(tau)
    u = sp.Function("u")(tau)
    w = sp.Symbol("w")  # a plain-symbol input
    L = half * m * q.diff(tau) ** 2 - half * k * q**2 + u * q + w * sp.sin(tau) * q
    model = compile_lagrangian(L, [q], [m, k], inputs=[u, w])  # time inferred from q(tau)
    assert model.input_names == ("u", "w")
    params = f64({"m": 2.0, "k": 4.0})
    acc = evaluate(model, jnp.array([0.5]), jnp.array([0.0]), 0.3, params,
                   jnp.array([1.0, 2.0]))["acceleration"]
    np.testing.assert_allclose(acc, [(1.0 + 2.0 * np.sin(0.3) - 4.0 * 0.5) / 2.0], rtol=1e-13)
    with pytest.raises(LagrangianError, match="q.*not on the time symbol t"):
        compile_lagrangian(L, [q], [m, k], inputs=[u, w], time=t)


def test_caldirola_kanai_acceleration():
    gamma = sp.Symbol("gamma")
    model = compile_lagrangian(sp.exp(gamma * t) * (half * m * xd**2 - half * k * x**2), [x],
                               [m, k, gamma], time=t)
    params = f64({"m": 2.0, "k": 3.0, "gamma": 0.4})
    acc = evaluate(model, jnp.array([0.5]), jnp.array([0.2]), 1.7, params)["acceleration"]
    np.testing.assert_allclose(acc, [-0.4 * 0.2 - 3.0 / 2.0 * 0.5], rtol=1e-13)
    assert model.separable is None  # time-dependent mass
    assert model.time_reversible


def test_forces_list_and_dict():
    L = half * m * xd**2 - half * k * x**2 + half * yd**2 - half * y**2
    model = compile_lagrangian(L, [x, y], [m, k, c], forces=[-c * xd, 0])
    dict_model = compile_lagrangian(L, [x, y], [m, k, c], forces={x: -c * xd})
    params = f64({"m": 2.0, "k": 3.0, "c": 0.5})
    q, v = jnp.array([0.5, 0.1]), jnp.array([0.2, -0.3])
    expected = [(-3.0 * 0.5 - 0.5 * 0.2) / 2.0, -0.1]
    np.testing.assert_allclose(evaluate(model, q, v, 0.0, params)["acceleration"], expected,
                               rtol=1e-13)
    np.testing.assert_allclose(evaluate(dict_model, q, v, 0.0, params)["acceleration"], expected,
                               rtol=1e-13)
    np.testing.assert_allclose(model.force(q, v, 0.0, params), [-0.1, 0.0])
    assert model.force_expressions == (-c * xd, sp.S.Zero)
    assert not model.time_reversible
    assert model.separable is not None and model.separable.diagonal


def test_jit_and_vmap_over_params(double_pendulum):
    model = double_pendulum
    q, v = jnp.array([0.1, 0.2]), jnp.array([0.3, -0.1])
    base = {"m1": 1.0, "m2": 1.0, "l1": 1.0, "l2": 1.0, "g": 9.81}
    batch = {key: jnp.linspace(0.5, 1.5, 4) * val for key, val in base.items()}
    values = jax.vmap(lambda p: model.lagrangian(q, v, 0.0, p))(batch)
    jitted = jax.jit(model.lagrangian)
    for i in range(4):
        single = {key: val[i] for key, val in batch.items()}
        np.testing.assert_allclose(values[i], jitted(q, v, 0.0, single), rtol=1e-14)
    grads = jax.jit(jax.grad(lambda p: model.lagrangian(q, v, 0.0, p)))(f64(base))
    assert set(grads) == set(base)
    accelerations = jax.jit(jax.vmap(lambda p: model.acceleration(q, v, 0.0, p)))(batch)
    assert accelerations.shape == (4, 2) and bool(jnp.all(jnp.isfinite(accelerations)))


def test_special_functions_compile_under_jit():
    model = compile_lagrangian(half * xd**2 - sp.erf(x) - sp.loggamma(x + 2), [x])
    value = jax.jit(model.lagrangian)(jnp.array([0.3]), jnp.array([1.0]), 0.0, {})
    from scipy.special import erf, gammaln

    np.testing.assert_allclose(value, 0.5 - erf(0.3) - gammaln(2.3), rtol=1e-12)


# ================================================================== validation
def test_undeclared_symbols_are_all_listed_sorted():
    zz, aa = sp.symbols("zz aa")
    with pytest.raises(LagrangianError, match=r"undeclared symbol\(s\) aa, zz"):
        compile_lagrangian(half * m * xd**2 - zz * x**2 - aa, [x], [m])


def test_assumption_mismatch_is_explained():
    with pytest.raises(LagrangianError, match="k.*different SymPy assumptions"):
        compile_lagrangian(half * xd**2 - sp.Symbol("k", positive=True) * x**2, [x], [k])


@pytest.mark.parametrize("L", [sp.Matrix([xd**2]), [xd**2], (xd**2, x), sp.Eq(xd, 1)])
def test_lagrangian_must_be_scalar(L):
    with pytest.raises(LagrangianError, match="must be a scalar"):
        compile_lagrangian(L, [x])


def test_coordinate_not_function_of_time():
    s = sp.Symbol("s")
    with pytest.raises(LagrangianError, match="coordinate s .*not a function of time"):
        compile_lagrangian(half * xd**2 + s, [x, s])


def test_coordinate_declared_twice():
    with pytest.raises(LagrangianError, match="coordinate x is declared twice"):
        compile_lagrangian(half * xd**2, [x, x])


def test_undeclared_function_of_time():
    with pytest.raises(LagrangianError, match=r"undeclared function\(s\) of time y\(t\)"):
        compile_lagrangian(half * xd**2 - x * y, [x])
    with pytest.raises(LagrangianError, match=r"undeclared function\(s\) of time y\(t\)"):
        compile_lagrangian(half * xd**2 + yd * x, [x])


def test_unsupported_function():
    with pytest.raises(LagrangianError, match="besselj.*cannot be compiled"):
        compile_lagrangian(half * xd**2 - sp.besselj(0, x), [x])


def test_second_time_derivative():
    with pytest.raises(LagrangianError, match="order 2 of coordinate x"):
        compile_lagrangian(half * xd**2 + x * x.diff(t, 2), [x])


def test_parameter_must_be_a_symbol():
    with pytest.raises(LagrangianError, match="parameter 2 .*named SymPy Symbol"):
        compile_lagrangian(half * xd**2, [x], [sp.Integer(2)])


def test_degenerate_linear_in_velocity_names_coordinate():
    with pytest.raises(LagrangianError, match=r"degenerate.*singular.*coordinate\(s\) y\."):
        compile_lagrangian(half * m * xd**2 + m * x * yd - y**2, [x, y], [m])


def test_degenerate_combination_names_both_coordinates_only():
    with pytest.raises(LagrangianError, match=r"degenerate.*singular.*coordinate\(s\) x, y\."):
        compile_lagrangian(half * (xd + yd) ** 2 + half * zd**2, [x, y, z])


def test_degenerate_check_in_float32():
    with jax.enable_x64(False):
        assert jnp.result_type(float) == jnp.float32
        _double_pendulum()  # regular: no false alarm in float32
        # widely different (but regular) masses survive thanks to equilibration
        compile_lagrangian(half * 1e-2 * xd**2 + half * 1e2 * yd**2, [x, y])
        with pytest.raises(LagrangianError, match="degenerate"):
            compile_lagrangian(half * (xd + yd) ** 2, [x, y])


def test_force_validation():
    with pytest.raises(LagrangianError, match=r"force on x.*undeclared symbol\(s\) c"):
        compile_lagrangian(half * xd**2, [x], forces=[-c * xd])
    with pytest.raises(LagrangianError, match="one entry per coordinate"):
        compile_lagrangian(half * xd**2, [x], [c], forces=[-c * xd, 0])
    with pytest.raises(LagrangianError, match="force given for y"):
        compile_lagrangian(half * xd**2, [x], [c], forces={y: -c})


# ================================================================== structure
def test_separable_diagonal_and_potential(oscillator):
    structure = oscillator.separable
    assert structure is not None and structure.diagonal
    params = f64({"m": 2.0, "k": 3.0})
    np.testing.assert_allclose(structure.mass_fn(params), [2.0])
    np.testing.assert_allclose(structure.potential_fn(jnp.array([0.5]), 0.0, params, jnp.zeros(0)),
                               0.5 * 3.0 * 0.25)


def test_separable_full_mass_matrix():
    model = compile_lagrangian(half * m * (xd + yd) ** 2 + half * yd**2 - x * y, [x, y], [m])
    structure = model.separable
    assert structure is not None and not structure.diagonal
    np.testing.assert_allclose(structure.mass_fn(f64({"m": 2.0})), [[2.0, 2.0], [2.0, 3.0]])


@pytest.mark.parametrize(
    "L, coordinates, separable, reversible",
    [
        (half * (xd**2 + yd**2) - x**4 * y**2, [x, y], True, True),
        (half * (xd**2 + yd**2) + m * (x * yd - y * xd), [x, y], False, False),  # gyroscopic
        (half * (1 + x**2) * xd**2, [x], False, True),  # configuration-dependent mass
        (half * xd**2 + xd**4, [x], False, True),  # quartic in the velocity
        (half * xd**2 + xd**3, [x], False, False),
        (-m * sp.sqrt(1 - xd**2), [x], False, True),  # relativistic particle
    ],
)
def test_structure_detection(L, coordinates, separable, reversible):
    model = compile_lagrangian(L, coordinates, [m])
    assert (model.separable is not None) == separable
    assert model.time_reversible == reversible


def test_input_dependent_mass_is_not_separable():
    u = dynamicsymbols("u")
    model = compile_lagrangian(half * (1 + u**2) * xd**2, [x], inputs=[u])
    assert model.separable is None


def test_euler_lagrange_equations_for_display():
    model = compile_lagrangian(half * m * xd**2 - half * k * x**2, [x], [m, k, c],
                               forces=[-c * xd])
    (equation,) = euler_lagrange_equations(model)
    assert sp.simplify(equation.lhs - (m * x.diff(t, 2) + k * x)) == 0
    assert equation.rhs == -c * xd


# ==================================================================== networks
xa, xb, ya, yb = (sp.Function(name)(t) for name in ("xa", "xb", "ya", "yb"))
l, beta, b = sp.symbols("l beta b")
u = dynamicsymbols("u")


def _chain_terms():
    node = NodeTerm(half * m * xd**2 + b * u * x, [x], [m, b], [u], name="mass")
    stretch = xb - xa - l
    edge = EdgeTerm(-half * k * stretch**2 - sp.Rational(1, 4) * beta * stretch**4,
                    ([xa], [xb]), [k, l, beta], name="spring")
    return node, edge


def test_network_equals_whole_expression_on_walled_chain():
    # Masses at nodes 0..2, walls fixed at nodes 3 (left, −1) and 4 (right, 3).
    edges = [(3, 0), (0, 1), (1, 2), (2, 4)]
    fixed = {3: [-1.0], 4: [3.0]}
    node, edge = _chain_terms()
    network = compile_network(5, edges, [node], [edge], dim=1, fixed_nodes=fixed)
    assert network.coordinate_names == ("x_0", "x_1", "x_2")
    assert dict(network.parameter_shapes) == {"b": (5,), "m": (5,), "beta": (4,), "k": (4,),
                                              "l": (4,)}
    # The same Lagrangian written by hand as one expression.
    xs = dynamicsymbols("x0:3")
    positions = {0: xs[0], 1: xs[1], 2: xs[2], 3: -1, 4: 3}
    ms, bs = sp.symbols("m0:3"), sp.symbols("b0:3")
    ks, ls, betas = sp.symbols("k0:4"), sp.symbols("l0:4"), sp.symbols("beta0:4")
    L = sum(half * ms[i] * xs[i].diff(t) ** 2 + bs[i] * u * xs[i] for i in range(3))
    for e, (a, bb) in enumerate(edges):
        s = positions[bb] - positions[a] - ls[e]
        L += -half * ks[e] * s**2 - sp.Rational(1, 4) * betas[e] * s**4
    whole = compile_lagrangian(L, xs, [*ms, *bs, *ks, *ls, *betas], inputs=[u])
    rng = np.random.default_rng(1)
    net_params = f64({"m": rng.uniform(0.5, 2, 5), "b": rng.uniform(-1, 1, 5),
                      "k": rng.uniform(0.5, 2, 4), "l": rng.uniform(0.8, 1.2, 4),
                      "beta": rng.uniform(0, 0.5, 4)})
    whole_params = {}
    for name in ("m", "b"):
        whole_params.update({f"{name}{i}": net_params[name][i] for i in range(3)})
    for name in ("k", "l", "beta"):
        whole_params.update({f"{name}{e}": net_params[name][e] for e in range(4)})
    q, v = jnp.asarray(rng.uniform(-0.5, 2.5, 3)), jnp.asarray(rng.normal(size=3))
    uu = jnp.array([0.7])
    from_network = evaluate(network, q, v, 0.3, net_params, uu)
    from_whole = evaluate(whole, q, v, 0.3, whole_params, uu)
    for name in QUANTITIES:
        np.testing.assert_allclose(from_network[name], from_whole[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
    assert network.separable is not None and network.separable.diagonal
    np.testing.assert_allclose(network.separable.mass_fn(net_params), net_params["m"][:3])
    np.testing.assert_allclose(
        network.separable.potential_fn(q, 0.3, net_params, uu),
        -whole.lagrangian(q, jnp.zeros(3), 0.3, whole_params, uu), rtol=1e-12)
    assert network.time_reversible
    # Display helpers rebuild the global expression.
    expression = lagrangian_expression(network)
    assert expression.has(sp.Symbol("k_0")) and len(euler_lagrange_equations(network)) == 3


def _network_2d(fixed=None):
    node = NodeTerm(half * m * (xd**2 + yd**2), [x, y], [m])
    length = sp.sqrt((xb - xa) ** 2 + (yb - ya) ** 2)
    edge = EdgeTerm(-half * k * (length - l) ** 2, ([xa, ya], [xb, yb]), [k, l])
    edges = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)])
    return compile_network(4, edges, [node], [edge], dim=2, fixed_nodes=fixed), edges


def _spring_energy(positions, edges, k_, l_):
    d = positions[edges[:, 1]] - positions[edges[:, 0]]
    return jnp.sum(0.5 * k_ * (jnp.linalg.norm(d, axis=1) - l_) ** 2)


def test_two_dimensional_network_against_hand_formula():
    model, edges = _network_2d()
    assert model.coordinate_names == ("x_0", "y_0", "x_1", "y_1", "x_2", "y_2", "x_3", "y_3")
    rng = np.random.default_rng(2)
    params = f64({"m": rng.uniform(0.5, 2, 4), "k": rng.uniform(0.5, 2, 5),
                  "l": rng.uniform(0.8, 1.2, 5)})
    q, v = jnp.asarray(rng.normal(size=8)), jnp.asarray(rng.normal(size=8))

    def hand(q, v):
        kinetic = 0.5 * jnp.sum(params["m"] * jnp.sum(v.reshape(4, 2) ** 2, axis=1))
        return kinetic - _spring_energy(q.reshape(4, 2), edges, params["k"], params["l"])

    out = evaluate(model, q, v, 0.0, params)
    np.testing.assert_allclose(out["lagrangian"], jax.jit(hand)(q, v), rtol=1e-13)
    force = jax.jit(jax.grad(hand))(q, v)
    np.testing.assert_allclose(out["acceleration"], force / jnp.repeat(params["m"], 2), rtol=1e-12)
    np.testing.assert_allclose(model.separable.mass_fn(params), jnp.repeat(params["m"], 2))


def test_fixed_nodes_are_constants():
    pinned = {1: [1.0, 0.0], 3: [0.0, 1.0]}
    model, edges = _network_2d(fixed=pinned)
    assert model.coordinate_names == ("x_0", "y_0", "x_2", "y_2")
    params = f64({"m": np.ones(4), "k": np.arange(1.0, 6.0), "l": np.full(5, 0.9)})
    q, v = jnp.array([0.1, -0.1, 1.2, 0.9]), jnp.array([0.3, 0.2, -0.1, 0.4])
    positions = jnp.array([[0.1, -0.1], [1.0, 0.0], [1.2, 0.9], [0.0, 1.0]])
    expected = 0.5 * jnp.sum(v**2) - _spring_energy(positions, edges, params["k"], params["l"])
    np.testing.assert_allclose(jax.jit(model.lagrangian)(q, v, 0.0, params), expected, rtol=1e-13)
    assert model.separable.mass_fn(params).shape == (4,)
    names = network_coordinates(4, 2, pinned)
    assert [str(c.func) for c in names] == list(model.coordinate_names)


def test_network_velocity_dependent_edges_and_extra_term():
    # Edge kinetic coupling (not separable) + a whole-expression extra term on x_1.
    node = NodeTerm(half * m * xd**2, [x], [m])
    edge = EdgeTerm(half * c * (xb.diff(t) - xa.diff(t)) ** 2 - half * k * (xb - xa) ** 2,
                    ([xa], [xb]), [c, k])
    x0_, x1_, x2_ = network_coordinates(3, 1)
    g0 = sp.Symbol("g0")
    extra = ExtraTerm(-g0 * x1_**4, [g0])
    model = compile_network(3, [(0, 1), (1, 2)], [node], [edge], extra=extra)
    assert model.separable is None
    assert dict(model.parameter_shapes) == {"m": (3,), "c": (2,), "k": (2,), "g0": ()}
    whole = compile_lagrangian(
        sum(half * mi * xi.diff(t) ** 2 for mi, xi in zip(sp.symbols("m0:3"), (x0_, x1_, x2_)))
        + sum(half * ci * (b_.diff(t) - a_.diff(t)) ** 2 - half * ki * (b_ - a_) ** 2
              for ci, ki, a_, b_ in zip(sp.symbols("c0:2"), sp.symbols("k0:2"),
                                        (x0_, x1_), (x1_, x2_)))
        - g0 * x1_**4,
        [x0_, x1_, x2_], [*sp.symbols("m0:3"), *sp.symbols("c0:2"), *sp.symbols("k0:2"), g0])
    params = f64({"m": [1.0, 2.0, 1.5], "c": [0.3, 0.2], "k": [1.0, 2.0], "g0": 0.5})
    flat = f64({"m0": 1.0, "m1": 2.0, "m2": 1.5, "c0": 0.3, "c1": 0.2, "k0": 1.0, "k1": 2.0,
                "g0": 0.5})
    q, v = jnp.array([0.1, 0.5, -0.3]), jnp.array([0.2, -0.4, 0.1])
    np.testing.assert_allclose(evaluate(model, q, v, 0.0, params)["acceleration"],
                               evaluate(whole, q, v, 0.0, flat)["acceleration"], rtol=1e-12)


def test_network_detects_irreversible_terms():
    node = NodeTerm(half * m * (xd**2 + yd**2) + b * (x * yd - y * xd), [x, y], [m, b])
    model = compile_network(2, [], [node], dim=2)
    assert not model.time_reversible and model.separable is None


def test_network_input_gain_drives_one_node():
    node, edge = _chain_terms()
    model = compile_network(3, [(0, 1), (1, 2)], [node], [edge])
    assert model.input_names == ("u",)
    params = f64({"m": [1.0, 2.0, 1.0], "b": [0.0, 1.0, 0.0], "k": [1.0, 1.0], "l": [1.0, 1.0],
                  "beta": [0.0, 0.0]})
    q, v = jnp.array([0.0, 1.0, 2.0]), jnp.zeros(3)
    np.testing.assert_allclose(evaluate(model, q, v, 0.0, params, jnp.array([3.0]))["acceleration"],
                               [0.0, 1.5, 0.0], atol=1e-14)


def test_network_validation_names_the_term():
    node, edge = _chain_terms()
    bad_edge = EdgeTerm(-k * (xb - xa) ** 2 - sp.Symbol("q9") * xa, ([xa], [xb]), [k], name="spr")
    with pytest.raises(LagrangianError, match=r"edge term #0 \(spr\).*undeclared symbol\(s\) q9"):
        compile_network(2, [(0, 1)], [node], [bad_edge])
    clash = EdgeTerm(-m * (xb - xa) ** 2, ([xa], [xb]), [m])
    with pytest.raises(LagrangianError, match="m used both in node and edge terms"):
        compile_network(2, [(0, 1)], [node], [clash])
    with pytest.raises(LagrangianError, match=r"node term #0 \(mass\) must have dim=2"):
        compile_network(2, [(0, 1)], [node], dim=2)
    with pytest.raises(LagrangianError, match=r"edge #1 \(1, 5\)"):
        compile_network(3, [(0, 1), (1, 5)], [node], [edge])
    with pytest.raises(LagrangianError, match="every node is fixed"):
        compile_network(1, [], [node], fixed_nodes={0: [0.0]})
    with pytest.raises(LagrangianError, match="fixed node 7"):
        compile_network(2, [(0, 1)], [node], [edge], fixed_nodes={7: [0.0]})
    with pytest.raises(LagrangianError, match="input u, which is not among the network inputs"):
        compile_network(2, [(0, 1)], [node], [edge], inputs=[])
    with pytest.raises(LagrangianError, match=r"undeclared function\(s\) of time y\(t\)"):
        compile_network(1, [], [NodeTerm(half * xd**2 - x * y, [x])])


def test_network_degenerate_node_terms():
    potential_only = NodeTerm(-half * k * x**2, [x], [k])
    with pytest.raises(LagrangianError, match=r"node terms is degenerate.*singular.*x \(every node\)"):
        compile_network(3, [], [potential_only])
    linear = NodeTerm(half * m * xd**2 + m * x * yd, [x, y], [m])
    with pytest.raises(LagrangianError, match=r"degenerate.*singular.*y \(every node\)"):
        compile_network(2, [], [linear], dim=2)


def test_repeated_builds_compile_identical_code():
    """Two builds of the same chain in one process give bit-identical values (the compiler's
    own symbols have fixed names, so SymPy's term order cannot change between builds)."""
    from lagrangian_eqprop import systems

    values = []
    for _ in range(4):
        sp.Dummy("filler")  # advance SymPy's Dummy counter between builds
        model, params, q0, v0 = systems.mass_spring_chain(6, nonlinear=True)
        q = q0 + 0.1 * jnp.arange(6.0) + 0.1
        values.append(np.asarray(jax.grad(model.lagrangian, argnums=0)(q, v0 + 0.3, 0.0, params)))
    for value in values[1:]:
        np.testing.assert_array_equal(value, values[0])


def test_reserved_prefix_is_refused():
    t = sp.symbols("t")
    x = dynamicsymbols("x")
    k = sp.Symbol("_lep_q0")
    with pytest.raises(LagrangianError, match="_lep_q0.*reserved"):
        compile_lagrangian(x.diff(t) ** 2 / 2 - k * x**2, coordinates=[x], parameters=[k], time=t)


# ---------------------------------------------------------------- static row selection
def _forced_gather_build(monkeypatch, build):
    """`build()` with every index array taken by a gather (the reference path)."""
    from lagrangian_eqprop import _graph as symbolic

    with monkeypatch.context() as patch:
        patch.setattr(symbolic, "MAX_RUNS", 0)
        return build()


def _gather_count(model, params, q, u):
    sep = model.separable
    jaxpr = jax.make_jaxpr(jax.grad(lambda q: sep.potential_fn(q, 0.0, params, u)))(q)
    return str(jaxpr).count("gather")


@pytest.mark.parametrize("index, boundary", [
    (np.arange(7), None),                                  # one contiguous run
    (np.array([9, 0, 1, 2, 3, 4, 10]), 9),                 # chain with walls: fixed rows at ends
    (np.array([8, 6, 4, 2, 0, 1, 3, 5]), None),            # negative and positive strides
    (np.array([3, 3, 3, 3, 0, 2, 4, 6, 9, 9]), 9),         # repeats (step 0), fixed repeats
    (np.array([5]), None),
    (np.zeros(0, dtype=np.int64), None),
])
def test_row_selection_matches_gather(index, boundary):
    """`_Rows` (static slices) equals `concatenate([x, fixed])[index]`, values and VJP."""
    from lagrangian_eqprop._graph import Rows as _Rows

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((9, 2)))
    fixed = rng.standard_normal((2, 2)) if boundary is not None else None
    rows = _Rows(index, boundary)
    assert rows.runs is not None  # the static-slice path is the one under test

    def reference(x):
        source = x if fixed is None else jnp.concatenate([x, jnp.asarray(fixed)])
        return source[jnp.asarray(index, dtype=jnp.int32)]

    np.testing.assert_array_equal(rows(x, fixed), reference(x))
    cotangent = jnp.asarray(rng.standard_normal((index.size, 2)))
    vjp_fast = jax.vjp(lambda x: rows(x, fixed), x)[1](cotangent)[0]
    vjp_ref = jax.vjp(reference, x)[1](cotangent)[0]
    np.testing.assert_allclose(vjp_fast, vjp_ref, rtol=0, atol=1e-14)


def _random_network(num_nodes, num_edges, seed):
    """A 2-D spring network on random edges with two fixed nodes inside the index range."""
    from lagrangian_eqprop import systems

    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, 3.0, (num_nodes, 2))
    pairs = {tuple(sorted(rng.choice(num_nodes, 2, replace=False))) for _ in range(num_edges)}
    edges = np.array(sorted(pairs), dtype=np.int64)
    edges = edges[rng.permutation(len(edges))]  # no sorted structure
    fixed = [1, num_nodes // 2]
    system = systems.mass_spring_network(positions, edges, dim=2, fixed_nodes=fixed)
    return system, positions, edges, fixed


def _hand_written_network_lagrangian(positions, edges, fixed):
    """`Σ ½ m|v|² − Σ ½ k(|q_b − q_a| − l)²` written directly with NumPy-style indexing (the
    independent reference: no compiler, no static slices)."""
    free = np.array([i for i in range(len(positions)) if i not in fixed])

    def lagrangian(q, v, t, params, u):
        full_q = jnp.asarray(positions).at[free].set(q.reshape(-1, 2))
        full_v = jnp.zeros_like(full_q).at[free].set(v.reshape(-1, 2))
        kinetic = 0.5 * jnp.sum(params["m"][free][:, None] * full_v[free] ** 2)
        stretch = jnp.linalg.norm(full_q[edges[:, 1]] - full_q[edges[:, 0]], axis=1) - params["l"]
        return kinetic - 0.5 * jnp.sum(params["k"] * stretch**2)

    return lagrangian


@pytest.mark.slow
@pytest.mark.parametrize("case", ["chain", "random_small", "random_large"])
def test_static_slices_match_gather_path(case, monkeypatch):
    """The compiled network Lagrangian with static slices (contiguous index runs) gives the
    same L, gradients and integrator trajectory as the same model built with gathers only; the
    random networks are also checked against a hand-written Lagrangian (independent of both)."""
    from lagrangian_eqprop import VariationalIntegrator, systems

    reference_fn = None

    def build():
        nonlocal reference_fn
        if case == "chain":
            return systems.mass_spring_chain(40, nonlinear=True, beta=1.0)
        network = _random_network(6, 6, seed=3) if case == "random_small" else _random_network(60, 150, seed=4)
        system, positions, edges, fixed = network
        reference_fn = _hand_written_network_lagrangian(positions, edges, fixed)
        return system

    fast, ref = build(), _forced_gather_build(monkeypatch, build)
    params = f64({name: np.asarray(value) for name, value in fast.params.items()})
    rng = np.random.default_rng(1)
    q = jnp.asarray(fast.q0) + 0.1 * jnp.asarray(rng.standard_normal(np.shape(fast.q0)))
    v = jnp.asarray(rng.standard_normal(np.shape(fast.q0)))
    u = fast.model.default_input(jnp.float64)

    fast_gathers = _gather_count(fast.model, params, q, u)
    assert _gather_count(ref.model, params, q, u) > 0
    if case == "random_large":
        assert fast_gathers > 0  # too many runs: this model keeps gathers (checked against the hand-written L)
    else:
        assert fast_gathers == 0  # every index array became static slices

    def quantities(lagrangian):
        L = jax.jit(lagrangian)
        grads = jax.jit(jax.grad(lagrangian, argnums=(0, 1, 3)))
        return L(q, v, 0.0, params, u), grads(q, v, 0.0, params, u)

    models_to_check = [fast.model.lagrangian, ref.model.lagrangian]
    if reference_fn is not None:
        models_to_check.append(reference_fn)
    (l_fast, g_fast), *others = [quantities(f) for f in models_to_check]
    for l_other, g_other in others:
        np.testing.assert_allclose(l_fast, l_other, rtol=1e-12, atol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(g_fast), jax.tree_util.tree_leaves(g_other)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)

    def trajectory(model):
        integ = VariationalIntegrator(model, 0.05, "trapezoid")
        assert integ.explicit
        return integ.simulate(params, q, v, num_steps=200).q

    np.testing.assert_allclose(trajectory(fast.model), trajectory(ref.model), rtol=0, atol=1e-12)
