"""The public API's contract: one exception hierarchy, solution objects with result codes and
statistics, `throw=` on every solver and estimator, rule / root-finder / estimator objects, the
module layout, and the documentation of all of it."""

from __future__ import annotations

import functools
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import lagrangian_eqprop as lep
import models

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ errors
def test_one_exception_hierarchy_with_exit_codes():
    errors = [lep.InputError, lep.LagrangianError, lep.EstimatorError, lep.ConfigError, lep.DataError,
              lep.SolveError, lep.ConvergenceError, lep.TrainingError]
    for error in errors:
        assert issubclass(error, lep.LagrangianEqPropError)
    for error in (lep.InputError, lep.LagrangianError, lep.EstimatorError, lep.ConfigError, lep.DataError):
        assert issubclass(error, ValueError) and error.exit_code == 2
    for error in (lep.ConvergenceError, lep.TrainingError):
        assert issubclass(error, RuntimeError) and error.exit_code == 1
    # every exception class the package defines lives in errors.py
    defined = subprocess.run(["grep", "-rln", r"^class .*(\(.*Error\|Exception\)", str(ROOT / "lagrangian_eqprop")],
                             capture_output=True, text=True).stdout.split()
    assert [pathlib.Path(p).name for p in defined] == ["errors.py"], defined


# ------------------------------------------------------------------ a failing model
@functools.lru_cache(maxsize=None)
def sqrt_well(rule="midpoint"):
    """A solve that fails from finite inputs (see `models.sqrt_well`)."""
    return lep.VariationalIntegrator(models.sqrt_well()[0], 0.5, rule)


SQRT = dict(q0=jnp.asarray([0.9]), v0=jnp.asarray([-0.4]), num_steps=12)
SQRT_PARAMS = {"k": jnp.asarray(0.01)}
SQRT_COST = lep.TrackingCost(jnp.zeros((13, 1)), [0])


@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda integ: lep.bptt_gradient(integ, SQRT_PARAMS, SQRT_COST, **SQRT),
    lambda integ: lep.eqprop_gradient(integ, SQRT_PARAMS, SQRT_COST, method=lep.Echo(beta=1e-4), **SQRT),
    lambda integ: lep.eqprop_gradient(integ, SQRT_PARAMS, SQRT_COST, method=lep.Naive(beta=1e-4), **SQRT),
    lambda integ: lep.adjoint_gradient(integ, SQRT_PARAMS, SQRT_COST, **SQRT),
    lambda integ: lep.echo_loss(integ, SQRT_PARAMS, SQRT_COST, **SQRT),
], ids=["bptt", "echo", "naive", "adjoint", "echo_loss"])
def test_eager_estimators_raise_convergence_error_naming_the_step(make):
    integ = sqrt_well()
    with pytest.raises(lep.ConvergenceError, match=r"failed at step \d+.*Newton produced non-finite") as info:
        make(integ)
    assert "EquinoxRuntimeError" not in str(info.value)


def test_explicit_path_failure_names_a_non_finite_state_not_newton():
    integ = sqrt_well("trapezoid")
    assert integ.explicit
    with pytest.raises(lep.ConvergenceError, match=r"in the free run, which fails at step \d+") as info:
        lep.eqprop_gradient(integ, SQRT_PARAMS, SQRT_COST, method=lep.Echo(beta=1e-4), **SQRT)
    assert "state became non-finite" in str(info.value) and "Newton" not in str(info.value)


@pytest.mark.slow
def test_too_large_beta_is_blamed_on_the_nudge():
    model, params = models.fpu_chain(3, beta=1.0)
    integ = lep.VariationalIntegrator(model, 0.1, "midpoint")
    problem = dict(q0=jnp.asarray([0.2, -0.1, 0.1]), v0=jnp.zeros(3), num_steps=30)
    cost = lep.TrackingCost(jnp.zeros((31, 1)), [1])
    with pytest.raises(lep.ConvergenceError, match="in a nudged pass; the free run is fine, so β is probably too large"):
        lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e6), **problem)
    result = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e6), return_all=True, throw=False,
                                 **problem)
    assert result.result != lep.RESULTS.successful and int(result.stats.num_failures) > 0
    good = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-6), return_all=True, **problem)
    assert good.result == lep.RESULTS.successful and float(good.stats.newton_iterations_mean) >= 1


