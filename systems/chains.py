"""One-dimensional mass–spring chains (network compiler): walled chain, free chain.

Masses are nodes `0 .. n−1` with coordinates `x_0 .. x_{n−1}` (absolute positions, rest
positions `i·a`); walls, when present, are fixed nodes `n` (left, at `−a`) and `n+1` (right, at
`n·a`). Node parameters have shape `(num_nodes,)` (wall entries are inert), edge parameters
`(num_edges,)` with edges ordered: left wall–mass 0 (if any), chain springs `(i, i+1)`,
mass n−1–right wall (if any).
"""

from __future__ import annotations

import numpy as np
import sympy

from lagrangian_eqprop.errors import LagrangianError
from lagrangian_eqprop import EdgeTerm, NodeTerm, compile_network

from ._system import System, make_system, one_hot

_t = sympy.Symbol("t")

_WALLS = {True: (True, True), "both": (True, True), False: (False, False), "none": (False, False),
          None: (False, False), "left": (True, False), "right": (False, True)}


def chain_terms(nonlinear: bool, with_input: bool):
    """The local node and edge terms of a 1-D chain (shared with `pendulum_chain`-style uses).

    Node: `½ m ẋ² (+ b u x)`; edge: `−½ k (x_b − x_a − l)² (− ¼ β (x_b − x_a − l)⁴)`.
    """
    x, xa, xb = (sympy.Function(name)(_t) for name in ("x", "xa", "xb"))
    m, b, k, l, beta = sympy.symbols("m b k l beta")
    u = sympy.Function("u")(_t)
    node_expr = sympy.Rational(1, 2) * m * x.diff(_t) ** 2
    node_parameters = [m]
    inputs = []
    if with_input:
        node_expr += b * u * x
        node_parameters.append(b)
        inputs.append(u)
    stretch = xb - xa - l
    edge_expr = -sympy.Rational(1, 2) * k * stretch**2
    edge_parameters = [k, l]
    if nonlinear:
        edge_expr -= sympy.Rational(1, 4) * beta * stretch**4
        edge_parameters.append(beta)
    node = NodeTerm(node_expr, [x], node_parameters, inputs, name="mass")
    edge = EdgeTerm(edge_expr, ([xa], [xb]), edge_parameters, name="spring")
    return node, edge, inputs


def mass_spring_chain(
    n: int = 5,
    walls=True,
    nonlinear: bool = False,
    input_mass: int | None = None,
    mass: float = 1.0,
    stiffness: float = 1.0,
    rest_length: float = 1.0,
    beta: float = 0.1,
    displacement: float = 0.1,
) -> System:
    r"""A 1-D chain of `n` masses joined by springs, optionally between two walls.

    $$ L = \sum_{i} \tfrac12 m_i \dot x_i^2
         - \sum_{(a,b)} \Big[\tfrac12 k_{ab} (x_b - x_a - l_{ab})^2
                              + \tfrac14 \beta_{ab} (x_b - x_a - l_{ab})^4\Big]
         + u(t) \sum_i b_i x_i $$

    The quartic (FPU-β) term is present only with `nonlinear=True`; the input term only with
    `input_mass` set. Trainable: node `m` (masses), edge `k` (stiffnesses), `l` (rest lengths),
    `beta` (nonlinear stiffness); node `b` is the input gain (one-hot on `input_mass` by
    default: the input force `u(t)` acts on that mass only; train it or keep it fixed).

    **Arguments:**
    - `n`: number of moving masses.
    - `walls`: `True`/`"both"`, `"left"`, `"right"`, or `False`/`"none"`.
    - `nonlinear`: add the FPU-β quartic spring term.
    - `input_mass`: index of the mass driven by the input force `u(t)`, or `None`.
    - `mass`, `stiffness`, `rest_length`, `beta`: default parameter values.
    - `displacement`: amplitude of the default initial displacement (lowest standing mode).

    **Returns:** a `System`; `q0` = rest positions + displacement, `v0` = 0.
    """
    if n < 1:
        raise LagrangianError(f"a chain needs at least one mass, got n={n}.")
    if walls not in _WALLS:
        raise LagrangianError(f"walls must be one of {list(_WALLS)}, got {walls!r}.")
    left, right = _WALLS[walls]
    if input_mass is not None and not 0 <= input_mass < n:
        raise LagrangianError(f"input_mass {input_mass} is not a mass index (0..{n - 1}).")
    a = rest_length
    edges = []
    fixed = {}
    num_nodes = n
    if left:
        fixed[num_nodes] = (-a,)
        edges.append((num_nodes, 0))
        num_nodes += 1
    edges += [(i, i + 1) for i in range(n - 1)]
    if right:
        fixed[num_nodes] = (n * a,)
        edges.append((n - 1, num_nodes))
        num_nodes += 1
    node, edge, inputs = chain_terms(nonlinear, input_mass is not None)
    model = compile_network(num_nodes, edges, [node], [edge], dim=1, fixed_nodes=fixed,
                            time=_t, inputs=inputs)
    params = {"m": mass, "k": stiffness, "l": rest_length}
    if nonlinear:
        params["beta"] = beta
    if input_mass is not None:
        params["b"] = one_hot(num_nodes, input_mass)
    rest = a * np.arange(n)
    if left or right:
        mode = np.sin(np.pi * (np.arange(n) + 1) / (n + 1))
    else:
        mode = np.cos(np.pi * (np.arange(n) + 0.5) / n)  # lowest free-chain mode
    return make_system(model, params, rest + displacement * mode, np.zeros(n))


def free_chain(
    n: int = 5,
    nonlinear: bool = False,
    mass: float = 1.0,
    stiffness: float = 1.0,
    rest_length: float = 1.0,
    beta: float = 0.1,
    displacement: float = 0.1,
    velocity: float = 0.1,
) -> System:
    r"""A translation-invariant chain with no walls (for Noether tests).

    $$ L = \sum_{i=0}^{n-1} \tfrac12 m_i \dot x_i^2
         - \sum_{i=0}^{n-2} \Big[\tfrac12 k_i (x_{i+1} - x_i - l_i)^2
                                 + \tfrac14 \beta_i (x_{i+1} - x_i - l_i)^4\Big] $$

    L is invariant under `x_i → x_i + ε`, so the total momentum `Σ m_i ẋ_i` is conserved.
    The quartic term only with `nonlinear=True`.

    **Returns:** a `System`; `q0` = rest positions + displacement, `v0` = `velocity` on mass 0
    (non-zero total momentum).
    """
    system = mass_spring_chain(n, walls=False, nonlinear=nonlinear, mass=mass,
                               stiffness=stiffness, rest_length=rest_length, beta=beta,
                               displacement=displacement)
    v0 = np.zeros(n)
    v0[0] = velocity
    return make_system(system.model, system.params, system.q0, v0)
