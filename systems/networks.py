"""Mass–spring networks on arbitrary graphs in 1, 2 or 3 dimensions (network compiler).

Graph generators return `(positions, edges)`: rest positions of shape `(num_nodes, dim)` and an
integer edge list of shape `(num_edges, 2)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy

from lagrangian_eqprop.errors import LagrangianError
from lagrangian_eqprop import EdgeTerm, NodeTerm, compile_network

from ._system import System, make_system

_t = sympy.Symbol("t")
_AXES = ("x", "y", "z")


def grid_graph(rows: int, cols: int, spacing: float = 1.0,
               diagonals: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A `rows × cols` square lattice in 2-D (node `r * cols + c` at `(c, r) · spacing`).

    **Arguments:** grid size, lattice spacing, and whether to add both diagonals of each cell
    (which makes the lattice rigid against shear).

    **Returns:** `positions (rows*cols, 2)`, `edges (num_edges, 2)`.
    """
    index = np.arange(rows * cols).reshape(rows, cols)
    edges = [
        np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], axis=1),
        np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], axis=1),
    ]
    if diagonals:
        edges.append(np.stack([index[:-1, :-1].ravel(), index[1:, 1:].ravel()], axis=1))
        edges.append(np.stack([index[:-1, 1:].ravel(), index[1:, :-1].ravel()], axis=1))
    columns, row_index = np.meshgrid(np.arange(cols), np.arange(rows))
    positions = spacing * np.stack([columns.ravel(), row_index.ravel()], axis=1).astype(float)
    return positions, np.concatenate(edges).astype(np.int64)


def random_graph(num_nodes: int, dim: int = 2, neighbours: int = 3,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random points in the unit box joined to their `neighbours` nearest neighbours.

    **Returns:** `positions (num_nodes, dim)`, `edges (num_edges, 2)` (each pair once, `a < b`).
    """
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, 1.0, (num_nodes, dim))
    distance = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, : min(neighbours, num_nodes - 1)]
    pairs = {(min(i, j), max(i, j)) for i in range(num_nodes) for j in nearest[i]}
    return positions, np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def network_terms(dim: int) -> tuple[NodeTerm, EdgeTerm]:
    """Local terms of a spring network in `dim` dimensions.

    Node: `½ m |q̇|²`. Edge: `−½ k (x_b − x_a − l)²` in 1-D, `−½ k (|q_b − q_a| − l)²` otherwise.
    """
    m, k, l = sympy.symbols("m k l")
    axes = _AXES[:dim] if dim <= 3 else tuple(f"q{i}" for i in range(dim))
    q = [sympy.Function(a)(_t) for a in axes]
    qa = [sympy.Function(f"{a}a")(_t) for a in axes]
    qb = [sympy.Function(f"{a}b")(_t) for a in axes]
    kinetic = sympy.Rational(1, 2) * m * sum(c.diff(_t) ** 2 for c in q)
    if dim == 1:
        stretch = qb[0] - qa[0] - l
    else:
        stretch = sympy.sqrt(sum((b - a) ** 2 for a, b in zip(qa, qb))) - l
    node = NodeTerm(kinetic, q, [m], name="mass")
    edge = EdgeTerm(-sympy.Rational(1, 2) * k * stretch**2, (qa, qb), [k, l], name="spring")
    return node, edge


def mass_spring_network(
    positions=None,
    edges=None,
    dim: int = 2,
    rows: int = 3,
    cols: int = 3,
    diagonals: bool = True,
    fixed_nodes: Sequence[int] | Mapping | None = None,
    mass: float = 1.0,
    stiffness: float = 1.0,
    rest_lengths=None,
    perturbation: float = 0.05,
    seed: int = 0,
) -> System:
    r"""Point masses joined by linear springs on a graph.

    $$ L = \sum_i \tfrac12 m_i \lVert\dot{\mathbf q}_i\rVert^2
         - \sum_{(a,b)} \tfrac12 k_{ab}\,\big(\lVert \mathbf q_b - \mathbf q_a\rVert - l_{ab}\big)^2 $$

    with the Euclidean length $\sqrt{\Delta x^2 + \Delta y^2}$ for `dim ≥ 2`, and the signed
    stretch $x_b - x_a - l_{ab}$ for `dim = 1`. Trainable: node `m`, edge `k` and `l`.

    **Arguments:**
    - `positions`, `edges`: rest positions `(num_nodes, dim)` and edges `(num_edges, 2)`; when
      omitted, a `rows × cols` grid (`dim=2`, with `diagonals`) or a `rows*cols` chain (`dim=1`)
      is generated. Use `grid_graph` / `random_graph` for other layouts.
    - `fixed_nodes`: node indices pinned at their rest positions, or `{node: position}`.
    - `mass`, `stiffness`: default values; `rest_lengths` default to the rest distances.
    - `perturbation`, `seed`: the default `q0` is the rest layout plus Gaussian noise.

    **Returns:** a `System` (`v0` = 0).
    """
    if positions is None:
        if edges is not None:
            raise LagrangianError("give positions together with edges.")
        if dim == 2:
            positions, edges = grid_graph(rows, cols, diagonals=diagonals)
        elif dim == 1:
            count = rows * cols
            positions = np.arange(count, dtype=float)[:, None]
            edges = np.stack([np.arange(count - 1), np.arange(1, count)], axis=1)
        else:
            positions, edges = random_graph(rows * cols, dim=dim, seed=seed)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 1:
        positions = positions[:, None]
    if positions.shape[1] != dim:
        raise LagrangianError(f"positions have shape {positions.shape}, expected (num_nodes, {dim}).")
    if edges is None:
        raise LagrangianError("edges are required when positions are given.")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    num_nodes = positions.shape[0]
    if fixed_nodes is None:
        fixed = {}
    elif isinstance(fixed_nodes, Mapping):
        fixed = {int(i): p for i, p in fixed_nodes.items()}
    else:
        fixed = {int(i): positions[int(i)] for i in fixed_nodes}
    node, edge = network_terms(dim)
    model = compile_network(num_nodes, edges, [node], [edge], dim=dim, fixed_nodes=fixed, time=_t)
    delta = positions[edges[:, 1]] - positions[edges[:, 0]]
    if rest_lengths is None:
        rest_lengths = delta[:, 0] if dim == 1 else np.linalg.norm(delta, axis=1)
    free = np.array([i for i in range(num_nodes) if i not in fixed])
    rng = np.random.default_rng(seed)
    q0 = positions[free] + perturbation * rng.standard_normal((free.size, dim))
    params = {"m": mass, "k": stiffness, "l": rest_lengths}
    return make_system(model, params, q0.ravel(), np.zeros(free.size * dim))
