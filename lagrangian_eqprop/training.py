"""Training physical systems: an optax loop over batches, any gradient estimator by name.

    from lagrangian_eqprop.training import TrainConfig, Trainer
    result = Trainer(TrainConfig(task="tracking", estimator="echo", reference="bptt")).fit("runs/demo")
    print(result.summary_table())

**Estimators** (`ESTIMATORS`), all behind the same loop `value_and_grad(mean batch loss)`:

- `"echo"`: Hamiltonian echo / time-dependent EqProp (`echo_loss`, a custom-VJP loss whose
  `jax.grad` is the echo estimate; memory independent of the number of steps);
- `"bvp"`: fixed-endpoint EqProp (`eqprop_gradient(method="bvp")`), for tasks whose samples
  carry `q_start` / `q_end` (`Task.supports_bvp`);
- `"bptt"`: backpropagation through time through the same integrator (`simulated_loss`);
- `"adjoint"`: diffrax's continuous adjoint of the Euler–Lagrange ODE (`adjoint_gradient`);
  its loss value is the discrete one, so every estimator reports comparable numbers.

A second estimator (`reference`, default `"bptt"`) can be trained side by side from the same
initial parameters on the same batches, so EqProp and backprop are compared on one run.

**Constraints.** Physical parameters that must stay positive (stiffness, mass, length) are
never clipped: the optimiser works on an unconstrained `raw` value and the physics sees
`θ = transform(raw)` (`CONSTRAINTS`: `"positive"` → `softplus(raw)`, `"log"` → `exp(raw)`,
`"none"` → `raw`). Gradients reach `raw` by the chain rule through the transform
(`dℒ/draw = dℒ/dθ · transform'(raw)`), so every estimator's physical gradient is used as is.

**Runs on disk** (`Trainer.fit(out_dir)`): `config.json` (the resolved configuration),
`metrics.jsonl` (one JSON record per step and per epoch and run), `checkpoint.npz` (written
atomically: temporary file then `os.replace`), `params.json` (final physical parameters),
`summary.json` and `plots/*.png`. `resume(out_dir)` continues from the checkpoint and reaches
the same parameters as an uninterrupted run (batch order depends only on `(seed, epoch)`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .baselines import adjoint_gradient, simulated_loss
from .costs import trajectory_cost
from .eqprop import VARIANTS, echo_loss, eqprop_gradient
from .errors import ConvergenceError, EstimatorError
from .tasks import ConfigError, Task, get_task, resolve_options

try:  # written by another module owner; a local fallback keeps training usable without it
    from .diagnostics import gradient_agreement as _diagnostics_agreement
except ImportError:  # pragma: no cover
    _diagnostics_agreement = None

__all__ = [
    "CONSTRAINTS",
    "ConfigError",
    "ESTIMATORS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "load_checkpoint",
    "resume",
    "save_checkpoint",
    "train",
]

ESTIMATORS = ("echo", "bvp", "bptt", "adjoint")
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop")
CHECKPOINT = "checkpoint.npz"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
PARAMS = "params.json"
SUMMARY = "summary.json"


class TrainingError(RuntimeError):
    """Training stopped: a non-finite loss or gradient, a failed solve, or an unusable
    checkpoint. The message names the run, the step and the cause."""


# ===================================================================== reparametrisation
@dataclasses.dataclass(frozen=True)
class Constraint:
    """A bijection from unconstrained `raw` values to the physical range of a parameter."""

    name: str
    forward: Callable
    inverse: Callable
    description: str


def _softplus_inverse(x):
    # raw = x + log(1 − e^{−x}), stable for small and large x (x > 0).
    return x + jnp.log(-jnp.expm1(-x))


CONSTRAINTS = {
    "none": Constraint("none", lambda r: r, lambda x: x, "θ = raw (unconstrained)"),
    "positive": Constraint("positive", jax.nn.softplus, _softplus_inverse,
                           "θ = softplus(raw) = log(1 + e^raw) > 0"),
    "log": Constraint("log", jnp.exp, jnp.log, "θ = exp(raw) > 0"),
}


def to_unconstrained(params: dict, constraints: dict) -> dict:
    """`raw` values of the constrained parameters (checks that they lie in range)."""
    raw = {}
    for name, kind in constraints.items():
        value = jnp.asarray(params[name])
        if kind in ("positive", "log") and not bool(jnp.all(value > 0)):
            raise ConfigError(
                f"parameter {name!r} must be positive (constraint {kind!r}), got {np.asarray(value)}."
            )
        raw[name] = CONSTRAINTS[kind].inverse(value)
    return raw


# ========================================================================== configuration
@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's `config.json`).

    **Fields** (`None` means "the task's recommended value", filled in by `resolve`):
    - `task`: task name (`tasks.available_tasks()`); `task_options`: its options.
    - `estimator`: `"echo"`, `"bvp"`, `"bptt"` or `"adjoint"`.
    - `reference`: a second estimator trained side by side (default `"bptt"`), or `"none"`.
    - `beta`, `variant`: EqProp nudging strength and variant (`"centered"`, `"positive"`,
      `"negative"`).
    - `optimizer` (`OPTIMIZERS`), `learning_rate`, `epochs`, `batch_size`.
    - `seed`: master seed — the task's data (unless `task_options` sets its own `seed`) and the
      batch order (`numpy.random.default_rng([seed, epoch])`).
    - `probe_every`: gradient agreement with the exact gradient (BPTT; the implicit gradient
      for `bvp`) on a fixed probe batch every this many epochs (0: never); `probe_size`: its
      number of samples.
    """

    task: str = "tracking"
    estimator: str = "echo"
    reference: str = "bptt"
    beta: float | None = None
    variant: str = "centered"
    optimizer: str = "adam"
    learning_rate: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int = 0
    probe_every: int = 1
    probe_size: int = 4
    task_options: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict, registered: bool = True) -> "TrainConfig":
        """Build from a dict (e.g. a TOML file); unknown keys raise `ConfigError` listing the valid ones.

        `registered=False` accepts a task name outside the registry (a hand-built `Task`)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a table of keys, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(cls.fields())}"
            )
        data = dict(data)
        if "task_options" in data and not isinstance(data["task_options"], dict):
            raise ConfigError(f"config field 'task_options' must be a table, got {data['task_options']!r}.")
        return cls(**data).validate(registered)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes).validate()

    def validate(self, registered: bool = True) -> "TrainConfig":
        """Check every field; raises `ConfigError` naming the field.

        `registered=False` skips the checks of the task name and options against the registry
        (for a hand-built `Task` passed to `Trainer`)."""
        from .tasks import available_tasks

        def bad(field, message):
            raise ConfigError(f"config field {field!r}: {message}")

        if not isinstance(self.task, str) or not self.task:
            bad("task", f"must be a task name, got {self.task!r}")
        if registered and self.task not in available_tasks():
            bad("task", f"unknown task {self.task!r}; available tasks: {', '.join(available_tasks())}")
        if self.estimator not in ESTIMATORS:
            bad("estimator", f"unknown estimator {self.estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if self.reference is None:
            self.reference = "none"
        if self.reference not in (*ESTIMATORS, "none"):
            bad("reference", f"unknown estimator {self.reference!r}; choose one of {', '.join(ESTIMATORS)}, none")
        if self.variant not in VARIANTS:
            bad("variant", f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.beta is not None:
            if not _is_number(self.beta) or not math.isfinite(self.beta) or self.beta == 0:
                bad("beta", f"must be a non-zero finite number, got {self.beta!r}")
            self.beta = float(self.beta)
        if self.learning_rate is not None:
            if not _is_number(self.learning_rate) or not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
                bad("learning_rate", f"must be a positive number, got {self.learning_rate!r}")
            self.learning_rate = float(self.learning_rate)
        for field, minimum in (("epochs", 1), ("batch_size", 1), ("probe_every", 0), ("probe_size", 1)):
            value = getattr(self, field)
            if value is None and field in ("epochs", "batch_size"):
                continue
            if not _is_integer(value) or value < minimum:
                bad(field, f"must be an integer ≥ {minimum}, got {value!r}")
            setattr(self, field, int(value))
        if not _is_integer(self.seed) or self.seed < 0:
            bad("seed", f"must be a non-negative integer, got {self.seed!r}")
        self.seed = int(self.seed)
        if not isinstance(self.task_options, dict):
            bad("task_options", f"must be a table, got {self.task_options!r}")
        if registered:
            resolve_options(self.task, self.task_options)  # names the offending option
        return self

    def resolve(self, task: Task) -> "TrainConfig":
        """Fill `None` fields from the task's recommendations (and record the task's options)."""
        rec = {"learning_rate": 0.05, "epochs": 50, "batch_size": 8, "beta": 1e-3, **task.recommended}
        changes = {k: rec[k] for k in ("learning_rate", "epochs", "batch_size", "beta") if getattr(self, k) is None}
        changes["task_options"] = dict(task.options)
        changes["task"] = task.name
        from .tasks import available_tasks

        return dataclasses.replace(self, **changes).validate(registered=task.name in available_tasks())


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _is_integer(x) -> bool:
    return _is_number(x) and float(x).is_integer()


def _make_optimizer(name: str, learning_rate: float):
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    return optax.rmsprop(learning_rate)


# ============================================================================ checkpoints
def save_checkpoint(path, tree, meta: dict) -> str:
    """Write the leaves of `tree` and a JSON `meta` record to `path` atomically.

    The file is written next to `path` under a temporary name, flushed to disk and then
    renamed over `path` with `os.replace` (atomic on POSIX and Windows), so a crash at any
    moment leaves either the previous checkpoint or the new one — never a torn file.
    """
    path = os.fspath(path)
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {f"leaf_{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    arrays["meta"] = np.asarray(json.dumps(meta))
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path, template) -> tuple[Any, dict]:
    """Read a checkpoint written by `save_checkpoint` into the structure of `template`.

    **Returns:** `(tree, meta)`. **Raises:** `TrainingError` when the file is missing,
    unreadable, or does not match the template (different configuration).
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            leaves = [data[f"leaf_{i:05d}"] for i in range(len([k for k in data.files if k.startswith("leaf_")]))]
    except FileNotFoundError:
        raise TrainingError(f"no checkpoint at {path}.") from None
    except Exception as err:  # noqa: BLE001  (zip/npz/json errors)
        raise TrainingError(f"checkpoint {path} is unreadable: {err}") from None
    template_leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(leaves) != len(template_leaves):
        raise TrainingError(
            f"checkpoint {path} holds {len(leaves)} arrays but this configuration needs "
            f"{len(template_leaves)}: it was written by a different configuration."
        )
    restored = []
    for i, (saved, like) in enumerate(zip(leaves, template_leaves)):
        like = np.asarray(like)
        if saved.shape != like.shape:
            raise TrainingError(
                f"checkpoint {path}: array {i} has shape {saved.shape}, expected {like.shape} "
                "(a different configuration wrote it)."
            )
        restored.append(jnp.asarray(saved, dtype=like.dtype))
    return jax.tree_util.tree_unflatten(treedef, restored), meta


