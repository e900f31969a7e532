"""Energy models of the equilibrium case: `compile_energy`, the energy network templates, `EnergyModel`.

A physical system at rest sits at a stationary point of an energy `E(θ, s, x)` of its state `s`
(no time, no velocities): a Hopfield network, a resistive network (co-content), an elastic
network. Only the scalar energy is printed from SymPy — through the same validation and printer
as `compile_lagrangian` (`_symbolic/validate.py`, `printing.py`): each state Symbol stands in
for a function of a private time symbol that the energy never differentiates. Forces `∂E/∂s`,
Hessians and parameter gradients are JAX autodiff of that one function.

- `compile_energy(E, state, parameters, inputs)`: one whole expression;
- `compile_energy_network(...)`: `NodeTerm`/`EdgeTerm` on a graph (the potential part of
  `compile_network`), with *input nodes* clamped to the input vector `x`;
- `compile_layered_energy(...)`: unit and coupling terms on a layered network whose first layer
  is the input (every unit of a layer coupled to every unit of the next: the thesis' model).

Every model records whether its energy is analytic (holomorphic EqProp needs it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy
from jaxtyping import Array, ArrayLike, Float, Real
from sympy.core.function import AppliedUndef

from ._graph import LocalTerm, Rows, columns, sum_over_elements, unstack
from ._model import ParameterShapes
from ._symbolic.network import EdgeTerm, NodeTerm, _compile_term, _normalise_fixed
from ._symbolic.printing import lambdify
from ._symbolic.validate import INTERNAL_PREFIX, make_table, to_plain
from ._typing import Params
from .errors import InputError, LagrangianError

__all__ = ["EnergyModel", "compile_energy", "compile_energy_network", "compile_layered_energy", "non_analytic_functions"]

Vec = Real[ArrayLike, " _"]  # a state or input vector (lengths are checked by the callers)

# SymPy functions that are holomorphic on the domain the engine evaluates them on.
_HOLOMORPHIC = (sympy.exp, sympy.log, sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc,
                sympy.sinh, sympy.cosh, sympy.tanh, sympy.coth, sympy.sech, sympy.csch, sympy.asin, sympy.acos,
                sympy.atan, sympy.asinh, sympy.acosh, sympy.atanh, sympy.erf, sympy.erfc, sympy.gamma,
                sympy.loggamma)


def non_analytic_functions(expr: sympy.Expr) -> tuple[str, ...]:
    """Names of the functions of `expr` that are not holomorphic (`Abs`, `Piecewise`, `Max`, `sign`, ...),
    sorted; empty when the expression is analytic in all its symbols."""
    bad = {type(f).__name__ for f in expr.atoms(sympy.core.function.Application)
           if not isinstance(f, _HOLOMORPHIC)}
    bad |= {type(r).__name__ for r in expr.atoms(sympy.core.relational.Relational, sympy.logic.boolalg.Boolean)
            if not isinstance(r, (sympy.Symbol, sympy.logic.boolalg.BooleanAtom))}
    return tuple(sorted(bad))


# ------------------------------------------------------------------------ states as symbols
def _check_declarations(expr, states, parameters, inputs, where: str) -> Any:
    """Check that the states are distinct plain Symbols, that nothing is declared twice and that
    `expr` uses only declared symbols; **returns** `expr` sympified."""
    names: dict[str, str] = {}
    for role, symbols in (("state", states), ("parameter", parameters), ("input", inputs)):
        for symbol in symbols:
            if role == "state" and not isinstance(symbol, sympy.Symbol):
                raise LagrangianError(
                    f"state {symbol!s} in {where} must be a plain SymPy Symbol (an equilibrium has no time: "
                    f"write `sympy.Symbol('{getattr(symbol, 'func', symbol)!s}')`, not a function of time), got {symbol!s}.")
            if isinstance(symbol, sympy.Symbol) and symbol.name.startswith(INTERNAL_PREFIX):
                raise LagrangianError(f"symbol {symbol.name} in {where} uses the reserved prefix {INTERNAL_PREFIX!r}.")
            name = str(symbol.func) if isinstance(symbol, AppliedUndef) else str(symbol)
            if name in names:
                raise LagrangianError(f"{name} is declared twice in {where} (as {names[name]} and as {role}).")
            names[name] = role
    if not states:
        raise LagrangianError(f"no state was declared for {where}.")
    if isinstance(expr, (int, float)):
        expr = sympy.sympify(expr)
    if isinstance(expr, sympy.Expr):
        functions = sorted(str(f) for f in expr.atoms(AppliedUndef) if f not in set(inputs))
        if functions:
            raise LagrangianError(
                f"{where} contains function(s) {', '.join(functions)}; an energy depends on plain Symbols "
                "(states, parameters, inputs), not on functions of time.")
        declared = set(states) | set(parameters) | {i for i in inputs if isinstance(i, sympy.Symbol)}
        undeclared = sorted(str(s) for s in expr.free_symbols - declared)
        if undeclared:
            raise LagrangianError(
                f"{where} contains undeclared symbol(s) {', '.join(undeclared)}; declare each as a state, a "
                "parameter or an input (the very same Symbol object), or replace it by a number.")
    return expr


def _as_functions(states: Sequence, time: sympy.Symbol) -> dict:
    """Each state Symbol's stand-in, a function of the private `time` (never differentiated)."""
    return {s: sympy.Function(s.name)(time) for s in states}


