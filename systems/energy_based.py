"""Energy-based systems at static equilibrium (SymPy only): Hopfield, resistive and elastic networks.

Every factory returns an `EnergySystem(model, params, x, s0, layout)`: the compiled
`EnergyModel`, default parameters, a default input and initial state, and what a plot or a task
needs to know about the network (`layout`, a dict). The energies:

- `hopfield_network` — the layered continuous Hopfield network of the thesis,
  `E = Σ ½ s² − Σ w ρ(s_a) ρ(s_b) − Σ b ρ(s)`, input layer clamped to `x`; hard-sigmoid units
  as states confined to `[0, 1]` (ρ = identity in the box), or smooth `tanh` units;
- `resistive_network` — a layered nonlinear resistive network: its co-content
  `E = Σ_resistors ½ g ΔV² + Σ_hidden J(V)`, antiparallel diodes to ground with
  `J(V) = 2 I_s V_T (cosh(V/V_T) − 1)`, voltage sources clamping the input nodes (Kirchhoff's
  current law is `∂E/∂V = 0`; Kendall et al. 2020, Scellier 2024);
- `elastic_network` — a 2-D spring network at rest, `E = Σ ½ k (|x_b − x_a| − l)²`, two source
  nodes clamped to the input positions (the allosteric task of Stern et al.).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import sympy

from lagrangian_eqprop._energy import EnergyModel, compile_energy_network, compile_layered_energy
from lagrangian_eqprop import EdgeTerm, NodeTerm
from lagrangian_eqprop.errors import LagrangianError

__all__ = ["ACTIVATIONS", "EnergySystem", "elastic_network", "hopfield_network", "resistive_inputs",
           "resistive_network", "triangular_lattice"]

ACTIVATIONS = ("hard_sigmoid", "tanh")


class EnergySystem(NamedTuple):
    """A compiled energy model with defaults.

    **Fields:** `model` (an `EnergyModel`), `params` (`{name: array}`), `x` (default input
    `(m,)`), `s0` (default initial state `(n,)`), `layout` (a dict describing the network:
    positions, node roles, ...).
    """

    model: EnergyModel
    params: dict[str, Any]
    x: Any
    s0: Any
    layout: dict


def _f(values) -> jnp.ndarray:
    return jnp.asarray(np.asarray(values, dtype=float), dtype=float)


def hopfield_network(layer_sizes=(64, 256, 10), activation: str = "hard_sigmoid", gain: float = 1.0,
                     bounded_output: bool = True, seed: int = 0) -> EnergySystem:
    r"""The layered continuous Hopfield network of the thesis (Scellier & Bengio 2017).

    $$ E = \sum_{l\ge1}\sum_i \Big(\tfrac12 s_i^2 - b_i\,\rho(s_i)\Big)
         - \sum_{l\ge1}\sum_{i\in l-1,\,j\in l} w_{ij}\,\rho(s_i)\,\rho(s_j) $$

    Layer 0 is the input `x` (clamped). `activation="hard_sigmoid"`: ρ(s) = s with the states
    confined to [0, 1] (the projected solver enforces the box; E is then a quadratic, and
    non-analytic as a function of β). `"tanh"`: ρ = tanh, unbounded states, analytic E.

    **Arguments:** `layer_sizes` (input, hidden..., output), `activation`, `gain` (scale of the
    Glorot-uniform initial weights), `bounded_output` (hard sigmoid only: `False` leaves the
    output units unbounded — linear read-out units, which a saturated output cannot silence),
    `seed`.

    **Returns:** an `EnergySystem` with parameters `w_l` `(n_{l−1}, n_l)` and `b_l` `(n_l,)`.
    """
    if activation not in ACTIVATIONS:
        raise LagrangianError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
    s, a, c, w, b = sympy.symbols("s a c w b")
    rho = (lambda z: z) if activation == "hard_sigmoid" else sympy.tanh
    unit = NodeTerm(s**2 / 2 - b * rho(s), [s], [b], name="unit")
    coupling = EdgeTerm(-w * rho(a) * rho(c), ([a], [c]), [w], name="coupling")
    sizes = tuple(int(n) for n in layer_sizes)
    bounds = None
    if activation == "hard_sigmoid":
        upper = np.ones(sum(sizes[1:]))
        if not bounded_output:
            upper[-sizes[-1]:] = np.inf
        bounds = (np.where(np.isinf(upper), -np.inf, 0.0), upper)
    model = compile_layered_energy(layer_sizes, [unit], [coupling], bounds=bounds)
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(sizes)):
        limit = gain * np.sqrt(6.0 / (sizes[l - 1] + sizes[l]))
        params[f"w_{l}"] = _f(rng.uniform(-limit, limit, (sizes[l - 1], sizes[l])))
        params[f"b_{l}"] = _f(np.zeros(sizes[l]))
    layout = {"layer_sizes": sizes, "activation": activation,
              "output": (model.num_states - sizes[-1], model.num_states)}
    return EnergySystem(model, params, _f(np.zeros(sizes[0])), _f(np.zeros(model.num_states)), layout)


def resistive_inputs(x) -> np.ndarray:
    """The source voltages of `resistive_network` for an input `x (..., num_inputs)`:
    `[x, −x, +1, −1]` (both polarities, so that positive conductances give signed weights)."""
    x = np.asarray(x, dtype=float)
    ones = np.ones(x.shape[:-1] + (1,))
    return np.concatenate([x, -x, ones, -ones], axis=-1)


def resistive_network(num_inputs: int = 64, num_hidden: int = 32, num_outputs: int = 10,
                      saturation: float = 0.2, leakage: float = 0.01, conductance: tuple = (0.01, 0.1),
                      seed: int = 0) -> EnergySystem:
    r"""A layered nonlinear resistive network: voltage sources → hidden nodes → output pairs.

    $$ E(V) = \sum_{(a,b)} \tfrac12 g_{ab}\,(V_b - V_a)^2
            + \sum_{h\in\text{hidden}} 2 I_s V_T \big(\cosh(V_h/V_T) - 1\big) $$

    the co-content of the circuit: linear resistors of conductance `g` (trainable, positive) and,
    at every hidden node, two antiparallel diodes to ground (Shockley, `I = 2 I_s sinh(V/V_T)`),
    a soft voltage limiter. The `2·num_inputs + 2` source nodes carry `resistive_inputs(x)`
    (`[x, −x, +1, −1]`); each hidden node is wired to every source, each output pair `(+, −)`
    to every hidden node. Class scores: `V₊ − V₋` of each pair. E is convex and analytic.

    **Arguments:** sizes, `saturation` (`V_T`), `leakage` (`I_s`), `conductance` (range of the
    uniform initial conductances), `seed`.

    **Returns:** an `EnergySystem`; `layout["scores"]` maps the state to the class scores.
    """
    num_sources = 2 * num_inputs + 2
    sources = np.arange(num_sources)
    hidden = num_sources + np.arange(num_hidden)
    outputs = num_sources + num_hidden + np.arange(2 * num_outputs)
    edges = np.concatenate([np.stack(np.meshgrid(sources, hidden, indexing="ij"), -1).reshape(-1, 2),
                            np.stack(np.meshgrid(hidden, outputs, indexing="ij"), -1).reshape(-1, 2)])
    v, va, vb, g, is_, vt = sympy.symbols("V V_a V_b g I_s V_T")
    resistor = EdgeTerm(g * (vb - va) ** 2 / 2, ([va], [vb]), [g], name="resistor")
    diodes = NodeTerm(2 * is_ * vt * (sympy.cosh(v / vt) - 1), [v], [is_, vt], name="diode pair")
    num_nodes = num_sources + num_hidden + 2 * num_outputs
    model = compile_energy_network(num_nodes, edges, [diodes], [resistor], input_nodes=sources.tolist(),
                                   state_names=("V",))
    rng = np.random.default_rng(seed)
    diode_nodes = np.zeros(num_nodes)
    diode_nodes[hidden] = 1.0
    params = {"g": _f(rng.uniform(*conductance, edges.shape[0])), "I_s": _f(leakage * diode_nodes),
              "V_T": _f(np.full(num_nodes, saturation))}
    layout = {"num_inputs": num_inputs, "num_hidden": num_hidden, "num_outputs": num_outputs,
              "plus": num_hidden + 2 * np.arange(num_outputs), "minus": num_hidden + 2 * np.arange(num_outputs) + 1}
    return EnergySystem(model, params, _f(resistive_inputs(np.zeros(num_inputs))), _f(np.zeros(model.num_states)),
                        layout)


def triangular_lattice(rows: int, cols: int, jitter: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A `rows × cols` triangular lattice of unit spacing with randomly displaced nodes.

    **Returns:** `positions (rows*cols, 2)`, `edges (num_edges, 2)` (node `r*cols + c`).
    """
    rng = np.random.default_rng(seed)
    index = np.arange(rows * cols).reshape(rows, cols)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    positions = np.stack([c + 0.5 * (r % 2), r * np.sqrt(3) / 2], -1).reshape(-1, 2).astype(float)
    positions += jitter * rng.uniform(-1, 1, positions.shape)
    edges = [np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], 1)]
    for row in range(rows - 1):
        shift = row % 2  # odd rows sit half a spacing to the right
        for col in range(cols):
            for dc in (shift - 1, shift):
                if 0 <= col + dc < cols:
                    edges.append(np.array([[index[row, col], index[row + 1, col + dc]]]))
    return positions, np.concatenate(edges).astype(np.int64)


