"""`EquilibriumTask`: a learning problem on a system at static equilibrium, and its costs and plots.

The trainer talks to a task through `num_train`, the data and parameter fields and five methods
(`check_estimator`, `exact_reference`, `gradient`, `evaluate`, `energy_error`, plus
`plot_results`); `EquilibriumTask` implements them for an `EnergyModel`: a sample is an input
`x` plus what the cost needs, the free state is the equilibrium `s*(θ, x)`, the estimators are
static EqProp (`EquilibriumEqProp`, name `eqprop`) and implicit differentiation (`implicit`,
also accepted as `bptt`: `jax.grad` through the solver), the loss `C(s*)`.

The costs are equinox Modules (their data are pytree leaves, so they `vmap` over a batch) and
analytic in the state (holomorphic EqProp evaluates them at complex states).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Inexact, Int

from .._energy import EnergyModel
from .._equilibrium import equilibrium_state
from .._equilibrium_gradient import EquilibriumEqProp, EquilibriumProblem, implicit_gradient_result
from ..errors import ConfigError, EstimatorError
from ._task import Task

__all__ = ["CrossEntropyCost", "DistanceCost", "EquilibriumTask", "SquaredErrorCost", "plot_weight_histograms",
           "save_figure"]


def _as(value, s):
    return jnp.asarray(value).astype(s.dtype)


def log_sum_exp(z):
    """`log Σ exp(z)`, stable and analytic: the shift by the largest real part is a constant."""
    shift = jax.lax.stop_gradient(jnp.max(jnp.real(z))).astype(z.dtype)
    return jnp.log(jnp.sum(jnp.exp(z - shift))) + shift


class SquaredErrorCost(eqx.Module):
    """`C(s) = ½ Σ_i (s[index_i] − target_i)²` (analytic).

    **Fields:** `target (k,)`; `index`: static tuple of `k` state indices.
    """

    target: Float[Array, " k"]
    index: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, s: Inexact[Array, " n"]) -> Inexact[Array, ""]:
        d = s[np.asarray(self.index)] - _as(self.target, s)
        return 0.5 * jnp.sum(d * d)


class CrossEntropyCost(eqx.Module):
    """Softmax cross-entropy of the class scores `scale · (s[plus] − s[minus])` (or
    `scale · s[plus]` without `minus`) for the class `label` (analytic).

    **Fields:** `label ()`, `plus` and `minus` (static index tuples), `scale` (static).
    """

    label: Int[Array, ""]
    plus: tuple[int, ...] = eqx.field(static=True)
    minus: tuple[int, ...] | None = eqx.field(static=True, default=None)
    scale: float = eqx.field(static=True, default=1.0)

    def scores(self, s: Inexact[Array, " n"]) -> Inexact[Array, " C"]:
        """The class scores, shape `(C,)`."""
        z = s[np.asarray(self.plus)]
        if self.minus is not None:
            z = z - s[np.asarray(self.minus)]
        return self.scale * z

    def __call__(self, s: Inexact[Array, " n"]) -> Inexact[Array, ""]:
        z = self.scores(s)
        classes = jnp.arange(z.shape[0])
        picked = jnp.sum(jnp.where(classes == jnp.asarray(self.label).astype(classes.dtype), z, jnp.zeros_like(z)))
        return log_sum_exp(z) - picked


class DistanceCost(eqx.Module):
    """`C(s) = ½ (|x_b − x_a| − length)² / scale²` for one pair of nodes of a network in `dim`
    dimensions (the distance written as `sqrt(d·d)`: analytic).

    **Fields:** `length ()`; `pair`: static `(row a, row b)` of free nodes; `dim`, `scale` (static).
    """

    length: Float[Array, ""]
    pair: tuple[int, int] = eqx.field(static=True)
    dim: int = eqx.field(static=True, default=2)
    scale: float = eqx.field(static=True, default=1.0)

    def distance(self, s: Inexact[Array, " n"]) -> Inexact[Array, ""]:
        nodes = jnp.reshape(s, (-1, self.dim))
        d = nodes[self.pair[1]] - nodes[self.pair[0]]
        return jnp.sqrt(jnp.sum(d * d))

    def __call__(self, s: Inexact[Array, " n"]) -> Inexact[Array, ""]:
        r = (self.distance(s) - _as(self.length, s)) / self.scale
        return 0.5 * r * r


@dataclasses.dataclass
class EquilibriumTask(Task):
    """A learning problem on an `EnergyModel` at static equilibrium (see the module docstring).

    **Fields** (besides `Task`'s `name`, `description`, `params`, `trainable`, `train`, `test`,
    `classes`, `parameter_units`, `loss_unit`, `recommended`, `options`; `integ` and
    `num_steps` are unused):
    - `energy_model`: the `EnergyModel`.
    - `cost_fn`: `cost_fn(sample) -> cost(s)` for one sample (an equinox cost Module).
    - `logits_fn`: `logits_fn(s, sample) -> (C,)` class scores of the free state (classification).
    - `initial_state`: `initial_state(params, sample) -> s0 (n,)`, where the free solve starts
      (default: `s0_default`, or zeros).
    - `solver`: the equilibrium solver; `expect`: the curvature check (`solve_equilibrium`).
    - `plot_fn`: `plot_fn(task, result, folder) -> {name: path}`, the task's own plots.

    Samples are dicts with `inputs`, the input `x (m,)` of the energy (named like the inputs of
    the time-dependent tasks; the trainer takes the data's dtype from the first key in sorted
    order, which must be a float array), and the cost's data (`label`, `target`, ...).
    """

    name: str = ""
    description: str = ""
    integ: Any = None
    num_steps: int = 0
    params: dict = dataclasses.field(default_factory=dict)
    trainable: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    test: dict | None = None
    cost_fn: Callable | None = None
    energy_model: EnergyModel | None = None
    initial_state: Callable | None = None
    s0_default: Any = None
    solver: Any = None
    expect: str | None = "minimum"
    plot_fn: Callable | None = None

    @property
    def model(self) -> EnergyModel:
        return self.energy_model

    @property
    def num_train(self) -> int:
        return int(self.train["inputs"].shape[0])

    @property
    def num_test(self) -> int:
        return 0 if self.test is None else int(self.test["inputs"].shape[0])

    def start(self, params: dict, sample: dict):
        """Where the free solve of `sample` starts (no gradient flows through it)."""
        if self.initial_state is not None:
            return jax.lax.stop_gradient(self.initial_state(params, sample))
        if self.s0_default is not None:
            return jnp.asarray(self.s0_default).astype(sample["inputs"].dtype)
        return jnp.zeros((self.energy_model.num_states,), sample["inputs"].dtype)

    def problem(self, params: dict, sample: dict) -> EquilibriumProblem:
        return EquilibriumProblem(sample["inputs"], self.start(params, sample), self.solver, None, self.expect)

    # ------------------------------------------------------ what the trainer asks of a task
    def check_estimator(self, estimator) -> None:
        """Accept static EqProp (`eqprop`) and implicit differentiation (`implicit`, `bptt`)."""
        from .._references import BPTT, Implicit

        if isinstance(estimator, EquilibriumEqProp):
            try:
                estimator.check(self.energy_model)
            except EstimatorError as err:
                raise ConfigError(f"config field 'estimator': {err}") from None
            return
        if isinstance(estimator, (Implicit, BPTT)):
            return
        raise ConfigError(
            f"config field 'estimator': {estimator.name!r} is an estimator of time-dependent problems, but task "
            f"{self.name!r} trains a system at static equilibrium; use 'eqprop' (static EqProp; variants centered, "
            "positive, negative, holomorphic) or 'implicit' (implicit differentiation through the equilibrium).")

    def exact_reference(self, estimator):
        """Implicit differentiation through the equilibrium solve."""
        from .._references import Implicit

        return Implicit()

    def gradient(self, estimator, params: dict, sample: dict):
        """The `GradientResult` (loss, parameter and input gradients, result) of one sample."""
        problem = self.problem(params, sample)
        cost = self.cost_fn(sample)
        if isinstance(estimator, EquilibriumEqProp):
            return estimator.compute(self.energy_model, params, cost, problem)
        return implicit_gradient_result(self.energy_model, params, cost, problem)

    def free_state(self, params: dict, sample: dict):
        """The free `Equilibrium` of one sample (traceable)."""
        problem = self.problem(params, sample)
        return equilibrium_state(self.energy_model, params, problem.x, problem.s0, solver=self.solver,
                                 expect=self.expect)

    def evaluate(self, params: dict, sample: dict):
        """`(loss, class scores or 0, result, stats)` at the free equilibrium (traceable)."""
        sol = self.free_state(params, sample)
        loss = jnp.asarray(self.cost_fn(sample)(sol.s)).astype(sol.s.dtype)
        logits = self.logits_fn(sol.s, sample) if self.logits_fn is not None else jnp.zeros((), sol.s.dtype)
        return loss, logits, sol.result, sol.stats

    def energy_error(self, params: dict):
        """Not applicable at equilibrium: NaN."""
        return jnp.asarray(jnp.nan)

    def plot_results(self, result, folder: str) -> dict:
        """The task's own plots (`plot_fn`), else histograms of the trained parameters."""
        if self.plot_fn is not None:
            return self.plot_fn(self, result, folder)
        return {"parameters": plot_weight_histograms(result, os.path.join(folder, "parameters.png"),
                                                     title=f"{self.name}: trained parameters")}


def plot_weight_histograms(result, path, *, title: str | None = None) -> str:
    """Histograms of every trained parameter array: initial and learned (one panel per name)."""
    from matplotlib.figure import Figure

    names = sorted(result.trained)
    fig = Figure(figsize=(7.0, 2.4 * len(names) + 0.6), dpi=100)
    for row, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, row + 1)
        initial = np.ravel(np.asarray(result.initial_params[name]))
        runs = {run: np.ravel(np.asarray(p[name])) for run, p in result.params.items()}
        values = np.concatenate([initial, *runs.values()])
        bins = np.linspace(values.min(), values.max() + 1e-12, 40)
        ax.hist(initial, bins, color="0.7", label="initial")
        for run, learned in runs.items():
            ax.hist(learned, bins, histtype="step", linewidth=1.5, label=f"learned ({run})")
        ax.set_xlabel(f"{name} ({initial.size} values)")
        ax.set_ylabel("count")
        ax.legend(fontsize=7)
        if row == 0:
            ax.set_title(title or "parameters")
    return save_figure(fig, path)


def save_figure(fig, path) -> str:
    """Write a matplotlib `Figure` to `path` (folders created); **returns** the path."""
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    return path
