"""Reference gradients as estimator objects: `BPTT` and `Implicit` (`jax.grad` through the *same*
discrete scheme), `Adjoint` (diffrax's adjoint of the continuous Euler–Lagrange ODE), plus
central finite differences and the estimator registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._bvp import boundary_trajectory
from ._costs import trajectory_cost
from ._echo import free_pass
from ._equilibrium_gradient import EquilibriumEqProp
from ._estimators import AbstractEstimator, Echo, FixedEndpoints, Naive, run_estimator
from ._model import interpolate_inputs
from ._solution import RESULTS, GradientResult, first_failure
from ._names import ESTIMATOR_NAMES
from ._typing import NodeInputs, Params, StateVector
from .errors import EstimatorError

__all__ = [
    "ESTIMATORS",
    "Adjoint",
    "BPTT",
    "Implicit",
    "adjoint_gradient",
    "bptt_gradient",
    "bvp_loss",
    "finite_difference_gradient",
    "implicit_gradient",
    "simulated_loss",
]


class BPTT(AbstractEstimator):
    """Backpropagation through time: `jax.grad` of `Σ_{k=1..N} c_k(q_k)` through the scanned
    integrator (implicit steps are differentiated implicitly, never through the Newton
    iterations). With `full`, also `dℒ/dq0`, `dℒ/dv0` (or `dℒ/dp0`) and `dℒ/du_k`."""

    name: ClassVar[str] = "bptt"

    def compute(self, integ, params, cost, problem, *, full=False):
        velocity_given = problem.v0 is not None
        x0 = problem.v0 if velocity_given else problem.p0

        def loss(prm, q0, x0, us):
            times = integ.node_times(problem.num_steps, q0.dtype)
            v0 = x0 if velocity_given else None
            p0 = integ.initial_momentum(prm, q0, v0, times[0], us[0]) if velocity_given else x0
            _, _, value, result, stats = free_pass(integ, prm, cost, q0, p0, times, us, v0=v0)
            return value, (result, stats)

        argnums = (0, 1, 2, 3) if full else 0
        (value, (result, stats)), grads = jax.value_and_grad(loss, argnums, has_aux=True)(
            params, problem.q0, x0, problem.us)
        if not full:
            return GradientResult(params=grads, loss=value, result=result, stats=stats)
        g_params, g_q0, g_x0, g_us = grads
        return GradientResult(params=g_params, loss=value, q0=g_q0, v0=g_x0 if velocity_given else None,
                              p0=None if velocity_given else g_x0,
                              inputs=g_us if integ.model.num_inputs else None, result=result, stats=stats)


class Implicit(AbstractEstimator):
    """Implicit-function-theorem gradient of the fixed-endpoint loss `Σ_{k=0..N} c_k(q_k)`
    (exact for the scheme): `jax.grad` through `solve_bvp`'s implicit derivative."""

    name: ClassVar[str] = "implicit"
    problem_kind: ClassVar[str] = "boundary"

    def check(self, integ):
        if integ.model.constrained:
            raise EstimatorError("the implicit (two-point) gradient does not support constrained models yet.")

    def compute(self, integ, params, cost, problem, *, full=False):
        def loss(prm):
            traj = boundary_trajectory(integ, prm, problem.q_start, problem.q_end, problem.us)
            return trajectory_cost(cost, traj.q, start=0), (traj.result, traj.stats)

        (value, (result, stats)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return GradientResult(params=grads, loss=value, result=result, stats=stats)


class Adjoint(AbstractEstimator):
    """Gradient of `Σ_{k=1..N} c_k(q(t_k))` along the *continuous* Euler–Lagrange flow by
    diffrax's adjoint (default `BacksolveAdjoint`); differs from the discrete-scheme gradient
    by the integrator's discretisation error. Inputs are interpolated linearly between nodes;
    the reported loss is the discrete one (comparable with every other estimator). Needs `v0`.

    **Arguments:** `solver` (default `diffrax.Tsit5()`), `rtol`, `atol` (1e-10), `adjoint`.
    """

    name: ClassVar[str] = "adjoint"
    solver: Any = None
    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-10)
    adjoint: Any = None

    def compute(self, integ, params, cost, problem, *, full=False):
        if problem.v0 is None:
            raise EstimatorError("the adjoint estimator integrates (q, v): give v0, not p0.")
        model, num_steps = integ.model, problem.num_steps
        q0, v0, us = problem.q0, problem.v0, problem.us
        times = integ.node_times(num_steps, q0.dtype)
        input_fn = interpolate_inputs(times, us) if model.num_inputs else None
        solver = diffrax.Tsit5() if self.solver is None else self.solver
        adjoint = diffrax.BacksolveAdjoint(solver=solver) if self.adjoint is None else self.adjoint

        def loss(prm):
            sol = diffrax.diffeqsolve(
                model.ode_term(), solver, times[0], times[-1], integ.dt, (q0, v0),
                args=(prm, input_fn), saveat=diffrax.SaveAt(ts=times),
                stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
                adjoint=adjoint, max_steps=100 * num_steps + 1000, throw=False,
            )
            ok = sol.result == diffrax.RESULTS.successful
            return trajectory_cost(cost, sol.ys[0], start=1), ok

        grads, ok = jax.grad(loss, has_aux=True)(params)
        _, _, value, result, stats = free_pass(integ, params, cost, q0,
                                               integ.initial_momentum(params, q0, v0, times[0], us[0]), times, us,
                                               v0=v0)
        result = first_failure(result, RESULTS.where(ok, RESULTS.successful, RESULTS.ode_solver_failed))
        return GradientResult(params=grads, loss=value, result=result, stats=stats)


