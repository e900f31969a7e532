"""The SymPy-free runtime of compiled Lagrangians (the role of JAX-MD's `smap.bond`).

The symbolic layer (`_symbolic/`) prints each scalar expression once with SymPy; what runs is
built from the pieces here, which hold only the lambdified (JAX) functions and static index
data: the whole-expression wrappers (`ScalarFunction`, `VectorFunction`, `MassFunction`,
`PotentialFromLagrangian`) and the network Lagrangian, which evaluates each local term once
per node or edge under `jax.vmap` and sums (`NetworkLagrangian`, `NetworkMass`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LocalTerm",
    "MassFunction",
    "NetworkLagrangian",
    "NetworkMass",
    "NodeLocalLagrangian",
    "PotentialFromLagrangian",
    "Rows",
    "ScalarFunction",
    "VectorFunction",
    "float_dtype",
    "stack_scalars",
]


class LocalTerm(NamedTuple):
    """One compiled local (node or edge) term: `raw(*q_local, *v_local, t, *params, *u_used)`."""

    raw: Callable
    num_coordinates: int  # local q count (dim or 2·dim)
    parameter_names: tuple[str, ...]
    input_indices: tuple[int, ...]


def float_dtype(*arrays):
    return jnp.result_type(float, *arrays)


def stack_scalars(values, dtype) -> jax.Array:
    """Stack scalar outputs (some may be Python numbers for constant entries)."""
    return jnp.stack([jnp.broadcast_to(jnp.asarray(x, dtype=dtype), ()) for x in values])


def unstack(x, size: int) -> list:
    return [x[i] for i in range(size)]


def columns(x) -> tuple:
    """The columns of a `(rows, k)` array, as a tuple of `(rows,)` arrays."""
    return tuple(x[:, i] for i in range(x.shape[1]))


class ScalarFunction:
    """`(q (n,), v (n,), t, params, u (m,)) -> ()` from a lambdified flat function (always of a
    floating dtype: a constant expression such as `L = 0` would otherwise come out an integer)."""

    def __init__(self, raw: Callable, n: int, parameter_names: tuple[str, ...], m: int):
        self.raw, self.n, self.parameter_names, self.m = raw, n, parameter_names, m

    def _evaluate(self, q, v, t, params, u):
        return self.raw(
            *unstack(q, self.n),
            *unstack(jnp.asarray(v), self.n),
            t,
            *[params[name] for name in self.parameter_names],
            *unstack(jnp.asarray(u), self.m),
        )

    def __call__(self, q, v, t, params, u):
        q = jnp.asarray(q)
        out = jnp.asarray(self._evaluate(q, v, t, params, u))
        return out if jnp.issubdtype(out.dtype, jnp.inexact) else out.astype(float_dtype(q))


class VectorFunction(ScalarFunction):
    """`(q, v, t, params, u) -> (k,)` from a lambdified list of k expressions."""

    def __call__(self, q, v, t, params, u):
        q = jnp.asarray(q)
        return stack_scalars(self._evaluate(q, v, t, params, u), float_dtype(q))


class MassFunction:
    """`params -> (n,)` diagonal or `(n, n)` mass matrix from lambdified entries."""

    def __init__(self, raw: Callable, parameter_names: tuple[str, ...], n: int, diagonal: bool):
        self.raw, self.parameter_names, self.n, self.diagonal = raw, parameter_names, n, diagonal

    def __call__(self, params):
        values = [params[name] for name in self.parameter_names]
        entries = self.raw(*values)
        dtype = float_dtype(*values)
        if self.diagonal:
            return stack_scalars(entries, dtype)
        return stack_scalars(entries, dtype).reshape(self.n, self.n)


class PotentialFromLagrangian:
    """`V(q, t, params, u) = −L(q, 0, t, params, u)` (valid for a separable L)."""

    def __init__(self, lagrangian_fn: Callable):
        self.lagrangian_fn = lagrangian_fn

    def __call__(self, q, t, params, u):
        return -self.lagrangian_fn(q, jnp.zeros_like(q), t, params, u)


def element_value(term: "LocalTerm", q_local, v_local, t, local_params, u):
    """Value of one local term for one element (called under `jax.vmap`); `q_local` and
    `v_local` are sequences of the element's `num_coordinates` scalars."""
    return term.raw(
        *q_local,
        *v_local,
        t,
        *local_params,
        *[u[i] for i in term.input_indices],
    )


