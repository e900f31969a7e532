"""Variational integrators (`integrate.py`, `discrete.py`) against independent references.

References are the continuous Euler–Lagrange equations solved by diffrax at tight tolerances
(`tests/reference.py`) or closed-form solutions. Test systems are hand-written JAX
Lagrangians (`tests/models.py`), independent of the SymPy compiler. Everything is float64
(`tests/conftest.py`).
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian_eqprop as lep
from lagrangian_eqprop.errors import ConvergenceError
from lagrangian_eqprop import VariationalIntegrator
from lagrangian_eqprop import interpolate_inputs

import models
from reference import fit_order, reference_solution

ORDER_TOL = 0.3


# ---------------------------------------------------------------------------- helpers
def _run(integ, params, q0, v0, num_steps, inputs=None):
    """Jitted `simulate` with `throw=False`; asserts every step converged, returns NumPy q, p."""
    if callable(inputs):  # a callable input is closed over (it is not an array argument)
        fn = jax.jit(lambda params, q0, v0: integ.simulate(params, q0, v0, num_steps, inputs, throw=False))
        traj = fn(params, jnp.asarray(q0), jnp.asarray(v0))
    else:
        fn = jax.jit(lambda params, q0, v0, us: integ.simulate(params, q0, v0, num_steps, us, throw=False))
        traj = fn(params, jnp.asarray(q0), jnp.asarray(v0), inputs)
    failures = int(traj.num_failures)
    assert failures == 0, (
        f"{failures} step(s) failed to converge (first at step {int(traj.first_failed_step)}) "
        f"with rule {integ.discrete.rule.name}, dt={integ.dt}, N={num_steps}"
    )
    return np.asarray(traj.q), np.asarray(traj.p)


def _final_error(model, params, q0, v0, t_end, rule, num_steps, q_ref, inputs=None, sampler=None, **kwargs):
    """Max position error at `t_end`; `inputs` is `u(t)` or `None`, `sampler(num_steps)` gives
    node-sampled inputs of shape `(num_steps + 1, m)` instead."""
    integ = VariationalIntegrator(model, t_end / num_steps, rule, **kwargs)
    node_inputs = inputs if sampler is None else sampler(num_steps)
    q, _ = _run(integ, params, q0, v0, num_steps, node_inputs)
    return float(np.max(np.abs(q[-1] - q_ref)))


def _order(model, params, q0, v0, t_end, rule, steps, q_ref, inputs=None, sampler=None, **kwargs):
    errors = [
        _final_error(model, params, q0, v0, t_end, rule, n, q_ref, inputs, sampler, **kwargs) for n in steps
    ]
    return fit_order([t_end / n for n in steps], errors), errors


# ------------------------------------------------------------------ systems (shared data)
T_ORDER = 2.0


@functools.lru_cache(maxsize=None)
def _double_pendulum_case():
    model, params = models.double_pendulum()
    q0 = np.array([1.0, -0.5])
    v0 = np.array([0.3, 0.8])
    q_ref, _ = reference_solution(model, params, q0, v0, T_ORDER)
    return model, params, q0, v0, q_ref[-1]


@functools.lru_cache(maxsize=None)
def _chain_case():
    model, params = models.fpu_chain(6, beta=1.0)
    i = np.arange(6)
    q0 = 0.3 * np.sin(i + 1.0)
    v0 = 0.2 * np.cos(i)
    q_ref, _ = reference_solution(model, params, q0, v0, T_ORDER)
    return model, params, q0, v0, q_ref[-1]


ORDER_CASES = [
    # (system, rule, step counts over T_ORDER, nominal order)
    ("double_pendulum", "midpoint", (80, 160, 320), 2),
    ("double_pendulum", "trapezoid", (80, 160, 320), 2),
    ("double_pendulum", "galerkin", (40, 80, 160), 4),
    ("fpu_chain", "midpoint", (20, 40, 80), 2),
    ("fpu_chain", "trapezoid", (20, 40, 80), 2),
    ("fpu_chain", "galerkin", (5, 10, 20), 4),
]


# ------------------------------------------------------------------------ 1. order
@pytest.mark.slow
@pytest.mark.parametrize("system, rule, steps, nominal", ORDER_CASES)
def test_empirical_order_against_continuous_reference(system, rule, steps, nominal):
    case = _double_pendulum_case() if system == "double_pendulum" else _chain_case()
    model, params, q0, v0, q_ref = case
    order, errors = _order(model, params, q0, v0, T_ORDER, rule, steps, q_ref)
    assert abs(order - nominal) <= ORDER_TOL, f"{system}/{rule}: order {order:.3f}, errors {errors}"
    # Consistent with the right equations: the finest error is genuinely small.
    assert errors[-1] < 1e-3


def test_trapezoid_on_separable_model_uses_explicit_path():
    model, _ = models.fpu_chain(4)
    assert VariationalIntegrator(model, 0.1, "trapezoid").explicit
    assert not VariationalIntegrator(model, 0.1, "midpoint").explicit
    assert not VariationalIntegrator(model, 0.1, "trapezoid", explicit=False).explicit
    pendulum, _ = models.double_pendulum()
    assert not VariationalIntegrator(pendulum, 0.1, "trapezoid").explicit
    with pytest.raises(ValueError, match="explicit=True"):
        VariationalIntegrator(pendulum, 0.1, "trapezoid", explicit=True)
    damped, _ = models.damped_oscillator()
    assert not VariationalIntegrator(damped, 0.1, "trapezoid").explicit


# ------------------------------------------------------------- 2. energy, no drift
def test_energy_bounded_without_drift_fpu_chain_1e5_steps():
    n, h, num_steps = 32, 0.05, 100_000
    model, params = models.fpu_chain(n, beta=1.0)
    rng = np.random.default_rng(0)
    q0 = jnp.asarray(0.3 * rng.standard_normal(n))
    v0 = jnp.asarray(0.3 * rng.standard_normal(n))
    integ = VariationalIntegrator(model, h, "trapezoid")
    assert integ.explicit

    @jax.jit
    def energies(params, q0, v0):
        traj = integ.simulate(params, q0, v0, num_steps, throw=False)
        # Energy from the discrete momentum p_k (the Störmer–Verlet momentum at the node).
        return models.chain_energy(model, params, traj.q, traj.p), traj.num_failures

    e, failures = energies(params, q0, v0)
    assert int(failures) == 0
    e = np.asarray(e)
    de = e - e[0]
    window = num_steps // 10
    first, last = np.abs(de[:window]).max(), np.abs(de[-window:]).max()
    # Bounded O(h²) oscillation...
    assert np.abs(de).max() < 2e-3 * abs(e[0]), np.abs(de).max()
    # ... with no secular drift: the late error is not larger than the early error,
    assert last <= 1.3 * first, (first, last)
    # and the trend over the whole run is a small fraction of the oscillation.
    t = np.arange(num_steps + 1) * h
    trend = np.polyfit(t, de, 1)[0] * t[-1]
    assert abs(trend) < 0.2 * first, (trend, first)
    assert abs(de[-window:].mean() - de[:window].mean()) < 0.2 * first


# ----------------------------------------------------------------- 3. discrete Noether
@pytest.mark.parametrize("rule, explicit", [("midpoint", "auto"), ("trapezoid", "auto"), ("trapezoid", False)])
def test_total_momentum_conserved_translation_invariant_chain(rule, explicit):
    model, params = models.free_chain(5)
    rng = np.random.default_rng(1)
    q0 = 0.3 * rng.standard_normal(5)
    v0 = 0.5 * rng.standard_normal(5) + 0.7
    integ = VariationalIntegrator(model, 0.1, rule, explicit=explicit)
    _, p = _run(integ, params, q0, v0, 500)
    total = p.sum(axis=1)
    drift = np.abs(total - total[0]).max() / abs(total[0])
    assert drift <= 1e-12, drift


def test_total_momentum_not_conserved_with_walls():
    # The Noether test above is not vacuous: with walls Σp genuinely varies.
    model, params = models.fpu_chain(5)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    _, p = _run(integ, params, 0.3 * np.ones(5), 0.7 * np.ones(5), 100)
    total = p.sum(axis=1)
    assert np.abs(total - total[0]).max() > 1e-2


# ------------------------------------------------------ 4. explicit path == Newton path
def test_explicit_path_equals_newton_path_time_dependent_and_driven():
    model, params = models.fpu_chain(5, beta=2.0, time_dependent=True, driven=True)
    rng = np.random.default_rng(2)
    q0 = 0.4 * rng.standard_normal(5)
    v0 = 0.4 * rng.standard_normal(5)
    h, num_steps = 0.05, 200
    u = lambda t: jnp.reshape(0.5 * jnp.sin(2.0 * t) + 0.2, (1,))
    fast = VariationalIntegrator(model, h, "trapezoid", t0=0.3)
    slow = VariationalIntegrator(model, h, "trapezoid", t0=0.3, explicit=False)
    assert fast.explicit and not slow.explicit
    q_fast, p_fast = _run(fast, params, q0, v0, num_steps, u)
    q_slow, p_slow = _run(slow, params, q0, v0, num_steps, u)
    np.testing.assert_allclose(q_fast, q_slow, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p_fast, p_slow, rtol=0, atol=1e-12)
    # The forcing matters (otherwise the comparison could hide a dropped input/time term).
    q_free, _ = _run(fast, params, q0, v0, num_steps, lambda t: jnp.zeros((1,)))
    assert np.abs(q_free - q_fast).max() > 1e-2


# ------------------------------------------------------------ 5. dissipative systems
@pytest.mark.slow
@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_damped_oscillator_converges_to_analytic_solution(rule):
    model, params = models.damped_oscillator(m=1.0, k=2.0, c=0.4)
    x0, v0, t_end = 1.0, 0.5, 5.0
    exact = models.damped_solution(t_end, x0, v0, 1.0, 2.0, 0.4)
    integ = VariationalIntegrator(model, 0.1, rule)
    assert not integ.explicit
    order, errors = _order(model, params, np.array([x0]), np.array([v0]), t_end, rule, (50, 100, 200),
                           np.array([exact]))
    assert abs(order - 2) <= ORDER_TOL, (order, errors)
    assert errors[-1] < 1e-3


def test_caldirola_kanai_converges_to_analytic_solution():
    gamma, m, k = 0.3, 1.0, 2.0
    model, params = models.caldirola_kanai(m=m, k=k, gamma=gamma)
    x0, v0, t_end = 1.0, -0.4, 5.0
    exact = models.damped_solution(t_end, x0, v0, m, k, gamma * m)
    order, errors = _order(model, params, np.array([x0]), np.array([v0]), t_end, "midpoint",
                           (50, 100, 200), np.array([exact]))
    assert abs(order - 2) <= ORDER_TOL, (order, errors)
    assert errors[-1] < 1e-3
    # The decay is real: the amplitude at t_end is well below the initial one.
    assert abs(exact) < 0.6


# ------------------------------------------------------------------ 6. driven system
def _drive(t):
    return jnp.reshape(jnp.sin(1.7 * t) + 0.5 * jnp.cos(0.3 * t), (1,))


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_driven_oscillator_node_sampled_and_callable_inputs(rule):
    m, k = 1.0, 3.0
    model, params = models.driven_oscillator(m=m, k=k)
    q0, v0, t_end = np.array([0.2]), np.array([0.0]), 4.0
    q_ref, _ = reference_solution(model, params, q0, v0, t_end, input_fn=_drive)
    steps = (40, 80, 160)

    def sampled(num_steps):
        times = np.linspace(0.0, t_end, num_steps + 1)
        return np.sin(1.7 * times)[:, None] + 0.5 * np.cos(0.3 * times)[:, None]

    order, errors = _order(model, params, q0, v0, t_end, rule, steps, q_ref[-1], sampler=sampled)
    assert abs(order - 2) <= ORDER_TOL, (order, errors)
    assert errors[-1] < 1e-3
    # A callable input is sampled at the nodes: same trajectory to round-off, same error.
    err_callable = _final_error(model, params, q0, v0, t_end, rule, steps[-1], q_ref[-1], inputs=_drive)
    np.testing.assert_allclose(err_callable, errors[-1], rtol=1e-8)
    # The drive matters: the undriven (analytic) solution is far away.
    w = np.sqrt(k / m)
    x_free = q0[0] * np.cos(w * t_end) + v0[0] / w * np.sin(w * t_end)
    assert abs(x_free - q_ref[-1, 0]) > 1e-2


def test_node_sampled_inputs_match_reference_with_interpolated_inputs():
    # Node-sampled, non-smooth inputs: the discrete system sees their piecewise-linear
    # interpolant; so does the continuous reference through `interpolate_inputs`.
    model, params = models.driven_oscillator(m=1.0, k=3.0)
    rng = np.random.default_rng(3)
    num_steps, t_end = 400, 4.0
    integ = VariationalIntegrator(model, t_end / num_steps, "midpoint")
    times = np.asarray(integ.node_times(num_steps))
    # A random piecewise-linear drive with kinks every 100 steps (not a smooth function).
    coarse = rng.standard_normal(5)
    inputs = np.interp(times, np.linspace(0, t_end, 5), coarse)[:, None]
    q, _ = _run(integ, params, [0.1], [0.3], num_steps, inputs)
    q_ref, _ = reference_solution(model, params, [0.1], [0.3], t_end, times[::100],
                                  input_fn=interpolate_inputs(times, inputs))
    np.testing.assert_allclose(q[::100], q_ref, atol=5e-4)


# ----------------------------------------------------------------- 7. jit and vmap
@functools.lru_cache(maxsize=None)
def _batch_setup():
    model, params = models.fpu_chain(4, beta=1.5)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    q0 = jnp.asarray([0.3, -0.1, 0.2, 0.05])
    v0 = jnp.asarray([0.0, 0.2, -0.1, 0.1])
    num_steps = 40

    def positions(params, q0, v0):
        return integ.simulate(params, q0, v0, num_steps).q

    return params, q0, v0, positions


@pytest.mark.slow
def test_compiled_simulate_matches_an_eager_step_loop():
    """`simulate` (one compiled scan) against a Python loop of `integ.step` run op by op (no
    jit): the same discrete map, so the trajectories agree to round-off."""
    params, q0, v0, positions = _batch_setup()
    model_integ = VariationalIntegrator(models.fpu_chain(4, beta=1.5)[0], 0.1, "midpoint")
    compiled = positions(params, q0, v0)
    with jax.disable_jit():
        times = model_integ.node_times(40)
        us = model_integ.node_inputs(40)
        q, p = q0, model_integ.initial_momentum(params, q0, v0)
        previous = q0 - 0.1 * v0
        eager = [q]
        for k in range(6):  # op-by-op execution is slow: a few steps suffice
            q_next, p, ok = model_integ.step(params, q, p, (times[k], us[k]), (times[k + 1], us[k + 1]),
                                             q_guess=2.0 * q - previous)
            assert bool(ok)
            previous, q = q, q_next
            eager.append(q)
    np.testing.assert_allclose(compiled[:7], np.stack(eager), rtol=0, atol=1e-12)
    assert np.abs(np.asarray(compiled[6] - compiled[0])).max() > 1e-2  # it moved


def test_vmap_over_params_matches_loop():
    params, q0, v0, positions = _batch_setup()
    ks = jnp.asarray([0.5, 1.0, 2.0])
    batched = dict(params, k=ks)
    in_axes = ({name: (0 if name == "k" else None) for name in params}, None, None)
    out = jax.jit(jax.vmap(positions, in_axes=in_axes))(batched, q0, v0)
    single = jax.jit(positions)
    loop = np.stack([single(dict(params, k=k), q0, v0) for k in ks])
    np.testing.assert_allclose(out, loop, rtol=0, atol=1e-12)
    assert np.abs(loop[0] - loop[2]).max() > 1e-2  # the batch members differ


def test_vmap_over_initial_conditions_matches_loop():
    params, q0, v0, positions = _batch_setup()
    q0s = q0[None] * jnp.asarray([0.5, 1.0, 3.0])[:, None]
    v0s = v0[None] + jnp.asarray([-0.1, 0.0, 0.2])[:, None]
    out = jax.jit(jax.vmap(positions, in_axes=(None, 0, 0)))(params, q0s, v0s)
    single = jax.jit(positions)
    loop = np.stack([single(params, a, b) for a, b in zip(q0s, v0s)])
    np.testing.assert_allclose(out, loop, rtol=0, atol=1e-12)


# -------------------------------------------------------- 8. convergence failures
def _sqrt_well(explicit):
    model, params = models.sqrt_well()
    integ = VariationalIntegrator(model, 0.5, "trapezoid" if explicit else "midpoint")
    assert integ.explicit == explicit
    return integ, params, jnp.asarray([0.9]), jnp.asarray([-0.4]), 12


def _first_bad_step(traj):
    bad = ~(np.all(np.isfinite(np.asarray(traj.q)), axis=1) & np.all(np.isfinite(np.asarray(traj.p)), axis=1))
    return int(np.argmax(bad)) - 1  # node k+1 is produced by step k


@pytest.mark.parametrize("explicit", [False, True])
def test_failure_reported_eagerly_with_step(explicit):
    integ, params, q0, v0, num_steps = _sqrt_well(explicit)
    traj = integ.simulate(params, q0, v0, num_steps, throw=False)
    step = _first_bad_step(traj)
    assert step >= 1 and int(traj.stats.first_failed) == step
    cause = "non-finite: an explicit step" if explicit else "Newton produced non-finite"
    with pytest.raises(ConvergenceError, match=rf"simulate.*at step {step}\b.*{cause}") as info:
        integ.simulate(params, q0, v0, num_steps)
    assert isinstance(info.value, lep.LagrangianEqPropError) and isinstance(info.value, RuntimeError)
    if explicit:
        assert "Newton" not in str(info.value)  # the explicit path never blames Newton
        # final_state keeps no trajectory: it re-runs storing the nodes to locate the step.
        with pytest.raises(ConvergenceError, match=rf"final_state.*at step {step}\b"):
            integ.final_state(params, q0, v0, num_steps)


@pytest.mark.parametrize("explicit", [False, True])
def test_failure_reported_without_throw(explicit):
    integ, params, q0, v0, num_steps = _sqrt_well(explicit)
    if explicit:  # eagerly on one path, under jit on the other (each costs a compile)
        traj = integ.simulate(params, q0, v0, num_steps, throw=False)
    else:
        traj = jax.jit(lambda q: integ.simulate(params, q, v0, num_steps, throw=False))(q0)
    step = _first_bad_step(traj)
    assert not bool(traj.converged)
    assert traj.result == (lep.RESULTS.nonfinite_state if explicit else lep.RESULTS.newton_nonfinite)
    assert int(traj.first_failed_step) == step and int(traj.num_failures) >= 1
    np.testing.assert_array_equal(np.isfinite(np.asarray(traj.p[:step + 1])), True)  # nodes before it are fine


def test_failure_raises_under_jit_with_the_same_cause():
    integ, params, q0, v0, num_steps = _sqrt_well(False)
    fn = jax.jit(lambda q: integ.simulate(params, q, v0, num_steps).q)
    with pytest.raises(Exception, match="Newton produced non-finite values") as info:
        jax.block_until_ready(fn(q0))
    assert "simulate" in str(info.value)
    fn(jnp.asarray([3.0])).block_until_ready()  # a healthy start under the same jit runs fine


def test_newton_step_limit_failure_is_reported():
    # A very stiff quartic chain, huge step and a single Newton iteration cannot converge.
    model, params = models.fpu_chain(4, beta=100.0)
    integ = VariationalIntegrator(model, 0.5, "midpoint", max_newton_steps=1)
    q0, v0 = jnp.asarray([0.8, -0.6, 0.5, -0.7]), jnp.asarray([1.0, -1.0, 0.5, 0.3])
    with pytest.raises(ConvergenceError, match=r"step \d+.*maximum number of iterations.*iterations per step: mean"):
        integ.simulate(params, q0, v0, 5)
    traj = integ.simulate(params, q0, v0, 5, throw=False)
    assert traj.result == lep.RESULTS.max_steps_reached
    assert not bool(traj.converged) and int(traj.first_failed_step) >= 0
    assert int(traj.stats.newton_iterations_max) == 1


def test_stats_of_a_converged_implicit_run():
    model, params = models.fpu_chain(4, beta=1.0)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    traj = integ.simulate(params, jnp.asarray([0.3, -0.1, 0.2, 0.0]), jnp.zeros(4), 20)
    stats = traj.stats
    assert traj.result == lep.RESULTS.successful and int(stats.num_failures) == 0
    assert int(stats.first_failed) == -1
    assert 1.0 <= float(stats.newton_iterations_mean) <= float(stats.newton_iterations_max) <= 20
    assert float(stats.max_residual) < 1e-10


def test_non_finite_inputs_are_refused_before_running():
    integ, params, q0, v0, num_steps = _sqrt_well(True)
    with pytest.raises(lep.InputError, match="q0 contains non-finite"):
        integ.simulate(params, jnp.asarray([np.nan]), v0, num_steps)
    with pytest.raises(lep.InputError, match=r"params\['k'\] contains non-finite"):
        integ.simulate({"k": jnp.asarray(np.inf)}, q0, v0, num_steps)


# ---------------------------------------------------------------- 9. bad arguments
def test_bad_arguments_raise_value_error(without_runtime_types):
    model, params = models.fpu_chain(3, driven=True)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    q0, v0 = jnp.zeros(3), jnp.zeros(3)
    with pytest.raises(ValueError, match="q0"):
        integ.simulate(params, jnp.zeros(4), v0, 5)
    with pytest.raises(ValueError, match="q0"):
        integ.simulate(params, jnp.zeros((3, 1)), v0, 5)
    with pytest.raises(ValueError, match="v0"):
        integ.simulate(params, q0, jnp.zeros(2), 5)
    with pytest.raises(ValueError, match="p0"):
        integ.simulate(params, q0, None, 5, p0=jnp.zeros(5))
    with pytest.raises(ValueError, match="exactly one"):
        integ.simulate(params, q0, v0, 5, p0=v0)
    with pytest.raises(ValueError, match="exactly one"):
        integ.simulate(params, q0, None, 5)
    with pytest.raises(ValueError, match="inputs"):
        integ.simulate(params, q0, v0, 5, jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match="inputs"):
        integ.simulate(params, q0, v0, 5, jnp.zeros((6, 2)))
    with pytest.raises(ValueError, match="num_steps"):
        integ.simulate(params, q0, v0, 0)
    with pytest.raises(ValueError, match="missing"):
        integ.simulate({"m": params["m"]}, q0, v0, 5)
    for dt in (-0.1, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            VariationalIntegrator(model, dt, "midpoint")
    with pytest.raises(ValueError, match=re.escape("Unknown rule 'rk4'")):
        VariationalIntegrator(model, 0.1, "rk4")
    with pytest.raises(ValueError, match="degree"):
        VariationalIntegrator(model, 0.1, "galerkin", degree=0)


# ------------------------------------------------- 10. final_state and gradients (BPTT)
@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_final_state_equals_last_node(rule):
    model, params = models.fpu_chain(4, beta=1.0, driven=True)
    integ = VariationalIntegrator(model, 0.1, rule)
    q0, v0 = jnp.asarray([0.3, -0.1, 0.2, 0.0]), jnp.asarray([0.1, 0.0, -0.2, 0.3])
    u = lambda t: jnp.reshape(0.3 * jnp.cos(t), (1,))

    @jax.jit
    def run(params, q0, v0):
        traj = integ.simulate(params, q0, v0, 30, u)
        final = integ.final_state(params, q0, v0, 30, u)
        # Starting from the momentum instead of the velocity gives the same trajectory.
        traj_p = integ.simulate(params, q0, None, 30, u, p0=traj.p[0])
        return traj, final, traj_p

    traj, (q_n, p_n), traj_p = run(params, q0, v0)
    np.testing.assert_allclose(q_n, traj.q[-1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(p_n, traj.p[-1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(traj_p.q, traj.q, rtol=0, atol=1e-13)
    assert traj.t.shape == (31,) and traj.q.shape == (31, 4) and traj.p.shape == (31, 4)
    np.testing.assert_allclose(traj.t, 0.1 * np.arange(31), atol=1e-14)


def test_grad_through_simulate_matches_finite_differences():
    model, params = models.fpu_chain(3, beta=1.0)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    assert not integ.explicit
    q0, v0 = jnp.asarray([0.3, -0.2, 0.1]), jnp.asarray([0.0, 0.3, -0.1])
    target = jnp.asarray([0.1, 0.1, -0.1])

    def loss(k, beta, m):
        p = dict(params, k=k, beta=beta, m=m)
        traj = integ.simulate(p, q0, v0, 30)
        return jnp.sum((traj.q[-1] - target) ** 2) + 0.1 * jnp.sum(traj.q[10] ** 2)

    args = (params["k"], params["beta"], params["m"])
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)
    loss_jit = jax.jit(loss)
    eps = 1e-6

    def central(i, j=None):
        def shifted(sign):
            a = list(args)
            a[i] = a[i] + sign * eps if j is None else a[i].at[j].add(sign * eps)
            return float(loss_jit(*a))

        return (shifted(1.0) - shifted(-1.0)) / (2 * eps)

    fd = [central(0), central(1), np.array([central(2, j) for j in range(3)])]
    for g, f in zip(grads, fd):
        np.testing.assert_allclose(np.asarray(g), f, rtol=1e-6, atol=1e-9)
    assert abs(float(grads[0])) > 1e-4  # not a trivially zero gradient
