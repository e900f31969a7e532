"""Networks of nonlinear oscillators that learn: the physical blocks of sequence models.

`oscillator_network` builds, with the network compiler, `n` units on a graph

    L = Σ_i [½ m_i ẋ_i² − m_i ω_i² U(x_i) + x_i Σ_j B_ij u_j] − Σ_(a,b) k_ab W(x_b − x_a)

with the unit potential `U` (harmonic `½x²`, Duffing `½x² + ¼ a x⁴`, or pendulum `1 − cos x`), the coupling `W`
(linear `½ r²`, FPU `½ r² + ¼ r⁴`, or sine `1 − cos r`; or the signed `bilinear` coupling
`− J_ab x_a x_b`, the Hopfield-type interaction of capacitively or inductively coupled
resonators, `J` of either sign), inputs entering as forces through the
trainable input matrix `B` (node parameters `b0 … b{m−1}`, one column each), trainable symmetric
couplings `k` (one per edge), per-unit frequencies `ω` and masses `m`. Every term is even in the
velocities and there is no friction: the echo is exact. Graphs: `dense` (all pairs), `ring`
(nearest neighbours), `random` (each unit joined to `degree` random others, symmetric).
"""

from __future__ import annotations

import numpy as np
import sympy

from lagrangian_eqprop import EdgeTerm, NodeTerm, compile_network
from lagrangian_eqprop.errors import LagrangianError

from ._system import System, make_system

__all__ = ["COUPLINGS", "GRAPHS", "UNITS", "oscillator_graph", "oscillator_network"]

UNITS = ("harmonic", "duffing", "pendulum")
COUPLINGS = ("linear", "fpu", "sine", "bilinear")
GRAPHS = ("dense", "ring", "random")
_t = sympy.Symbol("t")


def oscillator_graph(num_units: int, graph: str = "dense", degree: int = 4, seed: int = 0) -> np.ndarray:
    """Edges `(num_edges, 2)` (each pair once, `a < b`) of a `dense`, `ring` or `random` graph."""
    if graph not in GRAPHS:
        raise LagrangianError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}.")
    if graph == "dense":
        a, b = np.triu_indices(num_units, k=1)
        return np.stack([a, b], axis=1).astype(np.int64)
    if graph == "ring":
        if num_units < 2:
            return np.zeros((0, 2), np.int64)
        pairs = {(min(i, (i + 1) % num_units), max(i, (i + 1) % num_units)) for i in range(num_units)}
        return np.array(sorted(pairs), np.int64)
    if not 1 <= degree < num_units:
        raise LagrangianError(f"degree must be in 1..{num_units - 1} for {num_units} units, got {degree}.")
    rng = np.random.default_rng(seed)
    pairs = set()
    for i in range(num_units):
        others = rng.choice(np.delete(np.arange(num_units), i), size=degree, replace=False)
        pairs |= {(min(i, int(j)), max(i, int(j))) for j in others}
    return np.array(sorted(pairs), np.int64)


def _terms(unit: str, coupling: str, num_inputs: int):
    x = sympy.Function("x")(_t)
    xa, xb = sympy.Function("xa")(_t), sympy.Function("xb")(_t)
    m, omega, a, k, kq = sympy.symbols("m omega a k kq")
    gains = sympy.symbols(f"b0:{num_inputs}") if num_inputs else ()
    inputs = [sympy.Function(f"u{j}")(_t) for j in range(num_inputs)]
    if unit == "harmonic":
        potential = m * omega**2 * x**2 / 2
        unit_params = [m, omega]
    elif unit == "duffing":
        potential = m * omega**2 * (x**2 / 2 + a * x**4 / 4)
        unit_params = [m, omega, a]
    elif unit == "pendulum":
        potential = m * omega**2 * (1 - sympy.cos(x))
        unit_params = [m, omega]
    else:
        raise LagrangianError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}.")
    drive = x * sum((g * u for g, u in zip(gains, inputs)), sympy.Integer(0))
    node = NodeTerm(m * x.diff(_t) ** 2 / 2 - potential + drive, [x], [*unit_params, *gains], inputs,
                    name=f"{unit} unit")
    r = xb - xa
    if coupling == "linear":
        edge_energy, edge_params = k * r**2 / 2, [k]
    elif coupling == "fpu":
        edge_energy, edge_params = k * r**2 / 2 + kq * r**4 / 4, [k, kq]
    elif coupling == "sine":
        edge_energy, edge_params = k * (1 - sympy.cos(r)), [k]
    elif coupling == "bilinear":
        coupling_strength = sympy.Symbol("J")
        edge_energy, edge_params = -coupling_strength * xa * xb, [coupling_strength]
    else:
        raise LagrangianError(f"coupling must be one of {', '.join(COUPLINGS)}, got {coupling!r}.")
    edge = EdgeTerm(-edge_energy, ([xa], [xb]), edge_params, name=f"{coupling} coupling")
    return node, edge, inputs


