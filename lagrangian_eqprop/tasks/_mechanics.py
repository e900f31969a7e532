"""Tasks on oscillator chains and pendula: `sysid`, `tracking` (the flagship), `pendulum`."""

from __future__ import annotations

import numpy as np

from .._costs import TerminalCost, TrackingCost
from .._integrate import VariationalIntegrator
from ..errors import ConfigError
from ._task import Task, _batch, _check_positive, _check_range, _f, _split, _system, _teacher_run, register

__all__ = ["pendulum", "sysid", "tracking"]


@register("sysid")
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


@register("tracking")
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


@register("pendulum")
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