# ---- static row selection
# The network Lagrangian picks rows by index arrays fixed at compile time (edge senders and
# receivers, free-node parameters). `x[index]` lowers to an XLA gather, whose transpose (in
# every `jax.grad`, e.g. the force ∇V) is a scatter-add: slow on CPU, ~10× the cost of the
# local terms on a 256-mass chain. On chains, lattice strips and the like an index array is a
# few arithmetic runs `start + step·arange(k)`; each run is then a static (strided) slice, whose
# transpose is a pad, or a broadcast (step 0), whose transpose is a sum; XLA fuses both with the
# local terms. Lattices in 2-D/3-D give many runs of one length at a fixed stride (one per row):
# each such family is a *block* `start + stride·i + step·j`, a static 2-D slice of the rows laid
# out `stride` to a line (`take_block`). Index arrays that mix blocks and runs with irregular
# entries (a lattice plus random springs) are cut into pieces: slices where the index is
# regular, one gather for each irregular stretch. Values are the same either way; gradients
# agree to round-off (the per-node sums of edge contributions may be added in another order).
# Measured on a 10⁵-mass lattice with 10⁴ random springs (docs/benchmarks.md): ∇V 30 % faster
# than one gather per index array; summing the gradients with `jax.ops.segment_sum` instead of
# the gather's own transpose (a scatter-add) gained less (17 %) and needs a custom transpose
# rule, which JAX offers only through `custom_vjp` (no forward mode: the tangent echo, Newton's
# Jacobians and the stability estimate need it).
MAX_RUNS = 8  # more runs than this: gather (each run costs a pad + add in the gradient); 0: always gather
MAX_PIECES = 16  # more pieces (blocks, runs, irregular stretches) than this: one gather for all
MIN_SLICE = 32  # runs/blocks shorter than this join the irregular stretches (one gather each)
MIN_BLOCK_ROWS = 3  # fewer equal runs at one stride stay separate runs


def _greedy_runs(index: np.ndarray, boundary: int | None, limit: int | None):
    """Arithmetic runs `(start, step, length)` covering `index` in order, none straddling
    `boundary`; `None` when there are more than `limit` of them."""
    diffs = np.diff(index)
    side = index >= boundary if boundary is not None else np.zeros(index.shape, dtype=bool)
    runs, i = [], 0
    while i < index.size:
        if limit is not None and len(runs) == limit:
            return None
        step = int(diffs[i]) if i < diffs.size else 0
        stops = np.flatnonzero((diffs[i:] != step) | (side[i + 1:] != side[i]))
        end = i + 1 + (int(stops[0]) if stops.size else diffs.size - i)  # run is index[i:end]
        if end - i == 2 and end < index.size:
            end = i + 1  # a lone pair before a new step: let its second entry start the next run
        runs.append((int(index[i]), step, end - i))
        i = end
    return runs