def oscillator_network(
    num_units: int = 16,
    num_inputs: int = 1,
    unit: str = "duffing",
    coupling: str = "linear",
    graph: str = "dense",
    degree: int = 4,
    frequency: float | tuple[float, float] = (0.5, 2.0),
    mass: float = 1.0,
    anharmonicity: float = 1.0,
    coupling_scale: float = 0.1,
    quartic_coupling: float = 0.1,
    input_scale: float = 1.0,
    seed: int = 0,
) -> System:
    r"""A network of nonlinear oscillators driven through a trainable input matrix.

    $$ L = \sum_i \Big[\tfrac12 m_i \dot x_i^2 - m_i\omega_i^2 U(x_i) + x_i \sum_j B_{ij} u_j\Big]
           - \sum_{(a,b)} k_{ab}\, W(x_b - x_a) $$

    **Arguments:**
    - `num_units`, `num_inputs`: `n` units (coordinates `x_i`), `m` inputs `u0 … u{m−1}`.
    - `unit`: `"harmonic"` (`U = ½x²`: a linear bank of resonators), `"duffing"` (`U = ½x² + ¼ a
      x⁴`, trainable `a`) or `"pendulum"` (`U = 1 − cos x`: the restoring force is bounded, so
      the highest frequency never exceeds ω, whatever the amplitude).
    - `coupling`: `"linear"` (`W = ½r²`), `"fpu"` (`½r² + ¼ k_q r⁴`, trainable `kq` per edge),
      `"sine"` (`W = 1 − cos r`), or `"bilinear"` (energy `−J_ab x_a x_b`, signed `J` per edge:
      stable while the linearised stiffness `diag(m ω²) − J` stays positive definite, which a
      pendulum network's bounded restoring force does not guarantee at large amplitude).
    - `graph`, `degree`, `seed`: the coupling graph (`oscillator_graph`).
    - `frequency`: ω for every unit, or a range `(low, high)` spread log-uniformly over units
      (a bank of time scales, like the frequencies of a filter bank).
    - `mass`, `anharmonicity` (`a`), `quartic_coupling` (`kq`): defaults.
    - `coupling_scale`: couplings drawn `|N(0, (coupling_scale/√degree)²)|` (seeded): with
      non-negative couplings the linearised stiffness is positive definite (stable); bilinear
      couplings `J` drawn `N(0, (coupling_scale/√degree)²)` with their signs.
    - `input_scale`: input gains `B` drawn `N(0, input_scale²)` (seeded).

    Parameters (trainable, shapes): `m`, `omega`, `a` (duffing), `b0 … b{m−1}` `(n,)`; `k`
    (and `kq`), or `J` (bilinear), `(num_edges,)`. **Returns:** a `System` at rest (`q0 = v0 = 0`).
    """
    if num_units < 1 or num_inputs < 0:
        raise LagrangianError(f"need num_units ≥ 1 and num_inputs ≥ 0, got {num_units}, {num_inputs}.")
    edges = oscillator_graph(num_units, graph, degree, seed)
    node, edge, inputs = _terms(unit, coupling, num_inputs)
    model = compile_network(num_units, edges, [node], [edge] if len(edges) else [], dim=1, time=_t,
                            inputs=inputs)
    rng = np.random.default_rng([seed, 1])
    if np.ndim(frequency) == 0:
        omega = np.full(num_units, float(frequency))
    else:
        low, high = (float(f) for f in frequency)
        omega = np.exp(np.linspace(np.log(low), np.log(high), num_units)) if num_units > 1 else np.full(1, low)
    mean_degree = max(2.0 * len(edges) / max(num_units, 1), 1.0)
    strengths = coupling_scale / np.sqrt(mean_degree) * rng.standard_normal(len(edges))
    params = {"m": np.full(num_units, mass), "omega": omega}
    if coupling == "bilinear":
        params["J"] = strengths
    else:
        params["k"] = np.abs(strengths)
    if unit == "duffing":
        params["a"] = np.full(num_units, anharmonicity)
    if coupling == "fpu":
        params["kq"] = np.full(len(edges), quartic_coupling)
    for j in range(num_inputs):
        params[f"b{j}"] = input_scale * rng.standard_normal(num_units)
    zeros = np.zeros(num_units)
    return make_system(model, params, zeros, zeros)
