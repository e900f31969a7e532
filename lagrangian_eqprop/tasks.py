"""Learning tasks for physical systems, with their data generated in-package (nothing downloaded).

A `Task` bundles everything the training loop needs: the variational integrator of the system
being trained, the initial (physical) parameters, which of them are trained and under which
constraint (see `training.CONSTRAINTS`), a training and a held-out split of samples, and a
function that turns one sample into a nudging cost `cost(k, q)`.

Registered tasks (`available_tasks()`; build one with `get_task(name, **overrides)`):

- `sysid` — system identification, student–teacher: recover the hidden spring stiffnesses of a
  walled mass–spring chain from its observed trajectories. Supports fixed-endpoint training
  (`estimator="bvp"`): the student's two-point trajectory between the observed first and last
  positions must match the observations in between.
- `tracking` — the flagship: six masses coupled by springs between two walls, an input force
  drives the first mass; train the couplings so that the fourth mass follows a target signal
  (produced by a hidden teacher chain driven by the same input, so it can be followed exactly).
- `classification` — an oscillator chain reads a 1-D signal (sine, square or sawtooth with
  random frequency, phase and noise) as the force on its first mass; at the end of the run the
  energies of three readout masses are the class scores (softmax cross-entropy, see
  `EnergyReadoutCost`). Accuracy is reported on a held-out split.
- `pendulum` — a chain of torsionally coupled nonlinear pendula learns the map from an initial
  angle pattern to the pattern at time T produced by a teacher chain (couplings and lengths).

Samples are dicts of arrays with a leading sample axis; every sample has `q0`, `v0` (initial
state), `inputs` (node-sampled inputs, `(N+1, m)`, only when the system has inputs) and the
data its cost needs (`target`, `label`, ...); fixed-endpoint tasks also carry `q_start`,
`q_end`.
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

from .costs import TerminalCost, TrackingCost
from .integrate import VariationalIntegrator

__all__ = [
    "EnergyReadoutCost",
    "Task",
    "ConfigError",
    "available_tasks",
    "get_task",
    "task_options",
]


class ConfigError(ValueError):
    """An invalid task name or task option; the message names the field."""


# ============================================================================ the record
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


# ================================================================================ costs
class EnergyReadoutCost(eqx.Module):
    """Classification readout from the readout masses' squared displacements.

    Class scores `s_c = scale · (q[i_c] − center_c)²` (one readout coordinate `i_c` per
    class, `center_c` its rest position), softmax cross-entropy against `label`, averaged over
    the last `window` nodes. Squared displacements measure how strongly each readout mass
    oscillates, which does not depend on the phase of the input signal — the linear readout
    `costs.ReadoutCost` (scores `∝ q[i_c]`) cannot classify signals whose phase is random.

    **Fields:** `label` (int, `()`), `center` (`(C,)`), `indices` (static), `final_step`
    (static), `window` (static), `scale`.
    """

    label: Any
    center: Any
    indices: tuple[int, ...] = eqx.field(static=True)
    final_step: int = eqx.field(static=True)
    window: int = eqx.field(static=True)
    scale: float = 1.0

    def __init__(self, label, center, indices, final_step: int, window: int, scale: float):
        self.label = jnp.asarray(label, dtype=jnp.int32)
        self.center = jnp.asarray(center)
        self.indices = tuple(int(i) for i in indices)
        self.final_step = int(final_step)
        self.window = int(window)
        self.scale = scale

    def logits(self, q):
        """Class scores `(C,)` at one node."""
        return self.scale * (q[jnp.asarray(self.indices)] - self.center) ** 2

    def __call__(self, k, q):
        xent = -jax.nn.log_softmax(self.logits(q))[self.label]
        active = (k > self.final_step - self.window) & (k <= self.final_step)
        return jnp.where(active, xent / self.window, 0.0)


# ============================================================================== helpers
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
    from . import systems

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


# ================================================================================ tasks
def sysid(
    n_masses: int = 4,
    num_train: int = 8,
    num_test: int = 4,
    dt: float = 0.05,
    num_steps: int = 20,
    stiffness_range: tuple[float, float] = (0.5, 2.0),
    init_stiffness: float = 1.0,
    amplitude: float = 0.2,
    rule: str = "trapezoid",
    seed: int = 0,
) -> Task:
    """System identification (student–teacher) on a walled mass–spring chain.

    A teacher chain with hidden stiffnesses `k ~ U(stiffness_range)` is released from random
    displacements and velocities (amplitude `amplitude`); every mass is observed at every
    node. The student (all stiffnesses `init_stiffness`) trains `k` (positive, softplus) to
    reproduce the observations: cost `c_k = ½ ‖q_k − q^obs_k‖² / N`. The horizon `dt·num_steps`
    is kept shorter than half the fastest period so that the fixed-endpoint problem has no
    conjugate points (`estimator="bvp"` is supported).
    """
    name = "sysid"
    _check_positive(name, "n_masses", n_masses, integer=True)
    _check_positive(name, "num_train", num_train, integer=True)
    _check_positive(name, "num_test", num_test, integer=True, allow_zero=True)
    _check_positive(name, "dt", dt)
    _check_positive(name, "num_steps", num_steps, integer=True)
    _check_positive(name, "init_stiffness", init_stiffness)
    _check_positive(name, "amplitude", amplitude)
    lo, hi = _check_range(name, "stiffness_range", stiffness_range)
    n = int(n_masses)
    system = _system("mass_spring_chain", n=n, walls=True, stiffness=float(init_stiffness))
    integ = VariationalIntegrator(system.model, dt, rule=rule)
    rng = np.random.default_rng(seed)
    num_edges = system.model.parameter_shapes["k"][0]
    k_true = rng.uniform(lo, hi, num_edges)
    teacher = dict(system.params, k=_f(k_true))
    total = int(num_train) + int(num_test)
    rest = np.arange(n) * 1.0
    q0 = rest + amplitude * rng.uniform(-1, 1, (total, n))
    v0 = amplitude * rng.uniform(-1, 1, (total, n))
    samples = _batch(q0=q0, v0=v0)
    observed = _teacher_run(integ, teacher, samples, int(num_steps))
    samples.update(target=observed, q_start=observed[:, 0], q_end=observed[:, -1])
    train, test = _split(samples, int(num_train))
    N = int(num_steps)
    indices = tuple(range(n))

    def cost_fn(sample):
        return TrackingCost(sample["target"], indices, weight=1.0 / N)

    return Task(
        name=name,
        description="recover the hidden spring stiffnesses of a mass–spring chain from its trajectories",
        integ=integ, num_steps=N, params=dict(system.params), trainable={"k": "positive"},
        train=train, test=test, cost_fn=cost_fn, true_params={"k": _f(k_true)}, supports_bvp=True,
        energy_state=(train["q0"][0], train["v0"][0]),
        display_indices=indices, display_offset=rest,
        display_labels=tuple(f"x_{i} − {i}a" for i in indices), display_unit="m",
        parameter_units={"k": "N/m", "m": "kg", "l": "m"}, loss_unit="m²",
        recommended={"learning_rate": 0.05, "epochs": 60, "batch_size": 8, "beta": 1e-3},
    )


def _sum_of_sines(rng, times, num_harmonics, freq_range, amplitude):
    f = rng.uniform(*freq_range, num_harmonics)
    phase = rng.uniform(0, 2 * np.pi, num_harmonics)
    amp = amplitude * rng.uniform(0.5, 1.0, num_harmonics)
    return (amp[None] * np.sin(2 * np.pi * f[None] * times[:, None] + phase[None])).sum(1)


def tracking(
    n_masses: int = 6,
    input_mass: int = 0,
    tracked_mass: int = 3,
    num_train: int = 8,
    num_test: int = 4,
    dt: float = 0.1,
    num_steps: int = 300,
    stiffness_range: tuple[float, float] = (0.5, 2.0),
    init_stiffness: float = 1.0,
    input_amplitude: float = 0.3,
    num_harmonics: int = 3,
    freq_range: tuple[float, float] = (0.05, 0.4),
    rule: str = "trapezoid",
    seed: int = 0,
) -> Task:
    """The flagship: make one mass of a driven oscillator chain follow a target signal.

    `n_masses` masses coupled by springs between two walls; the input force `u(t)` (a sum of
    `num_harmonics` random sines, frequencies in `freq_range` Hz, one input per sample) drives
    mass `input_mass`. The target for mass `tracked_mass` is the motion of a teacher chain with
    hidden stiffnesses `~ U(stiffness_range)` driven by the same input, so a perfect fit exists.
    The student trains its stiffnesses `k` (positive, softplus) from `init_stiffness`; cost
    `c_k = ½ (x_tracked − target_k)² / N` (time-averaged squared tracking error).
    """
    name = "tracking"
    for option, value in (("n_masses", n_masses), ("num_train", num_train), ("num_steps", num_steps),
                           ("num_harmonics", num_harmonics)):
        _check_positive(name, option, value, integer=True)
    _check_positive(name, "num_test", num_test, integer=True, allow_zero=True)
    for option, value in (("dt", dt), ("init_stiffness", init_stiffness), ("input_amplitude", input_amplitude)):
        _check_positive(name, option, value)
    lo, hi = _check_range(name, "stiffness_range", stiffness_range)
    freq_range = _check_range(name, "freq_range", freq_range)
    n = int(n_masses)
    for option, value in (("input_mass", input_mass), ("tracked_mass", tracked_mass)):
        if isinstance(value, bool) or int(value) != value or not 0 <= value < n:
            raise ConfigError(f"task {name}: option {option!r} must be a mass index in 0..{n - 1}, got {value!r}.")
    system = _system("mass_spring_chain", n=n, walls=True, input_mass=int(input_mass),
                     stiffness=float(init_stiffness))
    integ = VariationalIntegrator(system.model, dt, rule=rule)
    N = int(num_steps)
    rng = np.random.default_rng(seed)
    num_edges = system.model.parameter_shapes["k"][0]
    k_true = rng.uniform(lo, hi, num_edges)
    teacher = dict(system.params, k=_f(k_true))
    total = int(num_train) + int(num_test)
    times = np.asarray(integ.node_times(N, np.float64))
    inputs = np.stack([_sum_of_sines(rng, times, int(num_harmonics), freq_range, input_amplitude)
                       for _ in range(total)])[:, :, None]
    rest = np.arange(n) * 1.0
    samples = _batch(q0=np.tile(rest, (total, 1)), v0=np.zeros((total, n)), inputs=inputs)
    tracked = int(tracked_mass)
    samples["target"] = _teacher_run(integ, teacher, samples, N)[:, :, tracked:tracked + 1]
    train, test = _split(samples, int(num_train))

    def cost_fn(sample):
        return TrackingCost(sample["target"], (tracked,), weight=1.0 / N)

    return Task(
        name=name,
        description=f"train the couplings of {n} driven oscillators so mass {tracked} follows a target signal",
        integ=integ, num_steps=N, params=dict(system.params), trainable={"k": "positive"},
        train=train, test=test, cost_fn=cost_fn, true_params={"k": _f(k_true)},
        energy_state=(_f(system.q0), _f(system.v0)),
        display_indices=(tracked,), display_offset=rest,
        display_labels=(f"x_{tracked} − {tracked}a",), display_unit="m",
        parameter_units={"k": "N/m", "m": "kg", "l": "m", "b": "1"}, loss_unit="m²",
        recommended={"learning_rate": 0.05, "epochs": 100, "batch_size": 8, "beta": 1e-3},
    )


_WAVEFORMS = ("sine", "square", "sawtooth")


def _waveform(kind: int, phase_arg):
    if kind == 0:
        return np.sin(phase_arg)
    if kind == 1:
        return np.sign(np.sin(phase_arg))
    return 2.0 * ((phase_arg / (2 * np.pi)) % 1.0) - 1.0


def classification(
    n_masses: int = 6,
    num_train: int = 90,
    num_test: int = 30,
    dt: float = 0.1,
    num_steps: int = 300,
    window: int = 100,
    scale: float = 40.0,
    freq_range: tuple[float, float] = (0.08, 0.12),
    amplitude: float = 0.3,
    noise: float = 0.1,
    rule: str = "trapezoid",
    seed: int = 0,
) -> Task:
    """Classify 1-D signals (sine / square / sawtooth) with a driven oscillator chain.

    Each sample is a signal of random frequency (`freq_range`, Hz), random phase and additive
    Gaussian noise (`noise`, relative), scaled by `amplitude`, applied as the force on mass 0 of
    a walled chain of `n_masses` masses at rest. The last three masses are the readouts, one per
    class; the cost is `EnergyReadoutCost` (softmax cross-entropy of `scale ·` squared readout
    displacements over the final `window` nodes). Trained: stiffnesses `k`, masses `m` and rest
    lengths `l` (all positive, softplus). Prediction: the class whose readout has the largest
    window-averaged score.
    """
    name = "classification"
    for option, value in (("n_masses", n_masses), ("num_train", num_train), ("num_steps", num_steps),
                          ("window", window)):
        _check_positive(name, option, value, integer=True)
    _check_positive(name, "num_test", num_test, integer=True, allow_zero=True)
    for option, value in (("dt", dt), ("scale", scale), ("amplitude", amplitude)):
        _check_positive(name, option, value)
    _check_positive(name, "noise", noise, allow_zero=True)
    freq_range = _check_range(name, "freq_range", freq_range)
    n = int(n_masses)
    if n < 4:
        raise ConfigError(f"task {name}: option 'n_masses' must be ≥ 4 (one input and three readouts), got {n}.")
    if window > num_steps:
        raise ConfigError(f"task {name}: option 'window' ({window}) must not exceed 'num_steps' ({num_steps}).")
    system = _system("mass_spring_chain", n=n, walls=True, input_mass=0)
    integ = VariationalIntegrator(system.model, dt, rule=rule)
    N = int(num_steps)
    rng = np.random.default_rng(seed)
    total = int(num_train) + int(num_test)
    times = np.asarray(integ.node_times(N, np.float64))
    labels = rng.integers(0, len(_WAVEFORMS), total)
    signals = []
    for label in labels:
        f = rng.uniform(*freq_range)
        phase = rng.uniform(0, 2 * np.pi)
        s = _waveform(int(label), 2 * np.pi * f * times + phase)
        signals.append(amplitude * (s + noise * rng.standard_normal(times.shape)))
    rest = np.arange(n) * 1.0
    samples = _batch(q0=np.tile(rest, (total, 1)), v0=np.zeros((total, n)),
                     inputs=np.stack(signals)[:, :, None], label=labels.astype(np.int32))
    train, test = _split(samples, int(num_train))
    readout = tuple(range(n - 3, n))
    center = rest[list(readout)]
    win = int(window)

    def cost_fn(sample):
        return EnergyReadoutCost(sample["label"], _f(center), readout, N, win, scale)

    def logits_fn(q, sample):
        scores = jax.vmap(lambda qk: scale * (qk[jnp.asarray(readout)] - _f(center)) ** 2)(q[N - win + 1:])
        return jnp.mean(scores, axis=0)

    return Task(
        name=name,
        description="classify sine / square / sawtooth signals with a driven oscillator chain",
        integ=integ, num_steps=N, params=dict(system.params),
        trainable={"k": "positive", "m": "positive", "l": "positive"},
        train=train, test=test, cost_fn=cost_fn, classes=_WAVEFORMS, logits_fn=logits_fn,
        energy_state=(_f(system.q0), _f(system.v0)),
        display_indices=readout, display_offset=rest,
        display_labels=tuple(f"x_{i} − {i}a ({c})" for i, c in zip(readout, _WAVEFORMS)),
        display_unit="m",
        parameter_units={"k": "N/m", "m": "kg", "l": "m", "b": "1"}, loss_unit="nats (cross-entropy)",
        recommended={"learning_rate": 0.05, "epochs": 30, "batch_size": 15, "beta": 1e-3},
    )


def pendulum(
    n_pendula: int = 4,
    num_train: int = 16,
    num_test: int = 8,
    dt: float = 0.05,
    num_steps: int = 60,
    amplitude: float = 1.0,
    coupling_range: tuple[float, float] = (0.5, 2.0),
    length_range: tuple[float, float] = (0.8, 1.25),
    rule: str = "trapezoid",
    seed: int = 0,
) -> Task:
    """A nonlinear pendulum chain learns to map an initial angle pattern to a target pattern.

    `n_pendula` pendula (angles from the vertical, `cos θ` gravity: nonlinear) coupled by
    torsion springs, released at rest from angles `~ U(−amplitude, amplitude)` rad. The target
    is the teacher chain's angle pattern at `T = dt·num_steps` (teacher couplings `κ ~
    U(coupling_range)`, lengths `~ U(length_range)`). The student (κ = 1, l = 1) trains `kappa`
    and `l` (positive, softplus); cost `½ ‖θ_N − θ^target‖²` at the final node.
    """
    name = "pendulum"
    for option, value in (("n_pendula", n_pendula), ("num_train", num_train), ("num_steps", num_steps)):
        _check_positive(name, option, value, integer=True)
    _check_positive(name, "num_test", num_test, integer=True, allow_zero=True)
    for option, value in (("dt", dt), ("amplitude", amplitude)):
        _check_positive(name, option, value)
    c_lo, c_hi = _check_range(name, "coupling_range", coupling_range)
    l_lo, l_hi = _check_range(name, "length_range", length_range)
    n = int(n_pendula)
    if n < 2:
        raise ConfigError(f"task {name}: option 'n_pendula' must be ≥ 2 (a coupled chain), got {n}.")
    system = _system("pendulum_chain", n=n)
    integ = VariationalIntegrator(system.model, dt, rule=rule)
    N = int(num_steps)
    rng = np.random.default_rng(seed)
    kappa_true = rng.uniform(c_lo, c_hi, n - 1)
    l_true = rng.uniform(l_lo, l_hi, n)
    teacher = dict(system.params, kappa=_f(kappa_true), l=_f(l_true))
    total = int(num_train) + int(num_test)
    samples = _batch(q0=rng.uniform(-amplitude, amplitude, (total, n)), v0=np.zeros((total, n)))
    samples["target"] = _teacher_run(integ, teacher, samples, N)[:, -1]
    train, test = _split(samples, int(num_train))
    indices = tuple(range(n))

    def cost_fn(sample):
        return TerminalCost(sample["target"], indices, final_step=N)

    return Task(
        name=name,
        description="a nonlinear pendulum chain maps an initial angle pattern to a target pattern at time T",
        integ=integ, num_steps=N, params=dict(system.params),
        trainable={"kappa": "positive", "l": "positive"},
        train=train, test=test, cost_fn=cost_fn,
        true_params={"kappa": _f(kappa_true), "l": _f(l_true)},
        energy_state=(train["q0"][0], train["v0"][0]),
        display_indices=indices, display_offset=np.zeros(n),
        display_labels=tuple(f"θ_{i}" for i in indices), display_unit="rad",
        parameter_units={"kappa": "N·m/rad", "l": "m", "m": "kg"}, loss_unit="rad²",
        recommended={"learning_rate": 0.03, "epochs": 60, "batch_size": 16, "beta": 1e-3},
    )


# ============================================================================= registry
_REGISTRY: dict[str, Callable[..., Task]] = {
    "sysid": sysid,
    "tracking": tracking,
    "classification": classification,
    "pendulum": pendulum,
}


def available_tasks() -> list[str]:
    """Names of the registered tasks (the flagship `tracking` first)."""
    return ["tracking", "sysid", "classification", "pendulum"]


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
    if resolved.get("rule") not in (None, "midpoint", "trapezoid", "galerkin"):
        raise ConfigError(
            f"task {name}: option 'rule' must be one of midpoint, trapezoid, galerkin, got {resolved['rule']!r}."
        )
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