def _plain_energy(expr, states, parameters, inputs, where: str):
    """Validated plain form of one expression: `(plain, table)` with states `table.q`."""
    expr = _check_declarations(expr, tuple(states), tuple(parameters), tuple(inputs), where)
    time = sympy.Dummy("tau")
    functions = _as_functions(states, time)
    table = make_table(list(functions.values()), parameters, inputs, time, where)
    substituted = expr.xreplace(functions) if isinstance(expr, sympy.Basic) else expr
    return to_plain(substituted, table, where), table


class EnergyFunction:
    """`(s (n,), params, x (m,)) -> ()` from a lambdified `raw(*s, *params, *x)`; the value has
    the dtype of `s` (real or complex)."""

    def __init__(self, raw: Callable, n: int, parameter_names: tuple[str, ...], m: int):
        self.raw, self.n, self.parameter_names, self.m = raw, n, parameter_names, m

    def __call__(self, s, params, x):
        s, x = jnp.asarray(s), jnp.asarray(x)
        out = self.raw(*unstack(s, self.n), *[params[k] for k in self.parameter_names], *unstack(x, self.m))
        return jnp.asarray(out).astype(jnp.result_type(float, s))


# ------------------------------------------------------------------------------ the model
class EnergyModel(eqx.Module):
    """A compiled energy `E(θ, s, x)`: parameters θ (dict), state `s (n,)`, inputs `x (m,)`.

    Build one with `compile_energy`, `compile_energy_network` or `compile_layered_energy`.

    **Fields:**
    - `energy_fn`: `(s (n,), params, x (m,)) -> ()`, traceable for real and complex `s`.
    - `state_names`, `input_names`: names of the `n` states and `m` inputs.
    - `parameter_shapes`: `{name: shape}`.
    - `bounds`: `None`, or `(lower, upper)` tuples of `n` floats (±inf allowed): the states live
      in that box (e.g. hard-sigmoid units in [0, 1]); `solve_equilibrium` projects onto it.
    - `non_analytic`: names of the non-holomorphic functions of E (empty: E is analytic).
    - `expression`, `symbolic`: SymPy data, for display only.
    """

    energy_fn: Callable = eqx.field(static=True)
    state_names: tuple[str, ...] = eqx.field(static=True)
    parameter_shapes: ParameterShapes = eqx.field(static=True, converter=ParameterShapes)
    input_names: tuple[str, ...] = eqx.field(static=True, default=())
    bounds: tuple | None = eqx.field(static=True, default=None)
    non_analytic: tuple[str, ...] = eqx.field(static=True, default=())
    expression: Any = eqx.field(static=True, default=None)
    symbolic: Any = eqx.field(static=True, default=None)

    @property
    def num_states(self) -> int:
        """Number of states `n`."""
        return len(self.state_names)

    @property
    def num_inputs(self) -> int:
        """Number of inputs `m`."""
        return len(self.input_names)

    @property
    def analytic(self) -> bool:
        """Whether E is holomorphic in its arguments (required by holomorphic EqProp)."""
        return not self.non_analytic

    def bound_arrays(self, dtype) -> tuple[Array, Array] | None:
        """`(lower (n,), upper (n,))` in `dtype`, or `None` when the states are unbounded."""
        if self.bounds is None:
            return None
        return jnp.asarray(self.bounds[0], dtype), jnp.asarray(self.bounds[1], dtype)

    def _x(self, x, s):
        dtype = jnp.result_type(float, s)
        return jnp.zeros((self.num_inputs,), dtype) if x is None else jnp.asarray(x).astype(dtype)

    def energy(self, params: Params, s: Vec, x: Vec | None = None) -> Float[Array, ""]:
        """The energy `E(θ, s, x)` (scalar)."""
        return self.energy_fn(s, params, self._x(x, s))

    def state_gradient(self, params: Params, s: Vec, x: Vec | None = None) -> Float[Array, " n"]:
        """`∂E/∂s`, shape `(n,)` (minus the generalised force; zero at an equilibrium)."""
        return jax.grad(self.energy, argnums=1)(params, s, x)

    def hessian(self, params: Params, s: Vec, x: Vec | None = None) -> Float[Array, "n n"]:
        """`∂²E/∂s²`, shape `(n, n)` (positive definite at a strict minimum)."""
        return jax.hessian(self.energy, argnums=1)(params, s, x)

    def parameter_gradient(self, params: Params, s: Vec, x: Vec | None = None) -> dict:
        """`∂E/∂θ` at fixed state, a dict shaped like `params`."""
        return jax.grad(self.energy, argnums=0)(params, s, x)


