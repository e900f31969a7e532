"""The equilibrium case (issue 11, theory §1): energies, equilibrium solves, static EqProp.

Every estimator is compared with implicit differentiation (`jax.grad` through the solve), which
is itself checked against central finite differences and, for quadratic energies, against the
closed form `s* = A⁻¹b`; the solves are compared with SciPy's minimisers (BFGS, L-BFGS-B with
bounds), independent of the engine. Tolerances are the issue's: centered ≤ 1e-6 relative at
small β, holomorphic ≤ 1e-8 with 8 points at |β| ≈ R/10 (float64), ≤ 1e-4 in float32.
Relative error = ‖estimate − reference‖₂ / ‖reference‖₂ over all parameter and input gradients.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
import scipy.optimize
import sympy

from lagrangian_eqprop import (ConvergenceError, EdgeTerm, EstimatorError, Holomorphic, InputError, LagrangianError, Newton,
                               NodeTerm, RESULTS)
from lagrangian_eqprop._energy import compile_energy, compile_energy_network, compile_layered_energy
from lagrangian_eqprop._equilibrium import NewtonMinimiser, ProjectedGradient, solve_equilibrium
from lagrangian_eqprop._equilibrium_gradient import (EquilibriumEqProp, convergence_radius, equilibrium_gradient,
                                                     equilibrium_loss)

N_UNITS = 5


class TailCost(eqx.Module):
    """`½ Σ (s[start:] − target)²`, written analytically (holomorphic EqProp evaluates it at complex s)."""

    target: jax.Array
    start: int = eqx.field(static=True)

    def __call__(self, s):
        d = s[self.start:] - self.target.astype(s.dtype)
        return 0.5 * jnp.sum(d * d)


def _tanh_energy():
    """`E = Σ ½ s² − Σ_{i<j} w_ij tanh(s_i) tanh(s_j) − Σ b_i tanh(s_i) − x₀ s₀ − x₁ s₁` (theory §1's kind)."""
    s = sympy.symbols(f"s0:{N_UNITS}")
    w = {(i, j): sympy.Symbol(f"w{i}{j}") for i in range(N_UNITS) for j in range(i + 1, N_UNITS)}
    b = sympy.symbols(f"b0:{N_UNITS}")
    x = sympy.symbols("x0:2")
    E = (sum(si**2 / 2 for si in s) - sum(wij * sympy.tanh(s[i]) * sympy.tanh(s[j]) for (i, j), wij in w.items())
         - sum(bi * sympy.tanh(si) for bi, si in zip(b, s)) - x[0] * s[0] - x[1] * s[1])
    return compile_energy(E, s, [*w.values(), *b], x)


TANH = _tanh_energy()


def _problem(seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(rng.normal() * 0.6, dtype) for k in TANH.parameter_shapes}
    x = jnp.asarray(rng.normal(size=2), dtype)
    cost = TailCost(jnp.asarray(rng.normal(size=2), dtype), 3)
    return params, x, cost


def _flat(result):
    return np.concatenate([*(np.ravel(np.asarray(result.params[k], np.float64)) for k in sorted(result.params)),
                           np.ravel(np.asarray(result.inputs, np.float64))])


def _rel(estimate, reference) -> float:
    a, b = _flat(estimate), _flat(reference)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module", params=[0, 1])
def case(request):
    params, x, cost = _problem(request.param)
    reference = equilibrium_gradient(TANH, params, x, cost, method="implicit", return_all=True)
    return params, x, cost, reference


# ------------------------------------------------------------------------------ energies
def test_compiled_energy_matches_the_formula_and_its_derivatives():
    params, x, _ = _problem(0)
    s = jnp.asarray(np.random.default_rng(3).normal(size=N_UNITS))
    p = {k: float(v) for k, v in params.items()}

    def by_hand(s):
        t = np.tanh(s)
        value = 0.5 * np.sum(s**2) - sum(p[f"w{i}{j}"] * t[i] * t[j] for i in range(N_UNITS)
                                         for j in range(i + 1, N_UNITS))
        return value - sum(p[f"b{i}"] * t[i] for i in range(N_UNITS)) - float(x[0]) * s[0] - float(x[1]) * s[1]

    s_np = np.asarray(s)
    assert float(TANH.energy(params, s, x)) == pytest.approx(by_hand(s_np), rel=1e-14)
    h = 1e-6
    numeric = [(by_hand(s_np + h * e) - by_hand(s_np - h * e)) / (2 * h) for e in np.eye(N_UNITS)]
    np.testing.assert_allclose(TANH.state_gradient(params, s, x), numeric, rtol=1e-8, atol=1e-9)
    hessian = np.asarray(TANH.hessian(params, s, x))
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-14)
    assert TANH.analytic and TANH.bounds is None