def index_runs(index: np.ndarray, boundary: int | None = None):
    """Split a static index array greedily into arithmetic runs `(start, step, length)`, none
    straddling `boundary` (runs lie wholly below it or wholly at/above it); `None` when that
    takes more than `MAX_RUNS` runs."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    runs = _greedy_runs(index, boundary, MAX_RUNS)
    return None if runs is None else tuple(runs)


def index_pieces(index: np.ndarray, boundary: int | None = None):
    """Cut a static index array into consecutive pieces: `("block", start, stride, rows, step,
    length)` (entries `start + stride·i + step·j`, `i < rows`, `j < length`, `step ≥ 1`, no row
    wrapping past `stride`), `("run", start, step, length)`, and `("gather", offset, length)` for
    the irregular stretches in between; none straddles `boundary`. `None` when it takes more than
    `MAX_PIECES` pieces, when slices would cover less than half the entries, or with
    `MAX_RUNS = 0` (everything gathered)."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if MAX_RUNS < 1 or index.size < MIN_SLICE:
        return None
    side = index >= boundary if boundary is not None else np.zeros(index.shape, dtype=bool)
    runs = _greedy_runs(index, boundary, None)
    pieces, offset, k = [], 0, 0
    while k < len(runs):
        start, step, length = runs[k]
        rows = 1
        if step >= 1 and length >= 2 and k + 1 < len(runs):
            stride = runs[k + 1][0] - start
            # following runs of the same shape, `stride` apart, on the same side of the boundary
            while (k + rows < len(runs) and runs[k + rows][1:] == (step, length)
                   and runs[k + rows][0] == start + rows * stride
                   and side[offset + rows * length] == side[offset]):
                rows += 1
            if rows >= MIN_BLOCK_ROWS and stride > 0 and start % stride + step * (length - 1) < stride:
                pieces.append(("block", start, stride, rows, step, length))
                offset, k = offset + rows * length, k + rows
                continue
            rows = 1
        if length >= MIN_SLICE:
            pieces.append(("run", start, step, length))
        elif pieces and pieces[-1][0] == "gather":
            pieces[-1] = ("gather", pieces[-1][1], pieces[-1][2] + length)
        else:
            pieces.append(("gather", offset, length))
        offset, k = offset + length, k + 1
    gathered = sum(p[2] for p in pieces if p[0] == "gather")
    if len(pieces) > MAX_PIECES or 2 * gathered > index.size:
        return None
    return tuple(pieces)


def take_run(x, start: int, step: int, length: int):
    """`x[start + step·arange(length)]` with static slicing (no gather)."""
    if step == 0:
        return jnp.broadcast_to(x[start:start + 1], (length, *x.shape[1:]))
    last = start + step * (length - 1)
    piece = x[min(start, last):max(start, last) + 1:abs(step)]
    return piece[::-1] if step < 0 else piece


def take_block(x, start: int, stride: int, rows: int, step: int, length: int):
    """`x[start + stride·i + step·j]` for `i < rows`, `j < length` (row-major), by static slicing:
    the rows of `x`, padded to whole lines, laid out `stride` to a line."""
    first, column = divmod(start, stride)
    lines = max(first + rows, -(-x.shape[0] // stride))
    padded = x if lines * stride == x.shape[0] else jnp.concatenate(
        [x, jnp.zeros((lines * stride - x.shape[0], *x.shape[1:]), x.dtype)])
    grid = padded.reshape(lines, stride, *x.shape[1:])
    block = grid[first:first + rows, column:column + step * (length - 1) + 1:step]
    return block.reshape(rows * length, *x.shape[1:])


class Rows:
    """`concatenate([x, fixed])[index]` along the leading axis, for a static `index` and
    `len(x) == boundary` (`fixed`: constant NumPy rows, e.g. the fixed nodes' states; omit it
    and `boundary` for plain `x[index]`). Static slices when the index is a few arithmetic runs
    (`index_runs`, `runs`), else slices and gathers by pieces where the index is mostly regular
    (`index_pieces`, `pieces`), the rows of `fixed` entering as constants (no gradient path);
    otherwise one gather."""

    def __init__(self, index, boundary: int | None = None):
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)
        self.boundary = boundary
        self.runs = index_runs(self.index, boundary)
        self.pieces = None if self.runs is not None else index_pieces(self.index, boundary)

    def _fixed_side(self, start: int) -> bool:
        return self.boundary is not None and start >= self.boundary

    def __call__(self, x, fixed: np.ndarray | None = None):
        x = jnp.asarray(x)
        if fixed is not None:
            x = x.astype(float_dtype(x))
            fixed = np.asarray(fixed, dtype=x.dtype)
        if self.runs is None and self.pieces is None:
            source = x if fixed is None else jnp.concatenate([x, jnp.asarray(fixed)])
            return source[self.index]
        pieces = []
        if self.runs is not None:
            for start, step, length in self.runs:
                if fixed is not None and start >= self.boundary:
                    pieces.append(jnp.asarray(take_run(fixed, start - self.boundary, step, length)))
                else:
                    pieces.append(take_run(x, start, step, length))
        else:
            offset = 0
            for kind, *spec in self.pieces:
                if kind == "gather":
                    part = self.index[spec[0]:spec[0] + spec[1]]
                    if fixed is None or np.all(part < self.boundary):
                        pieces.append(x[part])
                    elif np.all(part >= self.boundary):
                        pieces.append(jnp.asarray(fixed[part - self.boundary]))
                    else:
                        pieces.append(jnp.concatenate([x, jnp.asarray(fixed)])[part])
                    offset += spec[1]
                    continue
                take = take_block if kind == "block" else take_run
                size = spec[2] * spec[4] if kind == "block" else spec[2]
                if fixed is not None and self._fixed_side(spec[0]):
                    pieces.append(jnp.asarray(fixed[self.index[offset:offset + size] - self.boundary]))
                else:
                    pieces.append(take(x, *spec))
                offset += size
        if not pieces:
            return jnp.zeros((0, *x.shape[1:]), dtype=x.dtype)
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)


