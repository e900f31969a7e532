"""The failure contract: result codes, solve statistics, solution objects, and how failures surface.

Every solver and estimator returns its value together with a `result` (an `RESULTS` item) and
`stats` (a `SolveStats`), computed inside the compiled program without raising. Then:

- `throw=False`: the caller reads `result` / `stats` (nothing is raised);
- `throw=True` and a concrete (eager) result: a `ConvergenceError` naming the operation, the
  step or node and the likely cause;
- `throw=True` inside `jit` / `vmap` / `grad`: the same message through `eqx.branched_error_if`
  (the location is then only in `stats`, which a traced error message cannot read).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .errors import ConvergenceError

__all__ = ["RESULTS", "FinalState", "GradientResult", "SolveStats", "Trajectory", "check_solution", "first_failure",
           "result_from_code"]


class RESULTS(eqx.Enumeration):
    """Why a solve stopped. `RESULTS.successful` is the only success."""

    successful = ""
    nonfinite_state = (
        "the state became non-finite: an explicit step is unstable when dt exceeds ~2/ω_max "
        "(ω_max the highest linearised frequency), or the initial state, parameters or inputs "
        "contain NaN/inf"
    )
    max_steps_reached = (
        "Newton did not converge within its maximum number of iterations: the time step is too "
        "large for the nonlinearity, or the initial guess is far from the solution"
    )
    newton_nonfinite = (
        "Newton produced non-finite values: NaN/inf in the initial state, parameters or inputs, "
        "or the iteration blew up (try a smaller time step)"
    )
    singular = (
        "the Newton system is singular: a degenerate mass matrix, or (two-point problems) a "
        "conjugate point of the start node"
    )
    diverged = "Newton diverged (its steps grew): the time step is too large for the nonlinearity"
    energy_drift = (
        "the energy of this conservative system drifted by more than the integrator's energy_tolerance: "
        "the time step is past the stability limit of an explicit step (ω_max·dt ≥ 2) or too large for an "
        "implicit one (a spurious solution)"
    )
    ill_conditioned = (
        "the two-point problem is (nearly) singular: the end node is at or near a conjugate point of the "
        "start node (the Jacobian's condition number, relative to a free particle's at the same resolution, "
        "exceeds the limit), so the solution and its gradients are unreliable; change the horizon or the "
        "time step"
    )
    saddle_point = (
        "the equilibrium is a saddle point or a maximum of the energy, not a minimum (the Hessian on the free "
        "states has a negative eigenvalue): start the solve elsewhere, or pass expect='stationary' if any "
        "stationary point will do"
    )
    equilibrium_max_steps = (
        "the equilibrium solve did not converge within its maximum number of iterations: raise max_steps, start "
        "closer to the equilibrium, or check that the energy is bounded below"
    )
    equilibrium_line_search = (
        "the equilibrium solve's line search found no decrease of the energy: the energy is unbounded below along "
        "the search direction, non-smooth there, or dominated by round-off"
    )
    ode_solver_failed = (
        "the continuous (diffrax) solve of the Euler–Lagrange equations failed: it reached its maximum "
        "number of steps or went non-finite"
    )


class SolveStats(eqx.Module):
    """Statistics of a solve (each field a scalar, or batched under `vmap`).

    **Fields:**
    - `num_failures`: steps (initial-value) or solves (two-point) that failed.
    - `first_failed`: the first failed step (initial-value; step `k` goes from node `k` to
      `k+1`) or the node with the largest residual of a failed two-point solve; −1 if none.
    - `newton_iterations_mean`, `newton_iterations_max`: Newton iterations per step (0 on the
      explicit path); for a two-point solve, the iterations of the whole-trajectory Newton.
    - `max_residual`: the worst final residual (max-norm) over the steps or nodes.
    - `condition`: two-point solves: the 1-norm condition-number estimate of the final
      Jacobian (NaN elsewhere).
    - `energy_error`: runs of a conservative system: `max_k |E_k − E_0|` over the monitored
      nodes, relative to the energy's scale (NaN when not monitored).
    """

    num_failures: Int[Array, ""]
    first_failed: Int[Array, ""]
    newton_iterations_mean: Float[Array, ""]
    newton_iterations_max: Int[Array, ""]
    max_residual: Float[Array, ""]
    condition: Float[Array, ""]
    energy_error: Float[Array, ""]

    @staticmethod
    def empty(dtype=float) -> "SolveStats":
        """Statistics of a solve that did nothing (and so cannot have failed)."""
        zero = jnp.zeros((), jnp.int32)
        nan = jnp.full((), jnp.nan, dtype)
        return SolveStats(zero, -jnp.ones((), jnp.int32), jnp.zeros((), dtype), zero, jnp.zeros((), dtype), nan, nan)


class Trajectory(eqx.Module):
    """A discrete trajectory on the nodes `t_k = t_0 + k h`, `k = 0..N`.

    **Fields:**
    - `t`: node times, shape `(N+1,)`.
    - `q`: positions, shape `(N+1, n)`.
    - `p`: discrete momenta, shape `(N+1, n)` (`p⁺_k = p⁻_k` on a free trajectory; at the
      ends, `p_0` is the initial momentum and `p_N = p⁺_N`).
    - `result`: an `RESULTS` item; `stats`: a `SolveStats`.
    """

    t: Float[Array, " N1"]
    q: Float[Array, "N1 n"]
    p: Float[Array, "N1 n"]
    result: RESULTS
    stats: SolveStats

    @property
    def converged(self) -> Bool[Array, ""]:
        """True when the solve succeeded."""
        return self.result == RESULTS.successful

    @property
    def num_failures(self) -> Int[Array, ""]:
        """Number of failed steps (or solves); see `stats`."""
        return self.stats.num_failures

    @property
    def first_failed_step(self) -> Int[Array, ""]:
        """`stats.first_failed`: the first failed step (or worst node), −1 when none."""
        return self.stats.first_failed


class FinalState(eqx.Module):
    """The final node of an initial-value run (nothing else stored).

    **Fields:** `q` `(n,)`, `p` `(n,)`, `result`, `stats`. Unpacks as `q_N, p_N = final`.
    """

    q: Float[Array, " n"]
    p: Float[Array, " n"]
    result: RESULTS
    stats: SolveStats

    def __iter__(self):
        return iter((self.q, self.p))


class GradientResult(eqx.Module):
    """What an estimator returns when asked for more than the parameter gradient.

    **Fields** (`None` where not applicable):
    - `params`: `dℒ/dθ`, a dict shaped like `params`.
    - `loss`: `ℒ` on the free trajectory.
    - `q0`: `dℒ/dq_0` (with `v0` or `p0` held fixed, whichever was given), shape `(n,)`.
    - `v0` / `p0`: gradient w.r.t. the given initial velocity / momentum, shape `(n,)`.
    - `inputs`: `dℒ/du_k` for the node-sampled inputs, shape `(N+1, m)`.
    - `result`, `stats`: how the solves behind the estimate went (the first failed pass's
      result; statistics merged over the passes).
    """

    params: Any
    loss: Any = None
    q0: Any = None
    v0: Any = None
    p0: Any = None
    inputs: Any = None
    result: Any = None
    stats: Any = None


def result_from_code(code) -> RESULTS:
    """The `RESULTS` item whose value is the integer `code` (traceable): how solvers that carry
    an item's `_value` through a `lax.custom_root` or `while_loop` turn it back into an item."""
    out = RESULTS.successful
    for item in RESULTS._name_to_item.values():
        out = RESULTS.where(code == item._value, item, out)
    return out


