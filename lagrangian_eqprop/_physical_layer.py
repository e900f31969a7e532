"""The echo as a composable layer: `PhysicalLayer` (theory §7).

A layer maps `(params, q0, v0, inputs)` to the outputs `y_k = h(q_k)` of the free trajectory at
every node, shape `(N+1, d)`. Its vector–Jacobian product for an incoming cotangent `g (N+1, d)`
is the gradient of `ℒ_g = Σ_k ⟨g_k, h(q_k)⟩`: the echo (or any EqProp estimator of the initial-
value problem) run with the *linear, time-varying* cost `c_k(q) = ⟨g_k, h(q)⟩` — the incoming
cotangent is the nudge. The echo's loss starts at node 1; the node-0 term `J_h(q_0)ᵀ g_0` is
added to `dℒ/dq_0` directly. The same pass returns `dℒ/dθ`, `dℒ/dq_0`, `dℒ/dv_0` and `dℒ/du_k`,
so layers stack (the cotangent of one block's inputs is the previous block's nudge) and
anything before them (an encoder) trains by autodiff.

With `BPTT()` as the estimator the layer is plain autodiff through the integrator (outputs may
then also read the momenta).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._checks import as_float_array
from ._estimators import AbstractEqProp, AbstractEstimator, Echo, Problem
from ._integrate import initial_rollout
from ._references import BPTT
from ._solution import RESULTS, check_solution
from ._typing import Params, StateVector
from .errors import EstimatorError, InputError

__all__ = ["CotangentCost", "PhysicalLayer"]

# Primitives whose presence makes a readout non-holomorphic (piecewise, modulus, real/imaginary
# parts): the holomorphic echo would silently continue them wrongly, so it is refused.
_NON_ANALYTIC = frozenset({
    "abs", "sign", "max", "min", "floor", "ceil", "round", "real", "imag", "conj", "select_n", "clamp",
    "rem", "gt", "lt", "ge", "le", "eq", "ne", "argmax", "argmin", "sort", "is_finite", "reduce_max",
    "reduce_min", "cumlogsumexp", "cummax", "cummin",
})


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", None)
            if inner is not None:
                yield inner if hasattr(inner, "eqns") else getattr(inner, "jaxpr", inner)
            elif hasattr(item, "eqns"):
                yield item


def _primitives(jaxpr) -> set[str]:
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for inner in _sub_jaxprs(eqn):
            names |= _primitives(inner)
    return names


def _depends_on(jaxpr, argnum: int) -> bool:
    """Whether any output of `jaxpr` depends on its input `argnum` (conservative: an equation
    with a dependent input makes all its outputs dependent)."""
    dependent = {jaxpr.invars[argnum]}
    for eqn in jaxpr.eqns:
        if any(not _is_literal(v) and v in dependent for v in eqn.invars):
            dependent.update(eqn.outvars)
    return any(not _is_literal(v) and v in dependent for v in jaxpr.outvars)


def _is_literal(v) -> bool:
    return type(v).__name__ == "Literal"


class CotangentCost(eqx.Module):
    """The nudge of a layer's VJP: `c_k(q) = ⟨g_k, h(q)⟩` (an EqProp cost).

    **Fields:** `cotangent` `(N+1, d)`; `readout` `h(q) -> (d,)` (static); `analytic` (static):
    whether `h` continues to complex states.
    """

    cotangent: Float[Array, "N1 d"]
    readout: Callable = eqx.field(static=True)
    analytic: bool = eqx.field(static=True, default=True)

    def __call__(self, k, q):
        # ⟨g, y⟩ without conjugation: bilinear, so the cost stays holomorphic in complex q.
        return jnp.sum(self.cotangent[k] * self.readout(q))


class PhysicalLayer(eqx.Module):
    """A physical system as a differentiable layer whose gradients come from the physics.

    **Fields:**
    - `integ`: the `VariationalIntegrator`.
    - `outputs`: which coordinates to read (a sequence of indices, `y_k = q_k[outputs]`), or a
      function `outputs(q, p) -> (d,)`. EqProp estimators need outputs of the positions only
      (checked from the function's trace: a momentum dependence is refused).
    - `estimator`: how gradients are computed: `Echo(...)` (default: centered, default β;
      `Echo(variant="tangent")` is exact to round-off) or `BPTT()` (autodiff through the
      integrator; the reference).
    - `throw` (keyword): a failed solve raises (default); with `False` it turns the outputs (a
      failed free run) or the gradients (a failed backward pass) into NaN instead, for training
      loops that check the loss and gradient for finiteness themselves.

    **Call:** `layer(params, q0, v0, inputs=None, num_steps=None) -> y` with `q0`, `v0` of shape
    `(n,)`, `inputs` `(N+1, m)` node-sampled (required when the model has inputs; `num_steps`
    is then read from it), and `y` of shape `(N+1, d)`. `jax.grad`, `jax.vmap` and `jax.jit`
    work through it: its VJP runs the estimator with the incoming cotangent as the nudge and
    returns gradients for `params`, `q0`, `v0` and `inputs`. A failed solve raises
    (`ConvergenceError` eagerly, a runtime error with the same cause under tracing) unless
    `throw=False`.
    """

    integ: Any
    outputs: Any = eqx.field(static=True)
    estimator: AbstractEstimator = Echo()
    throw: bool = eqx.field(static=True, default=True)

    def __init__(self, integ, outputs: Sequence[int] | Callable, estimator: AbstractEstimator | None = None, *,
                 throw: bool = True):
        self.integ = integ
        self.throw = bool(throw)
        n = integ.model.num_dof
        if callable(outputs):
            self.outputs = outputs
        else:
            indices = tuple(int(i) for i in np.atleast_1d(np.asarray(outputs)))
            if not indices or any(i < -n or i >= n for i in indices):
                raise InputError(f"PhysicalLayer outputs must be coordinate indices in [0, {n}), got {outputs!r}.")
            self.outputs = indices
        self.estimator = Echo() if estimator is None else estimator
        if not isinstance(self.estimator, (Echo, BPTT)):
            raise EstimatorError(f"PhysicalLayer runs Echo(...) or BPTT(); got {type(self.estimator).__name__} "
                                 "(a layer is an initial-value problem with gradients for q0, v0 and the inputs).")
        self.estimator.check(integ)
        if isinstance(self.estimator, AbstractEqProp):
            jaxpr = self._readout_jaxpr()
            if _depends_on(jaxpr, 1):
                raise EstimatorError(
                    "PhysicalLayer outputs read the momenta, but the echo nudges positions only (its cost is "
                    "c_k(q)): use outputs of q, or BPTT() for momentum outputs.")
            self.estimator.check_analytic(integ, self._cost(jnp.zeros((1, 1))))

    # ----------------------------------------------------------------- readout
    def read(self, q, p):
        """The outputs `y = h(q, p)`, shape `(d,)`."""
        if callable(self.outputs):
            return jnp.asarray(self.outputs(q, p))
        return q[jnp.asarray(self.outputs)]

    def _readout_jaxpr(self):
        n = self.integ.model.num_dof
        shape = jax.ShapeDtypeStruct((n,), jnp.result_type(float))
        return jax.make_jaxpr(self.read)(shape, shape).jaxpr

    def _cost(self, cotangent) -> CotangentCost:
        analytic = True
        if callable(self.outputs):
            analytic = not (_primitives(self._readout_jaxpr()) & _NON_ANALYTIC)
        return CotangentCost(cotangent, lambda q: self.read(q, jnp.zeros_like(q)), analytic)

    # ----------------------------------------------------------------- call
    def __call__(self, params: Params, q0: StateVector, v0: StateVector, inputs=None,
                 num_steps: int | None = None) -> Float[Array, "N1 d"]:
        q0 = as_float_array(q0)
        dtype = q0.dtype
        model = self.integ.model
        if q0.shape != (model.num_dof,):
            raise InputError(f"q0 must have shape ({model.num_dof},), got {tuple(q0.shape)}.")
        v0 = jnp.asarray(v0, dtype)
        if v0.shape != q0.shape:
            raise InputError(f"v0 must have shape ({model.num_dof},), got {tuple(v0.shape)}.")
        if inputs is not None and not callable(inputs):
            inputs = jnp.asarray(inputs, dtype)
            if inputs.ndim == 1 and model.num_inputs == 1:
                inputs = inputs[:, None]
            if num_steps is None:
                num_steps = inputs.shape[0] - 1
        elif model.num_inputs and inputs is None:
            raise InputError(f"this layer's model has inputs {model.input_names}: give them as an (N+1, "
                             f"{model.num_inputs}) array.")
        if num_steps is None:
            raise InputError("give num_steps (or node inputs of shape (N+1, m)).")
        us = self.integ.node_inputs(int(num_steps), inputs, dtype)
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(
            jnp.asarray(x).dtype, jnp.integer) else jnp.asarray(x), params)
        diff = (params, q0, v0, us)
        if isinstance(self.estimator, BPTT):
            return _forward(self, diff)
        return _layer_vjp(diff, self, self.estimator.resolve(dtype))


def _forward(layer: PhysicalLayer, diff):
    """The outputs at every node of the free run, `(N+1, d)` (traceable, differentiable)."""
    params, q0, v0, us = diff
    integ = layer.integ
    _, p0, run = initial_rollout(integ, params, q0, v0, None, us, True)
    q = jnp.concatenate([q0[None], run.qs], axis=0)
    p = jnp.concatenate([p0[None], run.ps], axis=0)
    y = jax.vmap(layer.read)(q, p)
    if not layer.throw:
        return jnp.where(run.result == RESULTS.successful, y, jnp.nan)
    return check_solution(y, run.result, run.stats, what=f"PhysicalLayer free run ({integ.describe()})")


@eqx.filter_custom_vjp
def _layer_vjp(diff, layer, estimator):
    return _forward(layer, diff)


@_layer_vjp.def_fwd
def _layer_vjp_fwd(perturbed, diff, layer, estimator):
    return _forward(layer, diff), None


@_layer_vjp.def_bwd
def _layer_vjp_bwd(residuals, g_y, perturbed, diff, layer, estimator):
    params, q0, v0, us = diff
    integ = layer.integ
    cost = layer._cost(jnp.asarray(g_y))
    problem = Problem("initial", us.shape[0] - 1, us, q0=q0, v0=v0)
    result = estimator.compute(integ, params, cost, problem, full=True)
    if layer.throw:
        result = check_solution(result, result.result, result.stats,
                                what=f"PhysicalLayer backward: {estimator.describe()} ({integ.describe()})")
    else:
        ok = result.result == RESULTS.successful
        result = jax.tree_util.tree_map(lambda g: jnp.where(ok, g, jnp.nan) if eqx.is_inexact_array(g) else g,
                                        result)
    # The estimator's loss starts at node 1; the output at node 0 reads q0 directly.
    _, read_vjp = jax.vjp(lambda q: layer.read(q, jnp.zeros_like(q)), q0)
    (g_q0_direct,) = read_vjp(jnp.asarray(g_y[0], q0.dtype))
    g_inputs = result.inputs if result.inputs is not None else jnp.zeros_like(us)
    return result.params, result.q0 + g_q0_direct, result.v0, g_inputs
