"""Nudging costs `c_k(q)`.

Any JAX callable `cost(k, q) -> scalar` (k the node index, q of shape `(n,)`) is a cost; the
classes here are conveniences. They are equinox Modules, so their targets are pytree leaves:
a batch of targets can be `vmap`ped and they pass through `jit` and custom-VJP wrappers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .errors import InputError

__all__ = ["ReadoutCost", "TerminalCost", "TrackingCost", "check_cost", "trajectory_cost"]


def _index_array(indices) -> tuple[int, ...]:
    return tuple(int(i) for i in np.atleast_1d(np.asarray(indices)))


class TrackingCost(eqx.Module):
    """`c_k(q) = ½ w ‖q[indices] − target[k]‖²` for `k ≥ start` (zero before).

    **Fields:**
    - `target`: target signal at the nodes, shape `(N+1, d)` with `d = len(indices)`.
    - `indices`: which coordinates are tracked (static tuple of ints).
    - `weight`: scalar weight `w` (default 1).
    - `start`: first node that is tracked (default 0; the echo's loss starts at node 1 anyway).
    """

    analytic: ClassVar[bool] = True  # continues to complex states (the holomorphic echo)

    target: Float[Array, "N1 d"]
    indices: tuple[int, ...] = eqx.field(static=True)
    weight: float = 1.0
    start: int = eqx.field(static=True, default=0)

    def __init__(self, target, indices: Sequence[int] | int, weight: float = 1.0, start: int = 0):
        self.indices = _index_array(indices)
        target = jnp.asarray(target)
        if target.ndim == 1:
            target = target[:, None]
        if target.shape[1] != len(self.indices):
            raise InputError(
                f"TrackingCost: target has {target.shape[1]} column(s) but {len(self.indices)} "
                f"tracked coordinate(s) {self.indices}."
            )
        self.target = target
        self.weight = weight
        self.start = start

    def __call__(self, k, q):
        diff = q[jnp.asarray(self.indices)] - self.target[k]
        return jnp.where(k >= self.start, 0.5 * self.weight * jnp.sum(diff**2), 0.0)


class TerminalCost(eqx.Module):
    """`c_k(q) = ½ w ‖q[indices] − target‖²` at the final node `k = final_step` only.

    **Fields:**
    - `target`: shape `(d,)`.
    - `indices`: tracked coordinates (static).
    - `final_step`: the node `N` where the cost is applied (static).
    - `weight`: scalar weight.
    """

    analytic: ClassVar[bool] = True

    target: Float[Array, " d"]
    indices: tuple[int, ...] = eqx.field(static=True)
    final_step: int = eqx.field(static=True)
    weight: float = 1.0

    def __init__(self, target, indices, final_step: int, weight: float = 1.0):
        self.indices = _index_array(indices)
        self.target = jnp.atleast_1d(jnp.asarray(target))
        if self.target.shape != (len(self.indices),):
            raise InputError(
                f"TerminalCost: target shape {self.target.shape} does not match "
                f"{len(self.indices)} coordinate(s) {self.indices}."
            )
        self.final_step = int(final_step)
        self.weight = weight

    def __call__(self, k, q):
        diff = q[jnp.asarray(self.indices)] - self.target
        return jnp.where(k == self.final_step, 0.5 * self.weight * jnp.sum(diff**2), 0.0)


class ReadoutCost(eqx.Module):
    """Classification readout: softmax cross-entropy of class scores read from coordinates.

    Scores `s_c = scale · (q[i_c] − center_c)` (`score="linear"`) or `scale · (q[i_c] −
    center_c)²` (`score="squared"`: how far readout c is displaced, whatever its sign — the
    phase-independent choice when the readouts oscillate), one readout coordinate `i_c` per
    class. The cross-entropy is applied on the last `window` nodes (`final_step − window < k ≤
    final_step`), averaged over them.

    **Fields:**
    - `label`: integer class, shape `()`.
    - `indices`: readout coordinates, one per class (static).
    - `final_step`: last node `N` (static).
    - `window`: number of final nodes that carry the cost (static, default 1).
    - `scale`: logit scale.
    - `center`: `(C,)` rest positions subtracted from the readouts (default zeros).
    - `score`: `"linear"` (default) or `"squared"` (static).
    """

    analytic: ClassVar[bool] = False  # log-softmax compares values: no analytic continuation

    label: Int[Array, ""]
    center: Float[Array, " C"]
    indices: tuple[int, ...] = eqx.field(static=True)
    final_step: int = eqx.field(static=True)
    window: int = eqx.field(static=True, default=1)
    scale: float = 1.0
    score: str = eqx.field(static=True, default="linear")

    def __init__(self, label, indices, final_step: int, window: int = 1, scale: float = 1.0, center=None,
                 score: str = "linear"):
        self.label = jnp.asarray(label, dtype=jnp.int32)
        self.indices = _index_array(indices)
        self.final_step = int(final_step)
        self.window = int(window)
        self.scale = scale
        self.center = jnp.zeros(len(self.indices)) if center is None else jnp.asarray(center)
        if score not in ("linear", "squared"):
            raise InputError(f"ReadoutCost: score must be 'linear' or 'squared', got {score!r}.")
        self.score = score
        if self.center.shape != (len(self.indices),):
            raise InputError(f"ReadoutCost: center has shape {self.center.shape}, expected ({len(self.indices)},).")

    def logits(self, q):
        """Class scores, shape `(num_classes,)`, at one node."""
        offset = q[jnp.asarray(self.indices)] - self.center
        return self.scale * (offset if self.score == "linear" else offset**2)

    def __call__(self, k, q):
        log_probs = jax.nn.log_softmax(self.logits(q))
        xent = -log_probs[self.label]
        active = (k > self.final_step - self.window) & (k <= self.final_step)
        return jnp.where(active, xent / self.window, 0.0)


def trajectory_cost(cost, q: Float[Array, "N1 n"], start: int = 1) -> Float[Array, ""]:
    """`Σ_{k=start..N} cost(k, q_k)` over a stored trajectory `q` of shape `(N+1, n)`."""
    ks = jnp.arange(q.shape[0])
    values = jax.vmap(cost)(ks, q)
    return jnp.sum(jnp.where(ks >= start, values, 0.0))


def check_cost(cost, num_dof: int, num_steps: int) -> None:
    """Check a cost's data against the problem before anything runs (eagerly; costs that are
    plain callables are not inspected). Raises `InputError` naming both shapes."""
    indices = getattr(cost, "indices", None)
    if indices is not None:
        bad = [i for i in indices if not -num_dof <= i < num_dof]
        if bad:
            raise InputError(f"{type(cost).__name__}: indices {list(indices)} name coordinate(s) {bad}, but the "
                             f"model has {num_dof} coordinate(s) (valid 0..{num_dof - 1}).")
    target = getattr(cost, "target", None)
    if isinstance(cost, TrackingCost) and target is not None and not isinstance(target, jax.core.Tracer):
        if target.shape[0] != num_steps + 1:
            raise InputError(f"TrackingCost: target has {target.shape[0]} rows (shape {tuple(target.shape)}) but the "
                             f"problem has num_steps + 1 = {num_steps + 1} nodes.")
    for name in ("final_step",):
        value = getattr(cost, name, None)
        if value is not None and not 0 <= value <= num_steps:
            raise InputError(f"{type(cost).__name__}: {name}={value} is outside the nodes 0..{num_steps}.")
