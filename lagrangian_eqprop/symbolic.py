"""SymPy → JAX: compile a scalar Lagrangian (whole expression or per-element network terms).

This is the only module of the engine that touches SymPy. It

1. validates a Lagrangian written in the physicist's language (`dynamicsymbols`, velocities as
   `x.diff(t)`, named parameter `Symbol`s, inputs as functions of time or symbols),
2. replaces coordinates, velocities and inputs by plain symbols and prints **only the scalar L**
   (and, optionally, Lagrange–d'Alembert forces) to JAX code with SymPy's `JaxPrinter`,
3. rejects degenerate Lagrangians (singular velocity Hessian `∂²L/∂v²`) numerically,
4. detects cheap structure symbolically: separability `L = ½vᵀM(θ)v − V(q,t,θ,u)` and
   time-reversibility `L(q,−v) = L(q,v)`.

Equations of motion are never formed symbolically for computation: momenta, energy, mass
matrix and accelerations come from JAX autodiff in `LagrangianModel`. The one exception is
`euler_lagrange_equations`, which exists for display only.

Two compilers share this machinery:

- `compile_lagrangian(L, coordinates, ...)`: one SymPy expression over all coordinates.
- `compile_network(num_nodes, edges, node_terms, edge_terms, ...)`: a graph Lagrangian
  `L = Σ_nodes ℓ_node + Σ_edges ℓ_edge (+ extra)` where each local term is written once with
  local symbols, compiled once, and vectorised with `jax.vmap` (scales to thousands of nodes).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special  # noqa: F401  (namespace used by the printed code)
import numpy as np
import sympy
from sympy.core.function import AppliedUndef
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import JaxPrinter

from .errors import LagrangianError
from .model import LagrangianModel, SeparableStructure

__all__ = [
    "EdgeTerm",
    "ExtraTerm",
    "NodeTerm",
    "SymbolicLagrangian",
    "SymbolicNetwork",
    "compile_lagrangian",
    "compile_network",
    "euler_lagrange_equations",
    "lagrangian_expression",
    "network_coordinates",
]

# Number of random sample points for the numerical degeneracy check.
_NUM_SAMPLE_POINTS = 4


# ====================================================================== printing
class _LagrangianJaxPrinter(JaxPrinter):
    """`JaxPrinter` that sends the special functions it would print as `math.*` (which fail on
    traced values) to `jax.scipy.special`."""

    def _special(self, name: str, expr) -> str:
        args = ", ".join(self._print(a) for a in expr.args)
        return f"{self._module_format('jax.scipy.special.' + name)}({args})"

    def _print_erf(self, expr):
        return self._special("erf", expr)

    def _print_erfc(self, expr):
        return self._special("erfc", expr)

    def _print_gamma(self, expr):
        return self._special("gamma", expr)

    def _print_loggamma(self, expr):
        return self._special("gammaln", expr)

    def _print_factorial(self, expr):
        return self._special("factorial", expr)

    def _print_digamma(self, expr):
        return self._special("digamma", expr)

    def _print_polygamma(self, expr):
        return self._special("polygamma", expr)


def _lambdify_printer() -> _LagrangianJaxPrinter:
    # The settings lambdify itself would use for its default printer.
    return _LagrangianJaxPrinter(
        {
            "fully_qualified_modules": False,
            "inline": True,
            "allow_unknown_functions": True,
            "user_functions": {},
        }
    )


def _unsupported_functions(expr: sympy.Expr) -> list[str]:
    """Names of the functions in `expr` that the JAX printer cannot print (sorted)."""
    strict = _LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False})
    try:
        strict.doprint(expr)
        return []
    except PrintMethodNotImplementedError:
        pass
    culprits = set()
    for atom in expr.atoms(sympy.Function):
        try:
            _LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False}).doprint(
                atom.func(*[sympy.Dummy() for _ in atom.args])
            )
        except PrintMethodNotImplementedError:
            culprits.add(str(atom.func))
        except Exception:  # noqa: BLE001  (odd argument patterns: fall back to the atom itself)
            try:
                _LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False}).doprint(
                    atom
                )
            except PrintMethodNotImplementedError:
                culprits.add(str(atom.func))
    if not culprits:  # something else (not a function) is unprintable
        culprits.add(type(expr).__name__)
    return sorted(culprits)


# ============================================================== symbol handling
def _name_of(obj) -> str:
    """Display name of a coordinate/input (`x` for `x(t)`) or a symbol."""
    if isinstance(obj, AppliedUndef):
        return obj.func.__name__
    return str(obj)


def _function_of_time(obj, role: str, time: sympy.Symbol | None, where: str) -> sympy.Symbol:
    """Check that `obj` is `f(t)` for a single symbol `t`; return that `t`."""
    if not isinstance(obj, AppliedUndef):
        raise LagrangianError(
            f"{role} {obj!s} in {where} is not a function of time; declare it as "
            f"`dynamicsymbols('{obj!s}')` or `sympy.Function('{obj!s}')(t)`."
        )
    if len(obj.args) != 1 or not isinstance(obj.args[0], sympy.Symbol):
        raise LagrangianError(
            f"{role} {obj!s} in {where} is not a function of time alone (arguments {obj.args})."
        )
    arg = obj.args[0]
    if time is not None and arg != time:
        raise LagrangianError(
            f"{role} {obj!s} in {where} depends on {arg}, not on the time symbol {time}."
        )
    return arg


class _SymbolTable(NamedTuple):
    """Plain-symbol stand-ins for one (whole or local) Lagrangian."""

    where: str  # description used in error messages ("L", "edge term #2", ...)
    time: sympy.Symbol
    coordinates: tuple  # the user's q_i(t)
    q: tuple  # Dummy per coordinate
    v: tuple  # Dummy per velocity
    parameters: tuple  # the user's Symbols
    inputs: tuple  # the user's inputs (u(t) or Symbol)
    u: tuple  # Dummy (or the Symbol itself) per input
    replacements: dict  # user object → plain symbol

    @property
    def arguments(self) -> list:
        """Flat lambdify argument list `(*q, *v, t, *params, *u)`."""
        return [*self.q, *self.v, self.time, *self.parameters, *self.u]


# Prefix of the compiler's own symbols for coordinates, velocities and inputs.
_INTERNAL_PREFIX = "_lep_"


def _make_table(coordinates, parameters, inputs, time, where: str) -> _SymbolTable:
    coordinates = tuple(coordinates)
    parameters = tuple(parameters)
    inputs = tuple(inputs)
    if time is not None and not isinstance(time, sympy.Symbol):
        raise LagrangianError(f"time {time!s} in {where} must be a SymPy Symbol.")
    if not coordinates:
        raise LagrangianError(f"no coordinates were declared for {where}.")
    for c in coordinates:  # the first coordinate fixes the time symbol when it is not given
        time = _function_of_time(c, "coordinate", time, where)
    seen: dict[str, Any] = {}
    for c in coordinates:
        name = _name_of(c)
        if name in seen:
            raise LagrangianError(f"coordinate {name} is declared twice in {where}.")
        seen[name] = c
    for symbol in (time, *parameters, *inputs):
        if isinstance(symbol, sympy.Symbol) and symbol.name.startswith(_INTERNAL_PREFIX):
            raise LagrangianError(
                f"symbol {symbol.name} in {where} uses the prefix {_INTERNAL_PREFIX!r}, which is "
                "reserved for the compiler's own symbols; rename it."
            )
    for p in parameters:
        if not isinstance(p, sympy.Symbol):
            raise LagrangianError(
                f"parameter {p!s} in {where} must be a named SymPy Symbol (literals are constants,"
                " never parameters)."
            )
        if p == time:
            raise LagrangianError(f"parameter {p} in {where} is the time symbol.")
        if str(p) in seen:
            raise LagrangianError(f"parameter {p} in {where} is declared twice (or clashes with a"
                                  " coordinate of the same name).")
        seen[str(p)] = p
    u_plain = []
    for inp in inputs:
        if isinstance(inp, AppliedUndef):
            _function_of_time(inp, "input", time, where)
            u_plain.append(sympy.Symbol(f"{_INTERNAL_PREFIX}u{len(u_plain)}"))
        elif isinstance(inp, sympy.Symbol):
            if inp == time:
                raise LagrangianError(f"input {inp} in {where} is the time symbol.")
            u_plain.append(inp)
        else:
            raise LagrangianError(
                f"input {inp!s} in {where} must be a function of time u(t) or a Symbol."
            )
        if _name_of(inp) in seen:
            raise LagrangianError(f"input {_name_of(inp)} in {where} is declared twice (or clashes"
                                  " with a coordinate or parameter of the same name).")
        seen[_name_of(inp)] = inp
    # Plain symbols with fixed names (not Dummy): SymPy orders terms by name, and Dummy
    # numbering depends on how many were created before, so the generated code (and its
    # round-off) would differ between two builds of the same model in one process.
    q = tuple(sympy.Symbol(f"{_INTERNAL_PREFIX}q{i}") for i in range(len(coordinates)))
    v = tuple(sympy.Symbol(f"{_INTERNAL_PREFIX}v{i}") for i in range(len(coordinates)))
    replacements = {}
    for c, qi, vi in zip(coordinates, q, v):
        replacements[sympy.Derivative(c, time)] = vi
        replacements[c] = qi
    for inp, ui in zip(inputs, u_plain):
        if isinstance(inp, AppliedUndef):
            replacements[inp] = ui
    return _SymbolTable(where, time, coordinates, q, v, parameters, inputs, tuple(u_plain),
                        replacements)


def _to_plain(expr, table: _SymbolTable, what: str) -> sympy.Expr:
    """Validate one scalar SymPy expression and rewrite it in the table's plain symbols.

    Raises `LagrangianError` naming the culprit for: non-scalar expressions, higher time
    derivatives, undeclared functions of time, undeclared symbols, unsupported functions.
    """
    where = f"{what} of {table.where}" if what != table.where else what
    if isinstance(expr, (MatrixBase, MatrixExpr, list, tuple, np.ndarray, dict, set)):
        raise LagrangianError(
            f"{where} must be a scalar SymPy expression, got a {type(expr).__name__}"
            f" (shape {getattr(expr, 'shape', len(expr))})."
        )
    if isinstance(expr, (int, float)):
        expr = sympy.sympify(expr)
    if not isinstance(expr, sympy.Expr):
        raise LagrangianError(
            f"{where} must be a scalar SymPy expression, got {type(expr).__name__}: {expr!s}."
        )
    coordinates = set(table.coordinates)
    inputs = {i for i in table.inputs if isinstance(i, AppliedUndef)}
    undeclared_functions = set()
    for d in expr.atoms(sympy.Derivative):
        base = d.expr
        if base in coordinates:
            if any(var != table.time for var, _ in d.variable_count):
                raise LagrangianError(
                    f"{where} differentiates coordinate {_name_of(base)} with respect to"
                    f" {[str(var) for var, _ in d.variable_count]}, not time {table.time}."
                )
            order = sum(count for _, count in d.variable_count)
            if order > 1:
                raise LagrangianError(
                    f"{where} contains a time derivative of order {order} of coordinate"
                    f" {_name_of(base)} ({d}); a Lagrangian may depend on q and q̇ only."
                )
        elif base in inputs:
            raise LagrangianError(
                f"{where} contains the time derivative {d} of input {_name_of(base)}; pass the"
                " derivative as an input of its own."
            )
        elif isinstance(base, AppliedUndef):
            undeclared_functions.add(str(base))
        else:
            raise LagrangianError(f"{where} contains an unevaluated derivative {d}; call .doit().")
    for f in expr.atoms(AppliedUndef):
        if f not in coordinates and f not in inputs:
            undeclared_functions.add(str(f))
    if undeclared_functions:
        names = ", ".join(sorted(undeclared_functions))
        raise LagrangianError(
            f"{where} contains undeclared function(s) of time {names}; declare each as a"
            " coordinate or an input."
        )
    plain = expr.xreplace(table.replacements)
    allowed = set(table.arguments)
    undeclared = plain.free_symbols - allowed
    if undeclared:
        names = sorted(str(s) for s in undeclared)
        message = (
            f"{where} contains undeclared symbol(s) {', '.join(names)}; declare them as"
            " parameters (or inputs), or replace them by numbers."
        )
        declared_names = {str(s) for s in allowed}
        clashes = [n for n in names if n in declared_names]
        if clashes:
            message += (
                f" Note: {', '.join(clashes)} is declared with different SymPy assumptions"
                " (e.g. positive=True); use the very same Symbol object."
            )
        raise LagrangianError(message)
    unsupported = _unsupported_functions(plain)
    if unsupported:
        raise LagrangianError(
            f"{where} uses function(s) {', '.join(unsupported)} that cannot be compiled to JAX."
        )
    return plain


# ================================================================ lambdification
def _lambdify(arguments: list, expr) -> Callable:
    return sympy.lambdify(arguments, expr, modules="jax", printer=_lambdify_printer(), cse=True)


def _float_dtype(*arrays):
    return jnp.result_type(float, *arrays)


def _stack_scalars(values, dtype) -> jax.Array:
    """Stack scalar outputs (some may be Python numbers for constant entries)."""
    return jnp.stack([jnp.broadcast_to(jnp.asarray(x, dtype=dtype), ()) for x in values])


def _unstack(x, size: int) -> list:
    return [x[i] for i in range(size)]


def _columns(x) -> tuple:
    """The columns of a `(rows, k)` array, as a tuple of `(rows,)` arrays."""
    return tuple(x[:, i] for i in range(x.shape[1]))


class _ScalarFunction:
    """`(q (n,), v (n,), t, params, u (m,)) -> ()` from a lambdified flat function."""

    def __init__(self, raw: Callable, n: int, parameter_names: tuple[str, ...], m: int):
        self.raw, self.n, self.parameter_names, self.m = raw, n, parameter_names, m

    def __call__(self, q, v, t, params, u):
        q = jnp.asarray(q)
        out = self.raw(
            *_unstack(q, self.n),
            *_unstack(jnp.asarray(v), self.n),
            t,
            *[params[name] for name in self.parameter_names],
            *_unstack(jnp.asarray(u), self.m),
        )
        return jnp.asarray(out)


class _VectorFunction(_ScalarFunction):
    """`(q, v, t, params, u) -> (k,)` from a lambdified list of k expressions."""

    def __call__(self, q, v, t, params, u):
        q = jnp.asarray(q)
        out = self.raw(
            *_unstack(q, self.n),
            *_unstack(jnp.asarray(v), self.n),
            t,
            *[params[name] for name in self.parameter_names],
            *_unstack(jnp.asarray(u), self.m),
        )
        return _stack_scalars(out, _float_dtype(q))


class _MassFunction:
    """`params -> (n,)` diagonal or `(n, n)` mass matrix from lambdified entries."""

    def __init__(self, raw: Callable, parameter_names: tuple[str, ...], n: int, diagonal: bool):
        self.raw, self.parameter_names, self.n, self.diagonal = raw, parameter_names, n, diagonal

    def __call__(self, params):
        values = [params[name] for name in self.parameter_names]
        entries = self.raw(*values)
        dtype = _float_dtype(*values)
        if self.diagonal:
            return _stack_scalars(entries, dtype)
        return _stack_scalars(entries, dtype).reshape(self.n, self.n)


class _PotentialFromLagrangian:
    """`V(q, t, params, u) = −L(q, 0, t, params, u)` (valid for a separable L)."""

    def __init__(self, lagrangian_fn: Callable):
        self.lagrangian_fn = lagrangian_fn

    def __call__(self, q, t, params, u):
        return -self.lagrangian_fn(q, jnp.zeros_like(q), t, params, u)


# ================================================================ degeneracy check
def _sample_points(rng, num_points, n, parameter_shapes, m, dtype, symmetric: bool):
    low, high = (-0.7, 0.7) if symmetric else (0.1, 0.7)
    q = rng.uniform(low, high, (num_points, n)).astype(dtype)
    v = rng.uniform(low, high, (num_points, n)).astype(dtype)
    t = rng.uniform(0.1, 1.0, (num_points,)).astype(dtype)
    u = rng.uniform(low, high, (num_points, m)).astype(dtype)
    params = {
        name: rng.uniform(0.5, 1.5, (num_points, *shape)).astype(dtype)
        for name, shape in parameter_shapes.items()
    }
    return q, v, t, params, u


def _degenerate_coordinates(hessian: np.ndarray, rtol: float, eps: float) -> list[int] | None:
    """Indices of the coordinates involved in the null space of a singular velocity Hessian,
    or `None` when the Hessian is regular. Zero rows/columns are named directly."""
    hessian = 0.5 * (hessian + hessian.T)
    row_size = np.max(np.abs(hessian), axis=1)
    scale = row_size.max()
    if scale == 0.0:
        return list(range(hessian.shape[0]))
    # A row that is zero to round-off (L does not depend on that velocity quadratically).
    zero_rows = np.flatnonzero(row_size <= 10.0 * eps * scale)
    if zero_rows.size:
        return zero_rows.tolist()
    # Symmetric equilibration so that very different masses are not mistaken for degeneracy.
    d = 1.0 / np.sqrt(row_size)
    scaled = hessian * d[:, None] * d[None, :]
    _, s, vh = np.linalg.svd(scaled)
    null = s <= rtol * s[0]
    if not null.any():
        return None
    weight = np.sqrt(np.sum(vh[null] ** 2, axis=0))
    return np.flatnonzero(weight >= 0.25 * weight.max()).tolist()


def _check_nondegenerate(
    lagrangian_fn: Callable,
    n: int,
    parameter_shapes: dict,
    m: int,
    coordinate_names: Sequence[str],
    where: str,
    seed: int = 0,
) -> None:
    """Reject `L` whose velocity Hessian `∂²L/∂v²` is singular at every sample point.

    The Hessian is evaluated with `jax.hessian` of the compiled function at a few random points
    (parameters uniform in [0.5, 1.5], q, v, u small), in the dtype JAX currently uses, with a
    relative rank tolerance suited to that dtype (float32 included). Non-finite points are skipped.
    """
    dtype = np.dtype(jnp.result_type(float))
    eps = float(np.finfo(dtype).eps)
    rtol = 3.0 * np.sqrt(eps)  # ≈ 1e-3 in float32, 5e-8 in float64
    hessian_fn = jax.jit(jax.vmap(jax.hessian(lagrangian_fn, argnums=1)))
    rng = np.random.default_rng(seed)
    finite_hessians = []
    for symmetric in (False, True):
        points = _sample_points(rng, _NUM_SAMPLE_POINTS, n, parameter_shapes, m, dtype, symmetric)
        try:
            hessians = np.asarray(hessian_fn(*points))
        except LagrangianError:
            raise
        except Exception as error:  # noqa: BLE001
            raise LagrangianError(
                f"{where} could not be evaluated after compilation: {type(error).__name__}: {error}"
            ) from error
        finite_hessians = [h for h in hessians if np.all(np.isfinite(h))]
        if finite_hessians:
            break
    if not finite_hessians:
        warnings.warn(
            f"{where}: the velocity Hessian was non-finite at every sample point; the degeneracy"
            " check was skipped.",
            stacklevel=3,
        )
        return
    culprits: list[int] = []
    for h in finite_hessians:
        involved = _degenerate_coordinates(h, rtol, eps)
        if involved is None:
            return  # regular somewhere: not structurally degenerate
        culprits.extend(i for i in involved if i not in culprits)
    names = ", ".join(coordinate_names[i] for i in sorted(culprits))
    raise LagrangianError(
        f"{where} is degenerate: the velocity Hessian ∂²L/∂v² is singular (at every sample point),"
        f" involving coordinate(s) {names}. A Lagrangian linear in a velocity, or depending on"
        " velocities only through a combination such as (ẋ + ẏ), has no well-defined dynamics."
    )


# ============================================================ structure detection
def _is_zero(expr) -> bool:
    if expr == 0:
        return True
    expr = sympy.expand(expr)
    if expr == 0:
        return True
    return sympy.simplify(expr) == 0


def _kinetic_mass(plain: sympy.Expr, table: _SymbolTable) -> sympy.Matrix | None:
    """Mass matrix `M(θ)` when `plain = ½vᵀMv − V(q,t,θ,u)` with parameter-only `M`, else None."""
    velocities = set(table.v)
    if not plain.free_symbols & velocities:
        return sympy.zeros(len(table.v), len(table.v))
    state_symbols = set(table.q) | velocities | {table.time} | set(table.u)
    at_rest = {vi: 0 for vi in table.v}
    n = len(table.v)
    mass = sympy.zeros(n, n)
    for i, vi in enumerate(table.v):
        first = sympy.diff(plain, vi)
        if not _is_zero(first.xreplace(at_rest)):
            return None  # linear terms in the velocity (gyroscopic / magnetic)
        for j in range(i, n):
            entry = sympy.expand(sympy.diff(first, table.v[j]))
            if entry.free_symbols & state_symbols:
                return None  # configuration-, time- or velocity-dependent mass
            mass[i, j] = mass[j, i] = entry
    return mass


def _is_time_reversible(plain: sympy.Expr, table: _SymbolTable) -> bool:
    """`L(q, −v) == L(q, v)` symbolically."""
    flipped = plain.xreplace({vi: -vi for vi in table.v})
    return _is_zero(flipped - plain)


def _mass_structure(mass: sympy.Matrix, parameters: tuple) -> tuple[Callable, bool]:
    n = mass.shape[0]
    diagonal = all(mass[i, j] == 0 for i in range(n) for j in range(n) if i != j)
    entries = [mass[i, i] for i in range(n)] if diagonal else list(mass)
    raw = _lambdify(list(parameters), entries)
    return _MassFunction(raw, tuple(str(p) for p in parameters), n, diagonal), diagonal


# ===================================================================== records
@dataclasses.dataclass(frozen=True)
class SymbolicLagrangian:
    """The SymPy data of a model compiled by `compile_lagrangian` (for display only).

    **Fields:** `lagrangian` (the original L), `coordinates` (the `q_i(t)`), `time`,
    `parameters`, `inputs`, `forces` (tuple of n expressions, or `None`).
    """

    lagrangian: sympy.Expr
    coordinates: tuple
    time: sympy.Symbol
    parameters: tuple = ()
    inputs: tuple = ()
    forces: tuple | None = None


@dataclasses.dataclass(frozen=True, init=False)
class NodeTerm:
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

    expr: Any
    coordinates: tuple
    parameters: tuple
    inputs: tuple
    name: str | None

    def __init__(self, expr, coordinates, parameters=(), inputs=(), name=None):
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "coordinates", tuple(coordinates))
        object.__setattr__(self, "parameters", tuple(parameters))
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "name", name)


@dataclasses.dataclass(frozen=True, init=False)
class EdgeTerm:
    """A per-edge Lagrangian term written with local symbols, summed over all edges.

    **Arguments:**
    - `expr`: scalar SymPy expression, e.g. `-½ k (sqrt((xb−xa)² + (yb−ya)²) − l)²`.
    - `coordinates`: `(coordinates of endpoint a, coordinates of endpoint b)`, `dim` each.
    - `parameters`: edge parameters; each becomes an array of shape `(num_edges,)`.
    - `inputs`: network inputs used by this term.
    - `name`: optional label used in error messages.
    """

    expr: Any
    coordinates: tuple
    parameters: tuple
    inputs: tuple
    name: str | None

    def __init__(self, expr, coordinates, parameters=(), inputs=(), name=None):
        if len(coordinates) != 2:
            raise LagrangianError(
                f"edge term {name or expr}: coordinates must be a pair (endpoint a, endpoint b)."
            )
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "coordinates", (tuple(coordinates[0]), tuple(coordinates[1])))
        object.__setattr__(self, "parameters", tuple(parameters))
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "name", name)


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


# =========================================================== compile_lagrangian
def _normalise_forces(forces, coordinates) -> list:
    n = len(coordinates)
    if isinstance(forces, Mapping):
        by_name = {_name_of(c): i for i, c in enumerate(coordinates)}
        out = [sympy.S.Zero] * n
        for key, value in forces.items():
            name = key if isinstance(key, str) else _name_of(key)
            if name not in by_name:
                raise LagrangianError(f"force given for {name}, which is not a coordinate.")
            out[by_name[name]] = value
        return out
    if isinstance(forces, MatrixBase):
        forces = list(forces)
    forces = list(forces)
    if len(forces) != n:
        raise LagrangianError(
            f"forces must have one entry per coordinate ({n}), got {len(forces)}."
        )
    return forces


def compile_lagrangian(
    L,
    coordinates: Sequence,
    parameters: Sequence = (),
    inputs: Sequence = (),
    time: sympy.Symbol | None = None,
    forces=None,
    check_degeneracy: bool = True,
) -> LagrangianModel:
    """Compile a scalar SymPy Lagrangian into a `LagrangianModel`.

    **Arguments:**
    - `L`: scalar SymPy expression in the coordinates `q_i(t)`, their first time derivatives,
      `time`, the parameters and the inputs.
    - `coordinates`: the generalised coordinates, functions of time (`dynamicsymbols('x')` or
      `sympy.Function('x')(t)`); their order is the order of `q`.
    - `parameters`: trainable parameters (named `Symbol`s); `params[str(symbol)]` has shape `()`.
      Numeric literals in `L` are constants, never parameters.
    - `inputs`: time-varying inputs (functions of time `u(t)` or plain `Symbol`s); their order is
      the order of the input vector `u` of shape `(m,)`.
    - `time`: the time symbol; inferred from the coordinates' argument when omitted.
    - `forces`: optional Lagrange–d'Alembert generalised forces: a list of n expressions or a
      dict `{coordinate: expression}` (may depend on velocities, e.g. `-c * x.diff(t)`).
    - `check_degeneracy`: run the numerical check that `∂²L/∂v²` is regular (default True).

    **Returns:** a `LagrangianModel` whose `lagrangian_fn(q (n,), v (n,), t, params, u (m,))` is
    the compiled L, with `separable` and `time_reversible` detected symbolically, `expression`
    the original `L` and `symbolic` a `SymbolicLagrangian` record.

    **Raises:** `LagrangianError` naming the culprit for undeclared symbols or functions of time,
    non-scalar `L`, invalid or repeated coordinates, higher time derivatives, functions JAX
    cannot evaluate, and degenerate (singular velocity Hessian) Lagrangians.
    """
    table = _make_table(coordinates, parameters, inputs, time, "L")
    plain = _to_plain(L, table, "L")
    n, m = len(table.q), len(table.u)
    parameter_names = tuple(str(p) for p in table.parameters)
    coordinate_names = tuple(_name_of(c) for c in table.coordinates)
    input_names = tuple(_name_of(i) for i in table.inputs)
    parameter_shapes = {name: () for name in parameter_names}

    lagrangian_fn = jax.jit(_ScalarFunction(_lambdify(table.arguments, plain), n, parameter_names, m))

    force_fn = None
    force_expressions = None
    if forces is not None:
        force_expressions = tuple(sympy.sympify(f) for f in _normalise_forces(forces, table.coordinates))
        plain_forces = [
            _to_plain(f, table, f"force on {name}") for f, name in zip(force_expressions, coordinate_names)
        ]
        force_fn = jax.jit(
            _VectorFunction(_lambdify(table.arguments, plain_forces), n, parameter_names, m))

    if check_degeneracy:
        _check_nondegenerate(lagrangian_fn, n, parameter_shapes, m, coordinate_names, "L")

    separable = None
    mass = _kinetic_mass(plain, table)
    if mass is not None:
        mass_fn, diagonal = _mass_structure(mass, table.parameters)
        separable = SeparableStructure(
            jax.jit(mass_fn), jax.jit(_PotentialFromLagrangian(lagrangian_fn)), diagonal)
    time_reversible = forces is None and _is_time_reversible(plain, table)

    record = SymbolicLagrangian(
        lagrangian=L,
        coordinates=table.coordinates,
        time=table.time,
        parameters=table.parameters,
        inputs=table.inputs,
        forces=force_expressions,
    )
    return LagrangianModel(
        lagrangian_fn=lagrangian_fn,
        coordinate_names=coordinate_names,
        parameter_shapes=parameter_shapes,
        input_names=input_names,
        force_fn=force_fn,
        separable=separable,
        time_reversible=time_reversible,
        expression=L,
        force_expressions=force_expressions,
        symbolic=record,
    )


# ============================================================== compile_network
class _CompiledTerm(NamedTuple):
    raw: Callable
    num_coordinates: int  # local q count (dim or 2·dim)
    parameter_names: tuple[str, ...]
    input_indices: tuple[int, ...]
    velocity_free: bool
    mass: sympy.Matrix | None  # local mass when separable-compatible
    time_reversible: bool
    table: _SymbolTable
    plain: sympy.Expr


def _term_label(kind: str, index: int, term) -> str:
    name = getattr(term, "name", None)
    return f"{kind} term #{index}" + (f" ({name})" if name else "")


def _compile_term(term, coordinates, where, time, network_inputs: dict[str, int]) -> _CompiledTerm:
    for inp in term.inputs:
        if _name_of(inp) not in network_inputs:
            raise LagrangianError(
                f"{where} uses input {_name_of(inp)}, which is not among the network inputs"
                f" {sorted(network_inputs)}."
            )
    table = _make_table(coordinates, term.parameters, term.inputs, time, where)
    plain = _to_plain(term.expr, table, where)
    raw = _lambdify(table.arguments, plain)
    velocity_free = not (plain.free_symbols & set(table.v))
    mass = _kinetic_mass(plain, table)
    return _CompiledTerm(
        raw=raw,
        num_coordinates=len(table.q),
        parameter_names=tuple(str(p) for p in table.parameters),
        input_indices=tuple(network_inputs[_name_of(i)] for i in table.inputs),
        velocity_free=velocity_free,
        mass=mass,
        time_reversible=_is_time_reversible(plain, table),
        table=table,
        plain=plain,
    )


def _element_value(term: _CompiledTerm, q_local, v_local, t, local_params, u):
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
# local terms. Other index arrays keep the gather. Values are the same either way; gradients
# agree to round-off (the per-node sums of edge contributions may be added in another order).
_MAX_RUNS = 8  # more runs than this: gather (each run costs a pad + add in the gradient)


def _index_runs(index: np.ndarray, boundary: int | None = None):
    """Split a static index array greedily into arithmetic runs `(start, step, length)`, none
    straddling `boundary` (runs lie wholly below it or wholly at/above it); `None` when that
    takes more than `_MAX_RUNS` runs."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    diffs = np.diff(index)
    side = index >= boundary if boundary is not None else np.zeros(index.shape, dtype=bool)
    runs, i = [], 0
    while i < index.size:
        if len(runs) == _MAX_RUNS:
            return None
        step = int(diffs[i]) if i < diffs.size else 0
        stops = np.flatnonzero((diffs[i:] != step) | (side[i + 1:] != side[i]))
        end = i + 1 + (int(stops[0]) if stops.size else diffs.size - i)  # run is index[i:end]
        if end - i == 2 and end < index.size:
            end = i + 1  # a lone pair before a new step: let its second entry start the next run
        runs.append((int(index[i]), step, end - i))
        i = end
    return tuple(runs)


