"""Linear algebra of an implicit step's Jacobian: what a root finder may know and reuse.

An implicit step solves `F(z) = 0` for its unknowns `z` (internal control points and `q_b`,
flattened; the multipliers too for a constrained model). Its Jacobian has structure that a
general root finder cannot see, so the step hands it over as a `StepStructure`:

- `KineticJacobian`: for `L = ½vᵀMv − V(q, t, u)` with constant `M` (`model.separable`), the
  kinetic part of the action is quadratic, and the step Jacobian is
  `J = (1/h)(K ⊗ M) + O(h)·∂²V`, `K` the rule's kinetic matrix `Σ_i w_i φ'(τ_i) φ'(τ_i)ᵀ` restricted
  to (equation rows 0..s−1, unknown columns 1..s). `J₀ = (K ⊗ M)/h` is exact for a free particle,
  the same at every step, and inverted in O(n) for a diagonal `M`: `J₀⁻¹ J = I + O(h²ω²)`, so a
  chord iteration with it contracts by about `(hω)²/4` per iteration (midpoint), where `ω` is the
  highest frequency. For the midpoint rule `J₀ = −M/h`.
- dense factorisations (`DenseFactor`): `lu_factor` of a `jax.jacfwd` Jacobian, applied many
  times (chord iterations within a step, and across steps when a root finder keeps it);
- the tangent solves of the implicit derivatives (`dense_tangent_solve`, `krylov_tangent_solve`:
  `lax.custom_root` differentiates a root through them, never through the iterations).

Everything here works in complex arithmetic too (the holomorphic echo runs the step solves with
complex states): the kinetic Jacobian is real and is cast to the residual's dtype.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Inexact, Int

from . import _autodiff as autodiff

__all__ = ["DenseFactor", "KineticJacobian", "StepStructure", "kinetic_rule_matrix"]


@functools.lru_cache(maxsize=None)
def _rule_inverse(differentiation: tuple, weights: tuple) -> tuple:
    d = np.asarray(differentiation, dtype=float)
    w = np.asarray(weights, dtype=float)
    k = d.T @ (w[:, None] * d)  # (s + 1, s + 1)
    s = d.shape[1] - 1
    sub = k[:s, 1:]  # rows: equations at controls 0..s−1; columns: unknowns at controls 1..s
    return tuple(tuple(float(x) for x in row) for row in np.linalg.inv(sub))


def kinetic_rule_matrix(rule) -> np.ndarray:
    """`K_sub⁻¹` `(s, s)` for a rule: the inverse of its kinetic matrix restricted to the step's
    equations and unknowns (see the module docstring); `[[−1]]` for midpoint and trapezoid."""
    table = lambda a: tuple(tuple(float(x) for x in np.atleast_1d(row)) for row in np.atleast_2d(a))
    return np.asarray(_rule_inverse(table(rule.differentiation), tuple(float(x) for x in rule.weights)))


class KineticJacobian(eqx.Module):
    """`J₀ = (K_sub ⊗ M)/h` of one step of a separable model (module docstring), held through its
    inverse: `inverse_mass` `(n,)` (diagonal `M`) or `(n, n)`, `rule_inverse` `K_sub⁻¹` `(s, s)`
    (static), `dt` `h`.

    Built with `KineticJacobian.build(model, params, rule, dt)`; `None` when the model is not
    separable. Carries no gradient: it only steers iterations (`stop_gradient`)."""

    inverse_mass: Inexact[Array, "..."]
    dt: Array
    rule_inverse: tuple = eqx.field(static=True)

    @staticmethod
    def build(model, params, rule, dt) -> "KineticJacobian | None":
        sep = model.separable
        if sep is None or model.constrained:
            return None
        mass = jax.lax.stop_gradient(sep.mass_fn(params))
        inverse = 1.0 / mass if sep.diagonal else jnp.linalg.inv(mass)
        return KineticJacobian(inverse, jax.lax.stop_gradient(jnp.asarray(dt, inverse.dtype)),
                               tuple(map(tuple, kinetic_rule_matrix(rule).tolist())))

    @property
    def diagonal(self) -> bool:
        return self.inverse_mass.ndim == 1

    def _apply_mass_inverse(self, r):
        inverse = self.inverse_mass.astype(r.dtype)
        return inverse[None, :] * r if self.diagonal else r @ inverse.T

    def solve(self, r: Inexact[Array, " k"]) -> Inexact[Array, " k"]:
        """`J₀⁻¹ r` for a flat residual `r` of length `s·n` (equation rows in order)."""
        kinv = self.rule_inverse
        s = len(kinv)
        rows = self._apply_mass_inverse(r.reshape(s, -1))
        h = self.dt.astype(r.dtype)
        if s == 1:
            return (h * kinv[0][0]) * rows[0]
        # Static small loops: K_sub⁻¹ is a Python table, so XLA sees a few fused axpys.
        out = [sum(kinv[j][i] * rows[i] for i in range(s) if kinv[j][i] != 0.0) for j in range(s)]
        return h * jnp.concatenate(out)

    def transpose_solve(self, r: Inexact[Array, " k"]) -> Inexact[Array, " k"]:
        """`J₀⁻ᵀ r` (M is symmetric; the rule matrix is transposed)."""
        transposed = KineticJacobian(self.inverse_mass, self.dt, tuple(zip(*self.rule_inverse)))
        return transposed.solve(r)


class DenseFactor(eqx.Module):
    """LU factors of a dense Jacobian, `lu` `(k, k)` and `pivots` `(k,)`, and whether they hold a
    factorisation yet (`valid`, a bool scalar: root finders that reuse a factorisation across steps
    start without one)."""

    lu: Inexact[Array, "k k"]
    pivots: Int[Array, " k"]
    valid: Array

    @staticmethod
    def empty(size: int, dtype) -> "DenseFactor":
        return DenseFactor(jnp.zeros((size, size), dtype), jnp.arange(size, dtype=jnp.int32), jnp.asarray(False))

    @staticmethod
    def factor(matrix) -> "DenseFactor":
        lu, pivots = jsl.lu_factor(matrix)
        return DenseFactor(lu, pivots.astype(jnp.int32), jnp.asarray(True))

    def solve(self, r):
        return jsl.lu_solve((self.lu, self.pivots), r)

    def singular(self):
        """Whether the factorised matrix is singular: finite, with a zero pivot. A non-finite
        pivot is not singularity but a non-finite Jacobian (NaN/inf in the state): the solve's
        non-finite step reports it as such."""
        pivots = jnp.diagonal(self.lu)
        return jnp.all(jnp.isfinite(pivots)) & jnp.any(pivots == 0)


class StepStructure(eqx.Module):
    """What an implicit step tells its root finder about `F(z) = 0` (all optional):
    `kinetic` (a `KineticJacobian`, separable unconstrained models) and `size` (the number of
    unknowns, static)."""

    kinetic: KineticJacobian | None = None
    size: int = eqx.field(static=True, default=0)


# ------------------------------------------------------- tangent solves (implicit derivatives)
def dense_tangent_solve(g, y):
    # g is the residual's linearisation at the root.
    return jnp.linalg.solve(jax.jacobian(g, holomorphic=autodiff.is_complex(y))(y), y)


def krylov_tangent_solve(kinetic, rtol, atol):
    """A tangent solve `g(x) = y` by GMRES preconditioned with the kinetic Jacobian (`kinetic`, a
    `KineticJacobian` or `None`): matrix-free, and transposable for reverse mode through
    `lax.custom_linear_solve` (the transpose preconditioned with `kinetic.transpose_solve`).
    `jax.scipy.sparse.linalg.gmres`, not lineax: lineax's transpose solve always raises on
    non-finite input, which would turn a failed step that the rollout reports (failure
    contract) into a runtime error under `jax.grad`."""

    def gmres(matvec, b, precondition):
        restart = min(20, b.size)
        x, _ = jax.scipy.sparse.linalg.gmres(matvec, b, None if precondition is None else precondition(b),
                                             tol=rtol, atol=atol, restart=restart,
                                             maxiter=max(1, -(-10 * b.size // restart)), M=precondition)
        return x

    def tangent_solve(g, y):
        return jax.lax.custom_linear_solve(
            g, y,
            lambda matvec, b: gmres(matvec, b, None if kinetic is None else kinetic.solve),
            lambda vecmat, b: gmres(vecmat, b, None if kinetic is None else kinetic.transpose_solve))

    return tangent_solve
