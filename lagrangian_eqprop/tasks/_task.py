"""The `Task` record, the helpers tasks share, and the registry (`get_task`, options).

A `Task` bundles everything the training loop needs: the variational integrator of the system
being trained, the initial (physical) parameters, which of them are trained and under which
constraint (see `training.CONSTRAINTS`), a training and a held-out split of samples, and a
function that turns one sample into a nudging cost `cost(k, q)`. Tasks register themselves
with `register`; data are generated in the package from the seed (nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._integrate import VariationalIntegrator
from .._rules import RULES
from .._costs import trajectory_cost
from ..errors import ConfigError, EstimatorError

__all__ = ["Task", "available_tasks", "get_task", "register", "resolve_options", "task_description", "task_options"]

_REGISTRY: dict[str, Callable[..., "Task"]] = {}
_ORDER = ("tracking", "sysid", "classification", "pendulum", "sequence")


def register(name: str):
    """Decorator: add a task factory to the registry under `name`."""

    def add(factory):
        _REGISTRY[name] = factory
        return factory

    return add


@dataclasses.dataclass
class Task:
    """A learning problem on a physical system.

    **Fields:**
    - `name`, `description`: registry name and a one-line summary.
    - `integ`: the `VariationalIntegrator` of the student system.
    - `num_steps`: `N`, the number of integrator steps of every sample.
    - `params`: initial physical parameters `{name: array}` (trained and fixed ones).
    - `trainable`: `{parameter name: constraint}` for the trained parameters, constraint one of
      `"none"`, `"positive"` (softplus) or `"log"` (exp); see `training.CONSTRAINTS`.
    - `train`, `test`: sample dicts (leading axis = samples); `test` may be `None`.
    - `cost_fn`: `cost_fn(sample) -> cost(k, q)` for one sample (a pytree-friendly cost such
      as `TrackingCost`, built inside `vmap`).
    - `true_params`: the teacher's parameters, when known (system identification).
    - `supports_bvp`: whether samples carry `q_start` / `q_end` (fixed-endpoint training).
    - `classes`: class names of a classification task (`None` otherwise).
    - `logits_fn`: `logits_fn(q (N+1, n), sample) -> (C,)` class scores of a simulated
      trajectory (classification only).
    - `energy_state`: `(q0, v0)` of an undriven free run used for the energy-error metric.
    - `display_indices`, `display_offset`, `display_labels`, `display_unit`: which coordinates
      the trajectory plot shows, minus which offsets (rest positions), with what labels/unit.
    - `parameter_units`: `{parameter name: unit}` for the plots; `loss_unit`: the loss's unit.
    - `recommended`: training defaults for this task (`learning_rate`, `epochs`, ...).
    - `options`: the resolved task options (saved with the run's config).
    """

    name: str
    description: str
    integ: VariationalIntegrator
    num_steps: int
    params: dict
    trainable: dict
    train: dict
    test: dict | None
    cost_fn: Callable
    true_params: dict | None = None
    supports_bvp: bool = False
    classes: tuple[str, ...] | None = None
    logits_fn: Callable | None = None
    energy_state: tuple | None = None
    display_indices: tuple[int, ...] = ()
    display_offset: Any = None
    display_labels: tuple[str, ...] = ()
    display_unit: str = ""
    parameter_units: dict = dataclasses.field(default_factory=dict)
    loss_unit: str = ""
    recommended: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def model(self):
        return self.integ.model

    @property
    def num_train(self) -> int:
        return int(self.train["q0"].shape[0])

    @property
    def num_test(self) -> int:
        return 0 if self.test is None else int(self.test["q0"].shape[0])

    @property
    def times(self):
        """Node times `(N+1,)` (NumPy)."""
        return np.asarray(self.integ.node_times(self.num_steps))

    def display_target(self, sample) -> tuple[np.ndarray, np.ndarray] | None:
        """`(times, values)` of the target of the displayed coordinates for one sample, or None."""
        if "target" not in sample or self.classes is not None:
            return None
        target = np.asarray(sample["target"])
        offset = np.asarray(self.display_offset)[list(self.display_indices)]
        if target.ndim == 2 and target.shape[0] == self.num_steps + 1:  # a signal at every node
            return self.times, target - offset
        return self.times[-1:], np.atleast_2d(target) - offset  # a final pattern

    def display(self, q) -> np.ndarray:
        """The displayed coordinates of a trajectory `q (N+1, n)`, minus the offsets."""
        q = np.asarray(q)
        idx = list(self.display_indices)
        return q[:, idx] - np.asarray(self.display_offset)[idx]

    # ------------------------------------------------------ what the trainer asks of a task
    # The training loop talks to a task only through `num_train`, the fields above that name
    # the data and parameters, and the five methods below; a task of another kind (static
    # equilibria, physical layers inside a network) implements the same methods.
    def check_estimator(self, estimator) -> None:
        """Raise `ConfigError` when `estimator` cannot train this task."""
        if estimator.problem_kind == "boundary" and not self.supports_bvp:
            raise ConfigError(
                f"config field 'estimator': {estimator.name!r} needs a fixed-endpoint task (samples with q_start and "
                f"q_end); task {self.name!r} is an initial-value task. Tasks that support it: sysid."
            )
        try:
            estimator.check(self.integ)
        except EstimatorError as err:
            raise ConfigError(f"config field 'estimator': {err}") from None

    def exact_reference(self, estimator):
        """The exact gradient `estimator` is compared with: the implicit gradient for
        fixed-endpoint estimators, BPTT through the same integrator otherwise."""
        from .._references import BPTT, Implicit

        return Implicit() if estimator.problem_kind == "boundary" else BPTT()

    def gradient(self, estimator, params: dict, sample: dict):
        """`estimator`'s `GradientResult` (loss, physical gradient, result) for one sample
        (traceable; vmapped over a batch by the trainer)."""
        from .._estimators import Problem

        us = self.integ.node_inputs(self.num_steps, sample.get("inputs"), sample["q0"].dtype)
        if estimator.problem_kind == "boundary":
            problem = Problem("boundary", self.num_steps, us, q_start=sample["q_start"], q_end=sample["q_end"])
        else:
            problem = Problem("initial", self.num_steps, us, q0=sample["q0"], v0=sample["v0"])
        return estimator.compute(self.integ, params, self.cost_fn(sample), problem)

    def evaluate(self, params: dict, sample: dict):
        """`(loss, class scores or 0, result, stats)` of the free run of one sample: every
        estimator is judged on the same initial-value loss (traceable)."""
        traj = self.integ.simulate(params, sample["q0"], sample["v0"], self.num_steps, sample.get("inputs"),
                                   throw=False)
        loss = trajectory_cost(self.cost_fn(sample), traj.q, start=1)
        logits = self.logits_fn(traj.q, sample) if self.logits_fn is not None else jnp.zeros(())
        return loss, logits, traj.result, traj.stats

    def plot_results(self, result, folder: str) -> dict:
        """The task's own plots of a finished run: a held-out (or training) sample's trajectory
        before and after training against its target, and learned vs initial vs true
        parameters. **Returns:** `{name: path}`."""
        import os

        from .. import plotting

        written = {}
        # trajectories of one held-out sample (or the first training sample)
        split = self.test if self.test is not None else self.train
        sample = {k: v[0] for k, v in split.items()}

        def run_traj(params):
            return np.asarray(self.integ.simulate(params, sample["q0"], sample["v0"], self.num_steps,
                                                  sample.get("inputs"), throw=False).q)

        before = self.display(run_traj(result.initial_params))
        after = {run: self.display(run_traj(p)) for run, p in result.params.items()}
        target = self.display_target(sample)
        what = "held-out" if self.test is not None else "training"
        label = f" (class: {self.classes[int(sample['label'])]})" if self.classes is not None else ""
        written["trajectories"] = plotting.plot_trajectory_comparison(
            self.times, before, after, os.path.join(folder, "trajectories.png"),
            target=None if target is None else target[1], target_times=None if target is None else target[0],
            labels=self.display_labels, unit=self.display_unit,
            title=f"{self.name}: {what} sample{label}, before and after training")
        learned = {run: {k: np.asarray(p[k]) for k in result.trained} for run, p in result.params.items()}
        written["parameters"] = plotting.plot_parameters(
            learned, os.path.join(folder, "parameters.png"),
            initial={k: np.asarray(result.initial_params[k]) for k in result.trained},
            true=None if self.true_params is None else {k: np.asarray(v) for k, v in self.true_params.items()},
            units=self.parameter_units, title=f"{self.name}: learned parameters")
        return written

    def energy_error(self, params: dict):
        """`max_k |E_k − E_0| / |E_0|` along an undriven free run from `energy_state` (NaN
        without one; traceable)."""
        if self.energy_state is None:
            return jnp.asarray(jnp.nan)
        q0, v0 = self.energy_state
        traj = self.integ.simulate(params, q0, v0, self.num_steps, None, throw=False)
        e = self.integ.energies(params, traj)
        return jnp.max(jnp.abs(e - e[0])) / jnp.maximum(jnp.abs(e[0]), jnp.finfo(e.dtype).tiny)


def _f(x):
    """A JAX array of the default float dtype (float64 under `jax_enable_x64`)."""
    return jnp.asarray(np.asarray(x, dtype=np.float64), dtype=jnp.result_type(float))


def _batch(**arrays) -> dict:
    out = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        out[key] = jnp.asarray(value) if value.dtype.kind in "iu" else _f(value)
    return out


def _split(samples: dict, num_train: int) -> tuple[dict, dict | None]:
    train = {k: v[:num_train] for k, v in samples.items()}
    rest = {k: v[num_train:] for k, v in samples.items()}
    test = rest if next(iter(rest.values())).shape[0] > 0 else None
    return train, test


def _teacher_run(integ, params, samples, num_steps):
    """Trajectories `(S, N+1, n)` of the teacher for every sample (vmapped simulate).

    The teacher's parameters and the samples are arguments of the compiled function, not
    constants baked into it, so the data do not depend on what was compiled before.
    """

    @eqx.filter_jit
    def run(integ, params, q0, v0, inputs):
        one = lambda q, v, u: integ.simulate(params, q, v, num_steps, u).q
        return jax.vmap(one, in_axes=(0, 0, None if inputs is None else 0))(q0, v0, inputs)

    return run(integ, params, samples["q0"], samples["v0"], samples.get("inputs"))


@functools.lru_cache(maxsize=32)
def _cached_system(factory: str, x64: bool, kwargs: tuple):
    from .. import systems

    return systems.get(factory, **dict(kwargs))


def _system(factory: str, **kwargs):
    """A catalog system, built once per process for each set of arguments.

    Reusing the compiled model makes repeated task builds (e.g. a run and its resume in the
    same process) produce bit-identical numbers: SymPy numbers its `Dummy` symbols globally,
    so the term order of a freshly compiled Lagrangian — and with it the floating-point
    rounding — can change from one compilation to the next. It also saves the compile time.
    """
    return _cached_system(factory, bool(jax.config.jax_enable_x64), tuple(sorted(kwargs.items())))


def _check_positive(name, option, value, *, integer=False, allow_zero=False):
    if integer and (isinstance(value, bool) or int(value) != value):
        raise ConfigError(f"task {name}: option {option!r} must be an integer, got {value!r}.")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"task {name}: option {option!r} must be {bound}, got {value!r}.")


def _check_range(name, option, value):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"task {name}: option {option!r} must be a pair (low, high), got {value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ConfigError(f"task {name}: option {option!r} must satisfy 0 < low ≤ high, got {value!r}.")
    return lo, hi


def available_tasks() -> list[str]:
    """Names of the registered tasks (the flagship `tracking` first)."""
    return [n for n in _ORDER if n in _REGISTRY] + sorted(n for n in _REGISTRY if n not in _ORDER)


def task_description(name: str) -> str:
    """The first line of a registered task's docstring."""
    lines = (_factory(name).__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def task_options(name: str) -> dict[str, Any]:
    """`{option: default}` of a task (its factory's keyword arguments)."""
    factory = _factory(name)
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()}


def _factory(name: str):
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown task {name!r}; available tasks: {', '.join(available_tasks())}"
        ) from None


