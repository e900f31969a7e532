"""Reference gradients: BPTT and implicit differentiation through the *same* discrete scheme,
diffrax's adjoint on the continuous Euler–Lagrange ODE, and central finite differences.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .costs import trajectory_cost
from .integrate import VariationalIntegrator, as_arrays
from .model import Params, interpolate_inputs


def simulated_loss(integ: VariationalIntegrator, params: Params, cost, *, q0, v0=None, p0=None,
                   num_steps: int, inputs=None):
    """`ℒ = Σ_{k=1..N} cost(k, q_k)` along `integ.simulate` (stores the trajectory)."""
    traj = integ.simulate(params, q0, v0, num_steps, inputs, p0=p0)
    return trajectory_cost(cost, traj.q, start=1)


def bptt_gradient(integ: VariationalIntegrator, params: Params, cost, *, q0, v0=None, p0=None,
                  num_steps: int, inputs=None):
    """Backpropagation through time: `jax.grad` of `Σ_{k=1..N} cost(k, q_k)` through the
    scanned integrator (Newton steps are differentiated implicitly, see `newton.newton_root`).

    **Returns:** a dict shaped like `params`.
    """
    return _bptt_jit(integ, as_arrays(params), cost, _arr(q0), _arr(v0), _arr(p0), num_steps, _arr(inputs))


@eqx.filter_jit
def _bptt_jit(integ, params, cost, q0, v0, p0, num_steps, inputs):
    return jax.grad(
        lambda prm: simulated_loss(integ, prm, cost, q0=q0, v0=v0, p0=p0, num_steps=num_steps, inputs=inputs)
    )(params)


def _arr(x):
    return x if x is None or callable(x) else jnp.asarray(x)


def bvp_loss(integ: VariationalIntegrator, params: Params, cost, *, q_start, q_end, num_steps: int,
             inputs=None):
    """`ℒ = Σ_{k=0..N} cost(k, q_k)` on the two-point boundary-value trajectory."""
    traj = integ.solve_bvp(params, q_start, q_end, num_steps, inputs)
    return trajectory_cost(cost, traj.q, start=0)


def implicit_gradient(integ: VariationalIntegrator, params: Params, cost, *, q_start, q_end,
                      num_steps: int, inputs=None):
    """Implicit-function-theorem gradient of the fixed-endpoint loss (exact for the scheme)."""
    return jax.grad(
        lambda prm: bvp_loss(integ, prm, cost, q_start=q_start, q_end=q_end, num_steps=num_steps, inputs=inputs)
    )(params)


def adjoint_gradient(
    integ: VariationalIntegrator,
    params: Params,
    cost,
    *,
    q0,
    v0,
    num_steps: int,
    inputs=None,
    solver=None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    adjoint=None,
):
    """Gradient of `Σ_{k=1..N} cost(k, q(t_k))` along the *continuous* Euler–Lagrange flow,
    by diffrax's continuous adjoint (`BacksolveAdjoint`) — differs from the discrete-scheme
    gradient by the integrator's discretisation error.

    Inputs are interpolated linearly between the nodes.
    """
    model = integ.model
    q0 = jnp.asarray(q0)
    times = integ.node_times(num_steps, q0.dtype)
    us = integ.node_inputs(num_steps, inputs, q0.dtype)
    # A pytree (not a closure) so diffrax's adjoint sees the node data as arguments under jit.
    input_fn = jax.tree_util.Partial(_interpolate, times, us) if model.num_inputs else None
    solver = diffrax.Tsit5() if solver is None else solver
    adjoint = diffrax.BacksolveAdjoint(solver=solver) if adjoint is None else adjoint

    def loss(prm):
        sol = diffrax.diffeqsolve(
            model.ode_term(), solver, times[0], times[-1], integ.dt, (q0, jnp.asarray(v0, q0.dtype)),
            args=(prm, input_fn), saveat=diffrax.SaveAt(ts=times),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            adjoint=adjoint, max_steps=100 * num_steps + 1000,
        )
        return trajectory_cost(cost, sol.ys[0], start=1)

    return jax.grad(loss)(params)


def _interpolate(times, us, t):
    return interpolate_inputs(times, us)(t)


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
