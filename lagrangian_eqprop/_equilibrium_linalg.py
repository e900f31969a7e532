"""Dense symmetric solves for the equilibrium solvers, in plain JAX (no LAPACK call): LDLᵀ and its inertia.

**Why not `jnp.linalg`.** On CPU, jaxlib 0.10's batched LAPACK kernels (`getrf`, `syevd`, ...,
i.e. `jnp.linalg.solve`/`eigh` under `vmap`) split their batch over XLA's intra-op thread pool
and block until the pieces are done. When two such kernels run concurrently — the curvature
check of the free equilibrium next to the nudged solves, or EqProp next to its implicit
reference in the trainer's probe — and the pool has two threads (2 cores), both workers wait
for work that nobody is left to run: the process hangs at 0 % CPU. Measured here: the
`resistive` task hung in its first epochs in three runs out of four (native stacks: both
`tf_XLAEigen` threads in `jax::ParallelBatchMap`, one under `lapack_dgetrf_ffi`, one under
`lapack_dsyevd_ffi`). The loops below are ordinary XLA operations and cannot deadlock; for the
matrices of an equilibrium solve (n ≲ a few hundred) they cost well under a millisecond.

`ldl_factor` works for real symmetric and complex symmetric (not Hermitian) matrices, as the
complex Newton steps of holomorphic EqProp need. There is no pivoting: a zero pivot of a
non-singular indefinite matrix breaks it down (the callers then fall back or report failure).
By Sylvester's law of inertia the number of negative pivots is the number of negative
eigenvalues, so the pivots also decide whether an equilibrium is a minimum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["ldl_factor", "ldl_solve", "solve_symmetric"]


def ldl_factor(matrix):
    """`matrix = L diag(d) Lᵀ` with `L` unit lower-triangular (lower triangle of `matrix` read).

    **Arguments:** `matrix`, shape `(n, n)`, real symmetric or complex symmetric.

    **Returns:** `(L (n, n), d (n,))`.
    """
    n = matrix.shape[0]
    index = jnp.arange(n)

    def column(j, carry):
        work, lower, pivots = carry
        pivot = work[j, j]
        below = index > j
        col = jnp.where(below, work[:, j], jnp.zeros((), work.dtype)) / pivot
        work = work - pivot * col[:, None] * col[None, :]
        lower = lower.at[:, j].set(col + jnp.where(index == j, jnp.ones((), work.dtype), jnp.zeros((), work.dtype)))
        return work, lower, pivots.at[j].set(pivot)

    init = (matrix, jnp.zeros_like(matrix), jnp.zeros((n,), matrix.dtype))
    _, lower, pivots = jax.lax.fori_loop(0, n, column, init)
    return lower, pivots


def ldl_solve(lower, pivots, rhs):
    """`x` with `L diag(d) Lᵀ x = rhs` (forward and backward substitution)."""
    n = rhs.shape[0]

    def forward(i, y):
        return y.at[i].set(rhs[i] - jnp.dot(lower[i], y))  # y[i] is still 0 and L[i, i] = 1 is not used

    def backward(k, x):
        i = n - 1 - k
        return x.at[i].set(z[i] - jnp.dot(lower[:, i], x))  # column i of L below the diagonal

    y = jax.lax.fori_loop(0, n, forward, jnp.zeros_like(rhs))
    z = y / pivots
    return jax.lax.fori_loop(0, n, backward, jnp.zeros_like(rhs))


def solve_symmetric(matrix, rhs):
    """`(x, pivots)`: the solution of `matrix x = rhs` by `ldl_factor`, with the pivots."""
    lower, pivots = ldl_factor(matrix)
    lower = lower - jnp.diag(jnp.diag(lower))  # strictly lower part for the substitutions
    return ldl_solve(lower, pivots, rhs), pivots