ESTIMATORS: dict[str, type[AbstractEstimator]] = {
    "echo": Echo, "bvp": FixedEndpoints, "naive": Naive, "bptt": BPTT, "implicit": Implicit, "adjoint": Adjoint,
    "eqprop": EquilibriumEqProp,  # static EqProp (energy models)
}
assert tuple(ESTIMATORS) == ESTIMATOR_NAMES


def bptt_gradient(integ, params: Params, cost: Callable, *, q0: StateVector, v0: StateVector | None = None,
                  p0: StateVector | None = None, num_steps: int, inputs: NodeInputs = None, return_all: bool = False,
                  throw: bool = True) -> dict | GradientResult:
    """Backpropagation through time through the same integrator (see `BPTT`).

    **Returns:** a dict shaped like `params` (or a `GradientResult` with `return_all`).
    **Raises:** `ConvergenceError` naming the failed step when `throw` (see `eqprop_gradient`).
    """
    result = run_estimator(BPTT(), integ, params, cost, throw=throw, full=return_all, q0=q0, v0=v0, p0=p0,
                           num_steps=num_steps, inputs=inputs)
    return result if return_all else result.params


def implicit_gradient(integ, params: Params, cost: Callable, *, q_start: StateVector, q_end: StateVector,
                      num_steps: int, inputs: NodeInputs = None, return_all: bool = False,
                      throw: bool = True) -> dict | GradientResult:
    """Implicit-function-theorem gradient of the fixed-endpoint loss (see `Implicit`)."""
    result = run_estimator(Implicit(), integ, params, cost, throw=throw, full=return_all, q_start=q_start,
                           q_end=q_end, num_steps=num_steps, inputs=inputs)
    return result if return_all else result.params


def adjoint_gradient(integ, params: Params, cost: Callable, *, q0: StateVector, v0: StateVector, num_steps: int,
                     inputs: NodeInputs = None, solver=None, rtol: float = 1e-10, atol: float = 1e-10, adjoint=None,
                     return_all: bool = False, throw: bool = True) -> dict | GradientResult:
    """Continuous-adjoint gradient (see `Adjoint`)."""
    estimator = Adjoint(solver=solver, rtol=rtol, atol=atol, adjoint=adjoint)
    result = run_estimator(estimator, integ, params, cost, throw=throw, full=return_all, q0=q0, v0=v0,
                           num_steps=num_steps, inputs=inputs)
    return result if return_all else result.params


def simulated_loss(integ, params: Params, cost: Callable, *, q0: StateVector, v0: StateVector | None = None,
                   p0: StateVector | None = None, num_steps: int, inputs: NodeInputs = None) -> Float[Array, ""]:
    """`ℒ = Σ_{k=1..N} cost(k, q_k)` along `integ.simulate` (traceable; `jax.grad` of it is BPTT)."""
    traj = integ.simulate(params, q0, v0, num_steps, inputs, p0=p0)
    return trajectory_cost(cost, traj.q, start=1)


def bvp_loss(integ, params: Params, cost: Callable, *, q_start: StateVector, q_end: StateVector, num_steps: int,
             inputs: NodeInputs = None) -> Float[Array, ""]:
    """`ℒ = Σ_{k=0..N} cost(k, q_k)` on the two-point boundary-value trajectory (traceable)."""
    traj = integ.solve_bvp(params, q_start, q_end, num_steps, inputs)
    return trajectory_cost(cost, traj.q, start=0)


def finite_difference_gradient(loss_fn: Callable, params: Params, eps: float = 1e-6):
    """Central finite differences of `loss_fn(params)` w.r.t. every element of every leaf."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    grads = []
    for i, leaf in enumerate(leaves):
        leaf = np.asarray(leaf, dtype=float)
        g = np.zeros_like(leaf)
        for idx in np.ndindex(leaf.shape):
            plus, minus = leaf.copy(), leaf.copy()
            plus[idx] += eps
            minus[idx] -= eps
            lp = leaves[:i] + [jnp.asarray(plus)] + leaves[i + 1:]
            lm = leaves[:i] + [jnp.asarray(minus)] + leaves[i + 1:]
            fp = float(loss_fn(jax.tree_util.tree_unflatten(treedef, lp)))
            fm = float(loss_fn(jax.tree_util.tree_unflatten(treedef, lm)))
            g[idx] = (fp - fm) / (2 * eps)
        grads.append(jnp.asarray(g))
    return jax.tree_util.tree_unflatten(treedef, grads)