def test_under_jit_the_same_cause_is_raised():
    integ = sqrt_well()
    fn = jax.jit(lambda q0: lep.bptt_gradient(integ, SQRT_PARAMS, SQRT_COST, q0=q0, v0=SQRT["v0"], num_steps=12))
    with pytest.raises(Exception, match="Newton produced non-finite values"):
        jax.block_until_ready(fn(SQRT["q0"]))
    out = jax.jit(lambda q0: lep.bptt_gradient(integ, SQRT_PARAMS, SQRT_COST, q0=q0, v0=SQRT["v0"], num_steps=12,
                                               return_all=True, throw=False))(SQRT["q0"])
    assert out.result == lep.RESULTS.newton_nonfinite


def test_implicit_gradient_reports_a_failed_boundary_solve():
    integ = sqrt_well()
    kw = dict(q_start=jnp.asarray([0.5]), q_end=jnp.asarray([-0.5]), num_steps=10)
    cost = lep.TrackingCost(jnp.zeros((11, 1)), [0])
    with pytest.raises(lep.ConvergenceError, match=r"implicit estimator.*failed at node \d+"):
        lep.implicit_gradient(integ, SQRT_PARAMS, cost, **kw)
    out = lep.implicit_gradient(integ, SQRT_PARAMS, cost, return_all=True, throw=False, **kw)
    assert out.result != lep.RESULTS.successful


def test_final_state_is_a_solution_object_that_unpacks():
    model, params = models.fpu_chain(3, beta=1.0)
    integ = lep.VariationalIntegrator(model, 0.1, "midpoint")
    final = integ.final_state(params, jnp.asarray([0.2, -0.1, 0.1]), jnp.zeros(3), 20)
    q_n, p_n = final
    assert isinstance(final, lep.FinalState) and final.result == lep.RESULTS.successful
    np.testing.assert_array_equal(q_n, final.q)
    assert int(final.stats.newton_iterations_max) >= 1


# ------------------------------------------------------------------ rules as objects
@pytest.mark.parametrize("shorthand, rule", [("midpoint", lep.Midpoint()), ("trapezoid", lep.Trapezoid()),
                                             ("galerkin", lep.GalerkinLobatto(degree=2))])
def test_rule_objects_equal_their_shorthands(shorthand, rule):
    model, params = models.double_pendulum()
    by_name = lep.VariationalIntegrator(model, 0.05, shorthand)
    by_object = lep.VariationalIntegrator(model, 0.05, rule=rule)
    assert by_object.rule == by_name.rule and by_object.rule.order == (4 if shorthand == "galerkin" else 2)
    q0, v0 = jnp.asarray([0.4, -0.2]), jnp.asarray([0.1, 0.0])
    np.testing.assert_array_equal(by_object.simulate(params, q0, v0, 10).q, by_name.simulate(params, q0, v0, 10).q)


def test_rules_decide_the_step_kind():
    model, params = models.fpu_chain(3)
    assert lep.VariationalIntegrator(model, 0.1, lep.Trapezoid()).explicit
    assert lep.VariationalIntegrator(model, 0.1, lep.GalerkinLobatto(degree=1)).explicit
    assert not lep.VariationalIntegrator(model, 0.1, lep.Midpoint()).explicit
    assert not lep.VariationalIntegrator(model, 0.1, lep.Trapezoid(), explicit=False).explicit
    with pytest.raises(lep.InputError, match="degree"):
        lep.GalerkinLobatto(degree=0)
    with pytest.raises(lep.InputError, match="Unknown rule 'rk4'.*midpoint, trapezoid, galerkin"):
        lep.VariationalIntegrator(model, 0.1, "rk4")
    assert tuple(lep.RULES) == ("midpoint", "trapezoid", "galerkin")


