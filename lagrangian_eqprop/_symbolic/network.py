"""`compile_network`: per-element Lagrangian terms on a graph → one vectorised `LagrangianModel`.

`L = Σ_nodes ℓ_node + Σ_edges ℓ_edge (+ extra)`: each local term (`NodeTerm`, `EdgeTerm`) is
written once in local symbols, validated and printed once, and evaluated for every node or
edge under `jax.vmap` by the SymPy-free runtime in `_graph.py`; an optional `ExtraTerm` is a
whole expression over the global coordinates (`network_coordinates`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import sympy
from sympy.core.function import AppliedUndef

from .._graph import LocalTerm, NetworkLagrangian, NetworkMass, NodeLocalLagrangian, PotentialFromLagrangian, ScalarFunction
from .._model import LagrangianModel, SeparableStructure
from ..errors import LagrangianError
from .printing import lambdify
from .structure import check_nondegenerate, couples_inputs_to_velocities, is_analytic, is_time_reversible, kinetic_mass
from .validate import SymbolTable, make_table, name_of, to_plain

__all__ = ["EdgeTerm", "ExtraTerm", "NodeTerm", "SymbolicNetwork", "compile_network", "network_coordinates"]


@dataclasses.dataclass(frozen=True, init=False)
class _LocalTerm:
    """A Lagrangian term written once with local symbols and summed over graph elements."""

    expr: Any
    coordinates: tuple
    parameters: tuple
    inputs: tuple
    name: str | None

    def __init__(self, expr, coordinates, parameters=(), inputs=(), name=None):
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "coordinates", self._local_coordinates(coordinates, name or expr))
        object.__setattr__(self, "parameters", tuple(parameters))
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "name", name)

    @staticmethod
    def _local_coordinates(coordinates, label) -> tuple:
        return tuple(coordinates)


class NodeTerm(_LocalTerm):
    """A per-node Lagrangian term written with local symbols, summed over all nodes.

    **Arguments:**
    - `expr`: scalar SymPy expression in the local coordinates, their time derivatives, the
      parameters, inputs and time, e.g. `½ m (ẋ² + ẏ²) − m g y`.
    - `coordinates`: the node's `dim` local coordinates, functions of time (`[x]` or `[x, y]`).
    - `parameters`: node parameters; each becomes an array of shape `(num_nodes,)` in `params`.
    - `inputs`: network inputs (functions of time or symbols) used by this term. A per-node input
      gain is simply a node parameter multiplying the input, e.g. `b * u * x` with node
      parameter `b` (set `b` to a one-hot vector to drive a single node).
    - `name`: optional label used in error messages.
    """


class EdgeTerm(_LocalTerm):
    """A per-edge Lagrangian term written with local symbols, summed over all edges.

    **Arguments:**
    - `expr`: scalar SymPy expression, e.g. `-½ k (sqrt((xb−xa)² + (yb−ya)²) − l)²`.
    - `coordinates`: `(coordinates of endpoint a, coordinates of endpoint b)`, `dim` each.
    - `parameters`: edge parameters; each becomes an array of shape `(num_edges,)`.
    - `inputs`: network inputs used by this term.
    - `name`: optional label used in error messages.
    """

    @staticmethod
    def _local_coordinates(coordinates, label) -> tuple:
        if len(coordinates) != 2:
            raise LagrangianError(f"edge term {label}: coordinates must be a pair (endpoint a, endpoint b).")
        return (tuple(coordinates[0]), tuple(coordinates[1]))


@dataclasses.dataclass(frozen=True, init=False)
class ExtraTerm:
    """A whole-expression addition to a network Lagrangian over its global coordinates.

    **Arguments:**
    - `expr`: scalar SymPy expression in the network's global coordinates (obtain them with
      `network_coordinates`), inputs and time.
    - `parameters`: scalar parameters (shape `()` each).
    - `inputs`: network inputs used by this term.
    """

    expr: Any
    parameters: tuple
    inputs: tuple

    def __init__(self, expr, parameters=(), inputs=()):
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "parameters", tuple(parameters))
        object.__setattr__(self, "inputs", tuple(inputs))


@dataclasses.dataclass(frozen=True)
class SymbolicNetwork:
    """The SymPy data of a model compiled by `compile_network` (for display only)."""

    num_nodes: int
    edges: tuple
    dim: int
    node_terms: tuple
    edge_terms: tuple
    fixed_nodes: tuple  # ((node, (position...)), ...)
    coordinate_names: tuple  # base names, e.g. ("x", "y")
    time: sympy.Symbol
    inputs: tuple
    extra: ExtraTerm | None = None


class _CompiledTerm(NamedTuple):
    """A local term after compilation: its runtime part and what the compiler detected."""

    local: LocalTerm
    velocity_free: bool
    input_velocity_coupling: bool
    autonomous: bool
    analytic: bool
    mass: sympy.Matrix | None  # local mass when separable-compatible
    time_reversible: bool
    table: SymbolTable
    plain: sympy.Expr


def _term_label(kind: str, index: int, term) -> str:
    name = getattr(term, "name", None)
    return f"{kind} term #{index}" + (f" ({name})" if name else "")


def _compile_term(term, coordinates, where, time, network_inputs: dict[str, int]) -> _CompiledTerm:
    for inp in term.inputs:
        if name_of(inp) not in network_inputs:
            raise LagrangianError(
                f"{where} uses input {name_of(inp)}, which is not among the network inputs"
                f" {sorted(network_inputs)}."
            )
    table = make_table(coordinates, term.parameters, term.inputs, time, where)
    plain = to_plain(term.expr, table, where)
    raw = lambdify(table.arguments, plain)
    velocity_free = not (plain.free_symbols & set(table.v))
    mass = kinetic_mass(plain, table)
    local = LocalTerm(raw, len(table.q), tuple(str(p) for p in table.parameters),
                      tuple(network_inputs[name_of(i)] for i in table.inputs))
    return _CompiledTerm(
        local=local,
        velocity_free=velocity_free,
        input_velocity_coupling=couples_inputs_to_velocities(plain, table),
        autonomous=table.t not in plain.free_symbols,
        analytic=is_analytic(plain),
        mass=mass,
        time_reversible=is_time_reversible(plain, table),
        table=table,
        plain=plain,
    )


def network_coordinates(
    num_nodes: int,
    dim: int = 1,
    fixed_nodes=None,
    time: sympy.Symbol | None = None,
    coordinate_names: Sequence[str] | None = None,
) -> list:
    """Global coordinates of a network, node-major (`x_0, y_0, x_1, y_1, ...`, free nodes only),
    as functions of time; use them to write an `ExtraTerm`.

    **Returns:** a list of `num_free_nodes * dim` SymPy functions of time.
    """
    time = sympy.Symbol("t") if time is None else time
    bases = _base_names(dim, coordinate_names)
    fixed = set(_normalise_fixed(fixed_nodes, num_nodes, dim))
    return [
        sympy.Function(f"{base}_{node}")(time)
        for node in range(num_nodes)
        if node not in fixed
        for base in bases
    ]


def _base_names(dim, coordinate_names):
    if coordinate_names is None:
        if dim > 3:
            return tuple(f"q{i}" for i in range(dim))
        return ("x", "y", "z")[:dim]
    coordinate_names = tuple(coordinate_names)
    if len(coordinate_names) != dim:
        raise LagrangianError(f"coordinate_names {coordinate_names} must have dim={dim} entries.")
    return coordinate_names


def _normalise_fixed(fixed_nodes, num_nodes, dim) -> dict[int, tuple[float, ...]]:
    if fixed_nodes is None:
        return {}
    out = {}
    for node, position in dict(fixed_nodes).items():
        node = int(node)
        if not 0 <= node < num_nodes:
            raise LagrangianError(f"fixed node {node} is not a node index (0..{num_nodes - 1}).")
        position = np.atleast_1d(np.asarray(position, dtype=float))
        if position.shape != (dim,):
            raise LagrangianError(
                f"fixed node {node}: position must have shape ({dim},), got {position.shape}."
            )
        out[node] = tuple(float(x) for x in position)
    return out


def compile_network(
    num_nodes: int,
    edges,
    node_terms: Sequence[NodeTerm] = (),
    edge_terms: Sequence[EdgeTerm] = (),
    dim: int = 1,
    fixed_nodes: Mapping | None = None,
    time: sympy.Symbol | None = None,
    extra: ExtraTerm | None = None,
    inputs: Sequence | None = None,
    coordinate_names: Sequence[str] | None = None,
    check_degeneracy: bool = True,
) -> LagrangianModel:
    """Compile a graph Lagrangian `L = Σ_i ℓ_node(q_i, q̇_i) + Σ_(a,b) ℓ_edge(q_a, q̇_a, q_b, q̇_b)`.

    Each local term is validated and compiled **once**, then vectorised with `jax.vmap` over
    nodes / edges and summed, so networks of thousands of nodes compile in seconds.

    **Arguments:**
    - `num_nodes`: number of nodes (free and fixed).
    - `edges`: integer array-like of shape `(num_edges, 2)`: `(a, b)` node pairs.
    - `node_terms`: `NodeTerm`s, summed over the free nodes. Node parameters have shape
      `(num_nodes,)` (the entries of fixed nodes are unused).
    - `edge_terms`: `EdgeTerm`s, summed over edges. Edge parameters have shape `(num_edges,)`.
      A parameter name may not be both a node and an edge parameter.
    - `dim`: coordinates per node (1, 2, 3, ...).
    - `fixed_nodes`: `{node: position (dim,)}`; fixed nodes are not degrees of freedom, their
      positions are constants stored in the model and their velocities are zero.
    - `time`: the time symbol (each term's time is otherwise inferred from its coordinates).
    - `extra`: optional `ExtraTerm` over the global coordinates (`network_coordinates`).
    - `inputs`: the network's inputs in the order of `u`; inferred from the terms if omitted.
    - `coordinate_names`: base names per dimension (default `x`, `y`, `z`); the coordinates are
      named `x_3`, `y_3`, ... by node index.
    - `check_degeneracy`: run the numerical velocity-Hessian check (default True).

    **Returns:** a `LagrangianModel` with `q` of shape `(num_free_nodes * dim,)`, node-major,
    and `symbolic` a `SymbolicNetwork` record.
    """
    node_terms, edge_terms = tuple(node_terms), tuple(edge_terms)
    if num_nodes < 1:
        raise LagrangianError(f"num_nodes must be positive, got {num_nodes}.")
    edges_array = np.asarray(edges, dtype=np.int64).reshape(-1, 2) if len(edges) else np.zeros(
        (0, 2), dtype=np.int64)
    bad = np.flatnonzero((edges_array < 0).any(1) | (edges_array >= num_nodes).any(1))
    if bad.size:
        raise LagrangianError(
            f"edge #{bad[0]} {tuple(int(i) for i in edges_array[bad[0]])} refers to a node outside"
            f" 0..{num_nodes - 1}."
        )
    for i, term in enumerate(node_terms):
        if not isinstance(term, NodeTerm):
            raise LagrangianError(f"node term #{i} must be a NodeTerm, got {type(term).__name__}.")
    for i, term in enumerate(edge_terms):
        if not isinstance(term, EdgeTerm):
            raise LagrangianError(f"edge term #{i} must be an EdgeTerm, got {type(term).__name__}.")
    fixed = _normalise_fixed(fixed_nodes, num_nodes, dim)
    bases = _base_names(dim, coordinate_names)
    free_nodes = np.array([i for i in range(num_nodes) if i not in fixed], dtype=np.int64)
    fixed_index = np.array(sorted(fixed), dtype=np.int64)
    fixed_positions = np.array([fixed[i] for i in sorted(fixed)], dtype=float).reshape(-1, dim)
    if free_nodes.size == 0:
        raise LagrangianError("every node is fixed: the network has no degrees of freedom.")

    # ---- inputs (network-wide, by name)
    if inputs is None:
        collected = []
        for term in (*node_terms, *edge_terms, *((extra,) if extra is not None else ())):
            for inp in term.inputs:
                if name_of(inp) not in [name_of(c) for c in collected]:
                    collected.append(inp)
        inputs = collected
    inputs = tuple(inputs)
    input_names = tuple(name_of(i) for i in inputs)
    if len(set(input_names)) != len(input_names):
        raise LagrangianError(f"an input is declared twice among {input_names}.")
    input_index = {name: i for i, name in enumerate(input_names)}

    # ---- compile each local term once
    compiled_nodes = []
    for i, term in enumerate(node_terms):
        where = _term_label("node", i, term)
        if len(term.coordinates) != dim:
            raise LagrangianError(f"{where} must have dim={dim} coordinates, got {len(term.coordinates)}.")
        compiled_nodes.append(_compile_term(term, term.coordinates, where, time, input_index))
    compiled_edges = []
    for i, term in enumerate(edge_terms):
        where = _term_label("edge", i, term)
        a, b = term.coordinates
        if len(a) != dim or len(b) != dim:
            raise LagrangianError(
                f"{where} must have dim={dim} coordinates per endpoint, got {len(a)} and {len(b)}."
            )
        compiled_edges.append(_compile_term(term, (*a, *b), where, time, input_index))

    node_parameters = {n for t in compiled_nodes for n in t.local.parameter_names}
    edge_parameters = {n for t in compiled_edges for n in t.local.parameter_names}
    both = sorted(node_parameters & edge_parameters)
    if both:
        raise LagrangianError(
            f"parameter(s) {', '.join(both)} used both in node and edge terms; rename one of them."
        )
    num_edges = edges_array.shape[0]
    parameter_shapes: dict[str, tuple[int, ...]] = {n: (num_nodes,) for n in sorted(node_parameters)}
    parameter_shapes.update({n: (num_edges,) for n in sorted(edge_parameters)})

    # ---- optional whole-expression extra term over the global coordinates
    global_coordinates = network_coordinates(num_nodes, dim, fixed, time, bases)
    extra_fn, extra_plain, extra_table = None, None, None
    if extra is not None:
        if not isinstance(extra, ExtraTerm):
            raise LagrangianError(f"extra must be an ExtraTerm, got {type(extra).__name__}.")
        extra_time = time
        if extra_time is None:
            functions = sorted(sympy.sympify(extra.expr).atoms(AppliedUndef), key=str)
            extra_time = functions[0].args[0] if functions and functions[0].args else sympy.Symbol("t")
        global_coordinates = network_coordinates(num_nodes, dim, fixed, extra_time, bases)
        for inp in extra.inputs:
            if name_of(inp) not in input_index:
                raise LagrangianError(f"extra term uses input {name_of(inp)}, not a network input.")
        # The extra term sees the whole input vector: declare every network input by name.
        extra_inputs = list(extra.inputs) + [
            sympy.Symbol(name) for name in input_names if name not in {name_of(i) for i in extra.inputs}
        ]
        order = {name: i for i, name in enumerate(name_of(i) for i in extra_inputs)}
        extra_inputs = [extra_inputs[order[name]] for name in input_names]
        extra_table = make_table(global_coordinates, extra.parameters, extra_inputs, extra_time,
                                  "extra term")
        extra_plain = to_plain(extra.expr, extra_table, "extra term")
        extra_names = tuple(str(p) for p in extra.parameters)
        clash = sorted(set(extra_names) & set(parameter_shapes))
        if clash:
            raise LagrangianError(
                f"extra-term parameter(s) {', '.join(clash)} already used by node or edge terms."
            )
        parameter_shapes.update({n: () for n in extra_names})
        extra_fn = ScalarFunction(
            lambdify(extra_table.arguments, extra_plain), len(global_coordinates), extra_names,
            len(input_names))

    senders = edges_array[:, 0]
    receivers = edges_array[:, 1]
    lagrangian_fn = jax.jit(NetworkLagrangian(
        num_nodes, dim, senders, receivers, free_nodes, fixed_index, fixed_positions,
        tuple(t.local for t in compiled_nodes), tuple(t.local for t in compiled_edges), extra_fn))
    coordinate_names_global = tuple(str(c.func) for c in global_coordinates)
    n = len(coordinate_names_global)
    m = len(input_names)

    # ---- degeneracy: per node when only node terms carry velocities, else on the whole L
    extra_velocity_free = extra_plain is None or not (extra_plain.free_symbols & set(extra_table.v))
    if check_degeneracy:
        if all(t.velocity_free for t in compiled_edges) and extra_velocity_free:
            local_shapes = {name: () for name in sorted(node_parameters)}
            check_nondegenerate(
                NodeLocalLagrangian(tuple(t.local for t in compiled_nodes), dim), dim, local_shapes, m,
                [f"{base} (every node)" for base in bases], "the node terms")
        else:
            check_nondegenerate(lagrangian_fn, n, parameter_shapes, m,
                                 coordinate_names_global, "the network Lagrangian")

    # ---- structure
    separable = None
    if (all(t.mass is not None for t in compiled_nodes)
            and all(t.velocity_free for t in compiled_edges) and extra_velocity_free):
        node_masses = [(t, t.mass) for t in compiled_nodes if not t.velocity_free]
        diagonal = all(
            mass[i, j] == 0 for _, mass in node_masses for i in range(dim) for j in range(dim) if i != j
        )
        mass_fns = []
        for term, mass in node_masses:
            entries = [mass[i, i] for i in range(dim)] if diagonal else list(mass)
            raw = lambdify(list(term.table.p), entries)
            mass_fns.append((raw, term.local.parameter_names))
        mass_fn = NetworkMass(tuple(mass_fns), free_nodes, num_nodes, dim, diagonal)
        separable = SeparableStructure(
            jax.jit(mass_fn), jax.jit(PotentialFromLagrangian(lagrangian_fn)), diagonal)
    time_reversible = all(t.time_reversible for t in (*compiled_nodes, *compiled_edges)) and (
        extra_plain is None or is_time_reversible(extra_plain, extra_table))

    network_time = time if time is not None else (
        compiled_nodes[0].table.time if compiled_nodes else
        compiled_edges[0].table.time if compiled_edges else sympy.Symbol("t"))
    record = SymbolicNetwork(
        num_nodes=num_nodes,
        edges=tuple((int(a), int(b)) for a, b in edges_array),
        dim=dim,
        node_terms=node_terms,
        edge_terms=edge_terms,
        fixed_nodes=tuple(sorted(fixed.items())),
        coordinate_names=bases,
        time=network_time,
        inputs=inputs,
        extra=extra,
    )
    return LagrangianModel(
        lagrangian_fn=lagrangian_fn,
        coordinate_names=coordinate_names_global,
        parameter_shapes=parameter_shapes,
        input_names=input_names,
        separable=separable,
        time_reversible=time_reversible,
        expression=None,
        symbolic=record,
        input_velocity_coupling=any(t.input_velocity_coupling for t in (*compiled_nodes, *compiled_edges)) or (
            extra_plain is not None and couples_inputs_to_velocities(extra_plain, extra_table)),
        autonomous=all(t.autonomous for t in (*compiled_nodes, *compiled_edges)) and (
            extra_plain is None or extra_table.t not in extra_plain.free_symbols),
        analytic=all(t.analytic for t in (*compiled_nodes, *compiled_edges)) and (
            extra_plain is None or is_analytic(extra_plain)),
    )