def _bounds(bounds, n: int, names) -> tuple | None:
    """`(lower, upper)` tuples of `n` floats from a pair of scalars or of `(n,)` array-likes."""
    if bounds is None:
        return None
    try:
        lower, upper = bounds
        lower = np.broadcast_to(np.asarray(lower, dtype=float), (n,))
        upper = np.broadcast_to(np.asarray(upper, dtype=float), (n,))
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (lower, upper) of numbers or of ({n},) arrays, got {bounds!r}.") from None
    bad = np.flatnonzero(~(lower < upper) | np.isnan(lower) | np.isnan(upper))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"bounds of state {names[i]}: lower {lower[i]} must be below upper {upper[i]}.")
    return tuple(float(v) for v in lower), tuple(float(v) for v in upper)


def compile_energy(
    E,
    state: Sequence,
    parameters: Sequence = (),
    inputs: Sequence = (),
    *,
    bounds=None,
) -> EnergyModel:
    """Compile a scalar SymPy energy `E(θ, s, x)` into an `EnergyModel`.

    **Arguments:**
    - `E`: scalar SymPy expression in the states, parameters and inputs.
    - `state`: the states, plain `Symbol`s (their order is the order of `s`).
    - `parameters`: trainable parameters (named `Symbol`s, shape `()` each); literals are constants.
    - `inputs`: inputs (`Symbol`s; their order is the order of `x`).
    - `bounds`: optional box `(lower, upper)` for the states (scalars or `(n,)` array-likes).

    **Returns:** an `EnergyModel` (analyticity recorded in `non_analytic`).

    **Raises:** `LagrangianError` naming the culprit: a state that is not a plain Symbol, a
    symbol declared twice, undeclared symbols, functions of time, non-scalar `E`, functions JAX
    cannot evaluate; `InputError` for malformed `bounds`.
    """
    state, parameters, inputs = tuple(state), tuple(parameters), tuple(inputs)
    plain, table = _plain_energy(E, state, parameters, inputs, "E")
    names = tuple(str(p) for p in parameters)
    raw = lambdify([*table.q, *table.p, *table.u], plain)
    state_names = tuple(s.name for s in state)
    return EnergyModel(
        energy_fn=jax.jit(EnergyFunction(raw, len(state), names, len(inputs))),
        state_names=state_names, parameter_shapes={k: () for k in names},
        input_names=tuple(str(i) for i in inputs), bounds=_bounds(bounds, len(state), state_names),
        non_analytic=non_analytic_functions(plain), expression=E, symbolic=None)


