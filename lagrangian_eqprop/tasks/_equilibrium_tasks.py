"""`digits`, `resistive`, `allostery`: learning tasks on systems at static equilibrium.

- `digits` — scikit-learn's bundled 8×8 handwritten digits (1797 images, no download) classified
  by the thesis' layered Hopfield network (hard-sigmoid hidden units, linear read-out units);
- `resistive` — the same digits read by a nonlinear resistive network (co-content energy,
  diodes), trained conductances;
- `allostery` — a 2-D elastic network learns an allosteric response: straining a source pair
  of nodes strains a distant target pair by a prescribed ratio (Stern et al.'s coupled-learning
  setting), trained stiffnesses.

Train with `estimator="eqprop"` (static EqProp) and `reference="implicit"` (implicit
differentiation through the equilibrium).
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import lineax as lx
import numpy as np

from .._equilibrium import NewtonMinimiser, ProjectedGradient
from ..errors import ConfigError, DataError
from ._equilibrium_task import (CrossEntropyCost, DistanceCost, EquilibriumTask, SquaredErrorCost,
                                plot_weight_histograms, save_figure)
from ._task import _batch, _check_positive, _f, register

__all__ = ["allostery", "digits", "load_digits", "resistive", "strain_ratio"]

_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_NUM_DIGITS = 1797


def _missing_scikit_learn(err: BaseException) -> DataError:
    try:
        from ..data._support import missing_extra
    except ImportError:  # the data subpackage is not there: the same message, written here
        return DataError(f"the 8×8 digits come with scikit-learn, which cannot be imported ({err}); install it "
                         "with: pip install -e '.[data]'   (or: pip install scikit-learn)")
    return missing_extra("scikit-learn", "The digits data set (scikit-learn's bundled 8×8 handwritten digits)", err)


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits: `x (1797, 64)` in [0, 1] (pixels / 16) and the labels
    `(1797,)`. Read from the installed package, nothing is downloaded.

    **Raises:** `DataError` with the install command when scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise _missing_scikit_learn(err) from None
    data = sklearn_digits()
    x = np.asarray(data.data, dtype=np.float64) / 16.0
    y = np.asarray(data.target, dtype=np.int32)
    if x.shape != (_NUM_DIGITS, 64) or not np.all(np.isfinite(x)):
        raise DataError(f"scikit-learn's digits have an unexpected form {x.shape}; expected ({_NUM_DIGITS}, 64).")
    return x, y


def _digit_split(name: str, num_train: int, num_test: int, seed: int):
    """`(train, test)` index arrays: a seeded permutation, the held-out images first."""
    _check_positive(name, "num_train", num_train, integer=True)
    _check_positive(name, "num_test", num_test, integer=True, allow_zero=True)
    if num_train + num_test > _NUM_DIGITS:
        raise ConfigError(f"task {name}: num_train + num_test must not exceed the {_NUM_DIGITS} images, got "
                          f"{num_train} + {num_test}.")
    order = np.random.default_rng(seed).permutation(_NUM_DIGITS)
    return order[num_test:num_test + num_train], order[:num_test]


def _samples(indices, **arrays) -> dict | None:
    if len(indices) == 0:
        return None
    out = {}
    for key, value in arrays.items():
        value = np.asarray(value)[indices]
        out[key] = jnp.asarray(value) if value.dtype.kind in "iu" else _f(value)
    return out


# ================================================================================== digits
def _feedforward(sizes, params, x):
    """One bottom-up sweep `s_l = P(W_lᵀ s_{l−1} + b_l)` (hidden layers boxed in [0, 1]): where the
    free solve of the layered Hopfield network starts."""
    layers, below = [], x
    for l in range(1, len(sizes)):
        pre = below @ params[f"w_{l}"] + params[f"b_{l}"]
        below = jnp.clip(pre, 0.0, 1.0) if l < len(sizes) - 1 else pre
        layers.append(below)
    return jnp.concatenate(layers)


@register("digits")
def digits(hidden: int = 128, num_train: int = 1437, num_test: int = 360, gain: float = 0.5,
           tolerance: float = 1e-8, seed: int = 0) -> EquilibriumTask:
    """Classify scikit-learn's 8×8 digits with a layered Hopfield network at equilibrium (EqProp).

    The thesis' network `64 → hidden → 10`: `E = Σ ½ s² − Σ b s − Σ w s_a s_b`, hidden units in
    [0, 1] (hard sigmoid: the projected solver keeps them in the box), the 10 read-out units
    unbounded (a saturated output would get no gradient at all). Cost `½ ‖s_out − onehot‖²`;
    prediction: the largest output. Solver: projected gradient (the fixed-point update) started
    from a bottom-up sweep, tolerance `tolerance`; no Hessian is formed (`expect=None`).
    Held-out split: `num_test` images of a seeded permutation. Trained: `w_1`, `w_2`, `b_1`, `b_2`.
    """
    from ..systems.energy_based import hopfield_network

    name = "digits"
    _check_positive(name, "hidden", hidden, integer=True)
    for option, value in (("gain", gain), ("tolerance", tolerance)):
        _check_positive(name, option, value)
    train_idx, test_idx = _digit_split(name, num_train, num_test, seed)
    x, labels = load_digits()
    system = hopfield_network((64, int(hidden), 10), "hard_sigmoid", gain, bounded_output=False, seed=seed)
    model = system.model
    n = model.num_states
    output = tuple(range(n - 10, n))
    targets = np.eye(10)[labels]
    sizes = (64, int(hidden), 10)

    def cost_fn(sample):
        return SquaredErrorCost(sample["target"], output)

    def logits_fn(s, sample):
        return s[n - 10:]

    solver = ProjectedGradient(rtol=tolerance, atol=tolerance, max_steps=2000,
                               linear_solver=lx.GMRES(rtol=1e-10, atol=1e-10))
    return EquilibriumTask(
        name=name, description="classify the 8×8 handwritten digits with a layered Hopfield network at equilibrium",
        params=dict(system.params), trainable={k: "none" for k in sorted(system.params)},
        train=_samples(train_idx, inputs=x, label=labels, target=targets),
        test=_samples(test_idx, inputs=x, label=labels, target=targets),
        cost_fn=cost_fn, logits_fn=logits_fn, classes=_DIGIT_CLASSES, energy_model=model,
        initial_state=lambda params, sample: _feedforward(sizes, params, sample["inputs"]),
        solver=solver, expect=None, loss_unit="½‖s_out − onehot‖²",
        recommended={"learning_rate": 1e-3, "epochs": 10, "batch_size": 32, "beta": 0.01, "estimator": "eqprop",
                     "reference": "implicit"},
    )


# =============================================================================== resistive
@register("resistive")
def resistive(hidden: int = 32, num_train: int = 1437, num_test: int = 360, saturation: float = 0.2,
              scale: float = 20.0, seed: int = 0) -> EquilibriumTask:
    """Classify the 8×8 digits with a nonlinear resistive network (co-content energy, diodes).

    `systems.energy_based.resistive_network(64, hidden, 10)`: voltage sources `[x, −x, +1, −1]`,
    every source wired to every hidden node, each hidden node to ground through two antiparallel
    diodes (`V_T = saturation`), every hidden node wired to each of the 10 output pairs. Class
    scores `scale · (V₊ − V₋)`, softmax cross-entropy. Trained: the conductances `g` (positive).
    The energy is convex and analytic (every EqProp variant applies, holomorphic included).
    """
    from ..systems.energy_based import resistive_inputs, resistive_network

    name = "resistive"
    _check_positive(name, "hidden", hidden, integer=True)
    for option, value in (("saturation", saturation), ("scale", scale)):
        _check_positive(name, option, value)
    train_idx, test_idx = _digit_split(name, num_train, num_test, seed)
    x, labels = load_digits()
    system = resistive_network(64, int(hidden), 10, saturation=saturation, seed=seed)
    plus, minus = tuple(system.layout["plus"].tolist()), tuple(system.layout["minus"].tolist())
    inputs = resistive_inputs(x)

    def cost_fn(sample):
        return CrossEntropyCost(sample["label"], plus, minus, scale)

    def logits_fn(s, sample):
        return cost_fn(sample).scores(s)

    return EquilibriumTask(
        name=name, description="classify the 8×8 digits with a nonlinear resistive network (diodes) at equilibrium",
        params=dict(system.params), trainable={"g": "positive"},
        train=_samples(train_idx, inputs=inputs, label=labels), test=_samples(test_idx, inputs=inputs, label=labels),
        cost_fn=cost_fn, logits_fn=logits_fn, classes=_DIGIT_CLASSES, energy_model=system.model,
        s0_default=np.zeros(system.model.num_states), solver=NewtonMinimiser(), expect="minimum",
        parameter_units={"g": "S (normalised)"}, loss_unit="nats (cross-entropy)",
        recommended={"learning_rate": 0.03, "epochs": 15, "batch_size": 32, "beta": None, "estimator": "eqprop",
                     "reference": "implicit"},
    )


# =============================================================================== allostery
def _strained_sources(positions, source, strain):
    """The two source nodes moved apart along their axis so that their distance grows by `strain`."""
    a, b = positions[source[0]], positions[source[1]]
    middle, half = 0.5 * (a + b), 0.5 * (b - a)
    return np.concatenate([middle - (1 + strain) * half, middle + (1 + strain) * half])


@register("allostery")
def allostery(rows: int = 10, cols: int = 10, strain: float = 0.05, ratio: float = 1.0, jitter: float = 0.15,
              trained: str = "both", seed: int = 0) -> EquilibriumTask:
    """Allosteric response of a 2-D elastic network: a source strain gives a target strain (coupled learning).

    `systems.energy_based.elastic_network(rows, cols)`: springs on a jittered triangular lattice,
    `E = Σ ½ k (|x_b − x_a| − l)²`; the two source nodes are clamped with their distance
    stretched by `strain`; the target pair on the far edge must stretch by `ratio × strain`.
    Cost `½ (ε_T/ε_S − ratio)²` (ε the relative change of a pair's distance), so the loss reads
    directly in the strain ratio. `trained`: `"stiffness"` (`k`), `"rest_length"` (`l`) or
    `"both"` (default), each kept positive. One sample.

    Stiffnesses alone stall short of the target (measured ratio 0.90 on 6×6, 0.77 on 5×5 after
    150–300 epochs: a network's response is bounded when only its stiffnesses change), rest
    lengths reach it (10×10, 200 epochs, Adam 0.05: 1.00005 with `l`, 1.00001 with both).
    """
    from ..systems.energy_based import elastic_network

    name = "allostery"
    for option, value in (("rows", rows), ("cols", cols)):
        _check_positive(name, option, value, integer=True)
        if value < 4:
            raise ConfigError(f"task {name}: option {option!r} must be ≥ 4, got {value}.")
    _check_positive(name, "strain", strain)
    _check_positive(name, "jitter", jitter, allow_zero=True)
    choices = {"stiffness": {"k": "positive"}, "rest_length": {"l": "positive"},
               "both": {"k": "positive", "l": "positive"}}
    if trained not in choices:
        raise ConfigError(f"task {name}: option 'trained' must be one of {', '.join(choices)}, got {trained!r}.")
    if not np.isfinite(ratio) or ratio == 0:
        raise ConfigError(f"task {name}: option 'ratio' must be a non-zero finite number, got {ratio!r}.")
    system = elastic_network(int(rows), int(cols), jitter, seed=seed)
    layout = system.layout
    positions, free = layout["positions"], layout["free_nodes"]
    row = {int(node): i for i, node in enumerate(free)}
    target = layout["target"]
    rest = float(np.linalg.norm(positions[target[1]] - positions[target[0]]))
    x = _strained_sources(positions, layout["source"], strain)
    samples = _batch(inputs=x[None], length=np.array([rest * (1.0 + ratio * strain)]), rest=np.array([rest]))
    pair = (row[int(target[0])], row[int(target[1])])

    def cost_fn(sample):
        return DistanceCost(sample["length"], pair, 2, rest * strain)

    task = EquilibriumTask(
        name=name, description="teach a 2-D elastic network an allosteric strain response (coupled-learning setting)",
        params=dict(system.params), trainable=choices[trained], train=samples, test=None, cost_fn=cost_fn,
        energy_model=system.model, s0_default=np.asarray(system.s0), solver=NewtonMinimiser(), expect="minimum",
        parameter_units={"k": "stiffness (normalised)", "l": "rest length"}, loss_unit="½ (ε_T/ε_S − ratio)²",
        recommended={"learning_rate": 0.05, "epochs": 200, "batch_size": 1, "beta": None, "estimator": "eqprop",
                     "reference": "implicit"},
        plot_fn=functools.partial(_plot_allostery, layout=layout, strain=strain, ratio=ratio, rest=rest, pair=pair),
    )
    return task


def strain_ratio(task: EquilibriumTask, params: dict) -> float:
    """The achieved `ε_T/ε_S` of the `allostery` task at the free equilibrium under `params`."""
    sample = {k: v[0] for k, v in task.train.items()}
    sol = task.free_state(params, sample)
    cost = task.cost_fn(sample)
    return float((cost.distance(sol.s) - sample["rest"]) / cost.scale)


def _plot_allostery(task, result, folder, *, layout, strain, ratio, rest, pair) -> dict:
    """The network before and after training, edges coloured by their strain under the source
    strain, source and target pairs marked; the achieved strain ratio in the titles."""
    from matplotlib import cm, colors
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    sample = {k: v[0] for k, v in task.train.items()}
    states = {"initial": result.initial_params, **{f"trained ({run})": p for run, p in result.params.items()}}
    fig = Figure(figsize=(5.2 * len(states), 4.8), dpi=100)
    edges, free, source = layout["edges"], layout["free_nodes"], layout["source"]
    norm = colors.TwoSlopeNorm(vmin=-strain, vcenter=0.0, vmax=strain)
    for i, (label, params) in enumerate(states.items()):
        sol = task.free_state(params, sample)
        nodes = np.array(layout["positions"], dtype=float)
        nodes[free] = np.asarray(sol.s).reshape(-1, 2)
        nodes[list(source)] = np.asarray(sample["inputs"]).reshape(2, 2)
        length = np.linalg.norm(nodes[edges[:, 1]] - nodes[edges[:, 0]], axis=1)
        field = length / np.asarray(params["l"]) - 1.0
        order = np.argsort(np.abs(field))  # the most strained edges on top
        k = np.asarray(params["k"])
        ax = fig.add_subplot(1, len(states), i + 1)
        lines = LineCollection(nodes[edges][order], cmap=cm.coolwarm, norm=norm,
                               linewidths=(0.8 + 2.2 * k / np.max(k))[order])
        lines.set_array(field[order])
        ax.add_collection(lines)
        ax.plot(*nodes[list(source)].T, "o", color="tab:green", label="source (clamped)")
        target = [int(free[pair[0]]), int(free[pair[1]])]
        ax.plot(*nodes[target].T, "s", color="tab:purple", label="target")
        achieved = strain_ratio(task, params)
        ax.set_title(f"{label}: ε_T/ε_S = {achieved:.4f} (goal {ratio:g})", fontsize=9)
        ax.set_aspect("equal")
        ax.autoscale()
        ax.axis("off")
        if i == 0:
            ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cm.coolwarm), ax=fig.axes, shrink=0.7,
                 label="edge strain (length / rest length − 1); line width ∝ stiffness")
    written = {"network": save_figure(fig, os.path.join(folder, "network.png"))}
    written["parameters"] = plot_weight_histograms(result, os.path.join(folder, "parameters.png"),
                                                   title=f"{task.name}: stiffnesses")
    return written