# ================================================================================ helpers
def _agreement(estimate: dict, reference: dict) -> dict:
    """Overall cosine similarity, norm ratio and max relative error of two gradient dicts."""
    if _diagnostics_agreement is not None:
        out = _diagnostics_agreement(estimate, reference)["all"]
        return {k: float(out[k]) for k in ("cosine", "norm_ratio", "max_rel_error")}
    names = sorted(reference)  # pragma: no cover - fallback
    est = np.concatenate([np.ravel(estimate[n]) for n in names])
    ref = np.concatenate([np.ravel(reference[n]) for n in names])
    ne, nr = np.linalg.norm(est), np.linalg.norm(ref)
    return {"cosine": float(est @ ref / (ne * nr)) if ne * nr > 0 else float("nan"),
            "norm_ratio": float(ne / nr) if nr > 0 else float("nan"),
            "max_rel_error": float(np.max(np.abs(est - ref)) / np.max(np.abs(ref))) if nr > 0 else float("nan")}


def _failure_cause(err: BaseException) -> str:
    """A one-line description of a failed solve (strips JAX's callback tracebacks)."""
    text = str(err)
    for marker in ("EquinoxRuntimeError: ", "ConvergenceError: "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    text = text.split("\n\n-----", 1)[0].strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


_SOLVE_ERRORS = (ConvergenceError, EstimatorError, eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError,
                 FloatingPointError)


def _tree_to_json(tree) -> dict:
    return {k: np.asarray(v).tolist() for k, v in tree.items()}


def _write_json(path, data) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, allow_nan=True)
        handle.write("\n")
    os.replace(tmp, path)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ================================================================================ results