# -------------------------------------------------------------------------- local terms
def _compile_local(term, coordinates, where: str, input_index: dict[str, int]):
    """A `NodeTerm`/`EdgeTerm` written with Symbol states → `(LocalTerm, plain expression)`."""
    for inp in term.inputs:
        if str(inp) not in input_index:
            raise LagrangianError(f"{where} uses input {inp}, which is not among the network inputs "
                                  f"{sorted(input_index)}.")
    expr = _check_declarations(term.expr, tuple(coordinates), term.parameters, term.inputs, where)
    time = sympy.Dummy("tau")
    functions = _as_functions(coordinates, time)
    stand_in = NodeTerm(expr.xreplace(functions), tuple(functions.values()), term.parameters, term.inputs, term.name)
    compiled = _compile_term(stand_in, stand_in.coordinates, where, time, input_index)
    return compiled.local, compiled.plain


def _label(kind: str, index: int, term) -> str:
    return f"{kind} term #{index}" + (f" ({term.name})" if term.name else "")


@dataclasses.dataclass(frozen=True)
class SymbolicEnergyNetwork:
    """The graph and terms of a model compiled by `compile_energy_network` (display, plots)."""

    num_nodes: int
    edges: tuple
    dim: int
    input_nodes: tuple
    free_nodes: tuple
    fixed_nodes: tuple  # ((node, value...), ...)
    node_terms: tuple
    edge_terms: tuple


@dataclasses.dataclass(frozen=True)
class SymbolicLayeredEnergy:
    """The layer sizes and terms of a model compiled by `compile_layered_energy`."""

    layer_sizes: tuple
    unit_terms: tuple
    coupling_terms: tuple


def _zeros_like_columns(cols):
    return tuple(jnp.zeros_like(c) for c in cols)


class EnergyNetwork:
    """`E(s, params, x) = Σ_free nodes e_node + Σ_edges e_edge` on a graph; node states are stacked
    as `[free nodes, input nodes (from x), fixed nodes (constants)]` and selected by static rows."""

    def __init__(self, dim, senders, receivers, free_nodes, input_nodes, fixed_nodes, fixed_positions,
                 node_terms, edge_terms):
        self.dim, self.node_terms, self.edge_terms = dim, node_terms, edge_terms
        self.num_clamped = input_nodes.size * dim
        self.fixed_positions = fixed_positions
        node_order = np.argsort(np.concatenate([free_nodes, input_nodes, fixed_nodes]).astype(np.int64))
        boundary = free_nodes.size + input_nodes.size
        self.sender_rows = Rows(node_order[senders], boundary)
        self.receiver_rows = Rows(node_order[receivers], boundary)
        self.free_rows = Rows(free_nodes)

    def __call__(self, s, params, x):
        s = jnp.asarray(s)
        dtype = jnp.result_type(float, s)
        x = jnp.asarray(x).astype(dtype)
        t = jnp.zeros((), dtype)
        free = jnp.reshape(s.astype(dtype), (-1, self.dim))
        clamped, u = jnp.reshape(x[:self.num_clamped], (-1, self.dim)), x[self.num_clamped:]
        total = jnp.zeros((), dtype)
        q = columns(free)
        for term in self.node_terms:
            total = total + sum_over_elements(term, q, _zeros_like_columns(q), t, params, u, self.free_rows)
        if self.edge_terms:
            stacked = jnp.concatenate([free, clamped])
            pair = columns(self.sender_rows(stacked, self.fixed_positions)) + columns(
                self.receiver_rows(stacked, self.fixed_positions))
            for term in self.edge_terms:
                total = total + sum_over_elements(term, pair, _zeros_like_columns(pair), t, params, u)
        return total