def first_failure(result: RESULTS, *others: RESULTS) -> RESULTS:
    """The first non-successful result of `result, *others` (elementwise), else success."""
    for other in others:
        result = RESULTS.where(result == RESULTS.successful, other, result)
    return result


def _traced(*values) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values))


def _message(what: str, code: int, location: str, stats_text: str) -> str:
    cause = RESULTS._index_to_message[code] if 0 <= code < len(RESULTS) else "unknown failure"
    return (f"{what} failed{location}: {cause}.{stats_text} Pass throw=False to get the partial "
            "result and read its `.result` and `.stats`.")


def _stats_text(stats: SolveStats, index) -> str:
    def value(field):
        return np.asarray(getattr(stats, field)).reshape(-1)[index]

    parts = []
    if float(value("newton_iterations_mean")) != 0.0:
        parts.append(f"Newton iterations per step: mean {float(value('newton_iterations_mean')):.1f}, max "
                     f"{int(value('newton_iterations_max'))}; worst residual {float(value('max_residual')):.2e}")
    if np.isfinite(value("condition")):
        parts.append(f"condition estimate {float(value('condition')):.2e}")
    if np.isfinite(value("energy_error")):
        parts.append(f"relative energy error {float(value('energy_error')):.2e}")
    return f" ({'; '.join(parts)})" if parts else ""


def check_solution(value, result: RESULTS, stats: SolveStats | None, *, what: str, unit: str = "step",
                   throw: bool = True, locate=None, context=None):
    """Apply the failure contract (module docstring) to `value` and return it.

    **Arguments:**
    - `value`: what the caller returns (any pytree).
    - `result`, `stats`: from the solve (possibly batched).
    - `what`: the operation, e.g. `"simulate (midpoint rule, Newton)"`.
    - `unit`: `"step"` or `"node"`, how `stats.first_failed` is reported.
    - `throw`: apply the contract; with False, `value` is returned untouched.
    - `locate`: optional callable returning a location text (e.g. from a re-run that stores the
      trajectory) when `stats.first_failed` is −1; called only on an eager failure.
    - `context`: optional callable returning text appended to the location (e.g. which pass
      of an estimator failed); called only on an eager failure.
    """
    if not throw:
        return value
    code = result._value
    if _traced(code, stats):
        msgs = [_message(what, i, f" ({unit} in `.stats.first_failed`)", "") for i in range(len(RESULTS))]
        code = jnp.asarray(code)
        return eqx.branched_error_if(value, jnp.any(code != 0), jnp.max(code), msgs)
    codes = np.asarray(code).reshape(-1)
    bad = np.flatnonzero(codes != 0)
    if bad.size == 0:
        return value
    index = int(bad[0])
    batch = f" (batch element {index} of {codes.size})" if codes.size > 1 else ""
    location = ""
    stats_text = ""
    if stats is not None:
        first = int(np.asarray(stats.first_failed).reshape(-1)[index])
        if first >= 0:
            total = int(np.asarray(stats.num_failures).reshape(-1)[index])
            more = f", {total} failed {unit}s in all" if unit == "step" and total > 1 else ""
            location = f" at {unit} {first}{more}"
        stats_text = _stats_text(stats, index)
    if not location and locate is not None:
        location = locate()
    if context is not None:
        location += context()
    raise ConvergenceError(_message(what, int(codes[index]), location + batch, stats_text))