@pytest.mark.parametrize("build, culprit", [
    (lambda a, b, w: compile_energy(a * w, [a]), "w"),
    (lambda a, b, w: compile_energy(a, [sympy.Function("f")(sympy.Symbol("t"))]), "f"),
    (lambda a, b, w: compile_energy(a + b, [a, a, b]), "a"),
    (lambda a, b, w: compile_energy(a * w, [a], [w], [w]), "w"),
    (lambda a, b, w: compile_energy(sympy.Matrix([a, b]), [a, b]), "Matrix"),
    (lambda a, b, w: compile_energy(a * sympy.Function("g")(b), [a, b]), "g"),
])
def test_invalid_energies_are_refused_naming_the_culprit(build, culprit):
    a, b, w = sympy.symbols("a b w")
    with pytest.raises(LagrangianError, match=culprit):
        build(a, b, w)


def test_non_analytic_functions_are_recorded():
    a, b = sympy.symbols("a b")
    assert compile_energy(sympy.Abs(a) + b**2, [a, b]).non_analytic == ("Abs",)
    piecewise = compile_energy(sympy.Max(a, 0) ** 2 + sympy.Piecewise((b, b > 0), (0, True)), [a, b])
    assert {"Max", "Piecewise"} <= set(piecewise.non_analytic)
    smooth = compile_energy(sympy.exp(a) + sympy.sqrt(1 + b**2) + sympy.cosh(a * b), [a, b])
    assert smooth.analytic


def test_energy_network_and_layered_templates_match_hand_written_sums():
    a, b, s, g = sympy.symbols("a b s g")
    edges = [(0, 1), (1, 2), (2, 3), (0, 2)]
    net = compile_energy_network(4, edges, [NodeTerm(s**2 / 2, [s])], [EdgeTerm(g * (b - a) ** 2 / 2, ([a], [b]), [g])],
                                 input_nodes=[0], fixed_nodes={3: 0.25})
    assert net.state_names == ("s_1", "s_2") and net.input_names == ("s_0",)
    gs = np.array([1.0, 2.0, 3.0, 4.0])
    values = {0: 1.0, 1: 0.2, 2: 0.5, 3: 0.25}
    expected = 0.5 * (0.2**2 + 0.5**2) + sum(0.5 * gk * (values[j] - values[i]) ** 2 for gk, (i, j) in zip(gs, edges))
    assert float(net.energy({"g": jnp.asarray(gs)}, jnp.array([0.2, 0.5]), jnp.array([1.0]))) == pytest.approx(expected)

    w, c = sympy.symbols("w c")
    layered = compile_layered_energy([3, 4, 2], [NodeTerm(s**2 / 2 - c * s, [s], [c])],
                                     [EdgeTerm(-w * a * b, ([a], [b]), [w])])
    rng = np.random.default_rng(0)
    p = {k: jnp.asarray(rng.normal(size=v)) for k, v in layered.parameter_shapes.items()}
    state, x = jnp.asarray(rng.uniform(size=6)), jnp.asarray(rng.uniform(size=3))
    hidden, out = state[:4], state[4:]
    by_hand = (0.5 * state @ state - p["c_1"] @ hidden - p["c_2"] @ out - x @ p["w_1"] @ hidden
               - hidden @ p["w_2"] @ out)
    assert float(layered.energy(p, state, x)) == pytest.approx(float(by_hand), rel=1e-13)


# -------------------------------------------------------------------------------- solves
@pytest.mark.parametrize("solver", [None, ProjectedGradient(), Newton(), optx.BFGS(rtol=1e-12, atol=1e-12),
                                    NewtonMinimiser(linear_solver=lx.CG(rtol=1e-12, atol=1e-12))],
                         ids=["newton-minimiser", "projected-gradient", "newton-root", "optx-bfgs", "newton-cg"])
