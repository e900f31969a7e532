"""Initial-value stepping of variational integrators, and the `Trajectory` they produce.

A step maps `(q_k, p_k)` to `(q_{k+1}, p_{k+1})` by solving the discrete Legendre transform
`p_k = p⁻(q_k, q_{k+1})` for `q_{k+1}` (Newton, `newton.newton_root`) and reading
`p_{k+1} = p⁺(q_k, q_{k+1})`. When `L = ½vᵀMv − V(q, t)` with constant `M` and the trapezoid
rule, the step is Störmer–Verlet and explicit (no Newton).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .discrete import DiscreteLagrangian, Node, make_rule, newton_tolerances
from .errors import ConvergenceError
from .model import LagrangianModel, Params
from .newton import newton_root


class Trajectory(eqx.Module):
    """A discrete trajectory on the nodes `t_k = t_0 + k h`, `k = 0..N`.

    **Fields:**
    - `t`: node times, shape `(N+1,)`.
    - `q`: positions, shape `(N+1, n)`.
    - `p`: discrete momenta, shape `(N+1, n)` (`p⁺_k = p⁻_k` on a free trajectory; at the
      ends, `p_0` is the initial momentum and `p_N = p⁺_N`).
    - `num_failures`: number of steps (or BVP solves) that did not converge, shape `()`.
    - `first_failed_step`: index of the first failed step, `-1` when all converged.
    """

    t: Float[Array, " N1"]
    q: Float[Array, "N1 n"]
    p: Float[Array, "N1 n"]
    num_failures: Int[Array, ""]
    first_failed_step: Int[Array, ""]

    @property
    def converged(self) -> Bool[Array, ""]:
        """True when every step converged."""
        return self.num_failures == 0


class SolveStatus(eqx.Module):
    """Running record of Newton failures during a rollout."""

    num_failures: Int[Array, ""]
    first_failed_step: Int[Array, ""]

    @staticmethod
    def fresh() -> "SolveStatus":
        return SolveStatus(jnp.zeros((), jnp.int32), -jnp.ones((), jnp.int32))

    def record(self, step: Int[Array, ""], ok: Bool[Array, ""]) -> "SolveStatus":
        failed = jnp.logical_not(ok)
        first = jnp.where(failed & (self.first_failed_step < 0), step, self.first_failed_step)
        return SolveStatus(self.num_failures + failed.astype(jnp.int32), first.astype(jnp.int32))


def check_status(value, status: SolveStatus, what: str, throw: bool):
    """Raise `ConvergenceError` (eagerly) or attach a runtime error (under `jit`) on failure.

    Returns `value` (with the runtime check attached when traced).
    """
    if not throw:
        return value
    failures = status.num_failures
    if isinstance(failures, jax.core.Tracer):
        return eqx.error_if(
            value, failures > 0,
            f"{what}: a Newton solve failed to converge (or produced non-finite values). "
            "Call with throw=False and read `first_failed_step` to locate it; try a smaller "
            "dt or a better initial guess.",
        )
    failures = np.asarray(failures)
    if np.any(failures > 0):
        first = np.asarray(status.first_failed_step)
        first_idx = int(first.reshape(-1)[np.argmax(failures.reshape(-1) > 0)])
        where = (
            f"at step {first_idx} ({int(failures.max())} failed step(s) in all)"
            if first_idx >= 0
            else "(the explicit path checks values once, at the end: run simulate(..., "
            "throw=False) and read first_failed_step to locate the step)"
        )
        raise ConvergenceError(
            f"{what}: Newton failed to converge (or produced non-finite values) {where}. Try a "
            "smaller dt or a better initial guess; pass throw=False to get the partial trajectory."
        )
    return value


class VariationalIntegrator(eqx.Module):
    """A variational integrator for a `LagrangianModel`.

    **Arguments:**
    - `model`: the compiled Lagrangian.
    - `dt`: step `h`.
    - `rule`: `"midpoint"`, `"trapezoid"` or `"galerkin"` (see `discrete.make_rule`).
    - `degree`: polynomial degree of the Galerkin rule (order `2·degree`; default 2 → order 4).
    - `t0`: time of node 0.
    - `explicit`: `"auto"` (default) uses the explicit Störmer–Verlet step when the model is
      separable with constant mass, has no non-conservative force, and the rule is trapezoid;
      `False` forces the Newton path (useful for testing); `True` requires the fast path.
    - `newton_rtol`, `newton_atol`, `max_newton_steps`: per-step Newton settings (`None`:
      from the dtype).
    """

    model: LagrangianModel
    discrete: DiscreteLagrangian
    dt: float
    t0: float
    explicit: bool = eqx.field(static=True)
    newton_rtol: float | None = eqx.field(static=True)
    newton_atol: float | None = eqx.field(static=True)
    max_newton_steps: int = eqx.field(static=True)

    def __init__(
        self,
        model: LagrangianModel,
        dt: float,
        rule: str = "midpoint",
        *,
        degree: int = 2,
        t0: float = 0.0,
        explicit: bool | str = "auto",
        newton_rtol: float | None = None,
        newton_atol: float | None = None,
        max_newton_steps: int = 20,
    ):
        if not (np.ndim(dt) == 0 and float(dt) > 0 and np.isfinite(float(dt))):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}.")
        quad = make_rule(rule, degree)
        can_be_explicit = (
            model.separable is not None and model.force_fn is None and quad.name in ("trapezoid", "galerkin1")
        )
        if explicit == "auto":
            explicit = can_be_explicit
        elif explicit is True and not can_be_explicit:
            raise ValueError(
                "explicit=True needs L = ½vᵀMv − V(q, t) with constant M, no non-conservative "
                f"force, and the trapezoid rule (model separable: {model.separable is not None}, "
                f"force: {model.force_fn is not None}, rule: {quad.name})."
            )
        self.model = model
        self.dt = dt
        self.t0 = t0
        self.discrete = DiscreteLagrangian(model, dt, quad)
        self.explicit = bool(explicit)
        self.newton_rtol = newton_rtol
        self.newton_atol = newton_atol
        self.max_newton_steps = max_newton_steps

    # ----------------------------------------------------------------- nodes
    def node_times(self, num_steps: int, dtype=None) -> Float[Array, " N1"]:
        """Node times `t_0 + k h`, shape `(N+1,)`."""
        return self.t0 + self.dt * jnp.arange(num_steps + 1, dtype=dtype)

    def node_inputs(self, num_steps: int, inputs=None, dtype=None) -> Float[Array, "N1 m"]:
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
        inputs = jnp.asarray(inputs, dtype=dtype)
        if inputs.ndim == 1 and m == 1:
            inputs = inputs[:, None]
        if inputs.shape != (num_steps + 1, m):
            raise ValueError(
                f"inputs must have shape (num_steps + 1, {m}) = ({num_steps + 1}, {m}) for inputs "
                f"{self.model.input_names}, got {inputs.shape}."
            )
        return inputs

    # -------------------------------------------------------- initial data
    def initial_momentum(self, params: Params, q0, v0, t0=None, u0=None) -> Float[Array, " n"]:
        """`p_0 = ∂L/∂v(q_0, v_0, t_0)`: the continuous Legendre transform of a given velocity."""
        t0 = self.t0 if t0 is None else t0
        return self.model.momentum(q0, v0, t0, params, u0)

    def velocity_estimate(self, params: Params, q, p, t, u) -> Float[Array, " n"]:
        """Velocity from momentum, exact when L is quadratic in v (used only as a predictor)."""
        if self.model.separable is not None:
            return self.model.separable.solve_mass(params, p)
        zero = jnp.zeros_like(q)
        mass = self.model.mass_matrix(q, zero, t, params, u)
        return jnp.linalg.solve(mass, p - self.model.momentum(q, zero, t, params, u))

    # -------------------------------------------------------------- one step
    def step(self, params: Params, q, p, node_a: Node, node_b: Node, q_guess=None):
        """One step `(q_a, p_a) → (q_b, p_b)` across the interval from `node_a` to `node_b`.

        **Arguments:**
        - `q`, `p`: position and momentum at node a, shape `(n,)`.
        - `node_a`, `node_b`: `(t, u)` at the two ends (feed them reversed to run backwards).
        - `q_guess`: predictor for `q_b` (Newton path); default `q_a`.

        **Returns:** `(q_b, p_b, ok)` with `ok` a boolean scalar (converged and finite).
        """
        if self.explicit:
            return self._explicit_step(params, q, p, node_a, node_b)
        return self._newton_step(params, q, p, node_a, node_b, q if q_guess is None else q_guess)

    def _explicit_step(self, params, q, p, node_a, node_b):
        grad_a = self._potential_gradient(params, q, node_a)
        q_b, p_b, _, ok = self._explicit_step_from_gradient(params, q, p, grad_a, node_a, node_b)
        return q_b, p_b, ok

    def _potential_gradient(self, params, q, node):
        """`∇V(q, t, u)` at one node (explicit path only)."""
        return jax.grad(self.model.separable.potential_fn)(q, node[0], params, node[1])

    def _explicit_step_from_gradient(self, params, q, p, grad_a, node_a, node_b):
        # Störmer–Verlet from the trapezoid rule: M v = p − h/2 ∇V(q_a), q_b = q_a + h v,
        # p_b = M v − h/2 ∇V(q_b). Potentials are evaluated at each end's own time and input.
        # `grad_a = ∇V(q_a, node_a)` is passed in so that a rollout evaluates ∇V once per step
        # (node b of one step is node a of the next; a momentum kick does not change it).
        # Returns `(q_b, p_b, grad_b, ok)`.
        sep = self.model.separable
        h = self.dt
        velocity = sep.solve_mass(params, p - 0.5 * h * grad_a)
        q_b = q + h * velocity
        grad_b = self._potential_gradient(params, q_b, node_b)
        p_b = sep.apply_mass(params, velocity) - 0.5 * h * grad_b
        ok = jnp.all(jnp.isfinite(q_b)) & jnp.all(jnp.isfinite(p_b))
        return q_b, p_b, grad_b, ok

    def _newton_step(self, params, q, p, node_a, node_b, q_guess):
        disc = self.discrete
        rtol, atol = newton_tolerances(q.dtype)
        rtol = rtol if self.newton_rtol is None else self.newton_rtol
        atol = atol if self.newton_atol is None else self.newton_atol

        def equations(z):
            internal, q_b = z
            res = disc.control_residual(params, q, internal, q_b, node_a, node_b)
            # Row 0: p_a + ∂_a S + f_a = 0 (discrete Legendre transform); middle rows: stages.
            return res[:-1].at[0].add(p)

        guess = (disc.initial_internal(q, q_guess), q_guess)
        (internal, q_b), converged = newton_root(
            equations, guess, rtol=rtol, atol=atol, max_steps=self.max_newton_steps
        )
        p_b = disc.control_residual(params, q, internal, q_b, node_a, node_b)[-1]
        ok = converged & jnp.all(jnp.isfinite(q_b)) & jnp.all(jnp.isfinite(p_b))
        return q_b, p_b, ok

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
        v0_hint=None,
    ):
        """Step through the nodes with `lax.scan`; the engine behind `simulate` and the echo.

        **Arguments:**
        - `q0`, `p0`: initial position and momentum, shape `(n,)`.
        - `times`, `inputs`: node data in the order the rollout visits them, shapes `(N+1,)`
          and `(N+1, m)` (reverse them to run the echo).
        - `kick(j, q_{j+1}) -> (n,)`: added to `p_{j+1}` after step j (nudging).
        - `accumulate(j, q_j, q_{j+1}, node_j, node_{j+1}) -> pytree`: summed over steps on the
          fly (e.g. `∂_θ L_d`), starting from `accumulator_init`.
        - `save_trajectory`: keep all nodes (`True`) or only the final one (O(1) memory in N).
        - `v0_hint`: initial velocity for the first predictor (default from `p0`).

        **Returns:** `(q_N, p_N, accumulated, status, qs, ps)`; `qs`, `ps` of shape `(N, n)`
        (nodes 1..N) when `save_trajectory`, else `None`.
        """
        num_steps = times.shape[0] - 1
        h = self.dt
        if self.explicit:
            # Explicit path: the carry slot holds ∇V at the current node (one gradient per step).
            aux0 = self._potential_gradient(params, q0, (times[0], inputs[0]))
        else:
            # Newton path: the carry slot holds the previous node, for a linear predictor.
            if v0_hint is None:
                v0_hint = self.velocity_estimate(params, q0, p0, times[0], inputs[0])
            # Backwards in time the predictor must extrapolate along the rollout's own direction.
            aux0 = q0 - h * v0_hint

        def body(carry, _):
            j, q, p, aux, acc, status = carry
            node_a = (times[j], inputs[j])
            node_b = (times[j + 1], inputs[j + 1])
            if self.explicit:
                q_b, p_b, aux_b, ok = self._explicit_step_from_gradient(params, q, p, aux, node_a, node_b)
            else:
                q_b, p_b, ok = self._newton_step(params, q, p, node_a, node_b, 2.0 * q - aux)
                aux_b = q
            if kick is not None:
                p_b = p_b + kick(j, q_b)
            if accumulate is not None:
                acc = jax.tree_util.tree_map(jnp.add, acc, accumulate(j, q, q_b, node_a, node_b))
            if not self.explicit:
                status = status.record(j, ok)
            out = (q_b, p_b) if save_trajectory else None
            return (j + 1, q_b, p_b, aux_b, acc, status), out

        # The step index is carried (not scanned over) so that memory stays O(1) in N.
        carry0 = (jnp.zeros((), jnp.int32), q0, p0, aux0, accumulator_init, SolveStatus.fresh())
        (_, q_n, p_n, _, acc, status), outs = jax.lax.scan(body, carry0, None, length=num_steps)
        qs, ps = outs if save_trajectory else (None, None)
        if self.explicit:
            status = _explicit_status(q_n, p_n, qs, ps)
        return q_n, p_n, acc, status, qs, ps

    # ------------------------------------------------------------ simulate
    def simulate(
        self,
        params: Params,
        q0,
        v0=None,
        num_steps: int = 100,
        inputs=None,
        *,
        p0=None,
        throw: bool = True,
    ) -> Trajectory:
        """Integrate the initial-value problem from `(q0, v0)` or `(q0, p0)`.

        **Arguments:**
        - `params`: `{name: array}`.
        - `q0`: initial positions `(n,)`; `v0`: initial velocities `(n,)` (turned into `p_0`
          by the continuous Legendre transform), or keyword `p0`: initial momenta.
        - `num_steps`: `N`.
        - `inputs`: node-sampled inputs `(N+1, m)` or a callable `u(t)` (see `node_inputs`).
        - `throw`: raise `ConvergenceError` (or a runtime error under `jit`) if a step fails.

        **Returns:** a `Trajectory` with `q`, `p` of shape `(N+1, n)`.
        """
        q0, v0, p0 = self._initial_state(params, q0, v0, p0, num_steps, inputs)
        us = self.node_inputs(num_steps, inputs, q0.dtype)
        traj = _simulate_jit(self, as_arrays(params), q0, v0, p0, us)
        status = SolveStatus(traj.num_failures, traj.first_failed_step)
        return check_status(traj, status, "simulate", throw)

    def final_state(self, params: Params, q0, v0=None, num_steps: int = 100, inputs=None, *, p0=None, throw=True):
        """Like `simulate` but keeps only the final node: returns `(q_N, p_N)` (O(1) memory)."""
        q0, v0, p0 = self._initial_state(params, q0, v0, p0, num_steps, inputs)
        us = self.node_inputs(num_steps, inputs, q0.dtype)
        params = as_arrays(params)
        q_n, p_n, status = _final_state_jit(self, params, q0, v0, p0, us)
        if throw and self.explicit and not isinstance(status.num_failures, jax.core.Tracer):
            if int(status.num_failures) > 0:  # locate the first bad step (only on failure)
                traj = _simulate_jit(self, params, q0, v0, p0, us)
                status = SolveStatus(traj.num_failures, traj.first_failed_step)
        return check_status((q_n, p_n), status, "final_state", throw)

    def _initial_state(self, params, q0, v0, p0, num_steps, inputs):
        n = self.model.num_dof
        if (v0 is None) == (p0 is None):
            raise ValueError("Give exactly one of v0 (initial velocity) or p0 (initial momentum).")
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
        missing = set(self.model.parameter_shapes) - set(params)
        if missing:
            raise ValueError(f"params is missing parameter(s): {', '.join(sorted(missing))}.")
        q0 = jnp.asarray(q0)
        if not jnp.issubdtype(q0.dtype, jnp.floating):
            q0 = q0.astype(jnp.result_type(float))
        if q0.shape != (n,):
            raise ValueError(f"q0 must have shape ({n},) for coordinates {self.model.coordinate_names}, got {q0.shape}.")
        given = v0 if p0 is None else p0
        given = jnp.asarray(given, dtype=q0.dtype)
        if given.shape != (n,):
            which = "v0" if p0 is None else "p0"
            raise ValueError(f"{which} must have shape ({n},), got {given.shape}.")
        if p0 is None:
            return q0, given, None
        return q0, None, given

    # ------------------------------------------------------------ boundary value
    def solve_bvp(
        self,
        params: Params,
        q_start,
        q_end,
        num_steps: int = 100,
        inputs=None,
        *,
        cost=None,
        beta=0.0,
        q_guess=None,
        throw: bool = True,
        **solver_options,
    ) -> Trajectory:
        """Two-point boundary-value solve: the stationary discrete trajectory from `q_start`
        to `q_end` (optionally nudged by `beta · Σ_k cost(k, q_k)`). See `bvp.solve_bvp`."""
        from .bvp import solve_bvp

        return solve_bvp(
            self, params, q_start, q_end, num_steps, inputs,
            cost=cost, beta=beta, q_guess=q_guess, throw=throw, **solver_options,
        )


def _explicit_status(q_n, p_n, qs, ps) -> SolveStatus:
    """Status of an explicit rollout, from its values after the scan.

    An explicit step cannot fail to converge; it fails by producing non-finite values, which
    then propagate to the end. Checking once after the scan (per node when the trajectory is
    stored, else the final node) keeps the step loop as lean as a hand-written leapfrog: a
    per-step check costs about as much as the step itself on small systems. Without a stored
    trajectory the first bad step is not located (`first_failed_step = -1`).
    """
    if qs is not None:
        bad = jnp.logical_not(jnp.all(jnp.isfinite(qs), axis=1) & jnp.all(jnp.isfinite(ps), axis=1))
        first = jnp.where(jnp.any(bad), jnp.argmax(bad), -1)
        return SolveStatus(jnp.sum(bad).astype(jnp.int32), first.astype(jnp.int32))
    ok = jnp.all(jnp.isfinite(q_n)) & jnp.all(jnp.isfinite(p_n))
    return SolveStatus(jnp.logical_not(ok).astype(jnp.int32), -jnp.ones((), jnp.int32))


def as_arrays(tree):
    """Convert the leaves of a parameter pytree to JAX arrays (Python floats would otherwise be
    static under `eqx.filter_jit` and trigger a recompilation for every new value)."""
    return jax.tree_util.tree_map(jnp.asarray, tree)


def _initial_rollout(integ: VariationalIntegrator, params, q0, v0, p0, us, save_trajectory: bool):
    times = integ.node_times(us.shape[0] - 1, q0.dtype)
    if p0 is None:
        p0 = integ.initial_momentum(params, q0, v0, times[0], us[0])
    out = integ.rollout(params, q0, p0, times, us, save_trajectory=save_trajectory, v0_hint=v0)
    return times, p0, out


# Compiled once per (integrator, shapes): eager calls in a Python loop do not re-trace the scan.
@eqx.filter_jit
def _simulate_jit(integ, params, q0, v0, p0, us) -> Trajectory:
    times, p0, (_, _, _, status, qs, ps) = _initial_rollout(integ, params, q0, v0, p0, us, True)
    return Trajectory(
        times,
        jnp.concatenate([q0[None], qs], axis=0),
        jnp.concatenate([p0[None], ps], axis=0),
        status.num_failures,
        status.first_failed_step,
    )


@eqx.filter_jit
def _final_state_jit(integ, params, q0, v0, p0, us):
    _, _, (q_n, p_n, _, status, _, _) = _initial_rollout(integ, params, q0, v0, p0, us, False)
    return q_n, p_n, status