def compile_energy_network(
    num_nodes: int,
    edges,
    node_terms: Sequence[NodeTerm] = (),
    edge_terms: Sequence[EdgeTerm] = (),
    *,
    dim: int = 1,
    input_nodes: Sequence[int] = (),
    fixed_nodes: Mapping | None = None,
    inputs: Sequence = (),
    bounds=None,
    state_names: Sequence[str] | None = None,
) -> EnergyModel:
    """Compile `E = Σ_free nodes e_node(s_i) + Σ_(a,b) e_edge(s_a, s_b)` on a graph.

    Each local term is validated and printed once and evaluated over the nodes or edges under
    `jax.vmap` (the runtime of `compile_network`, `_graph.py`).

    **Arguments:**
    - `num_nodes`, `edges` (`(num_edges, 2)` integer array-like): the graph.
    - `node_terms`: `NodeTerm(expr, [s], parameters)` with `dim` plain Symbols as the node's state;
      node parameters have shape `(num_nodes,)` (entries of input and fixed nodes unused).
    - `edge_terms`: `EdgeTerm(expr, ([s_a...], [s_b...]), parameters)`; edge parameters `(num_edges,)`.
    - `dim`: state components per node.
    - `input_nodes`: nodes clamped to the input: their `dim` components are the first entries of
      `x`, in this order (voltage sources, a network's input layer, imposed displacements).
    - `fixed_nodes`: `{node: value (dim,)}`, constants (ground, anchors).
    - `inputs`: further named inputs (Symbols) used by the terms; they follow in `x`.
    - `bounds`: optional box `(lower, upper)` for every state component (scalars or `(n,)`).
    - `state_names`: base names per component (default `s` in 1-D, `x`, `y`, `z` otherwise).

    **Returns:** an `EnergyModel` with `s` the free nodes' components, node-major, shape
    `(num_free * dim,)`, and `x` of shape `(len(input_nodes) * dim + len(inputs),)`.
    """
    node_terms, edge_terms, inputs = tuple(node_terms), tuple(edge_terms), tuple(inputs)
    edges_array = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if num_nodes < 1:
        raise LagrangianError(f"num_nodes must be positive, got {num_nodes}.")
    bad = np.flatnonzero((edges_array < 0).any(1) | (edges_array >= num_nodes).any(1))
    if bad.size:
        raise LagrangianError(f"edge #{bad[0]} {tuple(edges_array[bad[0]].tolist())} refers to a node outside "
                              f"0..{num_nodes - 1}.")
    fixed = _normalise_fixed(fixed_nodes, num_nodes, dim)
    clamped = [int(i) for i in input_nodes]
    for node in clamped:
        if not 0 <= node < num_nodes or node in fixed or clamped.count(node) > 1:
            raise LagrangianError(f"input node {node} must be a node index (0..{num_nodes - 1}) given once and not "
                                  "also a fixed node.")
    free_nodes = np.array([i for i in range(num_nodes) if i not in fixed and i not in clamped], dtype=np.int64)
    if free_nodes.size == 0:
        raise LagrangianError("every node is an input or fixed node: the network has no free state.")
    bases = tuple(state_names) if state_names is not None else (("s",) if dim == 1 else ("x", "y", "z")[:dim])
    if len(bases) != dim:
        raise LagrangianError(f"state_names {bases} must have dim={dim} entries.")
    input_index = {str(u): len(clamped) * dim + i for i, u in enumerate(inputs)}
    locals_, plains, shapes, kinds = [], [], {}, {}
    for kind, terms, size in (("node", node_terms, num_nodes), ("edge", edge_terms, edges_array.shape[0])):
        for i, term in enumerate(terms):
            where = _label(kind, i, term)
            expected = NodeTerm if kind == "node" else EdgeTerm
            if not isinstance(term, expected):
                raise LagrangianError(f"{where} must be a {expected.__name__}, got {type(term).__name__}.")
            coordinates = term.coordinates if kind == "node" else (*term.coordinates[0], *term.coordinates[1])
            if len(coordinates) != (dim if kind == "node" else 2 * dim):
                raise LagrangianError(f"{where} must have dim={dim} state Symbols per node.")
            local, plain = _compile_local(term, coordinates, where, input_index)
            for name in local.parameter_names:
                if kinds.setdefault(name, kind) != kind:
                    raise LagrangianError(f"parameter {name} is used both in node and edge terms; rename one.")
                shapes[name] = (size,)
            locals_.append((kind, local))
            plains.append(plain)
    fixed_index = np.array(sorted(fixed), dtype=np.int64)
    fixed_positions = np.array([fixed[i] for i in sorted(fixed)], dtype=float).reshape(-1, dim)
    runtime = EnergyNetwork(dim, edges_array[:, 0], edges_array[:, 1], free_nodes, np.array(clamped, dtype=np.int64),
                            fixed_index, fixed_positions, tuple(t for k, t in locals_ if k == "node"),
                            tuple(t for k, t in locals_ if k == "edge"))
    names = tuple(f"{b}_{node}" for node in free_nodes for b in bases)
    input_names = tuple(f"{b}_{node}" for node in clamped for b in bases) + tuple(str(u) for u in inputs)
    culprits = sorted({f for p in plains for f in non_analytic_functions(p)})
    return EnergyModel(energy_fn=jax.jit(runtime), state_names=names, parameter_shapes=shapes,
                       input_names=input_names, bounds=_bounds(bounds, len(names), names),
                       non_analytic=tuple(culprits), expression=None,
                       symbolic=SymbolicEnergyNetwork(num_nodes, tuple(map(tuple, edges_array.tolist())), dim,
                                                      tuple(clamped), tuple(free_nodes.tolist()),
                                                      tuple(sorted(fixed.items())), node_terms, edge_terms))