def test_equilibrium_is_the_minimum_scipy_finds(solver):
    params, x, _ = _problem(0)
    sol = solve_equilibrium(TANH, params, x, solver=solver)
    energy = jax.jit(lambda s: TANH.energy(params, s, x))
    force = jax.jit(lambda s: TANH.state_gradient(params, s, x))
    ref = scipy.optimize.minimize(lambda s: float(energy(s)), np.zeros(N_UNITS), jac=lambda s: np.asarray(force(s)),
                                  method="BFGS", options={"gtol": 1e-12})
    np.testing.assert_allclose(sol.s, ref.x, atol=1e-7)
    assert float(jnp.max(jnp.abs(force(sol.s)))) < 1e-8
    assert float(sol.min_pivot) > 0 and int(sol.stats.num_failures) == 0


def _box_quadratic(seed):
    """A random convex quadratic in a box, its states pushed against both bounds."""
    rng = np.random.default_rng(seed)
    s = sympy.symbols("s0:6")
    q = rng.normal(size=(6, 6))
    a = q @ q.T / 6 + 0.5 * np.eye(6)
    c = rng.normal(size=6) * 2 + np.array([0, 0, 0, 0, 3, 3])  # seed 0: two states at each bound, two inside
    E = sum(float(a[i, j]) * s[i] * s[j] / 2 for i in range(6) for j in range(6)) - sum(
        float(c[i]) * s[i] for i in range(6))
    return compile_energy(E, s, bounds=(0.0, 1.0)), a, c


def test_box_constrained_equilibrium_matches_l_bfgs_b_and_kkt():
    model, a, c = _box_quadratic(0)
    for solver in (NewtonMinimiser(), ProjectedGradient(step=0.5)):
        sol = solve_equilibrium(model, {}, None, solver=solver)
        ref = scipy.optimize.minimize(lambda s: 0.5 * s @ a @ s - c @ s, np.full(6, 0.5), jac=lambda s: a @ s - c,
                                      method="L-BFGS-B", bounds=[(0, 1)] * 6, options={"ftol": 1e-15, "gtol": 1e-12})
        s = np.asarray(sol.s)
        np.testing.assert_allclose(s, ref.x, atol=1e-6)
        g = a @ s - c
        lower, upper = s <= 1e-12, s >= 1 - 1e-12
        assert lower.any() and upper.any() and (~lower & ~upper).any()  # both bounds and the interior
        assert np.all(g[lower] >= -1e-9) and np.all(g[upper] <= 1e-9)
        np.testing.assert_allclose(g[~lower & ~upper], 0.0, atol=1e-9)


def test_saddle_points_are_reported_never_returned():
    a, b = sympy.symbols("a b")
    double_well = compile_energy((a**2 - 1) ** 2 + b**2, [a, b])
    sol = solve_equilibrium(double_well, {}, None, np.array([0.0, 0.3]), throw=False)  # ∇E = 0 along a = 0: a maximum in a
    assert sol.result == RESULTS.saddle_point and float(sol.min_pivot) == pytest.approx(-4.0)
    assert int(sol.stats.first_failed) == 0
    with pytest.raises(ConvergenceError, match=r"state 0 \(a\).*-4\.0"):
        solve_equilibrium(double_well, {}, None, np.array([0.0, 0.3]))
    # the pure root finder lands on the saddle of x² − y² and is refused as well ...
    saddle = compile_energy(a**2 - b**2, [a, b])
    with pytest.raises(ConvergenceError):
        solve_equilibrium(saddle, {}, None, np.array([0.1, 0.1]), solver=Newton())
    # ... unless a stationary point is what was asked for
    assert np.allclose(solve_equilibrium(saddle, {}, None, np.array([0.1, 0.1]), solver=Newton(), expect="stationary").s, 0.0)
    # a minimum is found from the same start
    np.testing.assert_allclose(solve_equilibrium(double_well, {}, None, np.array([0.2, 0.3])).s, [1.0, 0.0], atol=1e-12)


