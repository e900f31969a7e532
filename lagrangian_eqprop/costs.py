"""Nudging costs `c_k(q)`.

Any JAX callable `cost(k, q) -> scalar` (k the node index, q of shape `(n,)`) is a cost; the
classes here are conveniences. They are equinox Modules, so their targets are pytree leaves:
a batch of targets can be `vmap`ped and they pass through `jit` and custom-VJP wrappers.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


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
            raise ValueError(
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

    target: Float[Array, " d"]
    indices: tuple[int, ...] = eqx.field(static=True)
    final_step: int = eqx.field(static=True)
    weight: float = 1.0

    def __init__(self, target, indices, final_step: int, weight: float = 1.0):
        self.indices = _index_array(indices)
        self.target = jnp.atleast_1d(jnp.asarray(target))
        if self.target.shape != (len(self.indices),):
            raise ValueError(
                f"TerminalCost: target shape {self.target.shape} does not match "
                f"{len(self.indices)} coordinate(s) {self.indices}."
            )
        self.final_step = int(final_step)
        self.weight = weight

    def __call__(self, k, q):
        diff = q[jnp.asarray(self.indices)] - self.target
        return jnp.where(k == self.final_step, 0.5 * self.weight * jnp.sum(diff**2), 0.0)


class ReadoutCost(eqx.Module):
    """Classification readout: softmax cross-entropy of `scale · q[indices]` against `label`.

    Applied on the last `window` nodes (`final_step − window < k ≤ final_step`), averaged over
    them, so the class is read from the state of the readout coordinates at the end.

    **Fields:**
    - `label`: integer class, shape `()`.
    - `indices`: readout coordinates, one per class (static).
    - `final_step`: last node `N` (static).
    - `window`: number of final nodes that carry the cost (static, default 1).
    - `scale`: logit scale (turns positions into logits).
    """

    label: Int[Array, ""]
    indices: tuple[int, ...] = eqx.field(static=True)
    final_step: int = eqx.field(static=True)
    window: int = eqx.field(static=True, default=1)
    scale: float = 1.0

    def __init__(self, label, indices, final_step: int, window: int = 1, scale: float = 1.0):
        self.label = jnp.asarray(label, dtype=jnp.int32)
        self.indices = _index_array(indices)
        self.final_step = int(final_step)
        self.window = int(window)
        self.scale = scale

    def logits(self, q):
        """Class scores `scale · q[indices]`, shape `(num_classes,)`."""
        return self.scale * q[jnp.asarray(self.indices)]

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
