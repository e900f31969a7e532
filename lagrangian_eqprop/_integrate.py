"""`VariationalIntegrator`: initial-value stepping (and, through `_bvp`, two-point solves).

A step maps `(q_k, p_k)` to `(q_{k+1}, p_{k+1})` by solving the discrete Legendre transform
`p_k = p⁻(q_k, q_{k+1})` for `q_{k+1}` and reading `p_{k+1} = p⁺(q_k, q_{k+1})`. The rule object
(`Midpoint`, `Trapezoid`, `GalerkinLobatto`) decides whether that step is explicit
(Störmer–Verlet, for the trapezoid rule on `L = ½vᵀMv − V(q, t)` with constant `M`) or needs a
root finder; the integrator holds the resulting stepper (`_steppers.py`) and `rollout` drives
it with `lax.scan`, whatever it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Inexact, Real

from . import _autodiff as autodiff
from . import _bvp
from ._checks import (
    as_float_array,
    check_constraints,
    check_mass_matrix,
    check_num_steps,
    check_params,
    check_state_pair,
    finite_or_raise,
)
from ._discrete import DiscreteLagrangian, Node
from ._model import LagrangianModel
from ._root import as_root_finder
from ._rules import AbstractRule, as_rule
from ._solution import RESULTS, FinalState, SolveStats, Trajectory, check_solution
from ._steppers import AbstractStepper, ImplicitStep, StepRecord, StormerVerlet
from ._typing import NodeInputs, Number, Params, StateVector
from .errors import InputError

__all__ = ["Rollout", "VariationalIntegrator", "as_arrays", "initial_rollout"]


class Rollout(eqx.Module):
    """What `VariationalIntegrator.rollout` returns.

    **Fields:** `q`, `p` (final node, `(n,)`), `accumulated` (the on-the-fly sum, or the
    initial value), `result`, `stats`, `qs`, `ps` (`(N, n)`, nodes 1..N; `None` unless the
    trajectory was saved), `emitted` (the per-step outputs of `emit`, stacked, or `None`), and
    `action_gradient` (shaped like params), `action_input_gradient` (`(N+1, m)`, in the order
    the rollout visits the nodes) when asked for, else `None`.
    """

    q: Inexact[Array, " n"]
    p: Inexact[Array, " n"]
    accumulated: Any
    result: RESULTS
    stats: SolveStats
    qs: Any = None
    ps: Any = None
    emitted: Any = None
    action_gradient: Any = None
    action_input_gradient: Any = None


class VariationalIntegrator(eqx.Module):
    """A variational integrator for a `LagrangianModel`.

    **Arguments:**
    - `model`: the compiled Lagrangian.
    - `dt`: step `h > 0`.
    - `rule`: `lep.Midpoint()` (default), `lep.Trapezoid()`, `lep.GalerkinLobatto(degree)`, or
      the shorthands `"midpoint"`, `"trapezoid"`, `"galerkin"` (with `degree`, default 2 →
      order 4).
    - `t0`: time of node 0.
    - `explicit`: `"auto"` (default) takes the explicit Störmer–Verlet step when the rule allows
      it for this model (trapezoid, `L = ½vᵀMv − V` with constant `M`, no force); `False`
      forces the root-finding step; `True` requires the explicit one.
    - `root_finder`: for implicit steps, `lep.Newton(...)` (default) or an optimistix root
      finder such as `optx.Newton(rtol, atol, cauchy_termination=False)` (see `_root.py`).
    - `newton_rtol`, `newton_atol`, `max_newton_steps`: settings of the default `lep.Newton`
      (`None`: tolerances from the dtype).
    - `energy_tolerance`: runs of a conservative system (`model.conserves_energy`) whose
      relative energy error exceeds this are reported as `RESULTS.energy_drift` (a blow-up, or
      a spurious solution of an implicit step at too large a `dt`); default 0.1, `None` turns
      the monitor off.
    """

    model: LagrangianModel
    discrete: DiscreteLagrangian
    stepper: AbstractStepper
    rule: AbstractRule
    dt: Number
    t0: Number
    energy_tolerance: float | None = eqx.field(static=True)

    def __init__(
        self,
        model: LagrangianModel,
        dt: Number,
        rule: AbstractRule | str = "midpoint",
        *,
        degree: int = 2,
        t0: Number = 0.0,
        explicit: bool | str = "auto",
        root_finder: Any = None,
        newton_rtol: Number | None = None,
        newton_atol: Number | None = None,
        max_newton_steps: int = 20,
        energy_tolerance: float | None = 0.1,
    ):
        if not isinstance(model, LagrangianModel):
            raise InputError(f"model must be a LagrangianModel (from compile_lagrangian/compile_network), "
                             f"got {type(model).__name__}.")
        if isinstance(dt, bool) or not (np.ndim(dt) == 0 and np.isfinite(float(dt)) and float(dt) > 0):
            raise InputError(f"dt must be a positive finite number, got {dt!r}.")
        if explicit not in ("auto", True, False):
            raise InputError(f"explicit must be 'auto', True or False, got {explicit!r}.")
        rule = as_rule(rule, degree)
        can_be_explicit = rule.allows_explicit_step(model)
        if explicit is True and not can_be_explicit:
            raise InputError(
                "explicit=True needs L = ½vᵀMv − V(q, t) with constant M, no non-conservative "
                f"force, and the trapezoid rule (model separable: {model.separable is not None}, "
                f"force: {model.force_fn is not None}, rule: {rule.name})."
            )
        self.model = model
        self.dt = dt
        self.t0 = t0
        self.rule = rule
        if energy_tolerance is not None and not (float(energy_tolerance) > 0):
            raise InputError(f"energy_tolerance must be positive or None, got {energy_tolerance!r}.")
        self.energy_tolerance = None if energy_tolerance is None else float(energy_tolerance)
        self.discrete = DiscreteLagrangian(model, dt, rule)
        if can_be_explicit and explicit != False:  # noqa: E712  ("auto" or True)
            self.stepper = StormerVerlet(model, dt)
        else:
            finder = as_root_finder(root_finder, rtol=newton_rtol, atol=newton_atol, max_steps=max_newton_steps)
            self.stepper = ImplicitStep(self.discrete, finder)

    @property
    def explicit(self) -> bool:
        """Whether steps are explicit (Störmer–Verlet) rather than root solves."""
        return isinstance(self.stepper, StormerVerlet)

    def describe(self) -> str:
        """`"<rule> rule, <step kind>"`, used in messages."""
        return f"{self.rule.name} rule, {self.stepper.description}"

    # ----------------------------------------------------------------- nodes
    def node_times(self, num_steps: int, dtype=None) -> Float[Array, " N1"]:
        """Node times `t_0 + k h`, shape `(N+1,)` (of `dtype`, default the default float)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        return self.t0 + self.dt * jnp.arange(num_steps + 1, dtype=dtype)

    def node_inputs(self, num_steps: int, inputs: NodeInputs = None, dtype=None) -> Float[Array, "N1 m"]:
        """Inputs sampled at the nodes, shape `(N+1, m)`.

        `inputs` may be `None` (all zeros), an array of shape `(N+1, m)` (or `(N+1,)` when
        `m = 1`), or a callable `u(t) -> (m,)` evaluated at the node times.
        """
        m = self.model.num_inputs
        if inputs is None:
            return jnp.zeros((num_steps + 1, m), dtype=dtype)
        if callable(inputs):
            times = self.node_times(num_steps, dtype)
            return jnp.reshape(jax.vmap(inputs)(times), (num_steps + 1, m))
        inputs = as_float_array(inputs, dtype)
        if inputs.ndim == 1 and m == 1:
            inputs = inputs[:, None]
        if inputs.shape != (num_steps + 1, m):
            raise InputError(
                f"inputs must have shape (num_steps + 1, {m}) = ({num_steps + 1}, {m}) for inputs "
                f"{self.model.input_names}, got {tuple(inputs.shape)}."
            )
        return inputs

    # -------------------------------------------------------- initial data
    def initial_momentum(self, params: Params, q0, v0, t0=None, u0=None) -> Inexact[Array, " n"]:
        """`p_0 = ∂L/∂v(q_0, v_0, t_0)`: the continuous Legendre transform of a given velocity."""
        t0 = self.t0 if t0 is None else t0
        return self.model.momentum(q0, v0, t0, params, u0)

    def velocity_estimate(self, params: Params, q, p, t, u) -> Inexact[Array, " n"]:
        """Velocity from momentum, exact when L is quadratic in v (a predictor, and the
        velocity used for energies)."""
        if self.model.separable is not None:
            return self.model.separable.solve_mass(params, p)
        # Through `_autodiff`: a holomorphic echo pass starts from complex (q, p).
        zero = jnp.zeros_like(q)
        momentum = autodiff.grad(self.model.lagrangian, argnums=1)
        mass = autodiff.jacfwd(momentum, argnums=1)(q, zero, t, params, u)
        return jnp.linalg.solve(mass, p - momentum(q, zero, t, params, u))

    def stability_number(self, params: Params, q0: StateVector, u0: Real[ArrayLike, " m"] | None = None) -> float:
        """`ω_max·dt` at rest at `q0` (node 0's time, input `u0`), `ω_max` the highest linearised
        frequency (`LagrangianModel.highest_frequency`). The explicit Störmer–Verlet step is
        unstable beyond 2; an implicit step stays stable but no longer resolves the fastest
        oscillation (and can converge to a spurious solution) far beyond it. Eager."""
        q0 = as_float_array(q0)
        u0 = self.model.default_input(q0.dtype) if u0 is None else as_float_array(u0, q0.dtype)
        omega = _highest_frequency_jit(self.model, q0, jnp.asarray(self.t0, q0.dtype), as_arrays(params), u0)
        return float(omega) * float(self.dt)

    def diagnose_step_size(self, params: Params, q0: StateVector, us=None) -> str:
        """A sentence on `ω_max·dt` for failure messages (empty when it is well below the limit);
        `us` are the node inputs (node 0's is used)."""
        try:
            number = self.stability_number(params, q0, None if us is None else us[0])
        except Exception:  # noqa: BLE001  (a diagnosis must never mask the failure it explains)
            return ""
        if not number >= 1.0:
            return ""
        limit = "the explicit step is unstable beyond 2" if self.explicit else "an implicit step stops resolving it"
        return (f" [ω_max·dt = {number:.3g} at the initial state ({limit}); a step below "
                f"{2.0 * float(self.dt) / number:.3g} resolves the fastest oscillation]")

    def energies(self, params: Params, trajectory: Trajectory, inputs=None) -> Float[Array, " N1"]:
        """Energy `p·v − L` at every node of `trajectory`, shape `(N+1,)` (velocity from the
        node momentum, `velocity_estimate`)."""
        num_steps = trajectory.q.shape[0] - 1
        us = self.node_inputs(num_steps, inputs, trajectory.q.dtype)

        def energy(q, p, t, u):
            v = self.velocity_estimate(params, q, p, t, u)
            return self.model.energy(q, v, t, params, u)

        return jax.vmap(energy)(trajectory.q, trajectory.p, trajectory.t, us)

    # -------------------------------------------------------------- one step
    def step(self, params: Params, q, p, node_a: Node, node_b: Node, q_guess=None):
        """One step `(q_a, p_a) → (q_b, p_b)` across the interval from `node_a` to `node_b`.

        **Arguments:**
        - `q`, `p`: position and momentum at node a, shape `(n,)`.
        - `node_a`, `node_b`: `(t, u)` at the two ends (feed them reversed to run backwards).
        - `q_guess`: predictor for `q_b` (implicit steps); default `q_a`.

        **Returns:** `(q_b, p_b, ok)` with `ok` a boolean scalar (converged and finite).
        """
        if isinstance(self.stepper, ImplicitStep):
            q_b, p_b, info, _ = self.stepper.solve(params, q, p, node_a, node_b, q if q_guess is None else q_guess)
            return q_b, p_b, info.ok
        aux = self.stepper.init(params, q, p, node_a, self.dt)
        q_b, p_b, _, _, _ = self.stepper.step(params, q, p, aux, node_a, node_b)
        return q_b, p_b, jnp.all(jnp.isfinite(q_b)) & jnp.all(jnp.isfinite(p_b))

    # --------------------------------------------------------------- rollout
    def rollout(
        self,
        params: Params,
        q0,
        p0,
        times: Float[Array, " N1"],
        inputs: Float[Array, "N1 m"],
        *,
        kick: Callable[[Any, Array], Array] | None = None,
        accumulate: Callable | None = None,
        accumulator_init: Any = None,
        save_trajectory: bool = True,
        emit: Callable | None = None,
        v0_hint=None,
        monitor_energy: bool = False,
        action_gradient: bool = False,
        action_input_gradient: bool = False,
    ) -> Rollout:
        """Step through the nodes with `lax.scan`; the engine behind `simulate` and the echo.

        **Arguments:**
        - `q0`, `p0`: initial position and momentum, shape `(n,)`.
        - `times`, `inputs`: node data in the order the rollout visits them, shapes `(N+1,)`
          and `(N+1, m)` (reverse them to run the echo).
        - `kick(j, q_{j+1}) -> (n,)`: added to `p_{j+1}` after step j (nudging).
        - `accumulate(j, q_j, q_{j+1}, node_j, node_{j+1}) -> pytree`: summed over steps on the
          fly (e.g. `∂_θ L_d`), starting from `accumulator_init`. For a constrained model it
          also receives the multipliers `λ_j` of node j (`(c,)`) as a sixth argument.
        - `save_trajectory`: keep all nodes (`True`) or only the final one (O(1) memory in N).
        - `emit(j, q_j, q_{j+1}, node_j, node_{j+1}[, λ_j]) -> pytree`: per-step outputs,
          stacked along a leading axis of length N (memory O(N), like the node data).
        - `v0_hint`: initial velocity for the first predictor (default from `p0`).
        - `monitor_energy`: for a conservative model (`model.conserves_energy`) and a run
          without kicks, report `RESULTS.energy_drift` when the relative energy error exceeds
          `energy_tolerance` (every stored node is checked, else the final one).
        - `action_gradient`: also sum the parameter gradient of the (augmented) discrete action,
          `Σ_j ∂_θ[L_d(θ; q_j, q_{j+1}; node_j, node_{j+1}) − λ_j·φ(q_j)]` (`Rollout.action_gradient`,
          shaped like params; the echo's `G`). The explicit step takes it from its own force
          evaluation (one reverse pass per step, `StormerVerlet.action_step`); implicit steps
          differentiate `L_d` once per step.
        - `action_input_gradient`: likewise the gradient of that sum w.r.t. the input at every
          node (`Rollout.action_input_gradient`, `(N+1, m)`, in the order of `inputs`).

        **Returns:** a `Rollout` (never raises: read its `result`).
        """
        num_steps = times.shape[0] - 1
        stepper = self.stepper
        if v0_hint is None and isinstance(stepper, ImplicitStep):
            v0_hint = self.velocity_estimate(params, q0, p0, times[0], inputs[0])
        aux0 = stepper.init(params, q0, p0, (times[0], inputs[0]), self.dt, v0_hint)
        action = None
        if action_gradient or action_input_gradient:
            action = _ActionGradient(self, params, num_steps, action_gradient, action_input_gradient)
            aux0, action0 = action.init(q0, (times[0], inputs[0]), aux0)
        fused = action is not None and action.fused

        def body(carry, _):
            j, q, p, aux, acc, action_acc, record = carry
            node_a = (times[j], inputs[j])
            node_b = (times[j + 1], inputs[j + 1])
            if fused:
                q_b, p_b, aux_b, *pieces = stepper.action_step(params, q, p, aux, node_a, node_b, *action.step_args(j, q.dtype))
                info = multipliers = None
            else:
                q_b, p_b, aux_b, info, multipliers = stepper.step(params, q, p, aux, node_a, node_b)
                pieces = (q, q_b, node_a, node_b, multipliers)
            if kick is not None:
                p_b = p_b + kick(j, q_b)
            extra = () if multipliers is None else (multipliers,)
            if accumulate is not None:
                acc = jax.tree_util.tree_map(jnp.add, acc, accumulate(j, q, q_b, node_a, node_b, *extra))
            action_out = None
            if action is not None:
                action_acc, action_out = action.step(j, action_acc, pieces)
            if info is not None:
                record = record.record(j, info)
            out = ((q_b, p_b) if save_trajectory else None,
                   emit(j, q, q_b, node_a, node_b, *extra) if emit is not None else None, action_out)
            return (j + 1, q_b, p_b, aux_b, acc, action_acc, record), out

        # The step index is carried (not scanned over) so that memory stays O(1) in N.
        carry0 = (jnp.zeros((), jnp.int32), q0, p0, aux0, accumulator_init, None if action is None else action0,
                  StepRecord.fresh(q0.dtype))
        (_, q_n, p_n, _, acc, action_acc, record), (nodes, emitted, action_out) = jax.lax.scan(
            body, carry0, None, length=num_steps)
        qs, ps = nodes if save_trajectory else (None, None)
        result, stats = stepper.finish(record, q_n, p_n, qs, ps, num_steps)
        if monitor_energy and self.energy_tolerance is not None and self.model.conserves_energy and kick is None:
            result, stats = self._energy_monitor(params, result, stats, times, inputs, (q0, p0), (q_n, p_n),
                                                 None if qs is None else (qs, ps))
        grad_params, grad_inputs = (None, None) if action is None else action.finish(action_acc, action_out)
        return Rollout(q_n, p_n, acc, result, stats, qs, ps, emitted, grad_params, grad_inputs)

    def _energy_monitor(self, params, result, stats, times, inputs, first, last, nodes):
        """Flag a run of a conservative system whose energy drifted by more than
        `energy_tolerance`: `|E_k − E_0| / max(s_0, s_k)` with the scale `s = |p·v| + |L|` (so a
        state of zero energy is no trap). Checks every stored node, else the final one."""

        def energy_and_scale(q, p, t, u):
            v = self.velocity_estimate(params, q, p, t, u)
            lagrangian = self.model.lagrangian(q, v, t, params, u)
            pv = jnp.dot(p, v)
            return pv - lagrangian, jnp.abs(pv) + jnp.abs(lagrangian)

        e0, s0 = energy_and_scale(*first, times[0], inputs[0])
        if nodes is None:
            energies, scales = energy_and_scale(*last, times[-1], inputs[-1])
            energies, scales = energies[None], scales[None]
        else:
            energies, scales = jax.vmap(energy_and_scale)(nodes[0], nodes[1], times[1:], inputs[1:])
        relative = jnp.abs(energies - e0) / jnp.maximum(jnp.maximum(s0, scales), jnp.finfo(e0.dtype).tiny)
        relative = jnp.where(jnp.isfinite(relative), relative, jnp.inf)
        drift = jnp.max(relative)
        flagged = (result == RESULTS.successful) & (drift > self.energy_tolerance)
        bad = relative > self.energy_tolerance
        # node k+1 is produced by step k; without stored nodes the step is not located
        first_bad = jnp.where(jnp.any(bad) & (nodes is not None), jnp.argmax(bad), -1).astype(jnp.int32)
        stats = eqx.tree_at(lambda s: (s.energy_error, s.num_failures, s.first_failed), stats,
                            (drift.astype(stats.max_residual.dtype),
                             jnp.where(flagged, 1, stats.num_failures).astype(jnp.int32),
                             jnp.where(flagged, first_bad, stats.first_failed).astype(jnp.int32)))
        return RESULTS.where(flagged, RESULTS.energy_drift, result), stats

    # ------------------------------------------------------------ simulate
    def prepare(self, params: Params, q0, v0, p0, num_steps, inputs):
        """Validated `(params, q0, v0, p0, inputs (N+1, m), num_steps)` for an initial-value run
        (eager checks: names, shapes, finite values)."""
        check_params(self.model, params)
        num_steps = check_num_steps(num_steps)
        q0, v0, p0 = check_state_pair(self.model, q0, v0, p0)
        us = self.node_inputs(num_steps, inputs, q0.dtype)
        params = as_arrays(params)
        finite_or_raise({"q0": q0, "v0": v0, "p0": p0, "inputs": us,
                         **{f"params[{k!r}]": v for k, v in params.items()}})
        check_mass_matrix(self.model, params, q0, jnp.zeros_like(q0) if v0 is None else v0, self.t0, us[0])
        check_constraints(self.model, params, q0, v0, self.t0, us[0])
        return params, q0, v0, p0, us, num_steps

    def simulate(
        self,
        params: Params,
        q0: StateVector,
        v0: StateVector | None = None,
        num_steps: int = 100,
        inputs: NodeInputs = None,
        *,
        p0: StateVector | None = None,
        throw: bool = True,
    ) -> Trajectory:
        """Integrate the initial-value problem from `(q0, v0)` or `(q0, p0)`.

        **Arguments:**
        - `params`: `{name: array}`.
        - `q0`: initial positions `(n,)`; `v0`: initial velocities `(n,)` (turned into `p_0`
          by the continuous Legendre transform), or keyword `p0`: initial momenta.
        - `num_steps`: `N`.
        - `inputs`: node-sampled inputs `(N+1, m)` or a callable `u(t)` (see `node_inputs`).
        - `throw`: on a failed step raise `ConvergenceError` naming the step and the cause (a
          runtime error with the same cause under `jit`); with `False`, read `.result`.

        **Returns:** a `Trajectory` with `q`, `p` of shape `(N+1, n)`, `result` and `stats`.
        """
        params, q0, v0, p0, us, num_steps = self.prepare(params, q0, v0, p0, num_steps, inputs)
        traj = _simulate_jit(self, params, q0, v0, p0, us)
        return check_solution(traj, traj.result, traj.stats, what=f"simulate ({self.describe()})", throw=throw,
                              context=lambda: self.diagnose_step_size(params, q0, us))

    def final_state(self, params: Params, q0: StateVector, v0: StateVector | None = None, num_steps: int = 100,
                    inputs: NodeInputs = None, *, p0: StateVector | None = None, throw: bool = True) -> FinalState:
        """Like `simulate` but keeps only the final node (O(1) memory in N).

        **Returns:** a `FinalState` (`q`, `p`, `result`, `stats`); it unpacks as `q_N, p_N`.
        """
        params, q0, v0, p0, us, num_steps = self.prepare(params, q0, v0, p0, num_steps, inputs)
        final = _final_state_jit(self, params, q0, v0, p0, us)

        def locate():  # only on an eager failure of the explicit path: re-run storing the nodes
            traj = _simulate_jit(self, params, q0, v0, p0, us)
            first = int(np.asarray(traj.stats.first_failed))
            return f" at step {first}" if first >= 0 else ""

        return check_solution(final, final.result, final.stats, what=f"final_state ({self.describe()})",
                              throw=throw, locate=locate, context=lambda: self.diagnose_step_size(params, q0, us))

    # ------------------------------------------------------------ boundary value
    def solve_bvp(
        self,
        params: Params,
        q_start: StateVector,
        q_end: StateVector,
        num_steps: int = 100,
        inputs: NodeInputs = None,
        *,
        cost: Callable | None = None,
        beta: Number = 0.0,
        q_guess: Real[ArrayLike, "..."] | None = None,
        throw: bool = True,
        **solver_options,
    ) -> Trajectory:
        """Two-point boundary-value solve: the stationary discrete trajectory from `q_start`
        to `q_end` (optionally nudged by `beta · Σ_k cost(k, q_k)`). See `lep.solve_bvp`."""
        return _bvp.solve_bvp(
            self, params, q_start, q_end, num_steps, inputs,
            cost=cost, beta=beta, q_guess=q_guess, throw=throw, **solver_options,
        )


