"""The engine's exceptions: one base class, each message naming the culprit and the likely cause.

    LagrangianEqPropError                     everything the engine raises on purpose
    ├── InputError (ValueError)               a value given by the user is unusable (exit 2)
    │   ├── LagrangianError                   an invalid Lagrangian or declaration
    │   ├── EstimatorError                    an estimator asked for what it cannot compute
    │   ├── ConfigError                       an invalid configuration, task option or run folder
    │   └── DataError                         an unusable data set (shapes, NaNs, labels)
    └── SolveError (RuntimeError)             a computation ran and failed (exit 1)
        ├── ConvergenceError                  a solve did not converge or went non-finite
        └── TrainingError                     training stopped (non-finite loss, failed solve, I/O)

`exit_code` is the command-line exit status the CLI uses for each class (0 ok, 1 run failed,
2 bad input, 130 interrupted). Input errors are also `ValueError`s and solve errors
`RuntimeError`s, so code written against the standard classes keeps working.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConvergenceError",
    "DataError",
    "EstimatorError",
    "InputError",
    "LagrangianEqPropError",
    "LagrangianError",
    "SolveError",
    "TrainingError",
]


class LagrangianEqPropError(Exception):
    """Base class of every exception the engine raises on purpose."""

    exit_code = 1


class InputError(LagrangianEqPropError, ValueError):
    """A value passed in is unusable: a shape, a dtype, a missing or unknown name, a range."""

    exit_code = 2


class LagrangianError(InputError):
    """A Lagrangian (or its declaration) is invalid: undeclared symbols, degenerate, ..."""


class EstimatorError(InputError):
    """A gradient estimator was asked for something it cannot compute exactly."""


class ConfigError(InputError):
    """An invalid training configuration, task name, task option or run folder."""


class DataError(InputError):
    """A data set that cannot be used as given (shapes, non-finite values, labels)."""


class SolveError(LagrangianEqPropError, RuntimeError):
    """A computation ran and failed."""

    exit_code = 1


class ConvergenceError(SolveError):
    """A solve failed: a Newton step or a boundary-value solve did not converge, or the state
    became non-finite. The message names the operation, the step or node, and the likely cause."""


class TrainingError(SolveError):
    """Training stopped: a non-finite loss or gradient, a failed solve, or an unusable
    checkpoint. The message names the run, the step and the cause."""
