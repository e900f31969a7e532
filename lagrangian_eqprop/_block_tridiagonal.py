"""Block-tridiagonal linear algebra for the two-point boundary-value Newton (`_bvp.py`).

lineax (0.1.x) offers only a scalar `TridiagonalLinearOperator`; there is no block-tridiagonal
operator or solver, hence the small block Thomas solver here: O(K n³) time, O(K n²) memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float

from .errors import InputError

__all__ = ["block_tridiagonal_condition", "block_tridiagonal_matvec", "solve_block_tridiagonal", "transpose_blocks"]


def transpose_blocks(blocks: Array) -> Array:
    return jnp.swapaxes(blocks, -1, -2)


def block_tridiagonal_matvec(
    lower: Float[Array, "K1 n n"],
    diag: Float[Array, "K n n"],
    upper: Float[Array, "K1 n n"],
    x: Float[Array, "K n"],
) -> Float[Array, "K n"]:
    """Product `A x` with a block-tridiagonal matrix `A`, without forming `A` (`K1 = K − 1`).

    **Arguments:**
    - `lower`: sub-diagonal blocks, `lower[i] = A[i+1, i]`, shape `(K−1, n, n)`.
    - `diag`: diagonal blocks, `diag[i] = A[i, i]`, shape `(K, n, n)`.
    - `upper`: super-diagonal blocks, `upper[i] = A[i, i+1]`, shape `(K−1, n, n)`.
    - `x`: block vector, shape `(K, n)`.

    **Returns:** `A x`, shape `(K, n)`.
    """
    y = jnp.einsum("kij,kj->ki", diag, x)
    if x.shape[0] > 1:
        y = y.at[1:].add(jnp.einsum("kij,kj->ki", lower, x[:-1]))
        y = y.at[:-1].add(jnp.einsum("kij,kj->ki", upper, x[1:]))
    return y


def solve_block_tridiagonal(
    lower: Float[Array, "K1 n n"],
    diag: Float[Array, "K n n"],
    upper: Float[Array, "K1 n n"],
    rhs: Float[Array, "K n *r"],
) -> Float[Array, "K n *r"]:
    """Solve `A x = rhs` for a block-tridiagonal `A` by block Gaussian elimination (block Thomas),
    `K1 = K − 1`.

    Cost O(K n³) time and O(K n²) memory, with `lax.scan` over the K block rows (a forward
    elimination sweep, then back substitution). Each pivot block, the Schur complement
    `S_i = A[i, i] − A[i, i−1] S_{i−1}⁻¹ A[i−1, i]`, is LU-factorised with partial pivoting
    *inside* the block; there is no pivoting *across* blocks, so every leading block principal
    submatrix of `A` must be nonsingular. For a two-point BVP this means no interior node is a
    (discrete) conjugate point of the start node. A singular pivot block yields non-finite
    entries in `x`, which callers must check (`solve_bvp` does).

    **Arguments:**
    - `lower`: sub-diagonal blocks, `lower[i] = A[i+1, i]`, shape `(K−1, n, n)`.
    - `diag`: diagonal blocks, `diag[i] = A[i, i]`, shape `(K, n, n)`.
    - `upper`: super-diagonal blocks, `upper[i] = A[i, i+1]`, shape `(K−1, n, n)`.
    - `rhs`: right-hand side, shape `(K, n)` or `(K, n, r)` for `r` right-hand sides.

    **Returns:** `x` with the shape of `rhs`.
    """
    num_blocks, n = diag.shape[0], diag.shape[-1]
    if diag.shape != (num_blocks, n, n):
        raise InputError(f"diag must have shape (K, n, n), got {diag.shape}.")
    if lower.shape != (max(num_blocks - 1, 0), n, n) or upper.shape != lower.shape:
        raise InputError(
            f"lower and upper must have shape (K−1, n, n) = ({num_blocks - 1}, {n}, {n}), "
            f"got {lower.shape} and {upper.shape}."
        )
    if rhs.shape[:2] != (num_blocks, n) or rhs.ndim not in (2, 3):
        raise InputError(f"rhs must have shape (K, n) or (K, n, r) = ({num_blocks}, {n}[, r]), got {rhs.shape}.")
    if num_blocks == 0:
        return rhs
    vector = rhs.ndim == 2
    b = rhs[..., None] if vector else rhs
    dtype = jnp.result_type(lower, diag, upper, b)
    zero_block = jnp.zeros((1, n, n), dtype)
    # Pad so every row has the same form: A[0, −1] = 0 and A[K−1, K] = 0.
    lower_padded = jnp.concatenate([zero_block, lower.astype(dtype)], axis=0)
    upper_padded = jnp.concatenate([upper.astype(dtype), zero_block], axis=0)

    def eliminate(carry, row):
        # carry: (C_{i−1} = S_{i−1}⁻¹ A[i−1, i], d_{i−1} = S_{i−1}⁻¹ (b_{i−1} − ...)).
        coupling_prev, reduced_prev = carry
        low, dia, up, b_i = row
        schur = dia - low @ coupling_prev
        lu_piv = jsl.lu_factor(schur)
        coupling = jsl.lu_solve(lu_piv, up)
        reduced = jsl.lu_solve(lu_piv, b_i - low @ reduced_prev)
        return (coupling, reduced), (coupling, reduced)

    init = (jnp.zeros((n, n), dtype), jnp.zeros(b.shape[1:], dtype))
    _, (couplings, reduced) = jax.lax.scan(
        eliminate, init, (lower_padded, diag.astype(dtype), upper_padded, b.astype(dtype))
    )

    def back_substitute(x_next, row):
        coupling, reduced_i = row
        x_i = reduced_i - coupling @ x_next
        return x_i, x_i

    _, x = jax.lax.scan(back_substitute, jnp.zeros(b.shape[1:], dtype), (couplings, reduced), reverse=True)
    return x[..., 0] if vector else x


def block_tridiagonal_condition(
    lower: Float[Array, "K1 n n"],
    diag: Float[Array, "K n n"],
    upper: Float[Array, "K1 n n"],
    iterations: int = 4,
) -> tuple[Float[Array, ""], Array]:
    """Estimate of the 1-norm condition number `‖A‖₁ ‖A⁻¹‖₁` of a block-tridiagonal `A`, and
    the block row where `A⁻¹` is largest (where the system is closest to singular).

    `‖A‖₁` is exact (column sums of the blocks); `‖A⁻¹‖₁` comes from Hager's estimator
    (Higham's refinement, a few fixed iterations of `A⁻¹x`, `A⁻ᵀ sign(·)` by the same block
    Thomas solves): a lower bound that is almost always within a factor of a few. Because the
    solves are the ones Newton uses, a breakdown of the elimination (a singular or nearly
    singular pivot block, even when `A` itself is regular) also shows up as a huge (or
    non-finite) estimate. Cost: `2·iterations` block solves, O(K n³) for the factorisations.

    **Returns:** `(condition, worst_block)`; `condition` is `inf` when the estimate is not finite.
    """
    num_blocks, n = diag.shape[0], diag.shape[-1]
    size = num_blocks * n
    dtype = diag.dtype
    # ‖A‖₁: column j of block column i gathers diag[i], lower[i] (row i+1) and upper[i−1] (row i−1).
    column_sums = jnp.sum(jnp.abs(diag), axis=1)
    if num_blocks > 1:
        column_sums = column_sums.at[:-1].add(jnp.sum(jnp.abs(lower), axis=1))
        column_sums = column_sums.at[1:].add(jnp.sum(jnp.abs(upper), axis=1))
    norm_a = jnp.max(column_sums)
    transposed = (transpose_blocks(upper), transpose_blocks(diag), transpose_blocks(lower))

    def body(_, carry):
        x, best, worst = carry
        y = solve_block_tridiagonal(lower, diag, upper, x)
        size_y = jnp.sum(jnp.abs(y))
        worst = jnp.where(size_y > best, jnp.argmax(jnp.max(jnp.abs(y), axis=1)).astype(jnp.int32), worst)
        best = jnp.maximum(best, size_y)
        z = solve_block_tridiagonal(*transposed, jnp.where(y >= 0, 1.0, -1.0).astype(dtype))
        j = jnp.argmax(jnp.abs(z).reshape(-1))
        x = jnp.zeros(size, dtype).at[j].set(1.0).reshape(num_blocks, n)
        return x, best, worst

    x0 = jnp.full((num_blocks, n), 1.0 / size, dtype)
    init = (x0, jnp.zeros((), dtype), jnp.zeros((), jnp.int32))
    _, norm_inverse, worst = jax.lax.fori_loop(0, iterations, body, init)
    condition = norm_a * norm_inverse
    return jnp.where(jnp.isfinite(condition), condition, jnp.inf), worst.astype(jnp.int32)