class _ActionGradient:
    """The action's gradients summed along a rollout (`rollout(action_gradient=...)`).

    Fused, for the explicit step (trapezoid rule, separable L): `∂_θL_d(q_a, q_b) = h ∂_θ(½vᵀMv) −
    h/2 [∂_θV(q_a) + ∂_θV(q_b)]`, so the run's sum is `Σ_k −h w_k ∂_θV(q_k) + Σ_j h ∂_θ(½v_jᵀMv_j)`
    with `w = ½` at the two end nodes and 1 between. The step that lands on node k gets both its
    terms from its own force evaluation, as `−h w_k ∂_θ[V(q_k) − ½vᵀMv / w_k]` (one reverse pass,
    `StormerVerlet.action_step`). Likewise `∂_{u_k} = −h w_k ∂_uV(q_k)`. Otherwise: one reverse
    pass of `L_d` (minus `λ_a·φ(q_a)` with constraints) per step.

    The sums stay shaped like params: one flat vector instead saves kernels when XLA runs the
    loop op by op, but when XLA compiles the whole loop into one kernel (loops touching under
    `xla_cpu_small_while_loop_byte_threshold` bytes per iteration) its concatenation cost 1.6–3×
    (measured, docs/benchmarks.md)."""

    def __init__(self, integ, params, num_steps, with_params: bool, with_inputs: bool):
        self.integ, self.params, self.num_steps = integ, params, num_steps
        self.with_params, self.with_inputs = with_params, with_inputs
        self.fused = isinstance(integ.stepper, StormerVerlet)
        self.first_inputs = None  # ∂_uV at node 0 (fused path), set by `init`

    def _weight(self, j, dtype):
        # Node j + 1 closes one interval and opens the next, except the last node (weight ½).
        return jnp.where(j == self.num_steps - 1, 0.5, 1.0).astype(jnp.finfo(dtype).dtype)

    def init(self, q0, node0, aux0):
        """`(aux0, carry0)`: the stepper's first auxiliary value and the accumulator."""
        if not self.fused:
            zeros = jax.tree_util.tree_map(lambda x: jnp.zeros(jnp.shape(x), q0.dtype), self.params)
            return aux0, zeros if self.with_params else None
        # Node 0's force comes with its θ- and u-derivatives (one pass replaces the stepper's init).
        force, grad_params, self.first_inputs = self.integ.stepper.action_derivatives(self.params, q0, node0)
        half = -0.5 * self.integ.dt
        return force, (jax.tree_util.tree_map(lambda g: half * g, grad_params) if self.with_params else None)

    def step_args(self, j, dtype):
        """The fused step's extra arguments at step j (see `StormerVerlet.action_step`)."""
        return (1.0 / self._weight(j, dtype),)

    def step(self, j, carry, pieces):
        """`(carry, per-step output)` after step j."""
        if not self.fused:
            return self._generic_step(carry, *pieces)
        grad_params, grad_u = pieces
        scale = -self.integ.dt * self._weight(j, grad_u.dtype)
        if self.with_params:
            carry = jax.tree_util.tree_map(lambda c, g: c + scale.astype(g.dtype) * g, carry, grad_params)
        return carry, (scale.astype(grad_u.dtype) * grad_u if self.with_inputs else None)

    def _generic_step(self, carry, q_a, q_b, node_a, node_b, multipliers):
        model, disc = self.integ.model, self.integ.discrete

        def interval_action(prm, node_a, node_b):
            value = disc(prm, q_a, q_b, node_a, node_b)
            if multipliers is not None:  # the augmented action of a constrained step
                value = value - jnp.dot(multipliers, model.constraint(q_a, node_a[0], prm, node_a[1]))
            return value

        argnums = (0,) * self.with_params + (1, 2) * self.with_inputs
        grads = list(autodiff.grad(interval_action, argnums)(self.params, node_a, node_b))
        if self.with_params:
            carry = jax.tree_util.tree_map(jnp.add, carry, grads.pop(0))
        return carry, ((grads[0][1], grads[1][1]) if self.with_inputs else None)

    def finish(self, carry, outputs):
        """`(∂_θ, ∂_u)` of the run's action (`None` where not asked for)."""
        grad_inputs = None
        if self.with_inputs and self.fused:
            first = (-0.5 * self.integ.dt) * self.first_inputs
            grad_inputs = jnp.concatenate([first[None], outputs], axis=0)
        elif self.with_inputs:  # step j touches nodes j (its a end) and j + 1 (its b end)
            at_a, at_b = outputs
            grad_inputs = jnp.zeros((self.num_steps + 1, at_a.shape[1]), at_a.dtype).at[:-1].add(at_a).at[1:].add(at_b)
        return carry, grad_inputs