class LayeredEnergy:
    """`E = Σ_{l≥1} Σ_units e_unit(s) + Σ_{l≥1} Σ_{i∈l−1, j∈l} e_coupling(s_i, s_j)` with layer 0
    the input `x`; couplings are evaluated on the `(n_{l−1}, n_l)` grid (a broadcast, no gather)."""

    def __init__(self, sizes, unit_terms, coupling_terms):
        self.sizes, self.unit_terms, self.coupling_terms = tuple(sizes), unit_terms, coupling_terms
        self.splits = tuple(np.cumsum(self.sizes[1:-1]).tolist())

    def __call__(self, s, params, x):
        s = jnp.asarray(s)
        dtype = jnp.result_type(float, s)
        layers = [jnp.asarray(x).astype(dtype), *jnp.split(s.astype(dtype), self.splits)]
        t, u = jnp.zeros((), dtype), jnp.zeros((0,), dtype)
        total = jnp.zeros((), dtype)
        for l in range(1, len(layers)):
            for term in self.unit_terms:
                local = {name: params[f"{name}_{l}"] for name in term.parameter_names}
                total = total + sum_over_elements(term, (layers[l],), (jnp.zeros_like(layers[l]),), t, local, u)
            for term in self.coupling_terms:
                total = total + _grid_sum(term, layers[l - 1], layers[l],
                                          tuple(params[f"{name}_{l}"] for name in term.parameter_names), t)
        return total


