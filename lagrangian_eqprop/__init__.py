"""lagrangian_eqprop: learning in physical systems by Equilibrium Propagation on the action.

SymPy Lagrangians are compiled to JAX (`compile_lagrangian`, `compile_network`), simulated
with variational integrators (`VariationalIntegrator` with `Midpoint`, `Trapezoid` or
`GalerkinLobatto` rules: initial-value stepping and two-point boundary-value solves), and
trained with time-dependent EqProp (`eqprop_gradient` with `Echo`, `FixedEndpoints`, `Naive`;
`echo_loss`), checked against `BPTT`, `Implicit` and `Adjoint` references. Every solver and
estimator reports a `result` and `stats` and raises `ConvergenceError` (a
`LagrangianEqPropError`) on failure unless `throw=False`. The public API is what this module
lists in `__all__` (see docs/api.md).

Importing this package is cheap and never changes JAX's global configuration: names load on
first use, and float64 is the user's choice (`jax.config.update("jax_enable_x64", True)`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name → private module that defines it
_EXPORTS = {
    "._block_tridiagonal": ("block_tridiagonal_matvec", "solve_block_tridiagonal"),
    "._bvp": ("interior_del_residual", "solve_bvp"),
    "._contrasts": ("AbstractContrast", "Centered", "Holomorphic", "Negative", "Positive", "Tangent"),
    "._costs": ("ReadoutCost", "TerminalCost", "TrackingCost", "trajectory_cost"),
    "._discrete": ("DiscreteLagrangian",),
    "._echo": ("echo_trajectory",),
    "._energy": ("EnergyModel", "compile_energy", "compile_energy_network", "compile_layered_energy"),
    "._equilibrium": ("Equilibrium", "NewtonMinimiser", "ProjectedGradient", "solve_equilibrium"),
    "._equilibrium_gradient": ("EquilibriumEqProp", "convergence_radius", "equilibrium_gradient", "equilibrium_loss"),
    "._estimators": ("AbstractEqProp", "AbstractEstimator", "Echo", "FixedEndpoints", "Naive", "as_estimator",
                     "default_beta", "eqprop_gradient"),
    "._integrate": ("Rollout", "VariationalIntegrator"),
    "._layer": ("echo_loss",),
    "._physical_layer": ("PhysicalLayer",),
    "._model": ("LagrangianModel", "SeparableStructure", "interpolate_inputs"),
    "._references": ("ESTIMATORS", "Adjoint", "BPTT", "Implicit", "adjoint_gradient", "bptt_gradient", "bvp_loss",
                     "finite_difference_gradient", "implicit_gradient", "simulated_loss"),
    "._root": ("AbstractRootFinder", "Auto", "Chord", "Newton", "NewtonKrylov", "OptimistixRootFinder", "RootInfo", "newton_tolerances"),
    "._rules": ("RULES", "AbstractRule", "GalerkinLobatto", "Midpoint", "Trapezoid", "make_rule"),
    "._solution": ("RESULTS", "FinalState", "GradientResult", "SolveStats", "Trajectory"),
    "._symbolic": ("EdgeTerm", "ExtraTerm", "NodeTerm", "compile_lagrangian", "compile_network",
                   "euler_lagrange_equations", "from_mechanics", "lagrangian_expression", "network_coordinates"),
    ".errors": ("ConfigError", "ConvergenceError", "DataError", "EstimatorError", "InputError",
                "LagrangianEqPropError", "LagrangianError", "SolveError", "TrainingError"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
# Heavier or optional layers, loaded on first use: `lep.systems`, `lep.training`, ...
_SUBMODULES = ("cli", "data", "diagnostics", "errors", "plotting", "systems", "tasks", "training")

__all__ = sorted(_WHERE) + list(_SUBMODULES)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from ._block_tridiagonal import block_tridiagonal_matvec, solve_block_tridiagonal  # noqa: F401
    from ._bvp import interior_del_residual, solve_bvp  # noqa: F401
    from ._contrasts import AbstractContrast, Centered, Holomorphic, Negative, Positive, Tangent  # noqa: F401
    from ._costs import ReadoutCost, TerminalCost, TrackingCost, trajectory_cost  # noqa: F401
    from ._discrete import DiscreteLagrangian  # noqa: F401
    from ._echo import echo_trajectory  # noqa: F401
    from ._energy import EnergyModel, compile_energy, compile_energy_network, compile_layered_energy  # noqa: F401
    from ._equilibrium import Equilibrium, NewtonMinimiser, ProjectedGradient, solve_equilibrium  # noqa: F401
    from ._equilibrium_gradient import (  # noqa: F401
        EquilibriumEqProp, convergence_radius, equilibrium_gradient, equilibrium_loss)
    from ._estimators import (  # noqa: F401
        AbstractEqProp, AbstractEstimator, Echo, FixedEndpoints, Naive, as_estimator, default_beta, eqprop_gradient)
    from ._integrate import Rollout, VariationalIntegrator  # noqa: F401
    from ._layer import echo_loss  # noqa: F401
    from ._physical_layer import PhysicalLayer  # noqa: F401
    from ._model import LagrangianModel, SeparableStructure, interpolate_inputs  # noqa: F401
    from ._references import (  # noqa: F401
        ESTIMATORS, BPTT, Adjoint, Implicit, adjoint_gradient, bptt_gradient, bvp_loss, finite_difference_gradient,
        implicit_gradient, simulated_loss)
    from ._root import (  # noqa: F401
        AbstractRootFinder, Auto, Chord, Newton, NewtonKrylov, OptimistixRootFinder, RootInfo, newton_tolerances)
    from ._rules import RULES, AbstractRule, GalerkinLobatto, Midpoint, Trapezoid, make_rule  # noqa: F401
    from ._solution import RESULTS, FinalState, GradientResult, SolveStats, Trajectory  # noqa: F401
    from ._symbolic import (  # noqa: F401
        EdgeTerm, ExtraTerm, NodeTerm, compile_lagrangian, compile_network, euler_lagrange_equations,
        from_mechanics, lagrangian_expression, network_coordinates)
    from .errors import (  # noqa: F401
        ConfigError, ConvergenceError, DataError, EstimatorError, InputError, LagrangianEqPropError, LagrangianError,
        SolveError, TrainingError)
