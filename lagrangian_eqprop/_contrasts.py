"""How an EqProp estimator turns nudged passes into a derivative in β: the variants.

Every EqProp estimator computes `G(β)` (the accumulated `∂_θ` of the action along a trajectory
nudged with strength β, plus what the estimator reads at its boundary) and needs `G'(0)`. A
*contrast* decides which β to run and how to combine them:

- `Centered`: `(G(β) − G(−β)) / 2β`, bias O(β²);
- `Positive`: `(G(β) − G(0)) / β`, `Negative`: `(G(0) − G(−β)) / β`, bias O(β);
- `Tangent`: `G'(0)` by forward-mode differentiation in β (exact to round-off, no β);
- `Holomorphic(points=K)`: complex β on a circle of radius r, error O((r/R)^K).

One class per variant; the estimators (`Echo`, `FixedEndpoints`, `Naive`) take the variant by
name and never look inside it. The passes of a finite contrast run together under `vmap`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._solution import RESULTS, SolveStats
from ._names import VARIANT_NAMES
from .errors import EstimatorError

__all__ = ["VARIANTS", "AbstractContrast", "Centered", "Holomorphic", "Negative", "Positive", "Tangent", "as_contrast",
           "estimate_radius", "merge_passes"]


class AbstractContrast(eqx.Module):
    """Combines nudged passes into an estimate of `G'(0)`."""

    name: ClassVar[str]
    expected_slope: ClassVar[float]
    # True where round-off grows like ε/β (a real finite difference): these lose digits in float32.
    finite_difference: ClassVar[bool] = False

    def estimate(self, nudged: Callable, beta, dtype=None):
        """`nudged(β) -> (values, (result, stats))` for a scalar β; **returns** `(estimate,
        result, stats)` with the passes' results and statistics merged (`merge_passes`).
        `beta=None` (with the real `dtype`) is allowed where the contrast picks or needs no β."""
        raise NotImplementedError


class _TwoPoint(AbstractContrast):
    signs: ClassVar[tuple[float, float]]
    finite_difference: ClassVar[bool] = True

    def estimate(self, nudged, beta, dtype=None):
        s1, s2 = self.signs
        betas = jnp.stack([s1 * beta, s2 * beta])
        values, (result, stats) = jax.vmap(nudged)(betas)
        denominator = betas[0] - betas[1]
        estimate = jax.tree_util.tree_map(lambda x: (x[0] - x[1]) / denominator, values)
        return (estimate, *merge_passes(result, stats))


class Centered(_TwoPoint):
    """`(G(β) − G(−β)) / 2β`: bias O(β²), round-off ~ε/β."""

    name: ClassVar[str] = "centered"
    expected_slope: ClassVar[float] = 2.0
    signs: ClassVar[tuple[float, float]] = (1.0, -1.0)


class Positive(_TwoPoint):
    """`(G(β) − G(0)) / β`: bias O(β)."""

    name: ClassVar[str] = "positive"
    expected_slope: ClassVar[float] = 1.0
    signs: ClassVar[tuple[float, float]] = (1.0, 0.0)


class Negative(_TwoPoint):
    """`(G(0) − G(−β)) / β`: bias O(β)."""

    name: ClassVar[str] = "negative"
    expected_slope: ClassVar[float] = 1.0
    signs: ClassVar[tuple[float, float]] = (0.0, -1.0)


class Tangent(AbstractContrast):
    """`G'(0)` by forward-mode differentiation of the nudged pass in β at β = 0 (`jax.jvp`, tangent
    1): no β at all, so no bias and no ε/β round-off — exact to round-off in any dtype, one pass,
    memory flat in N (theory §5)."""

    name: ClassVar[str] = "tangent"
    expected_slope: ClassVar[float] = float("nan")

    def estimate(self, nudged, beta, dtype=None):
        zero = jnp.zeros((), dtype) if beta is None else jnp.zeros_like(jnp.asarray(beta))
        values, tangents, (result, stats) = jax.jvp(lambda b: nudged(b), (zero,), (jnp.ones_like(zero),),
                                                    has_aux=True)
        return tangents, result, stats


class Holomorphic(AbstractContrast):
    """The trajectory version of holomorphic EqProp (Laborieux & Zenke 2022; theory §5): the nudged
    passes run at `β_j = r e^{2πij/K}` in complex arithmetic and the first Fourier coefficient
    `(1/(K r)) Σ_j e^{−2πij/K} G(β_j)` (its real part) is the estimate, with error
    `O((r/R)^K)` (R the radius of convergence of G) instead of O(β²), and round-off ~ε/r.

    **Arguments:** `points` (K, default 8). The radius r is the estimator's `beta`; without one,
    `R̂/10` from `estimate_radius`.
    """

    name: ClassVar[str] = "holomorphic"
    expected_slope: ClassVar[float] = float("nan")
    points: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if isinstance(self.points, bool) or int(self.points) != self.points or self.points < 2:
            raise EstimatorError(f"the holomorphic contrast needs points ≥ 2, got {self.points!r}.")

    def estimate(self, nudged, beta, dtype=None):
        radius = estimate_radius(nudged, dtype) / 10.0 if beta is None else jnp.abs(jnp.asarray(beta))
        angles = 2.0 * jnp.pi * jnp.arange(self.points, dtype=radius.dtype) / self.points
        # built from real parts so that no Python complex meets the real dtype (strict promotion)
        betas = jax.lax.complex(radius * jnp.cos(angles), radius * jnp.sin(angles))
        # The model, its parameters, targets and inputs are real while the passes are complex: real ⊂
        # complex is the one promotion this pass needs, whatever the caller's promotion setting.
        with jax.numpy_dtype_promotion("standard"):
            values, (result, stats) = jax.vmap(nudged)(betas)
        weights = jax.lax.complex(jnp.cos(angles), -jnp.sin(angles)) / (self.points * radius).astype(betas.dtype)
        estimate = jax.tree_util.tree_map(lambda x: jnp.real(jnp.tensordot(weights, x, axes=1)), values)
        return (estimate, *merge_passes(result, stats))


def estimate_radius(nudged: Callable, dtype):
    """Estimate of the radius of convergence R of `G(β)` around 0 from centered contrasts at two
    small real β (theory §5): `E(β) = a₁ + a₃β² + …` gives `a₃`, and `R ≈ √(‖a₁‖/‖a₃‖)` (for a
    function analytic in a disc of radius R, `a_k` ~ `R^{−k}`). β = ε^{1/5} and 2ε^{1/5} balance
    the β⁴ truncation of `a₃` against its ε/β³ round-off. Each output of the pass (each leaf)
    gives an estimate; the smallest wins. A G without a β² term (a linear system) gives
    R = ∞, capped here at 10 (so the radius at 1)."""
    b = float(jnp.finfo(dtype).eps) ** 0.2
    betas = jnp.asarray([b, -b, 2 * b, -2 * b], dtype)
    values, _ = jax.vmap(nudged)(betas)

    def leaf_radius(x):
        x = jnp.reshape(x, (4, -1))
        e_small = (x[0] - x[1]) / (2 * b)
        e_large = (x[2] - x[3]) / (4 * b)
        a3 = (e_large - e_small) / (3 * b**2)
        a1 = e_small - a3 * b**2
        ratio = jnp.linalg.norm(a1) / jnp.maximum(jnp.linalg.norm(a3), jnp.finfo(dtype).tiny)
        return jnp.where(jnp.linalg.norm(a1) > 0, jnp.sqrt(ratio), jnp.inf)  # a leaf without slope: no bound

    radius = jnp.min(jnp.stack([leaf_radius(x) for x in jax.tree_util.tree_leaves(values)]))
    return jnp.minimum(jnp.where(jnp.isfinite(radius), radius, 10.0), 10.0)


VARIANTS: dict[str, type[AbstractContrast]] = {"centered": Centered, "positive": Positive, "negative": Negative,
                                               "tangent": Tangent, "holomorphic": Holomorphic}
assert tuple(VARIANTS) == VARIANT_NAMES


def as_contrast(variant) -> AbstractContrast:
    """The contrast object of a variant name (or the object itself)."""
    if isinstance(variant, AbstractContrast):
        return variant
    if isinstance(variant, str) and variant in VARIANTS:
        return VARIANTS[variant]()
    raise EstimatorError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")


def merge_passes(result: RESULTS, stats: SolveStats) -> tuple[RESULTS, SolveStats]:
    """One result and one `SolveStats` from passes stacked along a leading axis: the first
    failed pass's result, summed failures, the worst iteration counts and residuals."""
    codes = result._value
    failing = jnp.argmax(codes != 0)
    merged = RESULTS.where(jnp.any(codes != 0), _item_at(result, failing), RESULTS.successful)
    first = stats.first_failed[failing]
    return merged, SolveStats(
        jnp.sum(stats.num_failures).astype(jnp.int32),
        jnp.where(jnp.any(codes != 0), first, jnp.max(stats.first_failed)).astype(jnp.int32),
        jnp.max(stats.newton_iterations_mean),
        jnp.max(stats.newton_iterations_max),
        jnp.max(stats.max_residual),
        jnp.nanmax(stats.condition),
        jnp.nanmax(stats.energy_error),
    )


def _item_at(result: RESULTS, index) -> RESULTS:
    return eqx.tree_at(lambda r: r._value, result, result._value[index])