# ------------------------------------------------------------------ pluggable root finders
@pytest.mark.slow
@pytest.mark.parametrize("root_finder", [
    optx.Newton(rtol=1e-13, atol=1e-13),
    optx.Chord(rtol=1e-13, atol=1e-13),
    lep.Newton(linear_solver=lx.GMRES(rtol=1e-13, atol=1e-13)),
    lep.Newton(linear_solver=lx.LU()),
], ids=["optx.Newton", "optx.Chord", "Newton+GMRES", "Newton+LU"])
def test_root_finders_agree_with_the_default(root_finder):
    model, params = models.double_pendulum()
    q0, v0 = jnp.asarray([0.8, -0.5]), jnp.asarray([0.3, 0.1])
    default = lep.VariationalIntegrator(model, 0.05, "midpoint").simulate(params, q0, v0, 40)
    plugged = lep.VariationalIntegrator(model, 0.05, "midpoint", root_finder=root_finder)
    traj = plugged.simulate(params, q0, v0, 40)
    np.testing.assert_allclose(traj.q, default.q, rtol=0, atol=1e-10)
    assert traj.result == lep.RESULTS.successful and float(traj.stats.newton_iterations_mean) >= 1
    # gradients through the plugged root finder are implicit, and equal the default's
    cost = lep.TrackingCost(jnp.zeros((41, 1)), [0])
    kw = dict(q0=q0, v0=v0, num_steps=40)
    g = lep.bptt_gradient(plugged, params, cost, **kw)
    g_ref = lep.bptt_gradient(lep.VariationalIntegrator(model, 0.05, "midpoint"), params, cost, **kw)
    for name in g:
        np.testing.assert_allclose(g[name], g_ref[name], rtol=1e-7, atol=1e-10)


def test_a_root_finder_that_gives_up_is_reported_not_trusted():
    """optimistix 0.1.0's non-Cauchy termination reports a solve that has not converged yet as
    diverged at its second iteration (optimistix#221, fixed upstream in #230): the integrator
    surfaces that as a failed step instead of returning the unconverged value."""
    model, params = models.double_pendulum()
    integ = lep.VariationalIntegrator(model, 0.05, "midpoint",
                                      root_finder=optx.Newton(rtol=1e-10, atol=1e-10, cauchy_termination=False))
    traj = integ.simulate(params, jnp.asarray([0.8, -0.5]), jnp.asarray([0.3, 0.1]), 10, throw=False)
    assert traj.result == lep.RESULTS.diverged and int(traj.stats.num_failures) == 10
    with pytest.raises(lep.ConvergenceError, match="Newton diverged"):
        integ.simulate(params, jnp.asarray([0.8, -0.5]), jnp.asarray([0.3, 0.1]), 10)


def test_root_finder_is_refused_when_not_one():
    model, _ = models.double_pendulum()
    with pytest.raises(lep.InputError, match="root_finder must be"):
        lep.VariationalIntegrator(model, 0.05, "midpoint", root_finder="newton")


# ------------------------------------------------------------------ estimators as objects
def _chain_problem():
    model, params = models.fpu_chain(3, beta=1.0, driven=True)
    integ = lep.VariationalIntegrator(model, 0.1, "trapezoid")
    target = 0.1 * jnp.sin(0.2 * jnp.arange(31.0))[:, None]
    kw = dict(q0=jnp.asarray([0.2, -0.1, 0.1]), v0=jnp.zeros(3), num_steps=30,
              inputs=0.2 * jnp.cos(0.3 * jnp.arange(31.0))[:, None])
    return integ, params, lep.TrackingCost(target, [2]), kw


def test_estimator_objects_equal_their_shorthands():
    integ, params, cost, kw = _chain_problem()
    pairs = [
        (lep.Echo(beta=1e-5), dict(method="echo", beta=1e-5)),
        (lep.Echo(beta=1e-5, variant="positive"), dict(method="echo", beta=1e-5, variant="positive")),
        (lep.Naive(beta=1e-5, correction=True), dict(method="naive", beta=1e-5, correction=True)),
        (lep.BPTT(), dict(method="bptt")),
    ]
    for estimator, shorthand in pairs:
        a = lep.eqprop_gradient(integ, params, cost, method=estimator, **kw)
        b = lep.eqprop_gradient(integ, params, cost, **shorthand, **kw)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    echo = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-6), **kw)
    for name in bptt:
        np.testing.assert_allclose(echo[name], bptt[name], rtol=1e-6, atol=1e-10)


