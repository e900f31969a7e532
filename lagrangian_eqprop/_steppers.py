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
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from . import _autodiff as autodiff
from ._discrete import DiscreteLagrangian, Node
from ._model import LagrangianModel, Params
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

    def init(self, params, q0, p0, node0, dt, v0_hint=None):
        return self.potential_gradient(params, q0, node0)

    def step(self, params, q, p, aux, node_a, node_b):
        # `aux = ∇V(q_a, node_a)`: node b of one step is node a of the next and a momentum kick
        # does not change it, so a rollout evaluates ∇V once per step. Potentials are taken at
        # each end's own time and input.
        sep = self.model.separable
        h = self.dt
        velocity = sep.solve_mass(params, p - 0.5 * h * aux)
        q_b = q + h * velocity
        grad_b = self.potential_gradient(params, q_b, node_b)
        p_b = sep.apply_mass(params, velocity) - 0.5 * h * grad_b
        return q_b, p_b, grad_b, None, None

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

    The predictor extrapolates linearly from the previous node, `q_b ≈ 2 q_a − q_{a−1}`; the
    multipliers start from the previous step's.
    """

    description: ClassVar[str] = "implicit step (root finder)"
    discrete: DiscreteLagrangian
    root_finder: AbstractRootFinder

    @property
    def model(self) -> LagrangianModel:
        return self.discrete.model

    def init(self, params, q0, p0, node0, dt, v0_hint=None):
        # Backwards in time the predictor must extrapolate along the rollout's own direction,
        # which `dt` (signed by the node order) and the velocity hint give.
        previous = q0 - dt * v0_hint
        if self.model.constrained:
            return previous, jnp.zeros((self.model.num_constraints,), q0.dtype)
        return previous

    def solve(self, params, q, p, node_a, node_b, q_guess, multipliers_guess=None):
        """`(q_b, p_b, info, λ_a)` from `(q_a, p_a)` with the predictor `q_guess` (`λ_a` is
        `None` without constraints)."""
        disc, model = self.discrete, self.model

        if model.constrained:
            jacobian = model.constraint_jacobian(q, node_a[0], params, node_a[1])

            def equations(z):
                internal, q_b, lam = z
                res = disc.control_residual(params, q, internal, q_b, node_a, node_b)[:-1]
                # Row 0: p_a + D₁L_d − Dφ(q_a)ᵀλ_a = 0 (constrained DEL); then stages; then φ(q_b) = 0.
                return res.at[0].add(p - jacobian.T @ lam), model.constraint(q_b, node_b[0], params, node_b[1])

            if multipliers_guess is None:
                multipliers_guess = jnp.zeros((model.num_constraints,), q.dtype)
            guess = (disc.initial_internal(q, q_guess), q_guess, multipliers_guess)
            (internal, q_b, lam), info = self.root_finder.solve(equations, guess)
        else:
            def equations(z):
                internal, q_b = z
                res = disc.control_residual(params, q, internal, q_b, node_a, node_b)
                # Row 0: p_a + ∂_a S + f_a = 0 (discrete Legendre transform); middle rows: stages.
                return res[:-1].at[0].add(p)

            guess = (disc.initial_internal(q, q_guess), q_guess)
            (internal, q_b), info = self.root_finder.solve(equations, guess)
            lam = None
        p_b = disc.control_residual(params, q, internal, q_b, node_a, node_b)[-1]
        finite = jnp.all(jnp.isfinite(q_b)) & jnp.all(jnp.isfinite(p_b))
        info = eqx.tree_at(lambda i: i.result, info,
                           RESULTS.where(finite, info.result, first_failure(info.result, RESULTS.newton_nonfinite)))
        return q_b, p_b, info, lam

    def step(self, params, q, p, aux, node_a, node_b):
        if self.model.constrained:
            previous, lam_previous = aux
            q_b, p_b, info, lam = self.solve(params, q, p, node_a, node_b, 2.0 * q - previous, lam_previous)
            return q_b, p_b, (q, lam), info, lam
        q_b, p_b, info, _ = self.solve(params, q, p, node_a, node_b, 2.0 * q - aux)
        return q_b, p_b, q, info, None