def _take_run(x, start: int, step: int, length: int):
    """`x[start + step·arange(length)]` with static slicing (no gather)."""
    if step == 0:
        return jnp.broadcast_to(x[start:start + 1], (length, *x.shape[1:]))
    last = start + step * (length - 1)
    piece = x[min(start, last):max(start, last) + 1:abs(step)]
    return piece[::-1] if step < 0 else piece


class _Rows:
    """`concatenate([x, fixed])[index]` along the leading axis, for a static `index` and
    `len(x) == boundary` (`fixed`: constant NumPy rows, e.g. the fixed nodes' states; omit it
    and `boundary` for plain `x[index]`). Static slices when the index is a few arithmetic runs
    (`_index_runs`), the rows of `fixed` then entering as constants (no gradient path);
    otherwise one gather."""

    def __init__(self, index, boundary: int | None = None):
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)
        self.boundary = boundary
        self.runs = _index_runs(self.index, boundary)

    def __call__(self, x, fixed: np.ndarray | None = None):
        x = jnp.asarray(x)
        if fixed is not None:
            x = x.astype(_float_dtype(x))
            fixed = np.asarray(fixed, dtype=x.dtype)
        if self.runs is None:
            source = x if fixed is None else jnp.concatenate([x, jnp.asarray(fixed)])
            return source[self.index]
        pieces = []
        for start, step, length in self.runs:
            if fixed is not None and start >= self.boundary:
                pieces.append(jnp.asarray(_take_run(fixed, start - self.boundary, step, length)))
            else:
                pieces.append(_take_run(x, start, step, length))
        if not pieces:
            return jnp.zeros((0, *x.shape[1:]), dtype=x.dtype)
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)


