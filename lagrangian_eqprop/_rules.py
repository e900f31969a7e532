"""Quadrature rules of one-interval discrete Lagrangians: `Midpoint`, `Trapezoid`, `GalerkinLobatto`.

A rule describes how `∫ L dt` over one step is approximated: the control points of the
interpolating polynomial on the interval (`q_a`, internal points, `q_b`), the quadrature
abscissae `τ_i ∈ [0, 1]` and weights `w_i`, and the values `φ_j(τ_i)` and derivatives `φ_j'(τ_i)`
of the Lagrange basis at the abscissae (Marsden & West 2001, §2.2). Rules are equinox Modules
whose data are static tuples, so they are hashable and free to pass through `jit`.

`RULES` maps the string shorthands (`"midpoint"`, `"trapezoid"`, `"galerkin"`) to the classes;
`as_rule` turns a shorthand or a rule object into a rule object.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import equinox as eqx
import numpy as np

from ._names import RULE_NAMES
from .errors import InputError

__all__ = ["RULES", "AbstractRule", "GalerkinLobatto", "Midpoint", "Trapezoid", "as_rule", "make_rule"]


def _as_tuple(a) -> tuple:
    a = np.asarray(a, dtype=float)
    return tuple(_as_tuple(r) for r in a) if a.ndim > 1 else tuple(float(x) for x in a)


class AbstractRule(eqx.Module):
    """A one-interval quadrature of the action (see the module docstring).

    Properties (NumPy arrays): `nodes` `(n_quad,)`, `weights` `(n_quad,)` (summing to 1),
    `interpolation` `Φ[i, j] = φ_j(τ_i)` and `differentiation` `D[i, j] = φ_j'(τ_i)` (per unit
    τ), both `(n_quad, s + 1)`; `order` (nominal order of accuracy); `num_internal` (`s − 1`
    internal control points); `name`.
    """

    shorthand: ClassVar[str]

    @property
    def name(self) -> str:
        return self.shorthand

    @property
    def order(self) -> int:
        raise NotImplementedError

    def _tables(self) -> tuple:
        """`(nodes, weights, interpolation, differentiation)` as nested tuples."""
        raise NotImplementedError

    nodes = property(lambda self: np.asarray(self._tables()[0]))
    weights = property(lambda self: np.asarray(self._tables()[1]))
    interpolation = property(lambda self: np.asarray(self._tables()[2]))
    differentiation = property(lambda self: np.asarray(self._tables()[3]))

    @property
    def num_internal(self) -> int:
        """Number of internal control points `s − 1`."""
        return self.interpolation.shape[1] - 2

    def allows_explicit_step(self, model) -> bool:
        """Whether a step of this rule on `model` is explicit (no Newton solve)."""
        return False


class Midpoint(AbstractRule):
    """Implicit midpoint: `L_d = h L((q_a + q_b)/2, (q_b − q_a)/h, t_a + h/2)`, order 2."""

    shorthand: ClassVar[str] = "midpoint"

    @property
    def order(self) -> int:
        return 2

    def _tables(self):
        return ((0.5,), (1.0,), ((0.5, 0.5),), ((-1.0, 1.0),))


class Trapezoid(AbstractRule):
    """`L_d = (h/2)[L(q_a, v, t_a) + L(q_b, v, t_b)]`, `v = (q_b − q_a)/h`, order 2.

    For `L = ½vᵀMv − V(q, t)` with constant `M` (and no non-conservative force) a step is
    Störmer–Verlet and explicit.
    """

    shorthand: ClassVar[str] = "trapezoid"

    @property
    def order(self) -> int:
        return 2

    def _tables(self):
        return ((0.0, 1.0), (0.5, 0.5), ((1.0, 0.0), (0.0, 1.0)), ((-1.0, 1.0), (-1.0, 1.0)))

    def allows_explicit_step(self, model) -> bool:
        return model.separable is not None and model.force_fn is None and not model.constrained


def _lobatto(num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Lobatto nodes and weights on [0, 1] (endpoints included)."""
    if num_points == 2:
        return np.array([0.0, 1.0]), np.array([0.5, 0.5])
    # Interior nodes are the roots of P'_{s}(x), s = num_points − 1, on [−1, 1].
    s = num_points - 1
    legendre = np.polynomial.legendre.Legendre.basis(s)
    interior = np.sort(np.real(legendre.deriv().roots()))
    x = np.concatenate([[-1.0], interior, [1.0]])
    weights = 2.0 / (s * (s + 1) * legendre(x) ** 2)
    return (x + 1.0) / 2.0, weights / 2.0


def _lagrange_matrices(control: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and derivatives of the Lagrange basis on `control` at `points`."""
    k = len(control)
    values = np.zeros((len(points), k))
    derivs = np.zeros((len(points), k))
    for j in range(k):
        others = np.delete(control, j)
        denom = np.prod(control[j] - others)
        poly = np.poly1d(others, r=True) / denom
        values[:, j] = poly(points)
        derivs[:, j] = poly.deriv()(points)
    return values, derivs


@functools.lru_cache(maxsize=None)
def _galerkin_tables(degree: int) -> tuple:
    nodes, weights = _lobatto(degree + 1)
    phi, dphi = _lagrange_matrices(nodes, nodes)
    return tuple(_as_tuple(a) for a in (nodes, weights, phi, dphi))


class GalerkinLobatto(AbstractRule):
    """Galerkin discrete Lagrangian: a polynomial of `degree` on the interval, Gauss–Lobatto
    quadrature on its `degree + 1` control points, order `2·degree` (degree 1 is the trapezoid
    rule). The `degree − 1` internal points are solved by Newton inside every evaluation.

    **Arguments:** `degree` (≥ 1, default 2 → order 4).
    """

    shorthand: ClassVar[str] = "galerkin"
    degree: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        if isinstance(self.degree, bool) or int(self.degree) != self.degree or self.degree < 1:
            raise InputError(f"Galerkin degree must be a positive integer, got {self.degree!r}.")

    @property
    def name(self) -> str:
        return f"galerkin{self.degree}"

    @property
    def order(self) -> int:
        return 2 * int(self.degree)

    def _tables(self):
        return _galerkin_tables(int(self.degree))

    def allows_explicit_step(self, model) -> bool:
        return self.degree == 1 and Trapezoid().allows_explicit_step(model)


RULES: dict[str, type[AbstractRule]] = {"midpoint": Midpoint, "trapezoid": Trapezoid, "galerkin": GalerkinLobatto}
assert tuple(RULES) == RULE_NAMES


def as_rule(rule, degree: int = 2) -> AbstractRule:
    """A rule object from a shorthand (`"midpoint"`, `"trapezoid"`, `"galerkin"`, with `degree`
    for Galerkin) or a rule object (returned as is)."""
    if isinstance(rule, AbstractRule):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return GalerkinLobatto(degree) if rule == "galerkin" else RULES[rule]()
    raise InputError(
        f"Unknown rule {rule!r}; choose one of {', '.join(RULES)} or a rule object "
        "(lep.Midpoint(), lep.Trapezoid(), lep.GalerkinLobatto(degree=2))."
    )


def make_rule(rule: str, degree: int = 2) -> AbstractRule:
    """Shorthand for `as_rule` (kept for existing code)."""
    return as_rule(rule, degree)
