"""The echo as a differentiable function: `echo_loss`, whose `jax.grad` runs the echo.

`jax.grad` of anything built on `echo_loss` routes through the echo estimator (no BPTT tape,
memory independent of N), w.r.t. `params`, `q0`, `v0`/`p0` and `inputs`, so optax training
code does not change when the estimator changes.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import as_float_array
from ._echo import free_pass
from ._estimators import Echo, Problem, as_estimator
from ._solution import check_solution
from ._typing import NodeInputs, Number, Params, StateVector
from .errors import EstimatorError

__all__ = ["echo_loss"]


def _problem(integ, diff, velocity_given: bool, num_steps: int) -> tuple:
    params, q0, x0, us = diff
    v0, p0 = (x0, None) if velocity_given else (None, x0)
    return params, Problem("initial", num_steps, us, q0=q0, v0=v0, p0=p0)


@eqx.filter_custom_vjp
def _echo_loss(diff, integ, cost, settings):
    velocity_given, num_steps, estimator = settings
    params, problem = _problem(integ, diff, velocity_given, num_steps)
    times, p0, _ = problem.initial_momentum(integ, params)
    _, _, loss, result, stats = free_pass(integ, params, cost, problem.q0, p0, times, problem.us, v0=problem.v0)
    return check_solution(loss, result, stats, what=f"echo_loss free run ({integ.describe()})")


@_echo_loss.def_fwd
def _echo_loss_fwd(perturbed, diff, integ, cost, settings):
    velocity_given, num_steps, estimator = settings
    params, problem = _problem(integ, diff, velocity_given, num_steps)
    result = estimator.compute(integ, params, cost, problem, full=True)
    result = check_solution(result, result.result, result.stats,
                            what=f"echo_loss: {estimator.describe()} ({integ.describe()})")
    return result.loss, result


@_echo_loss.def_bwd
def _echo_loss_bwd(result, g_loss, perturbed, diff, integ, cost, settings):
    velocity_given = settings[0]
    _, _, _, us = diff
    g_x0 = result.v0 if velocity_given else result.p0
    g_inputs = result.inputs if result.inputs is not None else jnp.zeros_like(us)
    return jax.tree_util.tree_map(lambda x: g_loss * x, (result.params, result.q0, g_x0, g_inputs))


def echo_loss(integ, params: Params, cost: Callable, *, q0: StateVector, v0: StateVector | None = None,
              p0: StateVector | None = None, num_steps: int, inputs: NodeInputs = None, beta: Number | None = None,
              variant: str | None = None, estimator: Echo | None = None) -> Float[Array, ""]:
    """`ℒ = Σ_{k=1..N} cost(k, q_k)` on the free trajectory, differentiable by the echo.

    **Arguments:** as `eqprop_gradient` for the initial-value problem; the echo's settings as
    `beta`/`variant` or as an `estimator` object (`lep.Echo(...)`). `cost` should carry its
    data as pytree leaves (e.g. `TrackingCost`) or be a closure over constants.

    **Returns:** the scalar loss. A failed solve raises (eagerly `ConvergenceError`, under
    tracing a runtime error with the same cause).
    """
    if estimator is None:
        estimator = as_estimator("echo", beta, variant)
    elif beta is not None or variant is not None:
        raise EstimatorError("give beta and variant inside the estimator object, not beside it.")
    if not isinstance(estimator, Echo):
        raise EstimatorError(f"echo_loss runs the echo; got {type(estimator).__name__}.")
    estimator.check(integ)
    estimator.check_analytic(integ, cost)
    if (v0 is None) == (p0 is None):
        raise EstimatorError("echo_loss needs exactly one of v0 (initial velocity) or p0 (initial momentum).")
    q0 = as_float_array(q0)
    dtype = q0.dtype
    estimator = estimator.resolve(dtype)
    us = integ.node_inputs(num_steps, inputs, dtype)
    x0 = jnp.asarray(v0 if v0 is not None else p0, dtype)
    settings = (v0 is not None, int(num_steps), estimator)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return _echo_loss((params, q0, x0, us), integ, cost, settings)
