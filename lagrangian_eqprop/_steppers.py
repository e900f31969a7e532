"""One time step of a variational integrator: the explicit Störmer–Verlet step and the implicit
(root-finding) step, behind one interface that `VariationalIntegrator.rollout` drives.

A stepper maps `(q_a, p_a)` to `(q_b, p_b)` across one interval, carrying an auxiliary value
between steps (`∇V` at the current node for Störmer–Verlet, so the force is evaluated once per
step; the previous node for the implicit step's linear predictor). `StepRecord` folds the
per-step root-finder reports into the run's `result` and `SolveStats`.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from . import _autodiff as autodiff
from ._discrete import DiscreteLagrangian, Node
from ._model import LagrangianModel, Params
from ._linear_solvers import KineticJacobian, StepStructure
from ._root import AbstractRootFinder, RootInfo
from ._solution import RESULTS, SolveStats, first_failure

__all__ = ["AbstractStepper", "ImplicitStep", "StepRecord", "StormerVerlet"]


class StepRecord(eqx.Module):
    """Running record of the steps of a rollout (lives in the `lax.scan` carry)."""

    result: RESULTS
    num_failures: Int[Array, ""]
    first_failed: Int[Array, ""]
    iterations_sum: Int[Array, ""]
    iterations_max: Int[Array, ""]
    max_residual: Float[Array, ""]

    @staticmethod
    def fresh(dtype) -> "StepRecord":
        zero = jnp.zeros((), jnp.int32)
        real = jnp.finfo(dtype).dtype  # a complex (holomorphic) pass still has real residuals
        return StepRecord(RESULTS.successful, zero, -jnp.ones((), jnp.int32), zero, zero, jnp.zeros((), real))

    def record(self, step: Int[Array, ""], info: RootInfo) -> "StepRecord":
        failed = ~info.ok
        first = jnp.where(failed & (self.first_failed < 0), step, self.first_failed)
        residual = jnp.where(jnp.isfinite(info.residual), info.residual, jnp.inf)
        return StepRecord(
            first_failure(self.result, info.result),
            self.num_failures + failed.astype(jnp.int32),
            first.astype(jnp.int32),
            self.iterations_sum + info.iterations,
            jnp.maximum(self.iterations_max, info.iterations),
            jnp.maximum(self.max_residual, residual.astype(self.max_residual.dtype)),
        )

    def stats(self, num_steps: int) -> SolveStats:
        mean = self.iterations_sum.astype(self.max_residual.dtype) / max(num_steps, 1)
        nan = jnp.full((), jnp.nan, self.max_residual.dtype)
        return SolveStats(self.num_failures, self.first_failed, mean, self.iterations_max, self.max_residual, nan, nan)


class AbstractStepper(eqx.Module):
    """One step `(q_a, p_a) → (q_b, p_b)`; see the module docstring."""

    description: ClassVar[str]

    def init(self, params: Params, q0, p0, node0: Node, dt, v0_hint=None):
        """The auxiliary value carried into the first step."""
        raise NotImplementedError

    def step(self, params: Params, q, p, aux, node_a: Node, node_b: Node):
        """**Returns:** `(q_b, p_b, aux_b, info, multipliers)`: `info` a `RootInfo` or `None` when
        the step cannot fail except by going non-finite (checked once after the run, `finish`);
        `multipliers` the Lagrange multipliers `λ_a` of the constraints at node a (`(c,)`) or
        `None` for an unconstrained model."""
        raise NotImplementedError

    def finish(self, record: StepRecord, q_n, p_n, qs, ps, num_steps: int) -> tuple[RESULTS, SolveStats]:
        """The run's result and statistics from the scan's record and values."""
        return record.result, record.stats(num_steps)


class StormerVerlet(AbstractStepper):
    """The trapezoid rule's explicit step for `L = ½vᵀMv − V(q, t, u)` with constant `M`:
    `M v = p_a − h/2 ∇V(q_a)`, `q_b = q_a + h v`, `p_b = M v − h/2 ∇V(q_b)`.

    An explicit step cannot fail to converge, only go non-finite, and non-finite values
    propagate to the end: they are checked once after the run (per stored node, or the final
    node), which keeps the step loop as lean as a hand-written leapfrog (a per-step check cost
    about as much as the step itself on small systems). Without a stored trajectory the first
    bad step is not located (`first_failed = −1`); callers re-run with storage to locate it.
    """

    description: ClassVar[str] = "explicit Störmer–Verlet step"
    model: LagrangianModel
    dt: float

    def potential_gradient(self, params, q, node):
        """`∇V(q, t, u)` at one node."""
        return autodiff.grad(self.model.separable.potential_fn)(q, node[0], params, node[1])

    def action_derivatives(self, params, q, node, velocity=None, kinetic_scale=None):
        """`(∇_q V, g_θ, ∂_u V)` at one node from one reverse pass, with
        `g_θ = ∂_θ[V(q) − s·½vᵀM(θ)v]` (shaped like params; `s = kinetic_scale`, no kinetic term
        without `velocity`): the force of a step and its share of the action's gradients. In a
        complex (holomorphic) pass `∇_q V` is the complex derivative and the real θ, u get
        `∂Re + i ∂Im` (as `_autodiff.grad`), from a second cotangent on the same pass."""
        t, u = node
        sep = self.model.separable

        def value(q_, params_, u_):
            out = sep.potential_fn(q_, t, params_, u_)
            if velocity is not None:  # no q-dependence: the force is untouched
                out = out - kinetic_scale * (0.5 * jnp.sum(velocity * sep.apply_mass(params_, velocity)))
            return out

        out, pullback = jax.vjp(value, q, params, u)
        one = jnp.ones_like(out)
        grad_q, grad_params, grad_u = pullback(one)
        if jnp.iscomplexobj(out):
            # The pullback of a real argument keeps Re(cotangent · ∂V); cotangent −i gives Im ∂V.
            _, imag_params, imag_u = pullback(-1j * one)
            grad_params = jax.tree_util.tree_map(lambda r, i: r + 1j * i, grad_params, imag_params)
            grad_u = grad_u + 1j * imag_u
        return grad_q, grad_params, grad_u

    def init(self, params, q0, p0, node0, dt, v0_hint=None):
        return self.potential_gradient(params, q0, node0)

    def step(self, params, q, p, aux, node_a, node_b):
        q_b, p_b, grad_b = self._advance(params, q, p, aux, node_b)
        return q_b, p_b, grad_b, None, None

    def action_step(self, params, q, p, aux, node_a, node_b, kinetic_scale):
        """`step` that also returns the step's share of the action's gradients, from its own force
        evaluation: `(q_b, p_b, aux_b, g_θ, ∂_uV(q_b))`, `g_θ = ∂_θ[V(q_b) − s·½vᵀMv]` with `v` the
        step's velocity `(q_b − q_a)/h` (`action_derivatives`). For the trapezoid rule on separable
        L, `∂_θL_d(q_a, q_b) = h ∂_θ(½vᵀMv) − h/2 [∂_θV(q_a) + ∂_θV(q_b)]` and
        `∂_{u_b}L_d = −h/2 ∂_uV(q_b)`."""
        return self._advance(params, q, p, aux, node_b, kinetic_scale)

    def _advance(self, params, q, p, aux, node_b, kinetic_scale=None):
        # `aux = ∇V(q_a, node_a)`: node b of one step is node a of the next and a momentum kick
        # does not change it, so a rollout evaluates ∇V once per step. Potentials are taken at
        # each end's own time and input.
        sep = self.model.separable
        h = self.dt
        velocity = sep.solve_mass(params, p - 0.5 * h * aux)
        q_b = q + h * velocity
        if kinetic_scale is None:
            grad_b = self.potential_gradient(params, q_b, node_b)
        else:
            grad_b, grad_params, grad_u = self.action_derivatives(params, q_b, node_b, velocity, kinetic_scale)
        p_b = sep.apply_mass(params, velocity) - 0.5 * h * grad_b
        return (q_b, p_b, grad_b) if kinetic_scale is None else (q_b, p_b, grad_b, grad_params, grad_u)

    def finish(self, record, q_n, p_n, qs, ps, num_steps):
        dtype = jnp.finfo(q_n.dtype).dtype  # statistics are real, also for a complex (holomorphic) pass
        if qs is not None:
            bad = ~(jnp.all(jnp.isfinite(qs), axis=1) & jnp.all(jnp.isfinite(ps), axis=1))
            failures = jnp.sum(bad).astype(jnp.int32)
            first = jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)
        else:
            failures = (~(jnp.all(jnp.isfinite(q_n)) & jnp.all(jnp.isfinite(p_n)))).astype(jnp.int32)
            first = -jnp.ones((), jnp.int32)
        result = RESULTS.where(failures > 0, RESULTS.nonfinite_state, RESULTS.successful)
        zero = jnp.zeros((), jnp.int32)
        nan = jnp.full((), jnp.nan, dtype)
        return result, SolveStats(failures, first, jnp.zeros((), dtype), zero, jnp.zeros((), dtype), nan, nan)


class ImplicitStep(AbstractStepper):
    """The general step: solve the discrete Legendre transform `p_a = p⁻(q_a, q_b)` (and the
    Galerkin stage equations) for `q_b` with a root finder, then read `p_b = p⁺(q_a, q_b)`.

    With holonomic constraints (theory §7) the unknowns are `(q_b, λ_a)`: `p_a + D₁L_d(q_a, q_b)
    − Dφ(q_a)ᵀλ_a = 0` and `φ(q_b) = 0` (SHAKE for the trapezoid rule), so every node satisfies
    the constraints to the solver's tolerance; the step stays time-reversible, and the echo exact.

    The root finder is told what the step knows about its Jacobian (`StepStructure`: the kinetic
    Jacobian of a separable model, `_linear_solvers.py`) and carries its own state from step to
    step (e.g. a reused factorisation). `aux` is `(q_{a−1}, λ_{a−1} or None, root-finder state)`:
    the predictor extrapolates linearly from the previous node, `q_b ≈ 2 q_a − q_{a−1}`; the
    multipliers start from the previous step's.
    """

    description: ClassVar[str] = "implicit step (root finder)"
    discrete: DiscreteLagrangian
    root_finder: AbstractRootFinder

    @property
    def model(self) -> LagrangianModel:
        return self.discrete.model

    def structure(self, params) -> StepStructure:
        """What the root finder may know about this step's equations (see `_linear_solvers.py`)."""
        disc, model = self.discrete, self.model
        size = (disc.rule.num_internal + 1) * model.num_dof + model.num_constraints
        return StepStructure(KineticJacobian.build(model, params, disc.rule, disc.dt), size)

    def init(self, params, q0, p0, node0, dt, v0_hint=None):
        # Backwards in time the predictor must extrapolate along the rollout's own direction,
        # which `dt` (signed by the node order) and the velocity hint give.
        history = ((dt * v0_hint).astype(q0.dtype), jnp.zeros_like(q0))
        lam = jnp.zeros((self.model.num_constraints,), q0.dtype) if self.model.constrained else None
        return history, lam, self.root_finder.init_state(self.structure(params), q0.dtype)

    def control_residual(self, params, q_a, internal, q_b, node_a, node_b):
        """`DiscreteLagrangian.control_residual` `(s + 1, n)` by the chain rule at the quadrature
        points, `∂S/∂c_j = Σ_i w_i (h φ_j(τ_i) ∂_qL_i + φ'_j(τ_i) ∂_vL_i)`, with one gradient of L
        per point: reverse mode through the interpolation cost 3× more per evaluation on the
        256-mass chain (benchmarks/implicit_path.py)."""
        disc, model, rule = self.discrete, self.model, self.discrete.rule
        phi, dphi, w, tau = rule.interpolation, rule.differentiation, rule.weights, rule.nodes
        controls = [q_a, *internal.reshape(-1, q_a.shape[0]), q_b]
        h = disc.dt
        (t_a, u_a), (t_b, u_b) = node_a, node_b

        def combine(table, i, scale):
            # Σ_j table[i, j] c_j over the static nonzero entries (no matmul: XLA fuses the axpys).
            return sum((float(table[i, j]) * c for j, c in enumerate(controls) if table[i, j] != 0.0),
                       jnp.zeros_like(q_a)) * scale

        q = jnp.stack([combine(phi, i, 1.0) for i in range(len(w))])
        v = jnp.stack([combine(dphi, i, 1.0) for i in range(len(w))]) / h
        t = jnp.stack([t_a + float(x) * (t_b - t_a) for x in tau])
        u = jnp.stack([(1.0 - float(x)) * u_a + float(x) * u_b for x in tau])
        gq, gv = jax.vmap(autodiff.grad(model.lagrangian_fn, argnums=(0, 1)),
                          in_axes=(0, 0, 0, None, 0))(q, v, t, params, u)
        rows = [sum((float(w[i] * phi[i, j]) * h * gq[i] + float(w[i] * dphi[i, j]) * gv[i]
                     for i in range(len(w)) if phi[i, j] != 0.0 or dphi[i, j] != 0.0), jnp.zeros_like(q_a))
                for j in range(len(controls))]
        res = jnp.stack(rows)
        if model.force_fn is not None:
            res = res + disc.virtual_work(params, q_a, internal, q_b, node_a, node_b)
        return res

    def solve(self, params, q, p, node_a, node_b, q_guess, multipliers_guess=None):
        """`(q_b, p_b, info, λ_a)` from `(q_a, p_a)` with the predictor `q_guess` (`λ_a` is
        `None` without constraints); a fresh root-finder state (one step on its own)."""
        state = self.root_finder.init_state(self.structure(params), jnp.result_type(q, p))
        q_b, p_b, info, lam, _ = self.solve_step(params, q, p, node_a, node_b, q_guess, multipliers_guess, state)
        return q_b, p_b, info, lam

    def solve_step(self, params, q, p, node_a, node_b, q_guess, multipliers_guess, state):
        """`solve` with the root finder's state: **Returns** `(q_b, p_b, info, λ_a, state)`."""
        disc, model = self.discrete, self.model

        def equations_and_momentum(z):
            internal, q_b = z[0], z[1]
            res = self.control_residual(params, q, internal, q_b, node_a, node_b)
            if not model.constrained:
                # Row 0: p_a + ∂_a S + f_a = 0 (discrete Legendre transform); middle rows: stages.
                return res[:-1].at[0].add(p), res[-1]
            # Row 0: p_a + D₁L_d − Dφ(q_a)ᵀλ_a = 0 (constrained DEL); then stages; then φ(q_b) = 0.
            rows = res[:-1].at[0].add(p - jacobian.T @ z[2])
            return (rows, model.constraint(q_b, node_b[0], params, node_b[1])), res[-1]

        guess = (disc.initial_internal(q, q_guess), q_guess)
        if model.constrained:
            jacobian = model.constraint_jacobian(q, node_a[0], params, node_a[1])
            if multipliers_guess is None:
                multipliers_guess = jnp.zeros((model.num_constraints,), q.dtype)
            guess = guess + (multipliers_guess,)
        z, info, state = self.root_finder.solve_step(lambda z: equations_and_momentum(z)[0], guess,
                                                     self.structure(params), state)
        # One more evaluation at the root gives p_b and the residual that the report quotes; q_b
        # and p_b are finite when that residual is (they enter it), so one reduction checks both.
        equations, p_b = equations_and_momentum(z)
        residual = jnp.max(jnp.abs(jnp.concatenate([jnp.ravel(e) for e in jax.tree_util.tree_leaves(equations)])))
        finite = jnp.isfinite(residual)
        info = RootInfo(RESULTS.where(finite, info.result, first_failure(info.result, RESULTS.newton_nonfinite)),
                        info.iterations, jnp.where(finite, residual, jnp.inf).astype(info.residual.dtype))
        return z[1], p_b, info, (z[2] if model.constrained else None), state

    def step(self, params, q, p, aux, node_a, node_b):
        (difference, second), lam_previous, state = aux
        q_b, p_b, info, lam, state = self.solve_step(params, q, p, node_a, node_b, q + difference + second,
                                                     lam_previous, state)
        # The history is kept as differences, computed afresh each step: carrying the previous
        # nodes themselves makes XLA copy them at every step (a rotation of buffers).
        new_difference = q_b - q
        return q_b, p_b, ((new_difference, new_difference - difference), lam, state), info, lam
