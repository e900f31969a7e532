"""Validation of a Lagrangian written in the physicist's language, and its plain-symbol form.

`make_table` checks the declared coordinates (functions of time), parameters and inputs and
assigns each a compiler symbol with a fixed name (`_lep_q0`, `_lep_v0`, `_lep_p0`, `_lep_u0`,
`_lep_t`; real, so that e.g. `Abs(v)` differentiates); `to_plain` checks one expression
(scalar, first derivatives only, everything declared, printable) and rewrites it in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import sympy
from sympy.core.function import AppliedUndef
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr

from ..errors import LagrangianError
from .printing import unsupported_functions

__all__ = ["INTERNAL_PREFIX", "SymbolTable", "function_of_time", "make_table", "name_of", "normalise_forces",
           "to_plain"]


def name_of(obj) -> str:
    """Display name of a coordinate/input (`x` for `x(t)`) or a symbol."""
    if isinstance(obj, AppliedUndef):
        return obj.func.__name__
    return str(obj)


def function_of_time(obj, role: str, time: sympy.Symbol | None, where: str) -> sympy.Symbol:
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


class SymbolTable(NamedTuple):
    """Plain-symbol stand-ins for one (whole or local) Lagrangian."""

    where: str  # description used in error messages ("L", "edge term #2", ...)
    time: sympy.Symbol  # the user's time symbol
    coordinates: tuple  # the user's q_i(t)
    q: tuple  # compiler symbol per coordinate
    v: tuple  # compiler symbol per velocity
    parameters: tuple  # the user's Symbols
    inputs: tuple  # the user's inputs (u(t) or Symbol)
    u: tuple  # compiler symbol per input
    replacements: dict  # user object → compiler symbol
    t: sympy.Symbol  # compiler symbol for time
    p: tuple  # compiler symbol per parameter

    @property
    def arguments(self) -> list:
        """Flat lambdify argument list `(*q, *v, t, *params, *u)` (compiler symbols)."""
        return [*self.q, *self.v, self.t, *self.p, *self.u]


# Prefix of the compiler's own symbols. Every user symbol is replaced by one of these before
# printing, so no user name can shadow a name of the printed code (`pi`, `e`, `sin`, ...).
INTERNAL_PREFIX = "_lep_"


def _compiler_symbol(name: str) -> sympy.Symbol:
    # Fixed names (not Dummy): SymPy orders terms by name, and Dummy numbering depends on how
    # many were created before, so the generated code (and its round-off) would differ between
    # two builds of the same model in one process. Real, so that Abs, sign, ... differentiate.
    return sympy.Symbol(f"{INTERNAL_PREFIX}{name}", real=True)


def make_table(coordinates, parameters, inputs, time, where: str) -> SymbolTable:
    coordinates = tuple(coordinates)
    parameters = tuple(parameters)
    inputs = tuple(inputs)
    if time is not None and not isinstance(time, sympy.Symbol):
        raise LagrangianError(f"time {time!s} in {where} must be a SymPy Symbol.")
    if not coordinates:
        raise LagrangianError(f"no coordinates were declared for {where}.")
    for c in coordinates:  # the first coordinate fixes the time symbol when it is not given
        time = function_of_time(c, "coordinate", time, where)
    seen: dict[str, Any] = {}
    for c in coordinates:
        name = name_of(c)
        if name in seen:
            raise LagrangianError(f"coordinate {name} is declared twice in {where}.")
        seen[name] = c
    for symbol in (time, *parameters, *inputs):
        if isinstance(symbol, sympy.Symbol) and symbol.name.startswith(INTERNAL_PREFIX):
            raise LagrangianError(
                f"symbol {symbol.name} in {where} uses the prefix {INTERNAL_PREFIX!r}, which is "
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
            function_of_time(inp, "input", time, where)
        elif isinstance(inp, sympy.Symbol):
            if inp == time:
                raise LagrangianError(f"input {inp} in {where} is the time symbol.")
        else:
            raise LagrangianError(
                f"input {inp!s} in {where} must be a function of time u(t) or a Symbol."
            )
        if name_of(inp) in seen:
            raise LagrangianError(f"input {name_of(inp)} in {where} is declared twice (or clashes"
                                  " with a coordinate or parameter of the same name).")
        seen[name_of(inp)] = inp
        u_plain.append(_compiler_symbol(f"u{len(u_plain)}"))
    q = tuple(_compiler_symbol(f"q{i}") for i in range(len(coordinates)))
    v = tuple(_compiler_symbol(f"v{i}") for i in range(len(coordinates)))
    p = tuple(_compiler_symbol(f"p{i}") for i in range(len(parameters)))
    t = _compiler_symbol("t")
    replacements = {time: t}
    for c, qi, vi in zip(coordinates, q, v):
        replacements[sympy.Derivative(c, time)] = vi
        replacements[c] = qi
    replacements.update(zip(parameters, p))
    replacements.update(zip(inputs, u_plain))
    return SymbolTable(where, time, coordinates, q, v, parameters, inputs, tuple(u_plain), replacements, t,
                       p)


def to_plain(expr, table: SymbolTable, what: str) -> sympy.Expr:
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
                    f"{where} differentiates coordinate {name_of(base)} with respect to"
                    f" {[str(var) for var, _ in d.variable_count]}, not time {table.time}."
                )
            order = sum(count for _, count in d.variable_count)
            if order > 1:
                raise LagrangianError(
                    f"{where} contains a time derivative of order {order} of coordinate"
                    f" {name_of(base)} ({d}); a Lagrangian may depend on q and q̇ only."
                )
        elif base in inputs:
            raise LagrangianError(
                f"{where} contains the time derivative {d} of input {name_of(base)}; pass the"
                " derivative as an input of its own."
            )
        elif isinstance(base, AppliedUndef):
            undeclared_functions.add(str(base))
        else:
            raise LagrangianError(f"{where} contains an unevaluated derivative {d}; call .doit().")
    for kind in (sympy.Integral, sympy.Sum, sympy.Product, sympy.Limit):
        found = sorted(expr.atoms(kind), key=str)
        if found:
            raise LagrangianError(
                f"{where} contains an unevaluated {kind.__name__} ({found[0]}); evaluate it (.doit()) or "
                "write its closed form."
            )
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
        declared_names = {str(s) for s in (*table.parameters, table.time, *table.inputs)}
        clashes = [n for n in names if n in declared_names]
        if clashes:
            message += (
                f" Note: {', '.join(clashes)} is declared with different SymPy assumptions"
                " (e.g. positive=True); use the very same Symbol object."
            )
        raise LagrangianError(message)
    unsupported = unsupported_functions(plain)
    if unsupported:
        raise LagrangianError(
            f"{where} uses function(s) {', '.join(unsupported)} that cannot be compiled to JAX."
        )
    return plain


def normalise_forces(forces, coordinates) -> list:
    n = len(coordinates)
    if isinstance(forces, Mapping):
        by_name = {name_of(c): i for i, c in enumerate(coordinates)}
        out = [sympy.S.Zero] * n
        for key, value in forces.items():
            name = key if isinstance(key, str) else name_of(key)
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
