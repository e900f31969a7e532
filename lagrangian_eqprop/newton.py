"""Newton's method for the small dense systems of one time step (and of Galerkin stages).

Why not `optimistix.Newton`: its termination test asks for `‖f‖ < atol` on the residual
with no relative part. Our residuals are momenta computed from differences such as
`M (q_b − q_a)/h`, whose round-off floor `ε·M·|q|/h` exceeds any fixed `atol` once `|q|` or
`1/h` is large, so converged steps were reported as failures. Here convergence is judged on
the Newton *step* relative to the unknowns (`‖Δz‖∞ ≤ atol + rtol‖z‖∞`), which is affine
invariant, and the root is differentiated implicitly with `jax.lax.custom_root`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def newton_root(fn: Callable, guess, *, rtol: float, atol: float, max_steps: int):
    """Solve `fn(z) = 0` for a pytree `z` by Newton's method.

    **Arguments:**
    - `fn`: residual, a pytree → pytree map with as many outputs as unknowns (it may close
      over traced values; they are differentiated through the implicit function theorem).
    - `guess`: initial iterate (pytree).
    - `rtol`, `atol`: converged when the last Newton step satisfies
      `‖Δz‖∞ ≤ atol + rtol ‖z‖∞`.
    - `max_steps`: iteration cap.

    **Returns:** `(z, ok)` — the root (same structure as `guess`) and a boolean scalar that is
    True when the iteration converged to finite values. Differentiable (forward and reverse
    mode) with respect to whatever `fn` closes over.
    """
    flat_guess, unravel = ravel_pytree(guess)
    if flat_guess.size == 0:
        return guess, jnp.asarray(True)

    def residual(x):
        return ravel_pytree(fn(unravel(x)))[0]

    def solve(f, x0):
        def body(state):
            i, x, _, _ = state
            step = jnp.linalg.solve(jax.jacfwd(f)(x), f(x))
            x_new = x - step
            small = jnp.max(jnp.abs(step)) <= atol + rtol * jnp.max(jnp.abs(x_new))
            finite = jnp.all(jnp.isfinite(x_new))
            return i + 1, x_new, small & finite, jnp.logical_not(finite)

        def cond(state):
            i, _, converged, broken = state
            return (i < max_steps) & jnp.logical_not(converged | broken)

        state0 = (jnp.zeros((), jnp.int32), x0, jnp.asarray(False), jnp.asarray(False))
        _, x, converged, broken = jax.lax.while_loop(cond, body, state0)
        # The flag travels as a float: custom_root gives aux outputs a tangent of the same dtype.
        return x, (converged & jnp.logical_not(broken)).astype(x.dtype)

    def tangent_solve(g, y):
        # g is the residual's linearisation at the root: a small dense solve.
        return jnp.linalg.solve(jax.jacobian(g)(y), y)

    x, ok = jax.lax.custom_root(residual, flat_guess, solve, tangent_solve, has_aux=True)
    return unravel(x), jax.lax.stop_gradient(ok) > 0.5
