"""Discrete Lagrangians, discrete Legendre transforms and discrete Euler–Lagrange residuals.

One interval `[t_a, t_b]` of length `h` carries control points `q_a, Q_1..Q_{s-1}, q_b`
(`s = 1` for midpoint and trapezoid, `s ≥ 2` for Galerkin–Lobatto). The *local action* is a
quadrature of the continuous Lagrangian along the interpolating polynomial,

    S(a, Q, b) = h Σ_i w_i L(q(τ_i), q̇(τ_i), t_a + τ_i (t_b − t_a), (1 − τ_i) u_a + τ_i u_b),

and the discrete Lagrangian is `L_d(a, b) = S(a, Q*(a, b), b)` with internal points `Q*` making
`S` stationary (Marsden & West, §2.2). Non-conservative forces enter through the discrete
Lagrange–d'Alembert principle as the quadrature of the virtual work `∫ F·δq dt`.

Inputs between the nodes follow the piecewise-linear path through the node values (the path
`diffrax.LinearInterpolation` gives the continuous references, `_model.interpolate_inputs`),
evaluated here locally, `u(τ) = (1 − τ) u_a + τ u_b` on the interval: the same function,
without the search for the interval that a global interpolant would do at every quadrature
point of every step.

Time runs from node `a` to node `b`; feeding the node data (times, inputs) in the opposite
order gives the same physical system driven backwards in time, which is what the echo uses.
Every rule here is symmetric, so `L_d(a, b; node_b, node_a) = L_d(b, a; node_a, node_b)` when
`L` is even in the velocities (`LagrangianModel.time_reversible`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact

from . import _autodiff as autodiff
from ._model import LagrangianModel, Params
from ._root import newton_root, newton_tolerances
from ._rules import AbstractRule

__all__ = ["DiscreteLagrangian", "Node", "newton_tolerances"]

Node = tuple  # (t: scalar, u: (m,)) — the data sampled at one time node


class DiscreteLagrangian(eqx.Module):
    """`L_d(θ; q_a, q_b)` of one interval, its momenta and the DEL residual.

    **Fields:**
    - `model`: the continuous `LagrangianModel`.
    - `dt`: the step `h > 0`.
    - `rule`: an `AbstractRule` (`Midpoint`, `Trapezoid`, `GalerkinLobatto`).
    - `stage_rtol`, `stage_atol`, `stage_max_steps`: Newton tolerances for the internal
      control points of Galerkin rules (`None`: chosen from the dtype, see `newton_tolerances`).
    """

    model: LagrangianModel
    dt: float
    rule: AbstractRule
    stage_rtol: float | None = eqx.field(static=True, default=None)
    stage_atol: float | None = eqx.field(static=True, default=None)
    stage_max_steps: int = eqx.field(static=True, default=50)

    # ---------------------------------------------------------------- pieces
    def _controls(self, q_a, internal, q_b):
        return jnp.concatenate([q_a[None], internal.reshape(-1, q_a.shape[0]), q_b[None]], axis=0)

    def _quadrature_points(self, controls, node_a: Node, node_b: Node):
        """Positions, velocities, times and inputs at the quadrature points."""
        rule = self.rule
        phi = jnp.asarray(rule.interpolation, dtype=controls.dtype)
        dphi = jnp.asarray(rule.differentiation, dtype=controls.dtype)
        tau = jnp.asarray(rule.nodes, dtype=controls.dtype)
        t_a, u_a = node_a
        t_b, u_b = node_b
        q = phi @ controls
        v = dphi @ controls / self.dt
        t = t_a + tau * (t_b - t_a)
        u = (1.0 - tau)[:, None] * u_a[None, :] + tau[:, None] * u_b[None, :]
        return q, v, t, u

    def local_action(self, params: Params, q_a, internal, q_b, node_a: Node, node_b: Node):
        """`S(a, Q, b)`: the quadrature of `∫ L dt` over the interval (scalar).

        `internal` has shape `(s − 1, n)` (empty for midpoint/trapezoid).
        """
        q, v, t, u = self._quadrature_points(self._controls(q_a, internal, q_b), node_a, node_b)
        lagrangians = jax.vmap(self.model.lagrangian_fn, in_axes=(0, 0, 0, None, 0))(q, v, t, params, u)
        w = jnp.asarray(self.rule.weights, dtype=q_a.dtype)
        return self.dt * jnp.sum(w * lagrangians)

    def virtual_work(self, params: Params, q_a, internal, q_b, node_a: Node, node_b: Node):
        """Discrete Lagrange–d'Alembert forces on each control point, shape `(s + 1, n)`.

        Zeros when the model has no non-conservative force.
        """
        controls = self._controls(q_a, internal, q_b)
        if self.model.force_fn is None:
            return jnp.zeros_like(controls)
        q, v, t, u = self._quadrature_points(controls, node_a, node_b)
        forces = jax.vmap(self.model.force_fn, in_axes=(0, 0, 0, None, 0))(q, v, t, params, u)
        w = jnp.asarray(self.rule.weights, dtype=q_a.dtype)
        phi = jnp.asarray(self.rule.interpolation, dtype=q_a.dtype)
        # f_j = h Σ_i w_i φ_j(τ_i) F_i
        return self.dt * jnp.einsum("i,ij,in->jn", w, phi, forces)

    def control_residual(self, params, q_a, internal, q_b, node_a, node_b):
        """Gradient of the action plus forces at every control point, shape `(s + 1, n)`.

        Row 0 is `∂_a S + f_a = −p⁻`, the last row `∂_b S + f_b = p⁺`, the rows between are
        the stage equations (zero at the internal stationary point).
        """
        grads = autodiff.grad(self.local_action, argnums=(1, 2, 3))(params, q_a, internal, q_b, node_a, node_b)
        g = self._controls(*grads)
        return g + self.virtual_work(params, q_a, internal, q_b, node_a, node_b)

    def initial_internal(self, q_a, q_b):
        """Linear interpolation between `q_a` and `q_b` at the internal control points."""
        tau = jnp.asarray(self.rule.nodes[1:-1] if self.rule.num_internal else np.zeros(0), q_a.dtype)
        return (1.0 - tau)[:, None] * q_a[None, :] + tau[:, None] * q_b[None, :]

    def internal_points(self, params, q_a, q_b, node_a, node_b):
        """Internal control points `Q*(a, b)`, shape `(s − 1, n)` (empty when `s = 1`).

        Solved by Newton (`_root.newton_root`, differentiable through the implicit function
        theorem); a failed solve returns NaN, which the callers' convergence checks catch.
        """
        guess = self.initial_internal(q_a, q_b)
        if self.rule.num_internal == 0:
            return guess

        def stage_equations(internal):
            return self.control_residual(params, q_a, internal, q_b, node_a, node_b)[1:-1]

        rtol, atol = newton_tolerances(guess.dtype)
        rtol = rtol if self.stage_rtol is None else self.stage_rtol
        atol = atol if self.stage_atol is None else self.stage_atol
        internal, ok = newton_root(
            stage_equations, guess, rtol=rtol, atol=atol, max_steps=self.stage_max_steps
        )
        return jnp.where(ok, internal, jnp.nan)

    # --------------------------------------------------------- public physics
    def __call__(self, params: Params, q_a, q_b, node_a: Node, node_b: Node) -> Inexact[Array, ""]:
        """The discrete Lagrangian `L_d(θ; q_a, q_b)` (scalar)."""
        internal = self.internal_points(params, q_a, q_b, node_a, node_b)
        return self.local_action(params, q_a, internal, q_b, node_a, node_b)

    def momentum_minus(self, params: Params, q_a, q_b, node_a: Node, node_b: Node) -> Inexact[Array, " n"]:
        """`p⁻_a = −D₁L_d(q_a, q_b) − f⁻`: the momentum leaving node a, shape `(n,)`."""
        internal = self.internal_points(params, q_a, q_b, node_a, node_b)
        return -self.control_residual(params, q_a, internal, q_b, node_a, node_b)[0]

    def momentum_plus(self, params: Params, q_a, q_b, node_a: Node, node_b: Node) -> Inexact[Array, " n"]:
        """`p⁺_b = D₂L_d(q_a, q_b) + f⁺`: the momentum arriving at node b, shape `(n,)`."""
        internal = self.internal_points(params, q_a, q_b, node_a, node_b)
        return self.control_residual(params, q_a, internal, q_b, node_a, node_b)[-1]

    def del_residual(self, params: Params, q_prev, q, q_next, node_prev, node, node_next, kick=None):
        """Discrete Euler–Lagrange residual at an interior node, shape `(n,)`.

        `p⁺_k − p⁻_k + kick`, where `kick = β ∇c_k(q_k)` for a nudged trajectory (theory §2).
        Zero on a stationary (nudged) trajectory.
        """
        r = self.momentum_plus(params, q_prev, q, node_prev, node) - self.momentum_minus(
            params, q, q_next, node, node_next
        )
        return r if kick is None else r + kick
