"""`TrainConfig`: everything that defines a training run, validated field by field.

Saved as the run folder's `config.json`; `estimator` and `reference` are estimator names
(`lep.ESTIMATORS`) or estimator objects (`lep.Echo(beta=1e-3)`, ...), stored as
`{"name": ..., field: value}` tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing

import numpy as np
import optax

from .._estimators import AbstractEqProp, AbstractEstimator, as_estimator
from .._names import ESTIMATOR_NAMES, OPTIMIZER_NAMES, SCHEDULE_NAMES, VARIANT_NAMES
from ..errors import ConfigError, EstimatorError
from ._checkpoint import CONFIG

__all__ = ["OPTIMIZERS", "TrainConfig", "estimator_from_config", "estimator_to_config", "make_optimizer",
           "read_config"]

OPTIMIZERS = OPTIMIZER_NAMES
_ESTIMATOR_FIELDS = {"echo": ("beta", "variant", "points"), "bvp": ("beta", "variant"), "naive": ("beta", "variant", "correction")}


def estimator_to_config(estimator):
    """A JSON-able form of an estimator: its name, or `{"name": ..., settings...}`."""
    if isinstance(estimator, str) or estimator is None:
        return estimator
    out = {"name": estimator.name}
    for field in _ESTIMATOR_FIELDS.get(estimator.name, ()):
        value = getattr(estimator, field)
        out[field] = value if isinstance(value, (str, bool)) or value is None else float(value)
    return out


def estimator_from_config(value, beta=None, variant="centered") -> AbstractEstimator:
    """An estimator object from a name (with the config's `beta`, `variant`), a table as written
    by `estimator_to_config`, or an object."""
    if isinstance(value, AbstractEstimator):
        return value
    if isinstance(value, dict):
        data = dict(value)
        name = data.pop("name", None)
        from .._references import ESTIMATORS

        if name not in ESTIMATORS:
            raise ConfigError(f"estimator table needs a 'name' among {', '.join(ESTIMATORS)}, got {value!r}.")
        return ESTIMATORS[name](**data)
    if isinstance(as_estimator(value), AbstractEqProp):
        return as_estimator(value, beta, variant)
    return as_estimator(value)


# Raw configuration values of any type are accepted here (a TOML file, flags): `validate()`
# checks each field and names it, which a runtime type check of the constructor would pre-empt.
@typing.no_type_check
@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's `config.json`).

    **Fields** (`None` means "the task's recommended value", filled in by `resolve`):
    - `task`: task name (`tasks.available_tasks()`); `task_options`: its options.
    - `estimator`: an estimator name (`"echo"`, `"bvp"`, `"bptt"`, `"adjoint"`, `"naive"`,
      `"implicit"`, `"eqprop"`) or object (`lep.Echo(beta=1e-3)`, ...); `None`: the task's
      recommended one (`"echo"` for time-dependent tasks, `"eqprop"` for static ones).
    - `reference`: a second estimator trained side by side (default `"bptt"`, which a static
      task trains as its exact reference, `"implicit"`), or `"none"`.
    - `beta`, `variant`: EqProp nudging strength and variant for estimators given by name.
    - `optimizer` (`OPTIMIZERS`), `learning_rate`, `epochs`, `batch_size`; `weight_decay`:
      decoupled weight decay (AdamW-style, `θ ← θ − lr·wd·θ` each step; 0: none) on the
      parameters trained as stored (weights, biases, input gains) — never on the physical
      constants trained through a positivity map (log or softplus: masses, frequencies,
      stiffnesses), whose decay would pull them towards an arbitrary value in the model's
      units; `schedule`: the
      learning rate over the run, `"constant"` or `"cosine"` (decays to 0 at the last step of
      `epochs`; a resume that changes `epochs` stretches it).
    - `seed`: master seed — the task's data (unless `task_options` sets its own `seed`) and the
      batch order (`numpy.random.default_rng([seed, epoch])`).
    - `probe_every`: gradient agreement with the exact gradient (BPTT; the implicit gradient
      for `bvp`) on a fixed probe batch every this many epochs (0: never); `probe_size`: its
      number of samples.
    - `devices`: split every batch over this many devices (data parallel, `jax.sharding`; the
      batch size must be a multiple of it); `None`: one device, or every device of a
      multi-process run. Not part of what a run is: a run may be resumed on other devices.
    """

    task: str = "tracking"
    estimator: object = None
    reference: object = "bptt"
    beta: float | None = None
    variant: str = "centered"
    optimizer: str = "adam"
    learning_rate: float | None = None
    schedule: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    weight_decay: float = 0.0
    seed: int = 0
    probe_every: int = 1
    probe_size: int = 4
    task_options: dict = dataclasses.field(default_factory=dict)
    devices: int | None = None

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict, registered: bool = True) -> "TrainConfig":
        """Build from a dict (e.g. a TOML file); unknown keys raise `ConfigError` listing the
        valid ones. `registered=False` accepts a task name outside the registry."""
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
        out = dataclasses.asdict(self)
        out["estimator"] = estimator_to_config(self.estimator)
        out["reference"] = estimator_to_config(self.reference)
        return out

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes).validate()

    def run_names(self) -> tuple[str, ...]:
        """Names of the runs trained side by side (primary first)."""
        primary = _name(self.estimator)
        reference = _name(self.reference)
        return (primary,) if reference in ("none", primary) else (primary, reference)

    def estimators(self) -> dict[str, AbstractEstimator]:
        """`{run name: estimator object}` (primary first)."""
        out = {_name(self.estimator): estimator_from_config(self.estimator, self.beta, self.variant)}
        if _name(self.reference) not in ("none", *out):
            out[_name(self.reference)] = estimator_from_config(self.reference, self.beta, self.variant)
        return out

    def validate(self, registered: bool = True) -> "TrainConfig":
        """Check every field; raises `ConfigError` naming the field.

        `registered=False` skips the checks of the task name and options against the registry
        (for a hand-built `Task` passed to `Trainer`)."""
        from ..tasks import available_tasks, resolve_options

        def bad(field, message):
            raise ConfigError(f"config field {field!r}: {message}")

        names = ESTIMATOR_NAMES
        if not isinstance(self.task, str) or not self.task:
            bad("task", f"must be a task name, got {self.task!r}")
        if registered and self.task not in available_tasks():
            bad("task", f"unknown task {self.task!r}; available tasks: {', '.join(available_tasks())}")
        if self.reference is None:
            self.reference = "none"
        for field in ("estimator", "reference"):
            value = getattr(self, field)
            if (value == "none" and field == "reference") or (value is None and field == "estimator"):
                continue  # no reference; the task's recommended estimator (`resolve`)
            choices = ", ".join(names) + (", none" if field == "reference" else "")
            if isinstance(value, str) and value not in names:
                bad(field, f"unknown estimator {value!r}; choose one of {choices}")
            try:
                estimator_from_config(value, 1.0, "centered")
            except (EstimatorError, ConfigError, TypeError) as err:
                bad(field, f"invalid estimator {value!r} ({err}); choose one of {choices}")
        if self.variant not in VARIANT_NAMES:
            bad("variant", f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANT_NAMES)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule is not None and self.schedule not in SCHEDULE_NAMES:
            bad("schedule", f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
        if self.beta is not None:
            if not _is_number(self.beta) or not math.isfinite(self.beta) or self.beta == 0:
                bad("beta", f"must be a non-zero finite number, got {self.beta!r}")
            self.beta = float(self.beta)
        if self.learning_rate is not None:
            if not _is_number(self.learning_rate) or not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
                bad("learning_rate", f"must be a positive number, got {self.learning_rate!r}")
            self.learning_rate = float(self.learning_rate)
        if not _is_number(self.weight_decay) or not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            bad("weight_decay", f"must be a non-negative number, got {self.weight_decay!r}")
        self.weight_decay = float(self.weight_decay)
        for field, minimum in (("epochs", 1), ("batch_size", 1), ("probe_every", 0), ("probe_size", 1),
                               ("devices", 1)):
            value = getattr(self, field)
            if value is None and field in ("epochs", "batch_size", "devices"):
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

    def resolve(self, task) -> "TrainConfig":
        """Fill `None` fields from the task's recommendations (and record the task's options)."""
        from ..tasks import available_tasks

        rec = {"learning_rate": 0.05, "epochs": 50, "batch_size": 8, "beta": 1e-3, "schedule": "constant",
               **task.recommended}
        changes = {k: rec[k] for k in ("learning_rate", "epochs", "batch_size", "beta", "schedule")
                   if getattr(self, k) is None}
        if self.estimator is None:
            changes["estimator"] = rec.get("estimator", "echo")
        if self.reference == "bptt" and "reference" in rec:
            changes["reference"] = rec["reference"]  # the task's exact reference (static tasks: implicit)
        changes["task_options"] = dict(task.options)
        changes["task"] = task.name
        return dataclasses.replace(self, **changes).validate(registered=task.name in available_tasks())


def _name(estimator) -> str:
    if isinstance(estimator, AbstractEstimator):
        return estimator.name
    if isinstance(estimator, dict):
        return str(estimator.get("name"))
    return str(estimator)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _is_integer(x) -> bool:
    return _is_number(x) and float(x).is_integer()


def make_optimizer(name: str, learning_rate: float, schedule: str = "constant", total_steps: int | None = None,
                   weight_decay: float = 0.0, decayed=None):
    """The optax optimiser of that name (`OPTIMIZERS`), its learning rate constant or decaying
    along a cosine to 0 over `total_steps`; with `weight_decay > 0`, decoupled weight decay
    (`optax.add_decayed_weights`, scaled by the learning rate like AdamW) on the parameters for
    which the mask `decayed` (a pytree of bools, or a callable of the parameters) is true."""
    if schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(learning_rate, max(int(total_steps), 1))
    if not weight_decay:  # the library's own optimisers (their state layout is what checkpoints hold)
        return {"adam": optax.adam, "sgd": optax.sgd, "rmsprop": optax.rmsprop,
                "momentum": lambda lr: optax.sgd(lr, momentum=0.9)}[name](learning_rate)
    if name == "adam":
        base = optax.scale_by_adam()
    elif name == "sgd":
        base = optax.identity()
    elif name == "momentum":
        base = optax.trace(decay=0.9)
    else:
        base = optax.scale_by_rms()
    return optax.chain(base, optax.add_decayed_weights(weight_decay, decayed), optax.scale_by_learning_rate(learning_rate))


def read_config(out_dir, registered: bool = True) -> TrainConfig:
    """The `TrainConfig` saved in a run folder (`registered=False` for a hand-built task).

    **Raises:** `ConfigError` when `out_dir` is not a run folder (a user error: exit status 2).
    """
    path = os.path.join(os.fspath(out_dir), CONFIG)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{out_dir} is not a run folder (no {CONFIG}).") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is unreadable: {err}") from None
    return TrainConfig.from_dict(data["config"], registered)
