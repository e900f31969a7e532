"""`PhysicalLayer`: the echo as a layer whose VJP takes any downstream cotangent (theory §8),
against BPTT through the same integrator (`PhysicalLayer(..., BPTT())`, plain autodiff)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from sympy.physics.mechanics import dynamicsymbols

import lagrangian_eqprop as lep
import models

N = 40


def rel_err(tree, reference):
    pairs = zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(reference), strict=True)
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
               / float(np.max(np.abs(np.asarray(b, np.float64)))) for a, b in pairs)


@functools.lru_cache(maxsize=None)
def driven_chain(rule="trapezoid"):
    model, params = models.fpu_chain(4, beta=1.0, driven=True)
    return lep.VariationalIntegrator(model, 0.1, rule), params


def problem():
    rng = np.random.default_rng(0)
    q0 = jnp.asarray([0.1, 0.0, -0.2, 0.05])
    v0 = jnp.asarray([0.0, 0.1, 0.0, -0.1])
    us = jnp.asarray(0.3 * np.sin(0.2 * np.arange(N + 1.0)))[:, None]
    head = jnp.asarray(rng.normal(size=(2, 3)))
    return q0, v0, us, head


def head_loss(layer, params, q0, v0, us, head):
    """A non-physical readout head and loss on top of the layer's outputs."""
    y = layer(params, q0, v0, us)
    return jnp.sum(jnp.tanh(y @ head) ** 2) / N


@pytest.mark.parametrize("rule", ["trapezoid", pytest.param("midpoint", marks=pytest.mark.slow)])
def test_layer_vjp_equals_bptt_for_params_initial_state_and_inputs(rule):
    integ, params = driven_chain(rule)
    q0, v0, us, head = problem()
    grad = jax.grad(head_loss, argnums=(1, 2, 3, 4))
    reference = grad(lep.PhysicalLayer(integ, [1, 3], lep.BPTT()), params, q0, v0, us, head)
    centered = grad(lep.PhysicalLayer(integ, [1, 3], lep.Echo(beta=1e-6)), params, q0, v0, us, head)
    tangent = grad(lep.PhysicalLayer(integ, [1, 3], lep.Echo(variant="tangent")), params, q0, v0, us, head)
    assert rel_err(centered, reference) <= 1e-6
    assert rel_err(tangent, reference) <= 1e-10
    for g in reference[1:]:
        assert float(jnp.max(jnp.abs(g))) > 1e-6  # every argument really receives a gradient


@pytest.mark.slow
def test_holomorphic_layer_and_a_nonlinear_readout():
    integ, params = driven_chain()
    q0, v0, us, head = problem()

    def readout(q, p):
        return jnp.stack([jnp.sin(q[0] - q[1]), q[2] ** 2 + q[3]])

    grad = jax.grad(head_loss, argnums=(1, 2, 3, 4))
    reference = grad(lep.PhysicalLayer(integ, readout, lep.BPTT()), params, q0, v0, us, head)
    holo = grad(lep.PhysicalLayer(integ, readout, lep.Echo(variant="holomorphic")), params, q0, v0, us, head)
    assert rel_err(holo, reference) <= 1e-8


def test_stacked_layers_with_glue_train_like_bptt():
    """Encoder → physical block → linear glue → physical block → head: the glue trains by
    autodiff, each physical block by the echo; all gradients equal BPTT through both blocks."""
    integ, params = driven_chain()
    q0, v0, us, head = problem()
    rng = np.random.default_rng(1)
    weights = {"encoder": jnp.asarray(rng.normal(size=())), "glue": jnp.asarray(rng.normal(size=(2,))),
               "first": params, "second": jax.tree_util.tree_map(lambda x: 1.1 * jnp.asarray(x), params)}

    def loss(first, second, weights):
        y1 = first(weights["first"], q0, v0, weights["encoder"] * us)
        y2 = second(weights["second"], q0, jnp.zeros(4), (y1 @ weights["glue"])[:, None])
        return jnp.sum(jnp.tanh(y2 @ head) ** 2) / N

    def layers(estimator):
        return lep.PhysicalLayer(integ, [1, 3], estimator), lep.PhysicalLayer(integ, [0, 2], estimator)

    reference = jax.grad(loss, argnums=2)(*layers(lep.BPTT()), weights)
    echo = jax.grad(loss, argnums=2)(*layers(lep.Echo(beta=1e-6)), weights)
    tangent = jax.grad(loss, argnums=2)(*layers(lep.Echo(variant="tangent")), weights)
    assert rel_err(echo, reference) <= 1e-6
    assert rel_err(tangent, reference) <= 1e-10