def _sum_over_elements(term: _CompiledTerm, q_local, v_local, t, params, u, select=None):
    """Σ over elements of one vectorised local term. `q_local`, `v_local`: tuples of the
    `num_coordinates` local coordinates, each an array over the elements (separate arrays, not
    one stacked array: no concatenate/split pair in the forward pass or its transpose);
    `select` (a `_Rows`) picks the elements' entries of the parameter arrays (all when `None`)."""
    local_params = tuple(params[name] for name in term.parameter_names)
    if select is not None:
        local_params = tuple(select(p) for p in local_params)

    def one(qe, ve, pe):
        return jnp.asarray(_element_value(term, qe, ve, t, pe, u))

    values = jax.vmap(one)(tuple(q_local), tuple(v_local), local_params)
    return jnp.sum(jnp.broadcast_to(values, q_local[0].shape))


class _NetworkLagrangian:
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
        self.node_rows = _Rows(self.node_order, boundary)
        self.sender_rows = _Rows(self.node_order[senders], boundary)
        self.receiver_rows = _Rows(self.node_order[receivers], boundary)
        self.free_rows = _Rows(free_nodes) if fixed_nodes.size else None
        self.fixed_velocities = np.zeros_like(fixed_positions)

    def node_states(self, q, v):
        """Positions and velocities of all nodes, shape `(num_nodes, dim)` each."""
        positions, velocities = jnp.reshape(q, (-1, self.dim)), jnp.reshape(v, (-1, self.dim))
        return (self.node_rows(positions, self.fixed_positions),
                self.node_rows(velocities, self.fixed_velocities))

    def _endpoint_columns(self, rows, x, fixed):
        """Local coordinates of one edge endpoint: a tuple of `dim` arrays over the edges."""
        return _columns(rows(jnp.reshape(x, (-1, self.dim)), fixed))

    def __call__(self, q, v, t, params, u):
        q, v, u = jnp.asarray(q), jnp.asarray(v), jnp.asarray(u)
        total = jnp.zeros((), dtype=_float_dtype(q))
        # Node terms run over the free nodes only (on a fixed node they would be constants).
        free_q, free_v = jnp.reshape(q, (-1, self.dim)), jnp.reshape(v, (-1, self.dim))
        free_q, free_v = _columns(free_q), _columns(free_v)
        for term in self.node_terms:
            total = total + _sum_over_elements(term, free_q, free_v, t, params, u, self.free_rows)
        if self.edge_terms:
            pair_q = (self._endpoint_columns(self.sender_rows, q, self.fixed_positions)
                      + self._endpoint_columns(self.receiver_rows, q, self.fixed_positions))
            pair_v = (self._endpoint_columns(self.sender_rows, v, self.fixed_velocities)
                      + self._endpoint_columns(self.receiver_rows, v, self.fixed_velocities))
            for term in self.edge_terms:
                total = total + _sum_over_elements(term, pair_q, pair_v, t, params, u)
        if self.extra is not None:
            total = total + self.extra(q, v, t, params, u)
        return total


