"""The SymPy form of a compiled model, for display only (the CLI's `show`): the Lagrangian as one
expression and its Euler–Lagrange equations. The engine never computes with these."""

from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef

from .._model import LagrangianModel
from ..errors import LagrangianError
from .compile import SymbolicLagrangian
from .network import SymbolicNetwork, network_coordinates

__all__ = ["euler_lagrange_equations", "lagrangian_expression"]


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
    """The Euler–Lagrange equations `d/dt ∂L/∂q̇_i − ∂L/∂q_i = Q_i (+ Σ_j λ_j ∂φ_j/∂q_i)` as
    SymPy `Eq`s (the multipliers `lambda_j` appear for constrained models).

    **For display only** (the CLI's `show` command): the engine never uses symbolic equations
    of motion; it differentiates the compiled scalar L with JAX.

    **Arguments:**
    - `model`: a model from `compile_lagrangian` or `compile_network`.
    - `max_coordinates`: refuse larger systems (the expressions grow quickly).

    **Returns:** a list of `sympy.Eq`, one per coordinate.
    """
    record = getattr(model, "symbolic", None)
    constraints = ()
    if isinstance(record, SymbolicLagrangian):
        L, coordinates, t = record.lagrangian, record.coordinates, record.time
        forces = record.forces
        constraints = record.constraints
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
        for j, phi in enumerate(constraints):
            rhs = rhs + sympy.Symbol(f"lambda_{j}") * sympy.diff(phi, q)
        equations.append(sympy.Eq(lhs, rhs, evaluate=False))
    return equations