@dataclasses.dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    **Fields:** `config` (resolved), `task`, `runs` (estimator names, primary first),
    `params` (`{run: final physical params}`), `initial_params`, `history` (epoch records),
    `out_dir` (or `None`), `plots` (`{name: path}`), `completed` (False when interrupted).
    """

    config: TrainConfig
    task: Task
    runs: tuple[str, ...]
    params: dict
    initial_params: dict
    history: list
    out_dir: str | None = None
    plots: dict = dataclasses.field(default_factory=dict)
    completed: bool = True

    def final(self, run: str | None = None) -> dict:
        """The last epoch record of `run` (default: the primary estimator)."""
        run = self.runs[0] if run is None else run
        return [r for r in self.history if r["run"] == run][-1]

    def initial(self, run: str | None = None) -> dict:
        run = self.runs[0] if run is None else run
        return [r for r in self.history if r["run"] == run][0]

    def loss_reduction(self, run: str | None = None) -> float:
        """Initial over final training loss (≥ 10 means the loss fell tenfold)."""
        return self.initial(run)["train_loss"] / self.final(run)["train_loss"]

    def summary_rows(self) -> list[dict]:
        rows = []
        for run in self.runs:
            first, last = self.initial(run), self.final(run)
            rows.append({
                "run": run,
                "epochs": last["epoch"],
                "initial_loss": first["train_loss"],
                "final_loss": last["train_loss"],
                "reduction": first["train_loss"] / last["train_loss"] if last["train_loss"] else float("inf"),
                "test_loss": last.get("test_loss"),
                "cosine": next((r["cosine"] for r in reversed(self.history)
                                if r["run"] == run and r.get("cosine") is not None), None),
                "param_error": last.get("param_error"),
                "test_accuracy": last.get("test_accuracy"),
                "energy_error": last.get("energy_error"),
                "wall_time": last["wall_time"],
            })
        return rows

    def summary_table(self) -> str:
        """A plain-text table: one row per estimator."""
        head = ["estimator", "epochs", "initial loss", "final loss", "reduction", "test loss",
                "cos vs exact", "param err", "test acc", "energy err", "train time"]
        lines = []
        for row in self.summary_rows():
            def f(x, spec):
                return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)
            lines.append([row["run"], str(row["epochs"]), f(row["initial_loss"], ".3e"), f(row["final_loss"], ".3e"),
                          f(row["reduction"], ".1f" if row["reduction"] < 1e4 else ".2e") + "×", f(row["test_loss"], ".3e"), f(row["cosine"], ".9f"),
                          f(row["param_error"], ".2%"), f(row["test_accuracy"], ".1%"),
                          f(row["energy_error"], ".1e"), f(row["wall_time"], ".1f") + " s"])
        widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in lines)])


# ================================================================================ trainer
class Trainer:
    """Trains a task's physical parameters with one estimator (plus an optional reference).

    **Arguments:**
    - `config`: a `TrainConfig` (validated; `None` fields take the task's recommendations).
    - `task`: an already built `Task` (default: `get_task(config.task, **config.task_options)`,
      with the task's `seed` defaulting to `config.seed`).

    **Raises:** `ConfigError` for invalid settings (e.g. `estimator="bvp"` on a task without
    fixed endpoints).
    """

    def __init__(self, config: TrainConfig | None = None, task: Task | None = None):
        config = (config or TrainConfig()).validate(registered=task is None)
        if task is None:
            options = dict(config.task_options)
            options.setdefault("seed", config.seed)
            task = get_task(config.task, **options)
        self.task = task
        self.config = config.resolve(task)
        cfg = self.config
        runs = [cfg.estimator]
        if cfg.reference not in ("none", cfg.estimator):
            runs.append(cfg.reference)
        for run in runs:
            if run == "bvp" and not task.supports_bvp:
                bvp_tasks = "sysid"
                raise ConfigError(
                    f"config field 'estimator': 'bvp' needs a fixed-endpoint task (samples with q_start and "
                    f"q_end); task {task.name!r} is an initial-value task. Tasks that support it: {bvp_tasks}."
                )
            if run == "echo":
                from .eqprop import check_echo_exact

                try:
                    check_echo_exact(task.integ)
                except EstimatorError as err:
                    raise ConfigError(f"config field 'estimator': {err}") from None
        self.runs = tuple(runs)
        self.batch_size = min(cfg.batch_size, task.num_train)
        self.num_batches = task.num_train // self.batch_size
        self.optimizer = _make_optimizer(cfg.optimizer, cfg.learning_rate)
        self.constraints = dict(task.trainable)
        for name, kind in self.constraints.items():
            if kind not in CONSTRAINTS:
                raise ConfigError(f"task {task.name}: parameter {name!r} has unknown constraint {kind!r}; "
                                  f"choose one of {', '.join(CONSTRAINTS)}.")
        self.fixed = {k: v for k, v in task.params.items() if k not in self.constraints}
        self.initial_raw = to_unconstrained(task.params, self.constraints)
        probe = min(cfg.probe_size, task.num_train)
        self.probe_batch = {k: v[:probe] for k, v in task.train.items()}
        self.eval_batch = task.train if task.test is None else {
            k: jnp.concatenate([task.train[k], task.test[k]]) for k in task.train}
        self._steps = {run: eqx.filter_jit(self._make_step(run)) for run in self.runs}
        self._evaluate = eqx.filter_jit(self._evaluate_impl)
        self._probe = {run: eqx.filter_jit(self._make_probe(run)) for run in self.runs
                       if run != self._exact_reference(run)}

    # ------------------------------------------------------------------ parameters
    def physical(self, raw: dict) -> dict:
        """Physical parameters: fixed ones plus `transform(raw)` for the trained ones."""
        params = dict(self.fixed)
        for name, kind in self.constraints.items():
            params[name] = CONSTRAINTS[kind].forward(raw[name])
        return params

    def initial_state(self) -> dict:
        """`{run: {"raw", "opt_state"}}` at the task's initial parameters."""
        return {run: {"raw": dict(self.initial_raw), "opt_state": self.optimizer.init(self.initial_raw)}
                for run in self.runs}

    # ------------------------------------------------------------------- estimators
    def _problem(self, sample):
        return dict(q0=sample["q0"], v0=sample["v0"], num_steps=self.task.num_steps, inputs=sample.get("inputs"))

    def sample_loss(self, estimator: str, params: dict, sample: dict):
        """Loss of one sample; differentiable by `estimator` (`"echo"` or `"bptt"`)."""
        task, cfg = self.task, self.config
        cost = task.cost_fn(sample)
        if estimator == "echo":
            return echo_loss(task.integ, params, cost, beta=cfg.beta, variant=cfg.variant, **self._problem(sample))
        return simulated_loss(task.integ, params, cost, **self._problem(sample))

    def _sample_loss_and_physical_grad(self, estimator, params, sample):
        task, cfg = self.task, self.config
        cost = task.cost_fn(sample)
        if estimator == "bvp":
            result = eqprop_gradient(task.integ, params, cost, method="bvp", beta=cfg.beta, variant=cfg.variant,
                                     q_start=sample["q_start"], q_end=sample["q_end"], num_steps=task.num_steps,
                                     inputs=sample.get("inputs"), return_all=True)
            return result.loss, result.params
        if estimator == "adjoint":
            loss = simulated_loss(task.integ, params, cost, **self._problem(sample))
            grads = adjoint_gradient(task.integ, params, cost, **self._problem(sample))
            return loss, grads
        if estimator == "implicit":  # exact gradient of the fixed-endpoint loss (reference for bvp)
            from .baselines import bvp_loss

            return jax.value_and_grad(lambda p: bvp_loss(task.integ, p, cost, q_start=sample["q_start"],
                                                         q_end=sample["q_end"], num_steps=task.num_steps,
                                                         inputs=sample.get("inputs")))(params)
        return jax.value_and_grad(lambda p: self.sample_loss(estimator, p, sample))(params)

    def loss_and_grad(self, estimator: str, raw: dict, batch: dict):
        """Mean batch loss and its gradient w.r.t. the unconstrained parameters `raw`."""
        if estimator in ("echo", "bptt"):
            def mean_loss(r):
                params = self.physical(r)
                return jnp.mean(jax.vmap(lambda s: self.sample_loss(estimator, params, s))(batch))

            return jax.value_and_grad(mean_loss)(raw)
        params, pullback = jax.vjp(self.physical, raw)
        losses, grads = jax.vmap(lambda s: self._sample_loss_and_physical_grad(estimator, params, s))(batch)
        mean_grads = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)
        (raw_grads,) = pullback({k: mean_grads[k] for k in params})
        return jnp.mean(losses), raw_grads

    def physical_gradient(self, estimator: str, raw: dict, batch: dict) -> dict:
        """Mean batch gradient w.r.t. the *physical* trained parameters (for agreement checks)."""
        params = self.physical(raw)
        _, grads = jax.vmap(lambda s: self._sample_loss_and_physical_grad(estimator, params, s))(batch)
        return {k: jnp.mean(grads[k], axis=0) for k in self.constraints}

    @staticmethod
    def _exact_reference(estimator: str) -> str:
        return "implicit" if estimator == "bvp" else "bptt"

    def _make_step(self, estimator):
        optimizer = self.optimizer

        def step(raw, opt_state, batch):
            loss, grads = self.loss_and_grad(estimator, raw, batch)
            updates, new_opt_state = optimizer.update(grads, opt_state, raw)
            return optax.apply_updates(raw, updates), new_opt_state, loss, optax.tree.norm(grads)

        return step

    def _make_probe(self, estimator):
        reference = self._exact_reference(estimator)

        def probe(raw, batch):
            return self.physical_gradient(estimator, raw, batch), self.physical_gradient(reference, raw, batch)

        return probe

    def _evaluate_impl(self, raw, batch):
        """Initial-value loss per sample (every estimator is judged on the same free run),
        class scores when the task classifies, and the energy error of an undriven free run."""
        task = self.task
        params = self.physical(raw)

        def one(sample):
            traj = task.integ.simulate(params, sample["q0"], sample["v0"], task.num_steps, sample.get("inputs"))
            loss = trajectory_cost(task.cost_fn(sample), traj.q, start=1)
            logits = task.logits_fn(traj.q, sample) if task.logits_fn is not None else jnp.zeros(())
            return loss, logits

        losses, logits = jax.vmap(one)(batch)
        return losses, logits, self._energy_error(params)

    def _energy_error(self, params):
        """`max_k |E_k − E_0| / |E_0|` along an undriven free run from `task.energy_state`."""
        task = self.task
        if task.energy_state is None:
            return jnp.asarray(jnp.nan)
        integ, model = task.integ, task.model
        q0, v0 = task.energy_state
        traj = integ.simulate(params, q0, v0, task.num_steps, None)
        us = jnp.zeros((traj.t.shape[0], model.num_inputs), traj.q.dtype)

        def energy(q, p, t, u):
            v = integ.velocity_estimate(params, q, p, t, u)
            return model.energy(q, v, t, params, u)

        e = jax.vmap(energy)(traj.q, traj.p, traj.t, us)
        return jnp.max(jnp.abs(e - e[0])) / jnp.maximum(jnp.abs(e[0]), jnp.finfo(e.dtype).tiny)

    def evaluate(self, raw: dict) -> dict:
        """Metrics of one parameter state (`train_loss`, `test_loss`, accuracies, errors)."""
        losses, logits, energy_error = self._evaluate(raw, self.eval_batch)
        losses = np.asarray(losses)
        n_train = self.task.num_train
        out = {"train_loss": float(np.mean(losses[:n_train])),
               "test_loss": float(np.mean(losses[n_train:])) if self.task.test is not None else None,
               "energy_error": float(energy_error)}
        if self.task.classes is not None:
            pred = np.argmax(np.asarray(logits), axis=-1)
            labels = np.asarray(self.eval_batch["label"])
            correct = pred == labels
            out["train_accuracy"] = float(np.mean(correct[:n_train]))
            out["test_accuracy"] = float(np.mean(correct[n_train:])) if self.task.test is not None else None
        if self.task.true_params is not None:
            params = self.physical(raw)
            num = sum(float(jnp.sum((params[k] - v) ** 2)) for k, v in self.task.true_params.items())
            den = sum(float(jnp.sum(v**2)) for v in self.task.true_params.values())
            out["param_error"] = math.sqrt(num / den)
        return out

    def batches(self, epoch: int):
        """The batches of an epoch (shuffled by `default_rng([seed, epoch])`, remainder dropped)."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.task.num_train)
        for b in range(self.num_batches):
            idx = jnp.asarray(order[b * self.batch_size:(b + 1) * self.batch_size])
            yield {k: v[idx] for k, v in self.task.train.items()}

    # ------------------------------------------------------------------------- loop
    def fit(
        self,
        out_dir=None,
        *,
        resume: bool = False,
        progress: bool = True,
        plots: bool = True,
        callbacks: Sequence[Callable[[int, list], None]] = (),
    ) -> TrainResult:
        """Train for `config.epochs` epochs (each run in lockstep on the same batches).

        **Arguments:**
        - `out_dir`: run folder (created); `None` keeps everything in memory.
        - `resume`: continue from `out_dir/checkpoint.npz` (else `out_dir` must not hold a run).
        - `progress`: show a tqdm bar with the live loss of each run.
        - `plots`: write the PNG plots at the end.
        - `callbacks`: `callback(epoch, records)` after each epoch's checkpoint (raising
          `KeyboardInterrupt` there simulates a kill).

        **Returns:** a `TrainResult`.

        **Raises:** `TrainingError` naming the run, step and cause on a non-finite loss or
        gradient or a failed solve; the last good checkpoint is kept.
        """
        cfg = self.config
        out_dir = None if out_dir is None else os.fspath(out_dir)
        state = self.initial_state()
        start_epoch, step, wall = 0, 0, {run: 0.0 for run in self.runs}
        history: list[dict] = []
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            ckpt = os.path.join(out_dir, CHECKPOINT)
            for name in os.listdir(out_dir):  # temporaries of a process killed mid-write
                if name.startswith(f"{CHECKPOINT}.tmp-") and resume:
                    os.remove(os.path.join(out_dir, name))
            if resume and os.path.exists(ckpt):
                state, meta = load_checkpoint(ckpt, state)
                if tuple(meta["runs"]) != self.runs:
                    raise TrainingError(f"checkpoint {ckpt} holds runs {meta['runs']}, this configuration {self.runs}.")
                start_epoch, step, wall = meta["epoch"], meta["step"], meta["wall_time"]
                history = self._read_history(out_dir, start_epoch)
            elif resume or not (os.path.exists(ckpt) or os.path.exists(os.path.join(out_dir, METRICS))):
                # a fresh run (also when resuming a run killed before its first checkpoint)
                open(os.path.join(out_dir, METRICS), "w").close()
            else:
                raise TrainingError(
                    f"{out_dir} already holds a run; continue it with `lagrangian-eqprop resume {out_dir}` "
                    "or choose another output folder."
                )
            _write_json(os.path.join(out_dir, CONFIG), {"config": cfg.to_dict(), "runs": list(self.runs)})

        if start_epoch == 0 and not history:
            for run in self.runs:
                record = self._epoch_record(run, 0, step, state[run]["raw"], [], [], wall[run], 0.0)
                history.append(record)
                self._log(out_dir, record)

        bar = None
        if progress and start_epoch < cfg.epochs:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=f"{cfg.task} [{'+'.join(self.runs)}]",
                       unit="epoch", dynamic_ncols=True)
        completed = True
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                losses = {run: [] for run in self.runs}
                norms = {run: [] for run in self.runs}
                epoch_time = {run: 0.0 for run in self.runs}
                for batch in self.batches(epoch):
                    step += 1
                    for run in self.runs:
                        t0 = time.perf_counter()
                        new_state, loss, gnorm = self._train_step(run, state[run], batch, epoch, step, out_dir)
                        dt = time.perf_counter() - t0
                        epoch_time[run] += dt
                        state[run] = new_state
                        losses[run].append(loss)
                        norms[run].append(gnorm)
                        self._log(out_dir, {"kind": "step", "run": run, "epoch": epoch, "step": step,
                                            "loss": loss, "grad_norm": gnorm, "time": dt})
                records = []
                for run in self.runs:
                    wall[run] += epoch_time[run]
                    record = self._epoch_record(run, epoch, step, state[run]["raw"], losses[run], norms[run],
                                                wall[run], epoch_time[run])
                    records.append(record)
                    history.append(record)
                    self._log(out_dir, record)
                if out_dir is not None:
                    self._checkpoint(out_dir, state, epoch, step, wall)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({run: f"{r['train_loss']:.3e}" for run, r in zip(self.runs, records)})
                for callback in callbacks:
                    callback(epoch, records)
        except KeyboardInterrupt:
            completed = False
        finally:
            if bar is not None:
                bar.close()
        result = TrainResult(
            config=cfg, task=self.task, runs=self.runs,
            params={run: self.physical(state[run]["raw"]) for run in self.runs},
            initial_params=self.physical(self.initial_raw), history=history, out_dir=out_dir,
            completed=completed,
        )
        if out_dir is not None and completed:
            self._finalise(result, plots)
        return result

    def _train_step(self, run, run_state, batch, epoch, step, out_dir):
        where = f"run {run!r}, step {step} (epoch {epoch})"
        kept = (f"; the last good checkpoint is kept in {os.path.join(out_dir, CHECKPOINT)}"
                if out_dir is not None and epoch > 1 else "")
        try:
            raw, opt_state, loss, gnorm = self._steps[run](run_state["raw"], run_state["opt_state"], batch)
            loss, gnorm = float(loss), float(gnorm)
        except _SOLVE_ERRORS as err:
            raise TrainingError(f"training stopped at {where}: the solve failed — {_failure_cause(err)}{kept}.") from err
        if not math.isfinite(loss):
            raise TrainingError(f"training stopped at {where}: the loss is non-finite ({loss}){kept}. "
                                "Try a smaller learning rate or time step.")
        if not math.isfinite(gnorm):
            raise TrainingError(f"training stopped at {where}: the gradient is non-finite (norm {gnorm}){kept}. "
                                "Try a smaller learning rate, a smaller β or a smaller time step.")
        return {"raw": raw, "opt_state": opt_state}, loss, gnorm

    def _epoch_record(self, run, epoch, step, raw, losses, norms, wall_time, epoch_time):
        try:
            metrics = self.evaluate(raw)
        except _SOLVE_ERRORS as err:
            raise TrainingError(f"evaluation failed for run {run!r} after epoch {epoch} (step {step}): "
                                f"{_failure_cause(err)}.") from err
        record = {"kind": "epoch", "run": run, "epoch": epoch, "step": step,
                  "batch_loss": float(np.mean(losses)) if losses else None,
                  "grad_norm": float(np.mean(norms)) if norms else None, **metrics,
                  "wall_time": wall_time, "epoch_time": epoch_time}
        cfg = self.config
        if run in self._probe and cfg.probe_every and epoch % cfg.probe_every == 0:
            try:
                est, ref = self._probe[run](raw, self.probe_batch)
            except _SOLVE_ERRORS as err:
                raise TrainingError(f"gradient probe failed for run {run!r} at epoch {epoch}: "
                                    f"{_failure_cause(err)}.") from err
            record.update(_agreement(est, ref))
            record["agreement_reference"] = self._exact_reference(run)
        return record

    def _checkpoint(self, out_dir, state, epoch, step, wall):
        path = os.path.join(out_dir, CHECKPOINT)
        meta = {"epoch": epoch, "step": step, "wall_time": wall, "runs": list(self.runs),
                "config": self.config.to_dict()}
        try:
            save_checkpoint(path, state, meta)
        except OSError as err:
            raise TrainingError(f"could not write the checkpoint after epoch {epoch} ({err}); the previous "
                                f"checkpoint in {path} is intact.") from err

    @staticmethod
    def _log(out_dir, record):
        if out_dir is None:
            return
        with open(os.path.join(out_dir, METRICS), "a") as handle:
            handle.write(json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n")

    @staticmethod
    def _read_history(out_dir, last_epoch) -> list[dict]:
        """Epoch records up to the checkpoint; drops (and rewrites away) anything logged after it."""
        path = os.path.join(out_dir, METRICS)
        kept, history = [], []
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line torn by a kill
                        continue
                    if record.get("epoch", 0) <= last_epoch:
                        kept.append(line if line.endswith("\n") else line + "\n")
                        if record.get("kind") == "epoch":
                            history.append({k: (float("nan") if v is None and k in ("train_loss",) else v)
                                            for k, v in record.items()})
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as handle:
            handle.writelines(kept)
        os.replace(tmp, path)
        return history

    # ----------------------------------------------------------------------- outputs
    def _finalise(self, result: TrainResult, plots: bool) -> None:
        out_dir = result.out_dir
        task = self.task
        payload = {run: _tree_to_json(p) for run, p in result.params.items()}
        payload["initial"] = _tree_to_json(result.initial_params)
        if task.true_params is not None:
            payload["true"] = _tree_to_json(task.true_params)
        payload["trained"] = {name: kind for name, kind in self.constraints.items()}
        _write_json(os.path.join(out_dir, PARAMS), payload)
        _write_json(os.path.join(out_dir, SUMMARY),
                    {"rows": [{k: _json_safe(v) for k, v in row.items()} for row in result.summary_rows()],
                     "completed": result.completed})
        if plots:
            result.plots = self.write_plots(result)

    def write_plots(self, result: TrainResult) -> dict:
        """Loss curves, trajectories before/after vs target, parameters, agreement (PNG)."""
        from . import plotting

        task = self.task
        folder = os.path.join(result.out_dir, "plots")
        os.makedirs(folder, exist_ok=True)
        written = {}
        title = f"{task.name}: " + " vs ".join(result.runs)
        written["loss"] = plotting.plot_loss_curves(result.history, os.path.join(folder, "loss.png"),
                                                    unit=task.loss_unit, title=title)
        if any(r.get("cosine") is not None for r in result.history):
            written["agreement"] = plotting.plot_agreement_history(
                result.history, os.path.join(folder, "agreement.png"),
                title=f"{task.name}: gradient agreement with the exact gradient (probe batch)")
        if task.classes is not None:
            written["accuracy"] = plotting.plot_accuracy_curves(
                result.history, os.path.join(folder, "accuracy.png"), title=f"{task.name}: accuracy")
        # trajectories of one held-out sample (or the first training sample)
        split = task.test if task.test is not None else task.train
        sample = {k: v[0] for k, v in split.items()}

        def run_traj(params):
            return np.asarray(task.integ.simulate(params, sample["q0"], sample["v0"], task.num_steps,
                                                  sample.get("inputs")).q)

        before = task.display(run_traj(result.initial_params))
        after = {run: task.display(run_traj(p)) for run, p in result.params.items()}
        target = task.display_target(sample)
        what = "held-out" if task.test is not None else "training"
        label = f" (class: {task.classes[int(sample['label'])]})" if task.classes is not None else ""
        written["trajectories"] = plotting.plot_trajectory_comparison(
            task.times, before, after, os.path.join(folder, "trajectories.png"),
            target=None if target is None else target[1], target_times=None if target is None else target[0],
            labels=task.display_labels, unit=task.display_unit,
            title=f"{task.name}: {what} sample{label}, before and after training")
        learned = {run: {k: np.asarray(p[k]) for k in self.constraints} for run, p in result.params.items()}
        written["parameters"] = plotting.plot_parameters(
            learned, os.path.join(folder, "parameters.png"),
            initial={k: np.asarray(result.initial_params[k]) for k in self.constraints},
            true=None if task.true_params is None else {k: np.asarray(v) for k, v in task.true_params.items()},
            units=task.parameter_units, title=f"{task.name}: learned parameters")
        return written


# ========================================================================= conveniences
def train(config: TrainConfig | dict | None = None, out_dir=None, **kwargs) -> TrainResult:
    """Build a `Trainer` from a config (or a dict of its fields) and run `fit(out_dir, **kwargs)`."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    return Trainer(config).fit(out_dir, **kwargs)


def read_config(out_dir, registered: bool = True) -> TrainConfig:
    """The `TrainConfig` saved in a run folder (`registered=False` for a hand-built task)."""
    path = os.path.join(os.fspath(out_dir), CONFIG)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise TrainingError(f"{out_dir} is not a run folder (no {CONFIG}).") from None
    return TrainConfig.from_dict(data["config"], registered)


def resume(out_dir, *, epochs: int | None = None, task: Task | None = None, progress: bool = True,
           plots: bool = True, callbacks=()) -> TrainResult:
    """Continue the run in `out_dir` from its checkpoint (optionally to a new number of epochs).

    With the same configuration the result is the one an uninterrupted run would have given:
    the checkpoint holds the parameters and optimiser state, and the batch order of each epoch
    depends only on `(seed, epoch)`. Pass `task` for a run of a hand-built `Task`.
    """
    config = read_config(out_dir, registered=task is None)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs).validate(registered=task is None)
    return Trainer(config, task=task).fit(out_dir, resume=True, progress=progress, plots=plots, callbacks=callbacks)
