"""`sequence`: classify (or regress) real sequence data with physical networks (issue: MNIST-1D,
UCR/UEA, the user's own `.npz`).

Two architectures, both built from `PhysicalLayer`s of `systems.oscillator_network`:

- `stacked` — per time step, an encoder `h = W_e x_k + b_e` (width `width`), then `blocks`
  physical blocks, each driven by `h` through its trainable input matrix; after each block the
  glue `h ← LayerNorm(h + GELU(W_g [y_k, Δy_k/dt] + b_g))` (positions and their finite
  difference), and a readout `W_o mean_k h_k + b_o`. The glue trains by autodiff, every
  physical block by the run's estimator (the echo's VJP, theory §7).
- `physical` — one physical network driven by the raw data through its input matrix, and a
  linear readout of its positions, `W_o [y_{k_1}, …, y_{k_R}, mean_k y_k] + b_o` at `R =
  readout_points` (≥ 0) equally spaced nodes ending at N: what the physics alone learns.

How a sequence `x (T, c)` drives the network (`presentation`): `temporal` — in time, each value
held for `substeps` integrator steps (`N = T · substeps`), `c` input channels; `spatial`
(`physical` only) — the whole sequence at once, as `T · c` constant input forces held for
`hold_steps` steps (`N = hold_steps`), as static EqProp networks take an image: the network's
nonlinear response to a step force is then its only nonlinearity. A sample is `x` with its
`label` (classification, cross-entropy) or `target` (regression, squared error).

Parameters are one flat dict: `enc.W`, `enc.b`, `b{i}.{name}` (block i's physical parameters:
`m`, `omega`, `a`, `k`, `kq` or `J`, `b{j}`), `glue{i}.W`, `glue{i}.b`, `out.W`, `out.b`.
Masses, frequencies, anharmonicities and spring couplings are trained in log space (positive);
bilinear couplings `J` (signed) and input gains as stored.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._physical_layer import PhysicalLayer
from .._references import BPTT
from .._estimators import Echo
from .._rules import RULES
from .._solution import RESULTS, GradientResult
from ..errors import ConfigError, EstimatorError
from ._task import Task, _check_positive, register

__all__ = ["SequenceTask", "sequence"]

ARCHITECTURES = ("stacked", "physical")
PRESENTATIONS = ("temporal", "spatial")
_LOG_PARAMETERS = ("m", "omega", "a", "k", "kq")


def _layer_norm(h):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    return (h - mean) / jnp.sqrt(jnp.var(h, axis=-1, keepdims=True) + 1e-5)


@dataclasses.dataclass
class SequenceTask(Task):
    """A sequence task on physical networks (module docstring). Besides `Task`'s fields:

    - `layers`: the physical blocks (`PhysicalLayer`s built with `BPTT()`; the estimator of a
      run replaces it), `architecture`, `substeps`, `kind` (`"classification"` or
      `"regression"`), `dataset`: the `SequenceDataset` (for the plots and references).
    """

    layers: tuple = ()
    architecture: str = "stacked"
    substeps: int = 1
    readout_points: int = 1
    presentation: str = "temporal"
    kind: str = "classification"
    dataset: Any = None

    # ------------------------------------------------------------------ sizes
    @property
    def num_train(self) -> int:
        return int(self.train["x"].shape[0])

    @property
    def num_test(self) -> int:
        return 0 if self.test is None else int(self.test["x"].shape[0])

    # ------------------------------------------------------------------ model
    def node_inputs(self, h):
        """Per-time-step values `(T, m)` → node inputs `(N+1, m)`: each value held for
        `substeps` steps, node 0 (the state at rest) seeing zero; `spatial` presentation: the
        flattened sequence `(T·m,)` at every node (a step force switched on at t = 0)."""
        if self.presentation == "spatial":
            return jnp.broadcast_to(jnp.reshape(h, (1, -1)), (self.num_steps + 1, h.size))
        held = jnp.repeat(h, self.substeps, axis=0)
        return jnp.concatenate([jnp.zeros_like(held[:1]), held], axis=0)

    def block_params(self, params: dict, i: int) -> dict:
        prefix = f"b{i}."
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    def scores(self, params: dict, x, layers) -> jax.Array:
        """Class scores `(C,)` (or the regression output `(1,)`) of one sequence `x (T, c)`."""
        dt = self.integ.dt
        if self.architecture == "physical":
            layer = layers[0]
            n = layer.integ.model.num_dof
            y = layer(self.block_params(params, 0), jnp.zeros(n, x.dtype), jnp.zeros(n, x.dtype), self.node_inputs(x))
            nodes = self.num_steps - (self.num_steps * np.arange(self.readout_points) // self.readout_points)
            features = jnp.concatenate([*(y[k] for k in nodes[::-1]), jnp.mean(y, axis=0)])
            return features @ params["out.W"] + params["out.b"]
        h = x @ params["enc.W"] + params["enc.b"][None, :]
        h = self.node_inputs(h)
        for i, layer in enumerate(layers):
            n = layer.integ.model.num_dof
            y = layer(self.block_params(params, i), jnp.zeros(n, x.dtype), jnp.zeros(n, x.dtype), h)
            velocity = jnp.concatenate([jnp.zeros_like(y[:1]), y[1:] - y[:-1]], axis=0) / dt
            z = jnp.concatenate([y, velocity], axis=-1)
            h = _layer_norm(h + jax.nn.gelu(z @ params[f"glue{i}.W"] + params[f"glue{i}.b"][None, :]))
        return jnp.mean(h, axis=0) @ params["out.W"] + params["out.b"]

    def sample_loss(self, params: dict, sample: dict, layers) -> jax.Array:
        z = self.scores(params, sample["x"], layers)
        if self.kind == "classification":
            return jax.nn.logsumexp(z) - jnp.sum(jnp.where(jnp.arange(z.shape[0]) == sample["label"], z, 0.0))
        return 0.5 * jnp.sum((z - sample["target"]) ** 2)

    def layers_for(self, estimator) -> tuple:
        """The physical blocks with `estimator` computing their gradients (NaN on a failed
        solve, which the trainer reports as a non-finite loss or gradient)."""
        return tuple(PhysicalLayer(layer.integ, layer.outputs, estimator, throw=False) for layer in self.layers)

    # ------------------------------------------------------ what the trainer asks of a task
    def check_estimator(self, estimator) -> None:
        if not isinstance(estimator, (Echo, BPTT)):
            raise ConfigError(f"config field 'estimator': task {self.name!r} trains physical layers with the echo "
                              f"(any variant) or bptt; got {estimator.name!r}.")
        try:
            self.layers_for(estimator)
        except EstimatorError as err:
            raise ConfigError(f"config field 'estimator': {err}") from None

    def exact_reference(self, estimator):
        return BPTT()

    def gradient(self, estimator, params: dict, sample: dict):
        """Loss and gradient of one sample: the glue by autodiff, the physical blocks by the
        estimator's VJP (traceable)."""
        layers = self.layers_for(estimator)
        loss, grads = jax.value_and_grad(self.sample_loss)(params, sample, layers)
        ok = jnp.isfinite(loss)
        return GradientResult(params=grads, loss=loss, result=RESULTS.where(ok, RESULTS.successful,
                                                                             RESULTS.nonfinite_state))

    def evaluate(self, params: dict, sample: dict):
        layers = self.layers_for(BPTT())
        z = self.scores(params, sample["x"], layers)
        if self.kind == "classification":
            loss = jax.nn.logsumexp(z) - jnp.sum(jnp.where(jnp.arange(z.shape[0]) == sample["label"], z, 0.0))
            logits = z
        else:
            loss, logits = 0.5 * jnp.sum((z - sample["target"]) ** 2), jnp.zeros(())
        result = RESULTS.where(jnp.all(jnp.isfinite(z)), RESULTS.successful, RESULTS.nonfinite_state)
        return loss, logits, result, None

    def energy_error(self, params: dict):
        return jnp.asarray(jnp.nan)

    def trajectories(self, params: dict, x) -> np.ndarray:
        """Positions `(N+1, n)` of the first physical block for one sequence (for the plots)."""
        layer = self.layers_for(BPTT())[0]
        n = layer.integ.model.num_dof
        h = x if self.architecture == "physical" else x @ params["enc.W"] + params["enc.b"][None, :]
        return np.asarray(layer(self.block_params(params, 0), jnp.zeros(n, x.dtype), jnp.zeros(n, x.dtype),
                                self.node_inputs(h)))

    def plot_results(self, result, folder: str) -> dict:
        """Confusion matrices of the held-out set (one per run) and a held-out sequence with the
        first block's trajectories before and after training. **Returns:** `{name: path}`."""
        from .. import plotting

        written = {}
        split = self.test if self.test is not None else self.train
        if self.kind == "classification":
            for run, params in result.params.items():
                scores = jax.jit(jax.vmap(lambda x, p=params: self.scores(p, x, self.layers_for(BPTT()))))(split["x"])
                predicted = np.argmax(np.asarray(scores), axis=-1)
                written[f"confusion_{run}"] = plotting.plot_confusion_matrix(
                    np.asarray(split["label"]), predicted, self.classes, os.path.join(folder, f"confusion_{run}.png"),
                    title=f"{self.name}: {run}, {'held-out' if self.test is not None else 'training'} set")
        x = split["x"][0]
        times = np.asarray(self.integ.node_times(self.num_steps))
        before = self.trajectories(result.initial_params, x)
        after = {run: self.trajectories(p, x) for run, p in result.params.items()}
        shown = list(range(min(6, before.shape[1])))
        label = f" (class {self.classes[int(split['label'][0])]})" if self.kind == "classification" else ""
        written["trajectories"] = plotting.plot_trajectory_comparison(
            times, before[:, shown], {run: q[:, shown] for run, q in after.items()},
            os.path.join(folder, "trajectories.png"), labels=tuple(f"unit {i}" for i in shown), unit="rad or m",
            title=f"{self.name}: first physical block on a held-out sequence{label}")
        return written