def sum_over_elements(term: LocalTerm, q_local, v_local, t, params, u, select=None):
    """Σ over elements of one vectorised local term. `q_local`, `v_local`: tuples of the
    `num_coordinates` local coordinates, each an array over the elements (separate arrays, not
    one stacked array: no concatenate/split pair in the forward pass or its transpose);
    `select` (a `Rows`) picks the elements' entries of the parameter arrays (all when `None`)."""
    local_params = tuple(params[name] for name in term.parameter_names)
    if select is not None:
        local_params = tuple(select(p) for p in local_params)

    def one(qe, ve, pe):
        return jnp.asarray(element_value(term, qe, ve, t, pe, u))

    values = jax.vmap(one)(tuple(q_local), tuple(v_local), local_params)
    return jnp.sum(jnp.broadcast_to(values, q_local[0].shape))


class NetworkLagrangian:
    """`L(q, v, t, params, u) = Σ_nodes ℓ_node + Σ_edges ℓ_edge (+ extra)` on a graph."""

    def __init__(self, num_nodes, dim, senders, receivers, free_nodes, fixed_nodes,
                 fixed_positions, node_terms, edge_terms, extra):
        self.num_nodes, self.dim = num_nodes, dim
        self.senders, self.receivers = senders, receivers
        self.free_nodes, self.fixed_nodes = free_nodes, fixed_nodes
        self.fixed_positions = fixed_positions
        self.node_terms, self.edge_terms, self.extra = node_terms, edge_terms, extra
        # Node states are stacked as [free nodes..., fixed nodes...]; `node_order` maps node
        # indices to rows of that stack, and edge endpoints index the stack directly (one row
        # selection per endpoint, no reordering of the nodes first).
        order = np.concatenate([free_nodes, fixed_nodes]).astype(np.int64)
        self.node_order = np.argsort(order)
        boundary = free_nodes.size
        self.node_rows = Rows(self.node_order, boundary)
        self.sender_rows = Rows(self.node_order[senders], boundary)
        self.receiver_rows = Rows(self.node_order[receivers], boundary)
        self.free_rows = Rows(free_nodes) if fixed_nodes.size else None
        self.fixed_velocities = np.zeros_like(fixed_positions)

    def node_states(self, q, v):
        """Positions and velocities of all nodes, shape `(num_nodes, dim)` each."""
        positions, velocities = jnp.reshape(q, (-1, self.dim)), jnp.reshape(v, (-1, self.dim))
        return (self.node_rows(positions, self.fixed_positions),
                self.node_rows(velocities, self.fixed_velocities))

    def _endpointcolumns(self, rows, x, fixed):
        """Local coordinates of one edge endpoint: a tuple of `dim` arrays over the edges."""
        x = jnp.reshape(x, (-1, self.dim))
        if rows.pieces is None:
            return columns(rows(x, fixed))
        # Slices and gathers by pieces: select each coordinate's column, so that the gradient
        # sums one array per coordinate (pads of (E,) pieces) instead of padding every column
        # back into (E, dim) rows first.
        return tuple(rows(x[:, i], None if fixed is None else fixed[:, i]) for i in range(self.dim))

    def __call__(self, q, v, t, params, u):
        q, v, u = jnp.asarray(q), jnp.asarray(v), jnp.asarray(u)
        total = jnp.zeros((), dtype=float_dtype(q))
        # Node terms run over the free nodes only (on a fixed node they would be constants).
        free_q, free_v = jnp.reshape(q, (-1, self.dim)), jnp.reshape(v, (-1, self.dim))
        free_q, free_v = columns(free_q), columns(free_v)
        for term in self.node_terms:
            total = total + sum_over_elements(term, free_q, free_v, t, params, u, self.free_rows)
        if self.edge_terms:
            pair_q = (self._endpointcolumns(self.sender_rows, q, self.fixed_positions)
                      + self._endpointcolumns(self.receiver_rows, q, self.fixed_positions))
            pair_v = (self._endpointcolumns(self.sender_rows, v, self.fixed_velocities)
                      + self._endpointcolumns(self.receiver_rows, v, self.fixed_velocities))
            for term in self.edge_terms:
                total = total + sum_over_elements(term, pair_q, pair_v, t, params, u)
        if self.extra is not None:
            total = total + self.extra(q, v, t, params, u)
        return total


