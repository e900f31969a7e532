"""How an EqProp estimator turns nudged passes into a derivative in β: the variants.

Every EqProp estimator computes `G(β)` (the accumulated `∂_θ` of the action along a trajectory
nudged with strength β, plus what the estimator reads at its boundary) and needs `G'(0)`. A
*contrast* decides which β to run and how to combine them:

- `Centered`: `(G(β) − G(−β)) / 2β`, bias O(β²);
- `Positive`: `(G(β) − G(0)) / β`, `Negative`: `(G(0) − G(−β)) / β`, bias O(β).

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

__all__ = ["VARIANTS", "AbstractContrast", "Centered", "Negative", "Positive", "as_contrast", "merge_passes"]


class AbstractContrast(eqx.Module):
    """Combines nudged passes into an estimate of `G'(0)`."""

    name: ClassVar[str]
    expected_slope: ClassVar[float]

    def estimate(self, nudged: Callable, beta):
        """`nudged(β) -> (values, (result, stats))` for a scalar β; **returns** `(estimate,
        result, stats)` with the passes' results and statistics merged (`merge_passes`)."""
        raise NotImplementedError


class _TwoPoint(AbstractContrast):
    signs: ClassVar[tuple[float, float]]

    def estimate(self, nudged, beta):
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


VARIANTS: dict[str, type[AbstractContrast]] = {"centered": Centered, "positive": Positive, "negative": Negative}
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
