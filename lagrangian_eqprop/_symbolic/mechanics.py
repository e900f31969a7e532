"""`from_mechanics`: a sympy.physics.mechanics (or pydy) model → `LagrangianModel`, via `compile_lagrangian`.

Only what a variational model needs is taken from the mechanics object: the scalar Lagrangian,
the generalised coordinates (in the object's order), the loads — turned into generalised
Lagrange–d'Alembert forces `Q_i = Σ F·∂v_P/∂q̇_i + Σ T·∂ω_B/∂q̇_i` (velocities in the inertial
frame) — and the holonomic constraints. Equations of motion are never formed symbolically: the
compiler prints L, Q and φ, and JAX autodiff does the rest (`_model.py`). Generalised speeds
(`KanesMethod`, `System`) are eliminated through the kinematic differential equations, so that
L and Q are functions of q and q̇. Nonholonomic constraints are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import sympy
from sympy.core.function import AppliedUndef

from .._model import LagrangianModel
from ..errors import LagrangianError
from .compile import compile_lagrangian
from .validate import name_of

__all__ = ["MechanicsData", "extract", "from_mechanics", "generalized_forces"]

Items = Iterable | sympy.MatrixBase  # lists, tuples, SymPy matrices (`kane.q`, `dynamicsymbols('f:3')`)


@dataclasses.dataclass(frozen=True)
class MechanicsData:
    """What `from_mechanics` takes from a mechanics object (all in q and q̇, speeds eliminated).

    **Fields:** `lagrangian` (scalar), `coordinates` (the `q_i(t)`, in the object's order),
    `forces` (n generalised forces, or `None` without loads), `constraints` (holonomic φ(q, t)),
    `kind` (what the source was, for messages).
    """

    lagrangian: sympy.Expr
    coordinates: tuple
    forces: tuple | None
    constraints: tuple
    kind: str


def _mechanics():
    # Imported on first use: sympy.physics.mechanics costs ~0.4 s, and the rest of the symbolic
    # front end does not need it.
    from sympy.physics import mechanics

    return mechanics


def _as_list(obj) -> list:
    return [] if obj is None else list(obj)


def _tuple(forces):
    return None if forces is None else tuple(forces)


def _scalar(L, where: str) -> sympy.Expr:
    if isinstance(L, sympy.MatrixBase):
        if L.shape != (1, 1):
            raise LagrangianError(f"the Lagrangian of {where} must be a scalar, got a matrix of shape {L.shape}.")
        L = L[0, 0]
    return sympy.sympify(L)


def _time_of(coordinates, time):
    if time is not None:
        return time
    for c in coordinates:
        if isinstance(c, AppliedUndef) and len(c.args) == 1 and isinstance(c.args[0], sympy.Symbol):
            return c.args[0]
    return _mechanics().dynamicsymbols._t


def _speed_map(kdes, speeds, coordinates, time, where: str) -> dict:
    """Solve the kinematic differential equations `kdes = 0` (linear in the speeds) for the
    speeds: `{u_j(t): f_j(q, q̇, t)}`. Speeds that are already some `q̇_i` map to themselves."""
    qdots = {c.diff(time) for c in coordinates}
    speeds = [s for s in speeds if s not in qdots]
    kdes = [e for e in (sympy.sympify(k) for k in kdes) if e != 0]
    if not speeds:
        return {}
    if len(kdes) != len(speeds):
        raise LagrangianError(
            f"{where} has {len(speeds)} generalised speed(s) ({', '.join(name_of(s) for s in speeds)}) but "
            f"{len(kdes)} kinematic differential equation(s): the speeds cannot be written in terms of q and "
            "q̇, which a Lagrangian needs. Give one kinematic differential equation per speed (kd_eqs=).")
    equations = sympy.Matrix(kdes)
    coefficients = equations.jacobian(speeds)
    if coefficients.has(*speeds):
        raise LagrangianError(f"the kinematic differential equations of {where} are not linear in the speeds "
                              f"{', '.join(name_of(s) for s in speeds)}.")
    rest = equations.xreplace(dict.fromkeys(speeds, sympy.S.Zero))
    try:
        solution = coefficients.LUsolve(-rest)
    except (ValueError, ZeroDivisionError) as error:
        raise LagrangianError(f"the kinematic differential equations of {where} cannot be solved for the speeds "
                              f"{', '.join(name_of(s) for s in speeds)} ({error}).") from error
    return dict(zip(speeds, solution))


def _load_parts(load, index: int):
    mech = _mechanics()
    try:
        location, vector = load
    except (TypeError, ValueError):
        raise LagrangianError(f"load #{index} ({load}) is not a pair (Point, force) or (ReferenceFrame, torque)."
                              ) from None
    if not isinstance(location, (mech.Point, mech.ReferenceFrame)):
        raise LagrangianError(
            f"load #{index} ({load}) acts on {location!s} of type {type(location).__name__}, neither a Point "
            "(force) nor a ReferenceFrame (torque); for a body use its masscenter or its frame.")
    if isinstance(vector, mech.Vector):
        return location, vector
    if sympy.sympify(vector) == 0:
        return location, mech.Vector(0)
    raise LagrangianError(f"load #{index} on {location!s}: {vector!s} is not a sympy.physics.vector Vector.")


def generalized_forces(loads, frame, coordinates, speed_map=None, time=None) -> list:
    """Generalised forces of mechanics loads: `Q_i = Σ F·∂v_P/∂q̇_i + Σ T·∂ω_B/∂q̇_i`.

    **Arguments:**
    - `loads`: `(Point, force Vector)` and `(ReferenceFrame, torque Vector)` pairs (tuples or
      `Force`/`Torque` objects); the vectors may depend on q, q̇, time, speeds and inputs.
    - `frame`: the inertial `ReferenceFrame` the velocities and angular velocities are taken in.
    - `coordinates`: the generalised coordinates `q_i(t)`.
    - `speed_map`: `{u_j(t): expression in q, q̇}` eliminating generalised speeds (optional).
    - `time`: the time symbol (default: the coordinates' argument).

    **Returns:** a list of n SymPy expressions, the generalised force on each coordinate.

    **Raises:** `LagrangianError` naming the load for malformed loads, a missing frame, or a
    point whose velocity in `frame` is unknown.
    """
    mech = _mechanics()
    coordinates = tuple(coordinates)
    time = _time_of(coordinates, time)
    speed_map = dict(speed_map or {})
    loads = _as_list(loads)
    if loads and not isinstance(frame, mech.ReferenceFrame):
        raise LagrangianError(f"the loads need the inertial frame (frame=) to take velocities in; got {frame!s}.")
    qdots = [c.diff(time) for c in coordinates]
    total = sympy.zeros(len(coordinates), 1)
    for index, load in enumerate(loads):
        location, vector = _load_parts(load, index)
        try:
            if isinstance(location, mech.ReferenceFrame):
                velocity = location.ang_vel_in(frame)
            else:
                velocity = location.vel(frame)
            velocity = velocity.to_matrix(frame).xreplace(speed_map)
            vector = vector.to_matrix(frame).xreplace(speed_map)
        except ValueError as error:
            what = "angular velocity of frame" if isinstance(location, mech.ReferenceFrame) else "velocity of point"
            raise LagrangianError(
                f"load #{index}: the {what} {location!s} in {frame!s} is unknown ({error}).") from error
        total += velocity.jacobian(qdots).T * vector
    return list(total)


def _refuse_nonholonomic(count: int, where: str, which) -> None:
    if count:
        raise LagrangianError(
            f"{where} has {count} nonholonomic (velocity) constraint(s) ({which}): nonholonomic constraints "
            "are not supported, only holonomic ones φ(q, t) = 0 (hol_coneqs / configuration constraints). A "
            "rolling constraint that integrates to a relation between positions can be given in that form.")


def _from_lagranges_method(lm, time) -> MechanicsData:
    coordinates = tuple(lm.q)
    holonomic = _as_list(getattr(lm, "_hol_coneqs", None))
    coneqs = _as_list(lm.coneqs)
    _refuse_nonholonomic(len(coneqs) - len(holonomic), "the LagrangesMethod", coneqs[len(holonomic):])
    loads = _as_list(lm.forcelist)
    if loads and lm.inertial is None:
        raise LagrangianError("the LagrangesMethod has loads (forcelist) but no inertial frame (frame=).")
    forces = generalized_forces(loads, lm.inertial, coordinates, time=time) if loads else None
    return MechanicsData(_scalar(lm._L, "the LagrangesMethod"), coordinates, _tuple(forces), tuple(holonomic),
                         "LagrangesMethod")


def _from_bodies(frame, bodies, loads, coordinates, speed_map, holonomic, kind) -> MechanicsData:
    mech = _mechanics()
    bodies = _as_list(bodies)
    if not bodies:
        raise LagrangianError(f"the {kind} has no bodies to build the Lagrangian from"
                              + (" (call kanes_equations(bodies, loads) first)." if kind == "KanesMethod" else "."))
    L = mech.Lagrangian(frame, *bodies).xreplace(speed_map)
    loads = _as_list(loads)
    forces = generalized_forces(loads, frame, coordinates, speed_map) if loads else None
    return MechanicsData(L, coordinates, _tuple(forces), tuple(holonomic), kind)


def _from_kanes_method(km, time) -> MechanicsData:
    coordinates = tuple(km.q)
    speeds = list(km.u)
    _refuse_nonholonomic(len(km._udep) - len(km._qdep), "the KanesMethod",
                         f"{len(km._udep)} velocity constraint(s) for {len(km._qdep)} configuration constraint(s)")
    if getattr(km, "_qdot_u_map", None) is None:
        raise LagrangianError("the KanesMethod has no kinematic differential equations (kd_eqs=): its speeds "
                              "cannot be written in terms of q and q̇.")
    qdots = sympy.Matrix([c.diff(time) for c in coordinates])
    kdes = km._k_kqdot_implicit * qdots + km._k_ku_implicit * sympy.Matrix(speeds) + km._f_k_implicit
    speed_map = _speed_map(list(kdes), speeds, coordinates, time, "the KanesMethod")
    speed_map.update(dict.fromkeys(_as_list(km._uaux), sympy.S.Zero))
    return _from_bodies(km._inertial, km.bodies, km.loads, coordinates, speed_map, _as_list(km._f_h), "KanesMethod")


def _from_system(system, time) -> MechanicsData:
    coordinates = tuple(system.q)
    holonomic = _as_list(system.holonomic_constraints)
    nonholonomic = _as_list(system.nonholonomic_constraints)
    _refuse_nonholonomic(len(nonholonomic), "the System", nonholonomic)
    _refuse_nonholonomic(max(0, len(system.velocity_constraints) - len(holonomic)), "the System",
                         "velocity_constraints beyond the holonomic ones")
    speed_map = _speed_map(_as_list(system.kdes), list(system.u), coordinates, time, "the System")
    speed_map.update(dict.fromkeys(_as_list(system.u_aux), sympy.S.Zero))
    loads = list(system.loads) + [load for actuator in system.actuators for load in actuator.to_loads()]
    return _from_bodies(system.frame, system.bodies, loads, coordinates, speed_map, holonomic, "System")


def _from_expression(L, coordinates, frame, forcelist, constraints, time) -> MechanicsData:
    if coordinates is None:
        raise LagrangianError("from_mechanics was given a Lagrangian expression without coordinates=; pass the "
                              "generalised coordinates (dynamicsymbols) in their order.")
    coordinates = tuple(coordinates)
    loads = _as_list(forcelist)
    forces = generalized_forces(loads, frame, coordinates, time=time) if loads else None
    return MechanicsData(_scalar(L, "the expression"), coordinates, _tuple(forces), tuple(_as_list(constraints)),
                         "expression")


def extract(source, *, coordinates=None, frame=None, forcelist=None, constraints=None, time=None) -> MechanicsData:
    """Read a mechanics object (or a Lagrangian expression) into a `MechanicsData` record.

    **Arguments:** as `from_mechanics` (without the compiler's options).

    **Returns:** a `MechanicsData` with the Lagrangian, coordinates, generalised forces and
    holonomic constraints, in q and q̇ (generalised speeds eliminated).
    """
    mech = _mechanics()
    eom_method = getattr(source, "eom_method", None)  # a pydy System wraps a KanesMethod/LagrangesMethod
    if not isinstance(source, mech.System) and isinstance(eom_method, (mech.KanesMethod, mech.LagrangesMethod)):
        source = eom_method
    if isinstance(source, (mech.LagrangesMethod, mech.KanesMethod, mech.System)):
        given = [name for name, value in (("coordinates", coordinates), ("frame", frame), ("forcelist", forcelist),
                                          ("constraints", constraints)) if value is not None]
        if given:
            raise LagrangianError(
                f"from_mechanics takes the coordinates, frame, loads and constraints from the "
                f"{type(source).__name__}; {', '.join(given)}= may only be passed with a Lagrangian expression.")
        time = time if time is not None else mech.dynamicsymbols._t
        if isinstance(source, mech.LagrangesMethod):
            return _from_lagranges_method(source, time)
        if isinstance(source, mech.KanesMethod):
            return _from_kanes_method(source, time)
        return _from_system(source, time)
    if isinstance(source, (sympy.Expr, sympy.MatrixBase, int, float)):
        return _from_expression(source, coordinates, frame, forcelist, constraints, time)
    raise LagrangianError(
        f"from_mechanics cannot read a {type(source).__name__}: pass a LagrangesMethod, a KanesMethod, a "
        "sympy.physics.mechanics System (or a pydy System), or a Lagrangian expression with coordinates=.")


def _infer_parameters(expressions, time, inputs) -> list:
    symbols = set()
    for e in expressions:
        symbols |= sympy.sympify(e).free_symbols
    symbols -= {time, *inputs}
    by_name: dict[str, sympy.Symbol] = {}
    for s in sorted(symbols, key=lambda s: (s.name, str(s.assumptions0))):
        if s.name in by_name:
            raise LagrangianError(
                f"symbol {s.name} appears twice with different SymPy assumptions ({by_name[s.name].assumptions0} "
                f"and {s.assumptions0}); use the very same Symbol object everywhere.")
        by_name[s.name] = s
    return [by_name[name] for name in sorted(by_name)]


def _resolve_parameters(parameters, expressions, time, inputs) -> list:
    found = _infer_parameters(expressions, time, inputs)
    if parameters is None:
        return found
    by_name = {s.name: s for s in found}
    resolved = []
    for p in parameters:
        if isinstance(p, str):
            if p not in by_name:
                raise LagrangianError(f"parameter {p!r} does not occur in the model (its symbols: "
                                      f"{', '.join(sorted(by_name)) or 'none'}).")
            p = by_name[p]
        resolved.append(p)
    return resolved


def _check_functions_of_time(data: MechanicsData, inputs, expressions) -> None:
    known = set(data.coordinates) | {i for i in inputs if isinstance(i, AppliedUndef)}
    stray = set()
    for e in expressions:
        stray |= {f for f in sympy.sympify(e).atoms(AppliedUndef) if f not in known}
    if stray:
        names = ", ".join(sorted(name_of(f) for f in stray))
        raise LagrangianError(
            f"the {data.kind} model contains function(s) of time {names} that are neither coordinates "
            f"({', '.join(name_of(c) for c in data.coordinates)}) nor declared inputs: pass the specified "
            f"quantities (forces, torques) as inputs=[...]; a generalised speed here means its kinematic "
            "differential equation is missing.")


def from_mechanics(
    source,
    parameters: Items | None = None,
    inputs: Items = (),
    *,
    coordinates: Items | None = None,
    frame=None,
    forcelist=None,
    constraints: Items | None = None,
    time: sympy.Symbol | None = None,
    check_degeneracy: bool = True,
) -> LagrangianModel:
    """Compile a sympy.physics.mechanics / pydy model into a `LagrangianModel`.

    **Arguments:**
    - `source`: a `LagrangesMethod` (its Lagrangian, `q`, `forcelist`, inertial `frame` and
      `hol_coneqs` are used), a `KanesMethod` after `kanes_equations(bodies, loads)` (the
      Lagrangian is built from its bodies, and its speeds are eliminated through its kinematic
      differential equations), a `sympy.physics.mechanics.System`, a pydy `System` (its
      `eom_method`), or a scalar Lagrangian expression together with `coordinates=`.
    - `parameters`: the trainable parameters (Symbols, or names of the model's symbols); `None`
      (default): every free Symbol of the Lagrangian, forces and constraints that is neither time
      nor an input, sorted by name.
    - `inputs`: the specified quantities (`dynamicsymbols` such as a cart force `F(t)`, or
      Symbols), in the order of the input vector `u`. Every other function of time must be a
      coordinate.
    - `coordinates`, `frame`, `forcelist`, `constraints`: only with a Lagrangian expression —
      the generalised coordinates, the inertial frame, the loads `(Point, force)` /
      `(ReferenceFrame, torque)`, and holonomic constraints φ(q, t) = 0.
    - `time`: the time symbol (default `dynamicsymbols._t`, or the coordinates' argument).
    - `check_degeneracy`: as in `compile_lagrangian`.

    **Returns:** the `LagrangianModel` of `compile_lagrangian`, whose coordinates are the
    mechanics model's generalised coordinates in its order; loads become Lagrange–d'Alembert
    forces (`model.force_fn`), holonomic constraints `model.constraint_fn`.

    **Raises:** `LagrangianError` naming the culprit for nonholonomic constraints, speeds without
    kinematic differential equations, malformed loads, undeclared functions of time, and every
    refusal of `compile_lagrangian`.
    """
    data = extract(source, coordinates=coordinates, frame=frame, forcelist=forcelist, constraints=constraints,
                   time=time)
    time = _time_of(data.coordinates, time)
    inputs = tuple(_as_list(inputs))
    expressions = [data.lagrangian, *(data.forces or ()), *data.constraints]
    _check_functions_of_time(data, inputs, expressions)
    parameters = _resolve_parameters(parameters, expressions, time, inputs)
    return compile_lagrangian(data.lagrangian, data.coordinates, parameters, inputs, time=time,
                              forces=None if data.forces is None else list(data.forces),
                              check_degeneracy=check_degeneracy, constraints=data.constraints)
