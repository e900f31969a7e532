"""The names of the registries, as plain data (no JAX import), so that the command line can show
and check them instantly. Each registry asserts at import that its keys are these names."""

__all__ = ["ESTIMATOR_NAMES", "OPTIMIZER_NAMES", "RULE_NAMES", "SCHEDULE_NAMES", "VARIANT_NAMES"]

RULE_NAMES = ("midpoint", "trapezoid", "galerkin")
ESTIMATOR_NAMES = ("echo", "bvp", "naive", "bptt", "implicit", "adjoint", "eqprop")
VARIANT_NAMES = ("centered", "positive", "negative", "tangent", "holomorphic")
OPTIMIZER_NAMES = ("adam", "sgd", "momentum", "rmsprop")
SCHEDULE_NAMES = ("constant", "cosine")
