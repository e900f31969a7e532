"""lagrangian_eqprop: learning in physical systems by Equilibrium Propagation on the action.

SymPy Lagrangians are compiled to JAX (`compile_lagrangian`, `compile_network`), simulated
with variational integrators (`VariationalIntegrator`: initial-value stepping and two-point
boundary-value solves), and trained with time-dependent EqProp (`eqprop_gradient`,
`echo_loss`), checked against backpropagation through time (`bptt_gradient`).

Importing this package never changes JAX's global configuration: enable float64 yourself
(`jax.config.update("jax_enable_x64", True)`) when you need it.
"""

from .baselines import (
    adjoint_gradient,
    bptt_gradient,
    bvp_loss,
    finite_difference_gradient,
    implicit_gradient,
    simulated_loss,
)
from .costs import ReadoutCost, TerminalCost, TrackingCost, trajectory_cost
from .discrete import DiscreteLagrangian, QuadratureRule, make_rule
from .bvp import solve_block_tridiagonal
from .eqprop import (
    GradientResult,
    default_beta,
    echo_estimate,
    echo_loss,
    echo_trajectory,
    eqprop_gradient,
)
from .errors import ConvergenceError, EstimatorError, LagrangianError
from .integrate import Trajectory, VariationalIntegrator
from .model import LagrangianModel, SeparableStructure, interpolate_inputs

from .symbolic import (
    EdgeTerm,
    ExtraTerm,
    NodeTerm,
    compile_lagrangian,
    compile_network,
    euler_lagrange_equations,
    lagrangian_expression,
    network_coordinates,
)

__version__ = "0.1.0"

# Heavier or optional layers load on first use: `lep.systems`, `lep.training`, ...
_SUBMODULES = ("systems", "training", "tasks", "diagnostics", "plotting", "cli", "bvp", "newton")


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