def test_under_jit_a_saddle_is_a_runtime_error():
    a = sympy.Symbol("a")
    model = compile_energy((a**2 - 1) ** 2 + sympy.Symbol("c") * a, [a], [sympy.Symbol("c")])
    run = jax.jit(lambda c: solve_equilibrium(model, {"c": c}, None, jnp.zeros(1)).s)
    assert float(run(jnp.asarray(-1.0))[0]) > 1.0  # a tilted well: the minimum
    with pytest.raises(Exception, match="failed"):
        jax.block_until_ready(run(jnp.asarray(0.0)))


def test_non_convergence_is_reported():
    params, x, _ = _problem(0)
    sol = solve_equilibrium(TANH, params, x, solver=NewtonMinimiser(max_steps=1), throw=False)
    assert sol.result == RESULTS.equilibrium_max_steps and int(sol.stats.num_failures) == 1
    with pytest.raises(ConvergenceError, match="state"):
        solve_equilibrium(TANH, params, x, solver=NewtonMinimiser(max_steps=1))


def test_bad_input_is_refused_naming_the_argument(without_runtime_types):
    params, x, _ = _problem(0)
    with pytest.raises(InputError, match="x must have shape"):
        solve_equilibrium(TANH, params, jnp.zeros(3))
    with pytest.raises(InputError, match="missing parameter"):
        solve_equilibrium(TANH, {"w01": 1.0}, x)
    with pytest.raises(InputError, match="x contains non-finite"):
        solve_equilibrium(TANH, params, jnp.array([np.nan, 0.0]))
    with pytest.raises(InputError, match="s0 must have shape"):
        solve_equilibrium(TANH, params, x, jnp.zeros(2))
    with pytest.raises(InputError, match="cannot respect bounds"):
        solve_equilibrium(TANH, params, x, solver=Newton(), bounds=(0.0, 1.0))
    with pytest.raises(InputError, match="expect"):
        solve_equilibrium(TANH, params, x, expect="maximum")


@pytest.mark.slow
def test_solves_vmap_and_differentiate_implicitly():
    params, x, cost = _problem(0)
    xs = jnp.stack([x, -x, 2 * x])
    batched = jax.vmap(lambda xi: solve_equilibrium(TANH, params, xi).s)(xs)
    for xi, si in zip(xs, batched):
        np.testing.assert_allclose(si, solve_equilibrium(TANH, params, xi).s, atol=1e-13)
    loss = jax.jit(lambda p, xi: equilibrium_loss(TANH, p, xi, cost))
    grads = jax.grad(loss, argnums=(0, 1))(params, x)
    h = 1e-6
    for name in ("w01", "b3"):
        up, down = dict(params), dict(params)
        up[name], down[name] = params[name] + h, params[name] - h
        assert float(grads[0][name]) == pytest.approx(float(loss(up, x) - loss(down, x)) / (2 * h), rel=1e-7, abs=1e-10)
    e0 = jnp.array([h, 0.0])
    assert float(grads[1][0]) == pytest.approx(float(loss(params, x + e0) - loss(params, x - e0)) / (2 * h), rel=1e-7)


# --------------------------------------------------------------------------- estimators
def test_implicit_reference_matches_the_closed_form_of_a_quadratic_energy():
    """`E = ½ sᵀA(θ)s − (b + x)ᵀs` with `A = D + θ·(e₀e₁ᵀ + e₁e₀ᵀ)`: `s* = A⁻¹(b + x)`."""
    s = sympy.symbols("s0:3")
    th = sympy.Symbol("theta")
    x = sympy.symbols("x0:3")
    diag = (2.0, 3.0, 4.0)
    E = (sum(d * si**2 / 2 for d, si in zip(diag, s)) + th * s[0] * s[1]
         - sum((0.3 * (i + 1) + xi) * si for i, (si, xi) in enumerate(zip(s, x))))
    model = compile_energy(E, s, [th], x)
    theta, xv = 0.7, np.array([0.1, -0.2, 0.3])
    cost = TailCost(jnp.array([0.5, -0.5]), 1)

    def closed(theta, xv):
        a = np.diag(diag)
        a[0, 1] = a[1, 0] = theta
        star = np.linalg.solve(a, 0.3 * np.arange(1, 4) + xv)
        return 0.5 * np.sum((star[1:] - np.array([0.5, -0.5])) ** 2)

    got = equilibrium_gradient(model, {"theta": theta}, xv, cost, method="implicit", return_all=True)
    h = 1e-6
    assert float(got.params["theta"]) == pytest.approx((closed(theta + h, xv) - closed(theta - h, xv)) / (2 * h),
                                                       rel=1e-8)
    for i in range(3):
        e = h * np.eye(3)[i]
        assert float(got.inputs[i]) == pytest.approx((closed(theta, xv + e) - closed(theta, xv - e)) / (2 * h),
                                                     rel=1e-7, abs=1e-11)


