"""`compile_lagrangian`: one scalar SymPy Lagrangian (and optional forces) → `LagrangianModel`.

Only the scalar L (and Lagrange–d'Alembert forces) is printed to JAX; momenta, energy, mass
matrix and accelerations come from JAX autodiff in `LagrangianModel`. Structure (separable,
time-reversible) is detected symbolically, degeneracy numerically (`structure.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import sympy

from .._graph import PotentialFromLagrangian, ScalarFunction, VectorFunction
from .._model import LagrangianModel, SeparableStructure
from ..errors import LagrangianError
from .printing import lambdify
from .structure import (
    check_nondegenerate,
    couples_inputs_to_velocities,
    is_analytic,
    is_time_reversible,
    kinetic_mass,
    mass_structure,
)
from .validate import make_table, name_of, normalise_forces, to_plain

__all__ = ["SymbolicLagrangian", "compile_lagrangian"]


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
    constraints: tuple = ()


def compile_lagrangian(
    L,
    coordinates: Sequence,
    parameters: Sequence = (),
    inputs: Sequence = (),
    time: sympy.Symbol | None = None,
    forces=None,
    check_degeneracy: bool = True,
    constraints: Sequence = (),
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
    - `constraints`: holonomic constraints `φ_j(q, t) = 0`, expressions in the coordinates (not
      their velocities), parameters, inputs and time; the integrators keep them satisfied with
      Lagrange multipliers (theory §7). Velocity-dependent (nonholonomic) constraints are refused.

    **Returns:** a `LagrangianModel` whose `lagrangian_fn(q (n,), v (n,), t, params, u (m,))` is
    the compiled L, with `separable` and `time_reversible` detected symbolically, `expression`
    the original `L` and `symbolic` a `SymbolicLagrangian` record.

    **Raises:** `LagrangianError` naming the culprit for undeclared symbols or functions of time,
    non-scalar `L`, invalid or repeated coordinates, higher time derivatives, functions JAX
    cannot evaluate, and degenerate (singular velocity Hessian) Lagrangians.
    """
    table = make_table(coordinates, parameters, inputs, time, "L")
    plain = to_plain(L, table, "L")
    n, m = len(table.q), len(table.u)
    parameter_names = tuple(str(p) for p in table.parameters)
    coordinate_names = tuple(name_of(c) for c in table.coordinates)
    input_names = tuple(name_of(i) for i in table.inputs)
    parameter_shapes = {name: () for name in parameter_names}

    lagrangian_fn = jax.jit(ScalarFunction(lambdify(table.arguments, plain), n, parameter_names, m))

    force_fn = None
    force_expressions = None
    plain_forces = []
    if forces is not None:
        force_expressions = tuple(sympy.sympify(f) for f in normalise_forces(forces, table.coordinates))
        plain_forces = [
            to_plain(f, table, f"force on {name}") for f, name in zip(force_expressions, coordinate_names)
        ]
        force_fn = jax.jit(
            VectorFunction(lambdify(table.arguments, plain_forces), n, parameter_names, m))

    constraint_fn, constraint_expressions = None, tuple(sympy.sympify(c) for c in constraints)
    if constraint_expressions:
        plain_constraints = [to_plain(c, table, f"constraint #{j}") for j, c in enumerate(constraint_expressions)]
        for j, c in enumerate(plain_constraints):
            if c.free_symbols & set(table.v):
                raise LagrangianError(
                    f"constraint #{j} ({constraint_expressions[j]}) depends on velocities: nonholonomic (velocity-"
                    "dependent) constraints are not supported, only holonomic ones φ(q, t) = 0. A rolling "
                    "constraint that integrates to a relation between positions (a disc on a straight line: "
                    "x − Rφ = 0) can be given in that form."
                )
        constraint_fn = jax.jit(VectorFunction(lambdify(table.arguments, plain_constraints), n, parameter_names, m))
        plain_forces = plain_forces + plain_constraints  # explicit time in a constraint breaks autonomy too

    if check_degeneracy:
        check_nondegenerate(lagrangian_fn, n, parameter_shapes, m, coordinate_names, "L")

    separable = None
    mass = kinetic_mass(plain, table)
    if mass is not None:
        mass_fn, diagonal = mass_structure(mass, table)
        separable = SeparableStructure(
            jax.jit(mass_fn), jax.jit(PotentialFromLagrangian(lagrangian_fn)), diagonal)
    time_reversible = forces is None and is_time_reversible(plain, table)

    record = SymbolicLagrangian(
        lagrangian=L,
        coordinates=table.coordinates,
        time=table.time,
        parameters=table.parameters,
        inputs=table.inputs,
        forces=force_expressions,
        constraints=constraint_expressions,
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
        input_velocity_coupling=couples_inputs_to_velocities(plain, table),
        autonomous=table.t not in plain.free_symbols and not any(table.t in f.free_symbols for f in plain_forces),
        constraint_fn=constraint_fn,
        num_constraints=len(constraint_expressions),
        analytic=is_analytic(plain) and all(is_analytic(f) for f in plain_forces),
    )