def _grid_sum(term: LocalTerm, a, b, mats, t):
    """`Σ_{i,j} e(a_i, b_j; P_ij)` for a 1-D coupling term over the full grid."""
    zero = jnp.zeros((), a.dtype)

    def one(qa, qb, *pe):
        return jnp.asarray(term.raw(qa, qb, zero, zero, t, *pe))

    grid = jax.vmap(jax.vmap(one, in_axes=(None, 0, *[0] * len(mats))), in_axes=(0, None, *[0] * len(mats)))
    return jnp.sum(jnp.broadcast_to(grid(a, b, *mats), (a.shape[0], b.shape[0])))


def compile_layered_energy(
    layer_sizes: Sequence[int],
    unit_terms: Sequence[NodeTerm] = (),
    coupling_terms: Sequence[EdgeTerm] = (),
    *,
    bounds=None,
) -> EnergyModel:
    """Compile a layered energy: layer 0 is the input `x`, layers 1..L the state.

    **Arguments:**
    - `layer_sizes`: `(n_0, n_1, ..., n_L)`; `x` has shape `(n_0,)`, `s` `(n_1 + ... + n_L,)`.
    - `unit_terms`: `NodeTerm(expr, [s], parameters)` summed over the units of layers 1..L; a
      parameter `b` becomes one array `b_l` of shape `(n_l,)` per layer.
    - `coupling_terms`: `EdgeTerm(expr, ([a], [b]), parameters)` summed over every pair (unit of
      layer l−1, unit of layer l); a parameter `w` becomes `w_l` of shape `(n_{l−1}, n_l)`.
    - `bounds`: optional box `(lower, upper)` for the states (e.g. `(0, 1)`: hard-sigmoid units).

    **Returns:** an `EnergyModel`; states named `s{l}_{i}`, inputs `x_{i}`.
    """
    sizes = tuple(int(n) for n in layer_sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise LagrangianError(f"layer_sizes must list at least two positive sizes (input and one layer), got {sizes}.")
    units, couplings, plains, shapes = [], [], [], {}
    for kind, terms in (("unit", unit_terms), ("coupling", coupling_terms)):
        for i, term in enumerate(terms):
            where = _label(kind, i, term)
            expected = NodeTerm if kind == "unit" else EdgeTerm
            if not isinstance(term, expected):
                raise LagrangianError(f"{where} must be a {expected.__name__}, got {type(term).__name__}.")
            coordinates = term.coordinates if kind == "unit" else (*term.coordinates[0], *term.coordinates[1])
            if len(coordinates) != (1 if kind == "unit" else 2):
                raise LagrangianError(f"{where} must have one state Symbol per unit.")
            if term.inputs:
                raise LagrangianError(f"{where}: a layered energy takes its input as layer 0, not as named inputs.")
            local, plain = _compile_local(term, coordinates, where, {})
            (units if kind == "unit" else couplings).append(local)
            plains.append(plain)
            for name in local.parameter_names:
                for l in range(1, len(sizes)):
                    shape = (sizes[l],) if kind == "unit" else (sizes[l - 1], sizes[l])
                    if shapes.setdefault(f"{name}_{l}", shape) != shape:
                        raise LagrangianError(f"parameter {name} is used both in unit and coupling terms; rename one.")
    names = tuple(f"s{l}_{i}" for l in range(1, len(sizes)) for i in range(sizes[l]))
    culprits = sorted({f for p in plains for f in non_analytic_functions(p)})
    return EnergyModel(energy_fn=jax.jit(LayeredEnergy(sizes, tuple(units), tuple(couplings))), state_names=names,
                       parameter_shapes=shapes, input_names=tuple(f"x_{i}" for i in range(sizes[0])),
                       bounds=_bounds(bounds, len(names), names), non_analytic=tuple(culprits),
                       symbolic=SymbolicLayeredEnergy(sizes, tuple(unit_terms), tuple(coupling_terms)))