@pytest.mark.slow
def test_centered_eqprop_matches_implicit_differentiation(case):
    params, x, cost, reference = case
    for beta in (1e-4, None):  # None: ε^{1/3} ≈ 6e-6
        estimate = equilibrium_gradient(TANH, params, x, cost, beta=beta, return_all=True)
        assert _rel(estimate, reference) <= 1e-6
        assert float(estimate.loss) == pytest.approx(float(reference.loss), rel=1e-14)


@pytest.mark.slow
def test_tangent_eqprop_is_exact(case):
    params, x, cost, reference = case
    assert _rel(equilibrium_gradient(TANH, params, x, cost, variant="tangent", return_all=True), reference) <= 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("variant, slope", [("centered", 2.0), ("positive", 1.0), ("negative", 1.0)])
def test_eqprop_bias_has_the_expected_order_in_beta(case, variant, slope):
    params, x, cost, reference = case
    errors = [_rel(equilibrium_gradient(TANH, params, x, cost, beta=b, variant=variant, return_all=True), reference)
              for b in (1e-2, 1e-3)]
    assert np.log10(errors[0] / errors[1]) == pytest.approx(slope, abs=0.15)
    if variant != "centered":
        assert errors[1] <= 1e-2


@pytest.mark.slow
def test_holomorphic_eqprop_is_exact_to_1e_8_at_a_tenth_of_the_radius(case):
    params, x, cost, reference = case
    radius = convergence_radius(TANH, params, x, cost)
    assert 0.05 < radius < 2.0
    default = equilibrium_gradient(TANH, params, x, cost, variant="holomorphic", return_all=True)
    assert _rel(default, reference) <= 1e-8
    explicit = equilibrium_gradient(TANH, params, x, cost, beta=radius / 10, variant="holomorphic", return_all=True)
    np.testing.assert_allclose(_flat(explicit), _flat(default), rtol=0, atol=1e-13 * np.abs(_flat(default)).max())
    # the aliasing law O((r/R)^K): halving r divides the error by ~2^8 (until round-off)
    coarse = [_rel(equilibrium_gradient(TANH, params, x, cost, beta=r, variant="holomorphic", return_all=True),
                   reference) for r in (radius / 2, radius / 4)]
    assert np.log2(coarse[0] / coarse[1]) == pytest.approx(8.0, abs=1.0)
    # more points on the circle: more digits at the same radius
    sixteen = equilibrium_gradient(TANH, params, x, cost, beta=radius / 2, variant="holomorphic", points=16,
                                   return_all=True)
    assert _rel(sixteen, reference) < 0.05 * coarse[0]


@pytest.mark.slow
def test_radius_estimate_on_a_quadratic_energy_with_a_known_pole():
    """Quadratic E and C: `s^β = (A + βQ)⁻¹(b + βQt)`, singular at `β = −1/λ(A⁻¹Q)`, so `R` is exact."""
    rng = np.random.default_rng(2)
    q = rng.normal(size=(4, 4))
    a = q @ q.T / 4 + np.eye(4)
    b = rng.normal(size=4)
    s = sympy.symbols("s0:4")
    E = sum(float(a[i, j]) * s[i] * s[j] / 2 for i in range(4) for j in range(4)) - sum(
        float(b[i]) * s[i] for i in range(4))
    model = compile_energy(E, s)
    cost = TailCost(jnp.array([1.0, -1.0]), 2)
    qmat = np.zeros((4, 4))
    qmat[2, 2] = qmat[3, 3] = 1.0
    exact = 1.0 / np.max(np.abs(np.linalg.eigvals(np.linalg.solve(a, qmat))))
    radius = convergence_radius(model, {}, None, cost)
    assert 0.4 * exact <= radius <= 1.1 * exact  # the fit assumes a square-root branch point: conservative for a pole
    reference = equilibrium_gradient(model, {}, None, cost, method="implicit", return_all=True)
    estimate = equilibrium_gradient(model, {}, None, cost, variant="holomorphic", return_all=True)
    assert np.linalg.norm(estimate.inputs - reference.inputs) <= 1e-9 * np.linalg.norm(reference.inputs) + 1e-300