def test_layer_under_vmap_and_jit():
    integ, params = driven_chain()
    q0, v0, us, head = problem()
    batch_q0 = q0[None] * jnp.asarray([1.0, 0.5, -1.0])[:, None]

    def batch_loss(layer, params):
        return jnp.mean(jax.vmap(lambda q: head_loss(layer, params, q, v0, us, head))(batch_q0))

    reference = jax.grad(batch_loss, argnums=1)(lep.PhysicalLayer(integ, [1, 3], lep.BPTT()), params)
    layer = lep.PhysicalLayer(integ, [1, 3], lep.Echo(variant="tangent"))
    compiled = eqx_jit_grad(batch_loss)(layer, params)
    assert rel_err(compiled, reference) <= 1e-10


def eqx_jit_grad(f):
    import equinox as eqx

    return eqx.filter_jit(jax.grad(f, argnums=1))


@pytest.mark.slow
def test_tangent_layer_in_float32():
    integ, params = driven_chain()
    q0, v0, us, head = problem()
    reference = jax.grad(head_loss, argnums=1)(lep.PhysicalLayer(integ, [1, 3], lep.BPTT()), params, q0, v0, us,
                                               head)
    with jax.enable_x64(False):
        f32 = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), tree)  # noqa: E731
        model, _ = models.fpu_chain(4, beta=1.0, driven=True)
        layer = lep.PhysicalLayer(lep.VariationalIntegrator(model, 0.1, "trapezoid"), [1, 3],
                                  lep.Echo(variant="tangent"))
        grad32 = jax.grad(head_loss, argnums=1)(layer, f32(params), *f32((q0, v0, us, head)))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(grad32))
    assert rel_err(grad32, reference) <= 1e-4


def test_layer_refusals(without_runtime_types):
    integ, params = driven_chain()
    with pytest.raises(lep.EstimatorError, match="momenta"):
        lep.PhysicalLayer(integ, lambda q, p: q[:2] + p[:2])
    lep.PhysicalLayer(integ, lambda q, p: q[:2] + p[:2], lep.BPTT())  # autodiff reads momenta fine
    with pytest.raises(lep.EstimatorError, match="analytic"):
        lep.PhysicalLayer(integ, lambda q, p: jnp.abs(q[:2]), lep.Echo(variant="holomorphic"))
    lep.PhysicalLayer(integ, lambda q, p: jnp.abs(q[:2]), lep.Echo(variant="tangent"))
    with pytest.raises(lep.EstimatorError, match="Echo"):
        lep.PhysicalLayer(integ, [0], lep.FixedEndpoints())
    with pytest.raises(lep.InputError, match="indices"):
        lep.PhysicalLayer(integ, [7])
    layer = lep.PhysicalLayer(integ, [0])
    with pytest.raises(lep.InputError, match="inputs"):
        layer(params, jnp.zeros(4), jnp.zeros(4), num_steps=10)
    with pytest.raises(lep.InputError, match="q0"):
        layer(params, jnp.zeros(3), jnp.zeros(4), jnp.zeros((11, 1)))
    # The echo is refused on a model whose Lagrangian is not time-reversible.
    x, y = dynamicsymbols("x y")
    b = sp.Symbol("b")
    t = dynamicsymbols._t
    magnetic = lep.compile_lagrangian((x.diff(t) ** 2 + y.diff(t) ** 2) / 2 + b * (x * y.diff(t) - y * x.diff(t)) / 2,
                                      [x, y], [b], time=t)
    with pytest.raises(lep.EstimatorError, match="time-reversible"):
        lep.PhysicalLayer(lep.VariationalIntegrator(magnetic, 0.1, "midpoint"), [0])


def test_a_failed_backward_pass_is_reported():
    """A nudge so large that the echo blows up: the layer's VJP raises instead of returning."""
    integ, params = driven_chain()
    q0, v0, us, _ = problem()
    layer = lep.PhysicalLayer(integ, [1, 3], lep.Echo(beta=1e-3))
    y, vjp = jax.vjp(lambda prm: layer(prm, q0, v0, us), params)
    assert np.all(np.isfinite(np.asarray(vjp(jnp.ones_like(y))[0]["k"])))
    with pytest.raises(lep.ConvergenceError, match="PhysicalLayer backward.*non-finite"):
        vjp(1e12 * jnp.ones_like(y))


def test_throw_false_turns_failures_into_nan():
    integ, params = driven_chain()
    q0, v0, us, _ = problem()
    layer = lep.PhysicalLayer(integ, [1, 3], lep.Echo(beta=1e-3), throw=False)
    y, vjp = jax.vjp(lambda prm: layer(prm, q0, v0, us), params)
    assert np.all(np.isfinite(np.asarray(y)))
    assert np.all(np.isnan(np.asarray(vjp(1e12 * jnp.ones_like(y))[0]["k"])))
    blown = layer(params, q0, v0, 1e30 * us)  # the free run itself overflows
    assert np.all(np.isnan(np.asarray(blown)))
