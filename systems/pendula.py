"""Pendula: a chain of torsionally coupled pendula (network compiler) and the double pendulum
(whole-expression compiler, non-separable)."""

from __future__ import annotations

import numpy as np
import sympy
from sympy.physics.mechanics import dynamicsymbols

from lagrangian_eqprop.errors import LagrangianError
from lagrangian_eqprop import EdgeTerm, NodeTerm, compile_lagrangian, compile_network

from ._system import System, make_system, one_hot

_t = dynamicsymbols._t


def pendulum_chain(
    n: int = 4,
    gravity: float = 9.81,
    mass: float = 1.0,
    length: float = 1.0,
    coupling: float = 1.0,
    input_pendulum: int | None = None,
    amplitude: float = 0.3,
) -> System:
    r"""`n` pendula side by side, neighbours coupled by torsional springs.

    $$ L = \sum_i \Big[\tfrac12 m_i l_i^2 \dot\theta_i^2 + m_i g\, l_i \cos\theta_i\Big]
         - \sum_{i} \tfrac12 \kappa_i\,(\theta_{i+1} - \theta_i)^2
         + u(t) \sum_i b_i\,\theta_i $$

    Angles `theta_0 .. theta_{n−1}` from the downward vertical. Trainable: node `m` (masses),
    `l` (lengths), edge `kappa` (couplings); `g` is a constant. With `input_pendulum` set, an
    input torque `u(t)` acts on that pendulum through the node gain `b` (one-hot by default).
    Separable (mass `m l²` depends on parameters only) and time-reversible.

    **Returns:** a `System`; `q0` = `amplitude` on pendulum 0, others at rest.
    """
    if n < 1:
        raise LagrangianError(f"a pendulum chain needs n ≥ 1, got {n}.")
    if input_pendulum is not None and not 0 <= input_pendulum < n:
        raise LagrangianError(f"input_pendulum {input_pendulum} is not in 0..{n - 1}.")
    theta, theta_a, theta_b = (dynamicsymbols(name) for name in ("theta", "theta_a", "theta_b"))
    m, l, kappa, b = sympy.symbols("m l kappa b")
    g = sympy.Float(gravity)
    node_expr = (sympy.Rational(1, 2) * m * l**2 * theta.diff(_t) ** 2
                 + m * g * l * sympy.cos(theta))
    node_parameters = [m, l]
    inputs = []
    if input_pendulum is not None:
        u = dynamicsymbols("u")
        node_expr += b * u * theta
        node_parameters.append(b)
        inputs.append(u)
    node = NodeTerm(node_expr, [theta], node_parameters, inputs, name="pendulum")
    edge = EdgeTerm(-sympy.Rational(1, 2) * kappa * (theta_b - theta_a) ** 2,
                    ([theta_a], [theta_b]), [kappa], name="torsion spring")
    edges = [(i, i + 1) for i in range(n - 1)]
    model = compile_network(n, edges, [node], [edge] if edges else [], dim=1, time=_t,
                            inputs=inputs, coordinate_names=["theta"])
    params = {"m": mass, "l": length}
    if edges:
        params["kappa"] = coupling
    if input_pendulum is not None:
        params["b"] = one_hot(n, input_pendulum)
    q0 = np.zeros(n)
    q0[0] = amplitude
    return make_system(model, params, q0, np.zeros(n))


def double_pendulum(
    gravity: float = 9.81,
    masses: tuple[float, float] = (1.0, 1.0),
    lengths: tuple[float, float] = (1.0, 1.0),
    theta0: tuple[float, float] = (0.5, -0.3),
    omega0: tuple[float, float] = (0.0, 0.0),
) -> System:
    r"""Planar double pendulum (angles from the downward vertical).

    $$ L = \tfrac12 (m_1 + m_2)\, l_1^2 \dot\theta_1^2 + \tfrac12 m_2 l_2^2 \dot\theta_2^2
         + m_2 l_1 l_2\, \dot\theta_1 \dot\theta_2 \cos(\theta_1 - \theta_2)
         + (m_1 + m_2)\, g\, l_1 \cos\theta_1 + m_2\, g\, l_2 \cos\theta_2 $$

    Trainable `m1`, `m2`, `l1`, `l2`; `g` is a constant. Not separable (the mass matrix depends
    on `θ₁ − θ₂`), time-reversible.

    **Returns:** a `System`.
    """
    theta1, theta2 = dynamicsymbols("theta1 theta2")
    m1, m2, l1, l2 = sympy.symbols("m1 m2 l1 l2")
    g = sympy.Float(gravity)
    w1, w2 = theta1.diff(_t), theta2.diff(_t)
    half = sympy.Rational(1, 2)
    L = (half * (m1 + m2) * l1**2 * w1**2 + half * m2 * l2**2 * w2**2
         + m2 * l1 * l2 * w1 * w2 * sympy.cos(theta1 - theta2)
         + (m1 + m2) * g * l1 * sympy.cos(theta1) + m2 * g * l2 * sympy.cos(theta2))
    model = compile_lagrangian(L, [theta1, theta2], parameters=[m1, m2, l1, l2], time=_t)
    params = {"m1": masses[0], "m2": masses[1], "l1": lengths[0], "l2": lengths[1]}
    return make_system(model, params, theta0, omega0)