class _NodeLocalLagrangian:
    """Sum of the node terms for a single node: `(q (dim,), v (dim,), t, params, u) -> ()`
    with scalar node parameters (used for the per-node degeneracy check)."""

    def __init__(self, node_terms, dim):
        self.node_terms, self.dim = node_terms, dim

    def __call__(self, q, v, t, params, u):
        dtype = _float_dtype(q)
        total = jnp.zeros((), dtype=dtype)
        for term in self.node_terms:
            local = tuple(params[name] for name in term.parameter_names)
            total = total + jnp.asarray(
                _element_value(term, _unstack(q, self.dim), _unstack(v, self.dim), t, local, u))
        return total


class _NetworkMass:
    """Diagonal `(n,)` (or block-diagonal `(n, n)`) mass of a network from its node terms."""

    def __init__(self, node_mass_fns, free_nodes, num_nodes, dim, diagonal):
        self.node_mass_fns = node_mass_fns  # [(raw, parameter_names)]
        self.free_nodes, self.num_nodes, self.dim, self.diagonal = (
            free_nodes, num_nodes, dim, diagonal)
        self.free_rows = _Rows(free_nodes)

    def __call__(self, params):
        dtype = _float_dtype(*[params[name] for _, names in self.node_mass_fns for name in names])
        shape = (self.num_nodes, self.dim) if self.diagonal else (self.num_nodes, self.dim, self.dim)
        total = jnp.zeros(shape, dtype=dtype)
        for raw, names in self.node_mass_fns:
            local = tuple(params[name] for name in names)

            def one(pe, raw=raw):
                return _stack_scalars(raw(*pe), dtype).reshape(shape[1:])

            total = total + jax.vmap(one, axis_size=self.num_nodes)(local)
        free = self.free_rows(total)
        if self.diagonal:
            return free.reshape(-1)
        count = free.shape[0]
        blocks = jnp.einsum("ij,iab->iajb", jnp.eye(count, dtype=dtype), free)
        return blocks.reshape(count * self.dim, count * self.dim)


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
                if _name_of(inp) not in [_name_of(c) for c in collected]:
                    collected.append(inp)
        inputs = collected
    inputs = tuple(inputs)
    input_names = tuple(_name_of(i) for i in inputs)
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

    node_parameters = {n for t in compiled_nodes for n in t.parameter_names}
    edge_parameters = {n for t in compiled_edges for n in t.parameter_names}
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
            if _name_of(inp) not in input_index:
                raise LagrangianError(f"extra term uses input {_name_of(inp)}, not a network input.")
        # The extra term sees the whole input vector: declare every network input by name.
        extra_inputs = list(extra.inputs) + [
            sympy.Symbol(name) for name in input_names if name not in {_name_of(i) for i in extra.inputs}
        ]
        order = {name: i for i, name in enumerate(_name_of(i) for i in extra_inputs)}
        extra_inputs = [extra_inputs[order[name]] for name in input_names]
        extra_table = _make_table(global_coordinates, extra.parameters, extra_inputs, extra_time,
                                  "extra term")
        extra_plain = _to_plain(extra.expr, extra_table, "extra term")
        extra_names = tuple(str(p) for p in extra.parameters)
        clash = sorted(set(extra_names) & set(parameter_shapes))
        if clash:
            raise LagrangianError(
                f"extra-term parameter(s) {', '.join(clash)} already used by node or edge terms."
            )
        parameter_shapes.update({n: () for n in extra_names})
        extra_fn = _ScalarFunction(
            _lambdify(extra_table.arguments, extra_plain), len(global_coordinates), extra_names,
            len(input_names))

    senders = edges_array[:, 0]
    receivers = edges_array[:, 1]
    lagrangian_fn = jax.jit(_NetworkLagrangian(
        num_nodes, dim, senders, receivers, free_nodes, fixed_index, fixed_positions,
        tuple(compiled_nodes), tuple(compiled_edges), extra_fn))
    coordinate_names_global = tuple(str(c.func) for c in global_coordinates)
    n = len(coordinate_names_global)
    m = len(input_names)

    # ---- degeneracy: per node when only node terms carry velocities, else on the whole L
    extra_velocity_free = extra_plain is None or not (extra_plain.free_symbols & set(extra_table.v))
    if check_degeneracy:
        if all(t.velocity_free for t in compiled_edges) and extra_velocity_free:
            local_shapes = {name: () for name in sorted(node_parameters)}
            _check_nondegenerate(
                _NodeLocalLagrangian(tuple(compiled_nodes), dim), dim, local_shapes, m,
                [f"{base} (every node)" for base in bases], "the node terms")
        else:
            _check_nondegenerate(lagrangian_fn, n, parameter_shapes, m,
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
            raw = _lambdify(list(term.table.parameters), entries)
            mass_fns.append((raw, term.parameter_names))
        mass_fn = _NetworkMass(tuple(mass_fns), free_nodes, num_nodes, dim, diagonal)
        separable = SeparableStructure(
            jax.jit(mass_fn), jax.jit(_PotentialFromLagrangian(lagrangian_fn)), diagonal)
    time_reversible = all(t.time_reversible for t in (*compiled_nodes, *compiled_edges)) and (
        extra_plain is None or _is_time_reversible(extra_plain, extra_table))

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
    )