@pytest.mark.slow
def test_holomorphic_eqprop_refuses_what_is_not_analytic():
    a, b, w = sympy.symbols("a b w")
    params, x, cost = {"w": 0.5}, None, TailCost(jnp.array([1.0]), 1)
    # non-analytic functions, smooth near the equilibrium (a ≈ b ≈ ½), where the real variants work
    for E, culprit in ((a**2 + b**2 - a - b + w * sympy.Abs(a + 2), "Abs"),
                       (a**2 + b**2 - a - b + w * sympy.Piecewise((a * b, a > 0), (0, True)), "Piecewise")):
        model = compile_energy(E, [a, b], [w])
        with pytest.raises(EstimatorError, match=culprit):
            equilibrium_gradient(model, params, x, cost, variant="holomorphic")
        equilibrium_gradient(model, params, x, cost, variant="centered")  # the real variants are fine
    boxed = compile_energy(a**2 + b**2 - w * a * b, [a, b], [w], bounds=(0, 1))
    with pytest.raises(EstimatorError, match="box"):
        equilibrium_gradient(boxed, params, x, cost, variant="holomorphic")
    smooth = compile_energy(a**2 + b**2 - w * a * b - a, [a, b], [w])
    with pytest.raises(EstimatorError, match="cost is not holomorphic"):
        equilibrium_gradient(smooth, params, x, lambda s: jnp.abs(s[1] - 1.0), variant="holomorphic")
    with pytest.raises(EstimatorError, match="beta must be a non-zero"):
        equilibrium_gradient(smooth, params, x, cost, beta=0.0)
    with pytest.raises(EstimatorError, match="Unknown variant"):
        equilibrium_gradient(smooth, params, x, cost, variant="sideways")


@pytest.mark.slow
def test_box_constrained_eqprop_matches_implicit_differentiation():
    model, _, _ = _box_quadratic(0)
    s = sympy.symbols("s0:6")
    w = sympy.Symbol("w")
    model = compile_energy(model.expression - w * s[0] * s[5] - w * s[2] * s[3], s, [w], bounds=(0.0, 1.0))
    cost = TailCost(jnp.array([0.2, 0.9]), 4)
    params = {"w": 0.3}
    reference = equilibrium_gradient(model, params, None, cost, method="implicit", return_all=True)
    loss = lambda v: float(equilibrium_loss(model, {"w": jnp.asarray(v)}, jnp.zeros(0), cost))  # noqa: E731
    assert float(reference.params["w"]) == pytest.approx((loss(0.3 + 1e-6) - loss(0.3 - 1e-6)) / 2e-6, rel=1e-6)
    estimate = equilibrium_gradient(model, params, None, cost, beta=1e-4, return_all=True)
    assert float(estimate.params["w"]) == pytest.approx(float(reference.params["w"]), rel=1e-6)


def test_eqprop_refuses_a_model_that_is_not_an_energy():
    with pytest.raises(EstimatorError, match="energy models"):
        EquilibriumEqProp().check(object())
    assert EquilibriumEqProp(variant="holomorphic").contrast == Holomorphic(8)


@pytest.fixture
def float32():
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)


@pytest.mark.slow
def test_float32_estimators_agree_with_the_float64_gradient_to_1e_4(case, float32):
    params64, x64, cost64, reference = case
    params = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in params64.items()}
    x = jnp.asarray(np.asarray(x64, np.float32))
    cost = TailCost(jnp.asarray(np.asarray(cost64.target, np.float32)), 3)
    for variant in ("centered", "holomorphic"):
        estimate = equilibrium_gradient(TANH, params, x, cost, variant=variant, return_all=True)
        assert estimate.params["w01"].dtype == jnp.float32
        assert _rel(estimate, reference) <= 1e-4, variant