def test_estimator_settings_are_validated_where_they_are_given():
    integ, params, cost, kw = _chain_problem()
    with pytest.raises(lep.EstimatorError, match="(?i)unknown variant 'sideways'"):
        lep.Echo(variant="sideways")
    for bad in (0.0, float("nan"), 1j):
        with pytest.raises(lep.EstimatorError, match="non-zero finite real"):
            lep.Echo(beta=bad)
    with pytest.raises(lep.EstimatorError, match="given both as argument"):
        lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-5), beta=1e-4, **kw)
    with pytest.raises(lep.EstimatorError, match="not exact for this model"):
        damped, p = models.damped_oscillator()
        lep.eqprop_gradient(lep.VariationalIntegrator(damped, 0.1, "trapezoid"), p, lep.TrackingCost(
            jnp.zeros((11, 1)), [0]), method=lep.Echo(), q0=jnp.ones(1), v0=jnp.zeros(1), num_steps=10)


def test_gradient_results_carry_all_gradients_and_the_result():
    integ, params, cost, kw = _chain_problem()
    echo = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=1e-6), return_all=True, **kw)
    bptt = lep.bptt_gradient(integ, params, cost, return_all=True, **kw)
    for result in (echo, bptt):
        assert isinstance(result, lep.GradientResult) and result.result == lep.RESULTS.successful
        assert result.inputs.shape == (31, 1) and result.q0.shape == (3,) and result.v0.shape == (3,)
    for field in ("q0", "v0", "inputs", "loss"):
        np.testing.assert_allclose(getattr(echo, field), getattr(bptt, field), rtol=1e-6, atol=1e-9)


def test_fixed_endpoint_and_implicit_objects():
    model, params = models.fpu_chain(3, beta=1.0)
    integ = lep.VariationalIntegrator(model, 0.05, "midpoint")  # T = 1, below the first conjugate time
    cost = lep.TrackingCost(0.1 * jnp.ones((21, 1)), [1])
    kw = dict(q_start=jnp.asarray([0.2, -0.1, 0.1]), q_end=jnp.asarray([-0.1, 0.1, 0.2]), num_steps=20)
    bvp = lep.eqprop_gradient(integ, params, cost, method=lep.FixedEndpoints(beta=1e-5), **kw)
    ift = lep.eqprop_gradient(integ, params, cost, method=lep.Implicit(), **kw)
    assert set(bvp) == set(ift)
    for name in ift:
        np.testing.assert_allclose(bvp[name], ift[name], rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------ inputs between nodes
def test_inputs_between_nodes_follow_diffrax_linear_interpolation():
    """The continuous references interpolate inputs with `diffrax.LinearInterpolation`; the
    discrete Lagrangians evaluate the same piecewise-linear path locally in each interval."""
    import diffrax

    times = jnp.linspace(0.0, 2.0, 11)
    inputs = jnp.stack([jnp.sin(3 * times), times**2], axis=1)
    u = lep.interpolate_inputs(times, inputs)
    reference = diffrax.LinearInterpolation(times, inputs)
    for t in (0.0, 0.13, 0.57, 1.999, 2.0):
        np.testing.assert_allclose(u(t), reference.evaluate(t), rtol=0, atol=1e-15)
    # the local form at a quadrature point τ of interval k
    k, tau = 3, 0.3
    local = (1 - tau) * inputs[k] + tau * inputs[k + 1]
    np.testing.assert_allclose(local, u(times[k] + tau * (times[k + 1] - times[k])), rtol=0, atol=1e-14)


# ------------------------------------------------------------------ layout and docs
def test_importing_the_package_or_the_cli_loads_no_jax():
    code = ("import sys, lagrangian_eqprop, lagrangian_eqprop.cli; "
            "print(sorted(m for m in ('jax', 'sympy', 'equinox') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_modules_are_small_and_say_their_job():
    for path in sorted((ROOT / "lagrangian_eqprop").rglob("*.py")) + sorted((ROOT / "systems").glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 620, f"{path.name} has {len(text.splitlines())} lines"
        assert text.startswith('"""'), f"{path.name} does not open with a docstring"


def test_private_modules_declare_all():
    for path in sorted((ROOT / "lagrangian_eqprop").rglob("_*.py")):
        if path.name == "__init__.py" or path.name == "__main__.py":
            continue
        assert "__all__" in path.read_text(), path


def test_docs_api_lists_the_public_api():
    text = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in lep.__all__ if not re.search(rf"`(lep\.)?{re.escape(name)}[`(\s.]", text)]
    assert not missing, f"docs/api.md does not list: {missing}"