# ==================================================================== display
def _network_expression(record: SymbolicNetwork) -> tuple[sympy.Expr, list, sympy.Symbol]:
    """The global SymPy Lagrangian of a network (node-indexed symbols), its coordinates, time."""
    t = record.time
    fixed = dict(record.fixed_nodes)
    coordinates = network_coordinates(record.num_nodes, record.dim, fixed, t, record.coordinate_names)
    by_node: dict[int, list] = {}
    free = [i for i in range(record.num_nodes) if i not in fixed]
    for k, node in enumerate(free):
        by_node[node] = coordinates[k * record.dim:(k + 1) * record.dim]
    for node, position in fixed.items():
        by_node[node] = [sympy.Float(x) for x in position]

    def local(term, coords, node_values, index):
        replacements = {}
        for c, value in zip(coords, node_values):
            cdot = sympy.Derivative(c, c.args[0])
            replacements[cdot] = value.diff(t) if isinstance(value, AppliedUndef) else 0
            replacements[c] = value
        for p in term.parameters:
            replacements[p] = sympy.Symbol(f"{p}_{index}")
        for inp in term.inputs:
            if isinstance(inp, AppliedUndef):
                replacements[inp] = inp.func(t)
        return sympy.sympify(term.expr).xreplace(replacements)

    total = sympy.S.Zero
    for term in record.node_terms:
        for node in free:
            total += local(term, term.coordinates, by_node[node], node)
    for term in record.edge_terms:
        a_coords, b_coords = term.coordinates
        for e, (a, b) in enumerate(record.edges):
            total += local(term, (*a_coords, *b_coords), (*by_node[a], *by_node[b]), e)
    if record.extra is not None:
        total += sympy.sympify(record.extra.expr)
    return total, coordinates, t