def elastic_network(rows: int = 10, cols: int = 10, jitter: float = 0.15, stiffness: float = 1.0,
                    seed: int = 0) -> EnergySystem:
    r"""A 2-D elastic (spring) network at static equilibrium, driven by two clamped source nodes.

    $$ E = \sum_{(a,b)} \tfrac12 k_{ab}\,\big(\lVert \mathbf x_b - \mathbf x_a\rVert - l_{ab}\big)^2 $$

    on a jittered triangular lattice (`triangular_lattice`, rigid). The source pair (two
    neighbouring nodes on the left edge, rows `(rows−2)//2` and the next) is clamped to the input
    `x` (their positions, 4 numbers), which removes the rigid motions; the target pair sits on
    the right edge, same rows. Trainable: stiffnesses `k` (positive) and rest lengths `l`. E is
    analytic.

    **Returns:** an `EnergySystem` whose default `x` is the sources' rest positions and `s0`
    the rest positions of the free nodes; `layout` holds `positions`, `edges`, `source`,
    `target` (node pairs) and `free_nodes`.
    """
    positions, edges = triangular_lattice(rows, cols, jitter, seed)
    if rows < 3 or cols < 3:
        raise LagrangianError(f"elastic_network needs at least 3 rows and 3 columns, got {rows} × {cols}.")
    # Rows mid and mid + 1 (never the top row: a corner node with two springs keeps its distance to
    # its neighbours whatever the stiffnesses, and the target strain could not be taught).
    mid = (rows - 2) // 2
    source = (mid * cols, (mid + 1) * cols)
    target = (mid * cols + cols - 1, (mid + 1) * cols + cols - 1)
    xa, ya, xb, yb, k, l = sympy.symbols("x_a y_a x_b y_b k l")
    spring = EdgeTerm(k * (sympy.sqrt((xb - xa) ** 2 + (yb - ya) ** 2) - l) ** 2 / 2, ([xa, ya], [xb, yb]), [k, l],
                      name="spring")
    num_nodes = positions.shape[0]
    model = compile_energy_network(num_nodes, edges, [], [spring], dim=2, input_nodes=list(source))
    rest = np.linalg.norm(positions[edges[:, 1]] - positions[edges[:, 0]], axis=1)
    free = np.array([i for i in range(num_nodes) if i not in source])
    params = {"k": _f(np.full(edges.shape[0], stiffness)), "l": _f(rest)}
    layout = {"positions": positions, "edges": edges, "source": source, "target": target, "free_nodes": free}
    return EnergySystem(model, params, _f(positions[list(source)].ravel()), _f(positions[free].ravel()), layout)
