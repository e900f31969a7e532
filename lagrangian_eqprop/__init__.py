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
from .eqprop import (
    GradientResult,
    echo_estimate,
    echo_loss,
    echo_trajectory,
    eqprop_gradient,
)
from .errors import ConvergenceError, EstimatorError, LagrangianError
from .integrate import Trajectory, VariationalIntegrator
from .model import LagrangianModel, SeparableStructure, interpolate_inputs

try:  # the symbolic front end
    from .symbolic import *  # noqa: F401,F403
    from .symbolic import __all__ as _symbolic_all
except ImportError as _err:  # pragma: no cover - only while the module is being written
    _symbolic_all = []

__version__ = "0.1.0"