def lagrangian_expression(model: LagrangianModel) -> sympy.Expr:
    """The model's Lagrangian as one SymPy expression (built on demand for networks, with
    indexed parameter names such as `k_3`). For display."""
    record = getattr(model, "symbolic", None)
    if isinstance(record, SymbolicLagrangian):
        return record.lagrangian
    if isinstance(record, SymbolicNetwork):
        return _network_expression(record)[0]
    if model.expression is not None:
        return model.expression
    raise LagrangianError("this model carries no SymPy expression.")


def euler_lagrange_equations(model: LagrangianModel, max_coordinates: int = 64) -> list:
    """The Euler–Lagrange equations `d/dt ∂L/∂q̇_i − ∂L/∂q_i = Q_i` as SymPy `Eq`s.

    **For display only** (the CLI's `show` command): the engine never uses symbolic equations
    of motion; it differentiates the compiled scalar L with JAX.

    **Arguments:**
    - `model`: a model from `compile_lagrangian` or `compile_network`.
    - `max_coordinates`: refuse larger systems (the expressions grow quickly).

    **Returns:** a list of `sympy.Eq`, one per coordinate.
    """
    record = getattr(model, "symbolic", None)
    if isinstance(record, SymbolicLagrangian):
        L, coordinates, t = record.lagrangian, record.coordinates, record.time
        forces = record.forces
    elif isinstance(record, SymbolicNetwork):
        if model.num_dof > max_coordinates:
            raise LagrangianError(
                f"the network has {model.num_dof} coordinates (> {max_coordinates}); its equations"
                " are too large to display."
            )
        L, coordinates, t = _network_expression(record)
        forces = None
    else:
        raise LagrangianError("this model carries no SymPy data to form its equations from.")
    if len(coordinates) > max_coordinates:
        raise LagrangianError(f"{len(coordinates)} coordinates (> {max_coordinates}) to display.")
    equations = []
    for i, q in enumerate(coordinates):
        qdot = q.diff(t)
        lhs = sympy.diff(sympy.diff(L, qdot), t) - sympy.diff(L, q)
        rhs = sympy.S.Zero if forces is None else forces[i]
        equations.append(sympy.Eq(lhs, rhs, evaluate=False))
    return equations
