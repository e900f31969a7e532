"""`classification`: a driven oscillator chain classifies 1-D signals (sine, square, sawtooth)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._costs import ReadoutCost
from .._integrate import VariationalIntegrator
from ..errors import ConfigError
from ._task import Task, _batch, _check_positive, _check_range, _f, _split, _system, register

__all__ = ["classification"]


_WAVEFORMS = ("sine", "square", "sawtooth")


def _waveform(kind: int, phase_arg):
    if kind == 0:
        return np.sin(phase_arg)
    if kind == 1:
        return np.sign(np.sin(phase_arg))
    return 2.0 * ((phase_arg / (2 * np.pi)) % 1.0) - 1.0


@register("classification")
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
    class; the cost is `ReadoutCost(score="squared")` (softmax cross-entropy of `scale ·` squared readout
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
        return ReadoutCost(sample["label"], readout, N, window=win, scale=scale, center=_f(center), score="squared")

    def logits_fn(q, sample):
        return jnp.mean(jax.vmap(cost_fn(sample).logits)(q[N - win + 1:]), axis=0)

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
