"""Single-degree-of-freedom oscillators: harmonic, driven, damped, Caldirola–Kanai.

All four use the whole-expression compiler on the coordinate `x(t)`.
"""

from __future__ import annotations

import sympy
from sympy.physics.mechanics import dynamicsymbols

from lagrangian_eqprop import compile_lagrangian

from ._system import System, make_system

_t = dynamicsymbols._t


def _symbols():
    x = dynamicsymbols("x")
    m, k = sympy.symbols("m k")
    xdot = x.diff(_t)
    return x, xdot, m, k


def harmonic_oscillator(mass: float = 1.0, stiffness: float = 1.0, x0: float = 1.0,
                        v0: float = 0.0) -> System:
    r"""Harmonic oscillator.

    $$ L = \tfrac12 m \dot x^2 - \tfrac12 k x^2 $$

    Parameters `m`, `k`. Separable and time-reversible.

    **Arguments:** default values of `m`, `k` and the initial state.

    **Returns:** a `System`.
    """
    x, xdot, m, k = _symbols()
    L = sympy.Rational(1, 2) * m * xdot**2 - sympy.Rational(1, 2) * k * x**2
    model = compile_lagrangian(L, [x], parameters=[m, k], time=_t)
    return make_system(model, {"m": mass, "k": stiffness}, [x0], [v0])


def driven_oscillator(mass: float = 1.0, stiffness: float = 1.0, x0: float = 0.0,
                      v0: float = 0.0) -> System:
    r"""Harmonic oscillator driven by an input force `u(t)`.

    $$ L = \tfrac12 m \dot x^2 - \tfrac12 k x^2 + u(t)\, x $$

    Parameters `m`, `k`; one input `u`. Separable and time-reversible (inputs are fed backwards
    in an echo).

    **Returns:** a `System` (rest initial state by default).
    """
    x, xdot, m, k = _symbols()
    u = dynamicsymbols("u")
    L = sympy.Rational(1, 2) * m * xdot**2 - sympy.Rational(1, 2) * k * x**2 + u * x
    model = compile_lagrangian(L, [x], parameters=[m, k], inputs=[u], time=_t)
    return make_system(model, {"m": mass, "k": stiffness}, [x0], [v0])


def damped_oscillator(mass: float = 1.0, stiffness: float = 1.0, damping: float = 0.1,
                      x0: float = 1.0, v0: float = 0.0) -> System:
    r"""Harmonic oscillator with viscous friction as a Lagrange–d'Alembert force.

    $$ L = \tfrac12 m \dot x^2 - \tfrac12 k x^2, \qquad Q = -c\,\dot x $$

    Parameters `m`, `k`, `c`. Separable, **not** time-reversible (the force breaks the
    variational structure; the echo is not exact).

    **Returns:** a `System`.
    """
    x, xdot, m, k = _symbols()
    c = sympy.Symbol("c")
    L = sympy.Rational(1, 2) * m * xdot**2 - sympy.Rational(1, 2) * k * x**2
    model = compile_lagrangian(L, [x], parameters=[m, k, c], time=_t, forces=[-c * xdot])
    return make_system(model, {"m": mass, "k": stiffness, "c": damping}, [x0], [v0])


def caldirola_kanai_oscillator(mass: float = 1.0, stiffness: float = 1.0, gamma: float = 0.1,
                               x0: float = 1.0, v0: float = 0.0) -> System:
    r"""Caldirola–Kanai oscillator: damping from an explicitly time-dependent Lagrangian.

    $$ L = e^{\gamma t}\left(\tfrac12 m \dot x^2 - \tfrac12 k x^2\right) $$

    Its Euler–Lagrange equation is $m\ddot x + \gamma m \dot x + k x = 0$. Parameters `m`, `k`,
    `gamma` (trainable damping rate). Variational and even in velocity, so time-reversible (the
    echo runs anti-damped); not separable (the mass $e^{\gamma t} m$ depends on time).

    **Returns:** a `System`.
    """
    x, xdot, m, k = _symbols()
    gamma_symbol = sympy.Symbol("gamma")
    L = sympy.exp(gamma_symbol * _t) * (
        sympy.Rational(1, 2) * m * xdot**2 - sympy.Rational(1, 2) * k * x**2)
    model = compile_lagrangian(L, [x], parameters=[m, k, gamma_symbol], time=_t)
    return make_system(model, {"m": mass, "k": stiffness, "gamma": gamma}, [x0], [v0])
