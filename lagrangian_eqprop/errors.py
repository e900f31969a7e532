"""Exceptions raised by the engine. Each message names the culprit (symbol, coordinate, step)."""


class LagrangianError(ValueError):
    """A Lagrangian (or its declaration) is invalid: undeclared symbols, degenerate, ..."""


class ConvergenceError(RuntimeError):
    """A Newton solve (a time step or a boundary-value solve) failed to converge."""


class EstimatorError(ValueError):
    """A gradient estimator was asked for something it cannot compute exactly."""
