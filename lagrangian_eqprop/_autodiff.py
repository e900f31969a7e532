"""Derivatives that also work in complex arithmetic, for the holomorphic echo.

The holomorphic echo (theory §5) runs the echo passes at complex nudging strengths, so the
states, momenta and the action become complex while the parameters, times and inputs stay real.
`grad` and `jacfwd` here equal JAX's for real functions, and otherwise take

- the complex derivative (`holomorphic=True`) with respect to complex arguments of a
  holomorphic function (positions, momenta, Newton unknowns);
- `∂Re f/∂x + i ∂Im f/∂x` with respect to real arguments of a complex-valued function (the
  parameters, inputs and times): the derivative of the analytic continuation, which is what
  the contrast's Fourier sum needs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .errors import EstimatorError

__all__ = ["grad", "is_complex", "jacfwd"]


def is_complex(tree) -> bool:
    """Whether any array leaf of `tree` has a complex dtype."""
    return any(jnp.iscomplexobj(x) for x in jax.tree_util.tree_leaves(tree))


def _selected(args, argnums):
    return [args[i] for i in ((argnums,) if isinstance(argnums, int) else argnums)]


def grad(f: Callable, argnums=0) -> Callable:
    """`jax.grad(f, argnums)`, extended to complex values as the module docstring says."""

    def wrapped(*args):
        out = jax.eval_shape(f, *args)
        if not jnp.issubdtype(out.dtype, jnp.complexfloating):
            return jax.grad(f, argnums)(*args)
        selected = _selected(args, argnums)
        if all(jnp.iscomplexobj(x) for x in jax.tree_util.tree_leaves(selected)):
            return jax.grad(f, argnums, holomorphic=True)(*args)
        if is_complex(selected):
            raise EstimatorError("a derivative with respect to a mix of real and complex arguments: the holomorphic "
                                 "echo differentiates states (complex) and parameters (real) separately.")
        real = jax.grad(lambda *a: jnp.real(f(*a)), argnums)(*args)
        imag = jax.grad(lambda *a: jnp.imag(f(*a)), argnums)(*args)
        return jax.tree_util.tree_map(lambda r, i: r + 1j * i, real, imag)

    return wrapped


def jacfwd(f: Callable, argnums=0) -> Callable:
    """`jax.jacfwd(f, argnums)`, holomorphic when the arguments are complex."""

    def wrapped(*args):
        return jax.jacfwd(f, argnums, holomorphic=is_complex(_selected(args, argnums)))(*args)

    return wrapped
