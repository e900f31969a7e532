"""Type aliases of the public API (jaxtyping shapes; checked at run time by the test suite).

Inputs are array-likes (NumPy or JAX arrays, Python numbers) of a real dtype; outputs are JAX
arrays. Shape names: `n` coordinates, `m` inputs, `N1 = N + 1` nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxtyping import ArrayLike, Real, ScalarLike

__all__ = ["Number", "NodeInputs", "Params", "PyTree", "StateVector"]

Number = ScalarLike
"""A Python number or a 0-d array (e.g. `dt`, `beta`, tolerances)."""

StateVector = Real[ArrayLike, " n"]
"""Positions, velocities or momenta of the `n` coordinates."""

NodeInputs = Real[ArrayLike, "N1 m"] | Real[ArrayLike, " N1"] | Callable | None
"""Inputs sampled at the `N + 1` nodes (or `(N+1,)` for one input), a callable `u(t)`, or None."""

Params = dict[str, Any]
"""`{parameter name: array}`."""

PyTree = Any