def _coerce(name: str, option: str, value, default):
    """Convert a config value to the type of the option's default (ints stay ints, pairs pairs)."""
    where = f"task {name}: option {option!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not float(value).is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where} must be finite, got {value!r}.")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ConfigError(f"{where} must be a list of {len(default)} numbers, got {value!r}.")
        return tuple(_coerce(name, option, v, d) for v, d in zip(value, default))
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    return value


def resolve_options(name: str, overrides: dict | None = None) -> dict[str, Any]:
    """The full option dict of a task: defaults updated with validated `overrides`."""
    defaults = task_options(name)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(
            f"task {name}: unknown option(s) {', '.join(map(repr, unknown))}; valid options: "
            f"{', '.join(defaults)}"
        )
    resolved = dict(defaults)
    for key, value in overrides.items():
        resolved[key] = _coerce(name, key, value, defaults[key])
    if resolved.get("rule") not in (None, *RULES):
        raise ConfigError(f"task {name}: option 'rule' must be one of {', '.join(RULES)}, got {resolved['rule']!r}.")
    return resolved


def get_task(name: str, **overrides) -> Task:
    """Build a registered task with its data.

    **Arguments:**
    - `name`: one of `available_tasks()`.
    - `**overrides`: task options (see `task_options(name)`), e.g. `num_train=4, num_steps=50`.

    **Returns:** a `Task` (same options and seed → the same data, bit for bit).

    **Raises:** `ConfigError` (a `ValueError`) naming an unknown task (listing the valid
    ones), an unknown option (listing the valid ones) or an invalid option value.
    """
    factory = _factory(name)
    options = resolve_options(name, overrides)
    task = factory(**options)
    task.options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}
    return task