class NodeLocalLagrangian:
    """Sum of the node terms for a single node: `(q (dim,), v (dim,), t, params, u) -> ()`
    with scalar node parameters (used for the per-node degeneracy check)."""

    def __init__(self, node_terms, dim):
        self.node_terms, self.dim = node_terms, dim

    def __call__(self, q, v, t, params, u):
        dtype = float_dtype(q)
        total = jnp.zeros((), dtype=dtype)
        for term in self.node_terms:
            local = tuple(params[name] for name in term.parameter_names)
            total = total + jnp.asarray(
                element_value(term, unstack(q, self.dim), unstack(v, self.dim), t, local, u))
        return total


class NetworkMass:
    """Diagonal `(n,)` (or block-diagonal `(n, n)`) mass of a network from its node terms."""

    def __init__(self, node_mass_fns, free_nodes, num_nodes, dim, diagonal):
        self.node_mass_fns = node_mass_fns  # [(raw, parameter_names)]
        self.free_nodes, self.num_nodes, self.dim, self.diagonal = (
            free_nodes, num_nodes, dim, diagonal)
        self.free_rows = Rows(free_nodes)

    def __call__(self, params):
        dtype = float_dtype(*[params[name] for _, names in self.node_mass_fns for name in names])
        shape = (self.num_nodes, self.dim) if self.diagonal else (self.num_nodes, self.dim, self.dim)
        total = jnp.zeros(shape, dtype=dtype)
        for raw, names in self.node_mass_fns:
            local = tuple(params[name] for name in names)

            def one(pe, raw=raw):
                return stack_scalars(raw(*pe), dtype).reshape(shape[1:])

            total = total + jax.vmap(one, axis_size=self.num_nodes)(local)
        free = self.free_rows(total)
        if self.diagonal:
            return free.reshape(-1)
        count = free.shape[0]
        blocks = jnp.einsum("ij,iab->iajb", jnp.eye(count, dtype=dtype), free)
        return blocks.reshape(count * self.dim, count * self.dim)