def _initial_parameters(architecture, channels, outputs, systems_, width, seed, readout_points):
    rng = np.random.default_rng([seed, 7])
    params, trainable = {}, {}
    if architecture == "stacked":
        params["enc.W"] = rng.normal(size=(channels, width)) / np.sqrt(channels)
        params["enc.b"] = np.zeros(width)
    for i, system in enumerate(systems_):
        for name, value in system.params.items():
            params[f"b{i}.{name}"] = np.asarray(value)
            trainable[f"b{i}.{name}"] = "log" if name in _LOG_PARAMETERS else "none"
        n = system.model.num_dof
        if architecture == "stacked":
            params[f"glue{i}.W"] = rng.normal(size=(2 * n, width)) / np.sqrt(2 * n)
            params[f"glue{i}.b"] = np.zeros(width)
    features = width if architecture == "stacked" else (readout_points + 1) * systems_[0].model.num_dof
    params["out.W"] = np.zeros((features, outputs))
    params["out.b"] = np.zeros(outputs)
    for name in params:
        trainable.setdefault(name, "none")
    dtype = jnp.result_type(float)
    return {k: jnp.asarray(v, dtype) for k, v in params.items()}, trainable


@register("sequence")
def sequence(
    data: str = "mnist1d",
    architecture: str = "stacked",
    units: int = 64,
    blocks: int = 0,
    width: int = 32,
    unit: str = "harmonic",
    coupling: str = "linear",
    graph: str = "dense",
    degree: int = 8,
    frequency: tuple = (0.2, 2.0),
    input_scale: float = 1.0,
    coupling_scale: float = 0.1,
    dt: float = 0.5,
    substeps: int = 1,
    readout_points: int = 1,
    presentation: str = "temporal",
    hold_steps: int = 20,
    rule: str = "trapezoid",
    standardise: bool = True,
    num_train: int = 0,
    num_test: int = 0,
    seed: int = 0,
) -> SequenceTask:
    """Classify or regress sequence data (MNIST-1D, UCR/UEA sets shipped with aeon, your own .npz) with physical networks.

    **Options:** `data` (a name from `lep.data.available_datasets()` or a path to an `.npz`
    with `x_train (n, T, c)`, `y_train (n,)`, `x_test`, `y_test`); `architecture` (`stacked`:
    encoder + `blocks` physical blocks with residual glue; `physical`: one physical network
    and a linear readout); `blocks` (0: 2 for stacked, 1 for physical); the physical blocks (`systems.oscillator_network`: `units`, `unit`,
    `coupling`, `graph`, `degree`, `frequency` range, `input_scale`, `coupling_scale`);
    `width` (the glue's features), `readout_points` (physical: the linear readout sees the
    positions at this many equally spaced nodes, plus their time average; 0: the average
    only), `presentation` (`temporal`: value by value, `substeps` integrator steps each;
    `spatial`, physical only: the whole sequence as constant forces for `hold_steps` steps),
    the time step `dt`, the
    discretisation `rule`; `standardise` the data per channel (training statistics);
    `num_train`, `num_test` (0: all); `seed`.
    """
    from .. import systems as catalog
    from ..data import load_dataset

    name = "sequence"
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"task {name}: option 'architecture' must be one of {', '.join(ARCHITECTURES)}, "
                          f"got {architecture!r}.")
    _check_positive(name, "blocks", blocks, integer=True, allow_zero=True)
    blocks = blocks or (2 if architecture == "stacked" else 1)
    for option, value in (("units", units), ("width", width), ("substeps", substeps), ("hold_steps", hold_steps)):
        _check_positive(name, option, value, integer=True)
    _check_positive(name, "readout_points", readout_points, integer=True, allow_zero=True)
    if presentation not in PRESENTATIONS:
        raise ConfigError(f"task {name}: option 'presentation' must be one of {', '.join(PRESENTATIONS)}, "
                          f"got {presentation!r}.")
    if presentation == "spatial" and architecture != "physical":
        raise ConfigError(f"task {name}: presentation='spatial' drives one physical network with the whole "
                          f"sequence at once; it needs architecture='physical', got {architecture!r}.")
    for option, value in (("num_train", num_train), ("num_test", num_test)):
        _check_positive(name, option, value, integer=True, allow_zero=True)
    _check_positive(name, "dt", dt)
    if rule not in RULES:
        raise ConfigError(f"task {name}: option 'rule' must be one of {', '.join(RULES)}, got {rule!r}.")
    if architecture == "physical" and blocks != 1:
        raise ConfigError(f"task {name}: the 'physical' architecture has one block; got blocks={blocks}.")
    dataset = load_dataset(data)
    if standardise:
        dataset = dataset.standardise()
    x_train, y_train, x_test, y_test = dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    if num_train:
        x_train, y_train = x_train[:num_train], y_train[:num_train]
    if num_test:
        x_test, y_test = x_test[:num_test], y_test[:num_test]
    channels = dataset.num_channels
    if presentation == "spatial":
        inputs = channels * x_train.shape[1]
    else:
        inputs = channels if architecture == "physical" else width
    try:
        systems_ = [catalog.oscillator_network(units, inputs, unit=unit, coupling=coupling, graph=graph, degree=degree,
                                               frequency=tuple(frequency), input_scale=input_scale / np.sqrt(inputs),
                                               coupling_scale=coupling_scale, seed=seed + i) for i in range(blocks)]
    except Exception as err:  # LagrangianError from the catalog: a bad option
        raise ConfigError(f"task {name}: {err}") from None
    from .._integrate import VariationalIntegrator

    layers = tuple(PhysicalLayer(VariationalIntegrator(s.model, dt, rule), tuple(range(units)), BPTT())
                   for s in systems_)
    classification = dataset.kind == "classification"
    outputs = dataset.num_classes if classification else 1
    params, trainable = _initial_parameters(architecture, channels, outputs, systems_, width, seed, readout_points)
    dtype = jnp.result_type(float)
    key = "label" if classification else "target"

    def split(x, y):
        y = jnp.asarray(y) if classification else jnp.asarray(y, dtype)[:, None]
        return {"x": jnp.asarray(x, dtype), key: y}

    integ = layers[0].integ
    num_steps = hold_steps if presentation == "spatial" else x_train.shape[1] * substeps
    shown = (f"the whole sequence held {hold_steps} steps" if presentation == "spatial"
             else f"{x_train.shape[1]} steps × {substeps} substeps")
    description = (f"{dataset.name}: {architecture} network of {blocks} × {units} {unit} units ({coupling} "
                   f"couplings, {graph} graph), {shown}, dt = {dt}")
    task = SequenceTask(
        name=name, description=description, integ=integ, num_steps=num_steps, params=params,
        trainable=trainable, train=split(x_train, y_train), test=split(x_test, y_test) if len(x_test) else None,
        cost_fn=lambda sample: None, classes=tuple(dataset.classes) if classification else None,
        loss_unit="nats" if classification else "",
        recommended={"learning_rate": 1e-2, "epochs": 30, "batch_size": 32, "schedule": "cosine"},
        layers=layers, architecture=architecture, substeps=substeps, readout_points=readout_points,
        presentation=presentation, kind=dataset.kind,
        dataset=dataset)
    return task
