"""Exact echo estimators without the β trade-off (theory §5): the tangent echo (forward mode in
β) and the holomorphic echo (complex nudges on a circle), against BPTT in float64 and float32."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from sympy.physics.mechanics import dynamicsymbols

import lagrangian_eqprop as lep
import models
from lagrangian_eqprop import systems

N = 80


def rel_err(estimate, reference):
    return max(float(np.max(np.abs(np.asarray(estimate[k], np.float64) - np.asarray(reference[k], np.float64))))
               / float(np.max(np.abs(np.asarray(reference[k], np.float64)))) for k in reference)


@functools.lru_cache(maxsize=None)
def quartic_chain(rule):
    """4 masses, FPU-β springs, a driven first mass: nonlinear, with inputs, dt-weighted tracking."""
    model, params = models.fpu_chain(4, beta=1.0, driven=True)
    integ = lep.VariationalIntegrator(model, 0.1, rule)
    cost = lep.TrackingCost(0.3 * jnp.sin(0.2 * jnp.arange(N + 1.0))[:, None], [2], weight=1.0 / N)
    kw = dict(q0=jnp.asarray([0.3, -0.2, 0.1, 0.2]), v0=jnp.zeros(4), num_steps=N,
              inputs=0.3 * jnp.cos(0.3 * jnp.arange(N + 1.0))[:, None])
    return integ, params, cost, kw


@pytest.mark.parametrize("rule", ["trapezoid", pytest.param("midpoint", marks=pytest.mark.slow)])
def test_tangent_echo_equals_bptt_to_round_off(rule):
    integ, params, cost, kw = quartic_chain(rule)
    bptt = lep.bptt_gradient(integ, params, cost, return_all=True, **kw)
    tangent = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="tangent"), return_all=True, **kw)
    assert rel_err(tangent.params, bptt.params) <= 1e-10
    for field in ("q0", "v0", "inputs"):
        np.testing.assert_allclose(getattr(tangent, field), getattr(bptt, field), rtol=1e-9, atol=1e-13)


@pytest.mark.slow
def test_tangent_echo_on_catalog_systems():
    for name, rule, dt in (("double_pendulum", "midpoint", 0.02), ("pendulum_chain", "trapezoid", 0.05),
                           ("caldirola_kanai_oscillator", "midpoint", 0.05)):
        model, params, q0, v0 = systems.get(name)
        integ = lep.VariationalIntegrator(model, dt, rule)
        cost = lep.TrackingCost(jnp.zeros((61, 1)), [0])
        kw = dict(q0=q0, v0=v0, num_steps=60)
        assert rel_err(lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="tangent"), **kw),
                       lep.bptt_gradient(integ, params, cost, **kw)) <= 1e-10, name


def test_tangent_echo_in_float32(monkeypatch):
    """In float32 the centered contrast keeps 2–3 digits; the tangent echo is exact to round-off."""
    from lagrangian_eqprop import _estimators

    monkeypatch.setattr(_estimators, "_WARNED_FLOAT32", set())  # the warning fires once per kind
    integ, params, cost, kw = quartic_chain("trapezoid")
    reference = lep.bptt_gradient(integ, params, cost, **kw)  # float64
    with jax.enable_x64(False):
        f32 = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), tree)
        model, _ = models.fpu_chain(4, beta=1.0, driven=True)
        integ32 = lep.VariationalIntegrator(model, 0.1, "trapezoid")
        cost32 = lep.TrackingCost(f32(cost.target), [2], weight=1.0 / N)
        kw32 = {k: f32(v) if k != "num_steps" else v for k, v in kw.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the exact variant does not warn about float32
            tangent = lep.eqprop_gradient(integ32, f32(params), cost32, method=lep.Echo(variant="tangent"),
                                          **kw32)
        with pytest.warns(UserWarning, match="float32"):
            centered = lep.eqprop_gradient(integ32, f32(params), cost32, method=lep.Echo(), **kw32)
    assert rel_err(tangent, reference) <= 1e-4
    assert rel_err(centered, reference) > 10 * rel_err(tangent, reference)


def test_holomorphic_echo_beats_the_centered_contrast_at_the_same_radius():
    integ, params, cost, kw = quartic_chain("trapezoid")
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    radius = 0.1
    centered = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=radius), **kw)
    assert rel_err(centered, bptt) >= 1e-5  # O(β²) bias at this radius
    for points, bound in ((4, 1e-6), (8, 1e-8)):
        holo = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic", beta=radius,
                                                                      points=points), **kw)
        assert rel_err(holo, bptt) <= bound, points
    # The initial-state and input gradients of the complex passes (the input gradient once lost
    # its imaginary part in a real buffer: off by a factor of two).
    full = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic", beta=radius),
                               return_all=True, **kw)
    reference = lep.bptt_gradient(integ, params, cost, return_all=True, **kw)
    for field in ("q0", "v0", "inputs"):
        np.testing.assert_allclose(getattr(full, field), getattr(reference, field), rtol=1e-7, atol=1e-12)


@pytest.mark.slow
def test_holomorphic_echo_where_centered_is_three_digits_off():
    """Three driven Duffing oscillators, unweighted tracking over N = 200 (theory §5's hard case):
    the centered contrast is ≥ 1e-3 off at r; K = 8 complex nudges at the same r are ≤ 1e-8."""
    x = dynamicsymbols("x0:3")
    u = dynamicsymbols("u")
    k, a = sp.symbols("k a")
    t = dynamicsymbols._t
    L = sum(c.diff(t) ** 2 / 2 - k * c**2 / 2 - a * c**4 / 4 for c in x) - (x[1] - x[0]) ** 2 / 2 \
        - (x[2] - x[1]) ** 2 / 2 + u * x[0]
    model = lep.compile_lagrangian(L, list(x), [k, a], inputs=[u], time=t)
    integ = lep.VariationalIntegrator(model, 0.05, "trapezoid")
    params = {"k": jnp.asarray(1.0), "a": jnp.asarray(0.5)}
    steps = 200
    times = 0.05 * np.arange(steps + 1.0)
    cost = lep.TrackingCost(jnp.asarray(0.5 * np.sin(times))[:, None], [2])
    kw = dict(q0=jnp.asarray([0.5, 0.0, -0.3]), v0=jnp.zeros(3), num_steps=steps,
              inputs=jnp.asarray(0.4 * np.cos(1.3 * times))[:, None])
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    auto = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic"), **kw)
    assert rel_err(auto, bptt) <= 1e-8  # the radius chosen from the estimated R
    radius = 2e-3  # measured: centered 4e-3 off, holomorphic K=8 5e-10 (K=8 at 1e-2: 2e-4; R ≈ 0.03)
    centered = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(beta=radius), **kw)
    holo = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic", beta=radius), **kw)
    print(f"centered {rel_err(centered, bptt):.1e}, holomorphic {rel_err(holo, bptt):.1e}")
    assert rel_err(centered, bptt) >= 1e-3 and rel_err(holo, bptt) <= 1e-8


def test_the_radius_is_estimated_from_the_problem():
    integ, params, cost, kw = quartic_chain("trapezoid")
    strong = lep.TrackingCost(cost.target, [2], weight=1.0)  # a larger cost shrinks the radius
    holo_weak = lep.eqprop_gradient(integ, params, cost, method=lep.Echo(variant="holomorphic"), **kw)
    holo_strong = lep.eqprop_gradient(integ, params, strong, method=lep.Echo(variant="holomorphic"), **kw)
    assert rel_err(holo_weak, lep.bptt_gradient(integ, params, cost, **kw)) <= 1e-8
    assert rel_err(holo_strong, lep.bptt_gradient(integ, params, strong, **kw)) <= 1e-8


def test_holomorphic_echo_refuses_non_analytic_models_and_costs():
    x = dynamicsymbols("x")
    m, c = sp.symbols("m c")
    t = dynamicsymbols._t
    model = lep.compile_lagrangian(m * x.diff(t) ** 2 / 2 - c * sp.Abs(x), [x], [m, c], time=t)
    assert model.analytic is False
    integ = lep.VariationalIntegrator(model, 0.1, "trapezoid")
    kw = dict(q0=jnp.ones(1), v0=jnp.zeros(1), num_steps=10)
    params = {"m": 1.0, "c": 0.5}
    with pytest.raises(lep.EstimatorError, match="analytically.*Abs"):
        lep.eqprop_gradient(integ, params, lep.TrackingCost(jnp.zeros((11, 1)), [0]),
                            method=lep.Echo(variant="holomorphic"), **kw)
    lep.eqprop_gradient(integ, params, lep.TrackingCost(jnp.zeros((11, 1)), [0]), method=lep.Echo(variant="tangent"),
                        **kw)  # the tangent echo needs no analyticity
    chain, chain_params = models.fpu_chain(3)
    with pytest.raises(lep.EstimatorError, match="ReadoutCost does not"):
        lep.eqprop_gradient(lep.VariationalIntegrator(chain, 0.1, "trapezoid"), chain_params,
                            lep.ReadoutCost(1, [0, 1, 2], final_step=10), method=lep.Echo(variant="holomorphic"),
                            q0=jnp.zeros(3), v0=jnp.zeros(3), num_steps=10)
    with pytest.raises(lep.EstimatorError, match="points"):
        lep.Echo(points=8)


@pytest.mark.slow
def test_exact_echoes_through_echo_loss_and_training():
    integ, params, cost, kw = quartic_chain("trapezoid")
    bptt = lep.bptt_gradient(integ, params, cost, **kw)
    grad = jax.grad(lambda p: lep.echo_loss(integ, p, cost, estimator=lep.Echo(variant="tangent"), **kw))(params)
    assert rel_err(grad, bptt) <= 1e-10
    from lagrangian_eqprop.training import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(task="tracking", estimator=lep.Echo(variant="tangent"), reference="bptt",
                                  epochs=2, batch_size=2, probe_every=1,
                                  task_options=dict(num_train=2, num_test=0, num_steps=30)))
    result = trainer.fit(None, progress=False)
    assert result.final("echo")["max_rel_error"] <= 1e-10


def test_fixed_endpoints_and_naive_take_the_exact_variants():
    """The tangent contrast is exact for every EqProp estimator; the naive estimator (with its
    boundary correction) also runs holomorphic; fixed endpoints refuse it (real two-point solve)."""
    model, params = models.fpu_chain(3, beta=1.0)
    integ = lep.VariationalIntegrator(model, 0.1, "midpoint")
    steps = 30
    cost = lep.TrackingCost(jnp.asarray(0.3 * np.sin(0.1 * np.arange(steps + 1.0)))[:, None], [1], weight=0.1)
    q_start, q_end = jnp.asarray([0.1, 0.0, -0.1]), jnp.asarray([0.2, 0.1, 0.0])
    bvp = dict(q_start=q_start, q_end=q_end, num_steps=steps)
    reference = lep.implicit_gradient(integ, params, cost, **bvp)
    centered = lep.eqprop_gradient(integ, params, cost, method=lep.FixedEndpoints(), **bvp)
    tangent = lep.eqprop_gradient(integ, params, cost, method=lep.FixedEndpoints(variant="tangent"), **bvp)
    assert rel_err(tangent, reference) <= 1e-12 < rel_err(centered, reference)
    with pytest.raises(lep.EstimatorError, match="no holomorphic variant"):
        lep.eqprop_gradient(integ, params, cost, method=lep.FixedEndpoints(variant="holomorphic"), **bvp)
    ivp = dict(q0=q_start, v0=jnp.zeros(3), num_steps=steps)
    reference = lep.bptt_gradient(integ, params, cost, **ivp)
    tangent = lep.eqprop_gradient(integ, params, cost, method=lep.Naive(variant="tangent", correction=True), **ivp)
    holo = lep.eqprop_gradient(integ, params, cost, method=lep.Naive(variant="holomorphic", beta=0.01,
                                                                    correction=True), **ivp)
    assert rel_err(tangent, reference) <= 1e-11
    assert rel_err(holo, reference) <= 1e-10
    uncorrected = lep.eqprop_gradient(integ, params, cost, method=lep.Naive(variant="tangent"), **ivp)
    assert rel_err(uncorrected, reference) > 0.1  # the exact contrast does not remove the boundary term