def as_arrays(tree):
    """Convert the leaves of a parameter pytree to JAX arrays (Python floats would otherwise be
    static under `eqx.filter_jit` and trigger a recompilation for every new value)."""
    return jax.tree_util.tree_map(jnp.asarray, tree)


def initial_rollout(integ: VariationalIntegrator, params, q0, v0, p0, us, save_trajectory: bool) -> tuple:
    """`(times, p0, Rollout)` of the free run from `(q0, v0)` or `(q0, p0)` (traceable)."""
    times = integ.node_times(us.shape[0] - 1, q0.dtype)
    if p0 is None:
        p0 = integ.initial_momentum(params, q0, v0, times[0], us[0])
    return times, p0, integ.rollout(params, q0, p0, times, us, save_trajectory=save_trajectory, v0_hint=v0,
                                    monitor_energy=True)


# Compiled once per (integrator, shapes): eager calls in a Python loop do not re-trace the scan.
@eqx.filter_jit
def _simulate_jit(integ, params, q0, v0, p0, us) -> Trajectory:
    times, p0, run = initial_rollout(integ, params, q0, v0, p0, us, True)
    q = jnp.concatenate([q0[None], run.qs], axis=0)
    p = jnp.concatenate([p0[None], run.ps], axis=0)
    return Trajectory(times, q, p, run.result, run.stats)


@eqx.filter_jit
def _highest_frequency_jit(model, q0, t0, params, u0):
    return model.highest_frequency(q0, t0, params, u0)


@eqx.filter_jit
def _final_state_jit(integ, params, q0, v0, p0, us) -> FinalState:
    _, _, run = initial_rollout(integ, params, q0, v0, p0, us, False)
    return FinalState(run.q, run.p, run.result, run.stats)

