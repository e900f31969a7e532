"""Hand-written JAX test systems, built directly as `LagrangianModel`s.

These do not go through the SymPy compiler, so integrator and EqProp tests stay independent
of it. Every builder returns `(model, params)`; `params` is a dict of float64-ready arrays
(convert with `jnp.asarray` under `jax_enable_x64`, which `tests/conftest.py` switches on).

Systems:
- `double_pendulum`: non-separable (velocity coupling through cos(θ₁ − θ₂)).
- `fpu_chain`: FPU-β chain of masses between two walls, optional time-dependent wall
  stiffness and an input force on the first mass; separable with diagonal mass.
- `free_chain`: the same chain without walls (translation invariant: Σp is a Noether momentum).
- `harmonic_oscillator`, `driven_oscillator` (input u(t) as a force: L + u x),
  `damped_oscillator` (Lagrange–d'Alembert force −c v), `caldirola_kanai`
  (`e^{γt}(½mv² − ½kx²)`, time-dependent and variational).

Analytic solutions for the oscillators are provided next to them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lagrangian_eqprop import LagrangianModel, SeparableStructure


def _f64(d):
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in d.items()}


# ------------------------------------------------------------------ double pendulum
def double_pendulum(m1=1.0, m2=1.0, l1=1.0, l2=1.0, g=9.81):
    """Planar double pendulum, angles from the downward vertical (non-separable)."""

    def lagrangian(q, v, t, params, u):
        th1, th2 = q[0], q[1]
        w1, w2 = v[0], v[1]
        m1, m2, l1, l2, g = (params[k] for k in ("m1", "m2", "l1", "l2", "g"))
        kinetic = (
            0.5 * (m1 + m2) * l1**2 * w1**2
            + 0.5 * m2 * l2**2 * w2**2
            + m2 * l1 * l2 * w1 * w2 * jnp.cos(th1 - th2)
        )
        potential = -(m1 + m2) * g * l1 * jnp.cos(th1) - m2 * g * l2 * jnp.cos(th2)
        return kinetic - potential

    model = LagrangianModel(
        lagrangian,
        ("theta1", "theta2"),
        {"m1": (), "m2": (), "l1": (), "l2": (), "g": ()},
        separable=None,
        time_reversible=True,
    )
    return model, _f64(dict(m1=m1, m2=m2, l1=l1, l2=l2, g=g))


# ------------------------------------------------------------------ chains
def _chain_potential(walls: bool, time_dependent: bool, driven: bool):
    def potential(q, t, params, u):
        k, beta = params["k"], params["beta"]
        if walls:
            padded = jnp.concatenate([jnp.zeros((1,), q.dtype), q, jnp.zeros((1,), q.dtype)])
        else:
            padded = q
        r = jnp.diff(padded)
        springs = 0.5 * k * r**2 + 0.25 * beta * r**4
        if walls and time_dependent:
            # Left wall spring modulated in time: ½ k (1 + a sin(ω t)) q₀² extra.
            springs = springs.at[0].add(0.5 * k * params["a"] * jnp.sin(params["omega"] * t) * q[0] ** 2)
        value = jnp.sum(springs)
        if driven:
            value = value - u[0] * q[0]
        return value

    return potential


def _chain_model(num_masses, walls, time_dependent, driven, params):
    potential = _chain_potential(walls, time_dependent, driven)

    def mass_fn(params):
        return params["m"]

    def lagrangian(q, v, t, params, u):
        return 0.5 * jnp.sum(params["m"] * v**2) - potential(q, t, params, u)

    shapes = {"m": (num_masses,), "k": (), "beta": ()}
    if time_dependent:
        shapes.update(a=(), omega=())
    model = LagrangianModel(
        lagrangian,
        tuple(f"x{i}" for i in range(num_masses)),
        shapes,
        input_names=("u",) if driven else (),
        separable=SeparableStructure(mass_fn, potential, True),
        time_reversible=True,  # even in v, no force: the echo applies (inputs fed backwards)
    )
    return model, _f64(params)


def fpu_chain(num_masses=6, *, k=1.0, beta=1.0, masses=None, time_dependent=False, driven=False,
              a=0.3, omega=1.3):
    """FPU-β chain between two fixed walls: `V = Σ ½k r² + ¼β r⁴` over the n+1 springs.

    `time_dependent` modulates the left wall spring (`a`, `omega`); `driven` adds an input
    force `u(t)` on the first mass (`−u q₀` in V, one input named "u").
    """
    if masses is None:
        masses = 1.0 + 0.1 * np.arange(num_masses) / max(num_masses - 1, 1)
    params = dict(m=np.asarray(masses, float), k=k, beta=beta)
    if time_dependent:
        params.update(a=a, omega=omega)
    return _chain_model(num_masses, True, time_dependent, driven, params)


def free_chain(num_masses=5, *, k=1.0, beta=0.5, masses=None):
    """FPU-β chain without walls: translation invariant, total momentum Σp is conserved."""
    if masses is None:
        masses = 1.0 + 0.25 * np.arange(num_masses)
    params = dict(m=np.asarray(masses, float), k=k, beta=beta)
    return _chain_model(num_masses, False, False, False, params)


def chain_energy(model, params, q, p, t=0.0, u=None):
    """Energy `½pᵀM⁻¹p + V(q, t)` from position and (discrete) momentum; batched over rows."""
    sep = model.separable
    q = jnp.atleast_2d(q)
    p = jnp.atleast_2d(p)
    m = sep.mass_fn(params)
    kinetic = 0.5 * jnp.sum(p**2 / m[None, :], axis=-1)
    u = model.default_input(q.dtype) if u is None else u
    potential = jax.vmap(lambda qq: sep.potential_fn(qq, t, params, u))(q)
    return kinetic + potential


# ------------------------------------------------------------------ oscillators
def harmonic_oscillator(m=1.0, k=1.0):
    """`L = ½mv² − ½kx²` (separable)."""

    def potential(q, t, params, u):
        return 0.5 * params["k"] * jnp.sum(q**2)

    def lagrangian(q, v, t, params, u):
        return 0.5 * params["m"] * jnp.sum(v**2) - potential(q, t, params, u)

    model = LagrangianModel(
        lagrangian, ("x",), {"m": (), "k": ()},
        separable=SeparableStructure(lambda p: jnp.reshape(p["m"], (1,)), potential, True),
    )
    return model, _f64(dict(m=m, k=k))


def driven_oscillator(m=1.0, k=1.0):
    """`L = ½mv² − ½kx² + u(t) x`: a harmonic oscillator with an external force input u."""

    def potential(q, t, params, u):
        return 0.5 * params["k"] * jnp.sum(q**2) - u[0] * q[0]

    def lagrangian(q, v, t, params, u):
        return 0.5 * params["m"] * jnp.sum(v**2) - potential(q, t, params, u)

    model = LagrangianModel(
        lagrangian, ("x",), {"m": (), "k": ()}, input_names=("u",),
        separable=SeparableStructure(lambda p: jnp.reshape(p["m"], (1,)), potential, True),
    )
    return model, _f64(dict(m=m, k=k))


def damped_oscillator(m=1.0, k=1.0, c=0.3):
    """`L = ½mv² − ½kx²` with the Lagrange–d'Alembert force `F = −c v`."""

    def lagrangian(q, v, t, params, u):
        return 0.5 * params["m"] * jnp.sum(v**2) - 0.5 * params["k"] * jnp.sum(q**2)

    def force(q, v, t, params, u):
        return -params["c"] * v

    def potential(q, t, params, u):
        return 0.5 * params["k"] * jnp.sum(q**2)

    model = LagrangianModel(
        lagrangian, ("x",), {"m": (), "k": (), "c": ()},
        force_fn=force,
        separable=SeparableStructure(lambda p: jnp.reshape(p["m"], (1,)), potential, True),
        time_reversible=False,
    )
    return model, _f64(dict(m=m, k=k, c=c))


def caldirola_kanai(m=1.0, k=1.0, gamma=0.3):
    """`L = e^{γt}(½mv² − ½kx²)`: variational but time-dependent (not separable: M depends on t)."""

    def lagrangian(q, v, t, params, u):
        m, k, g = params["m"], params["k"], params["gamma"]
        return jnp.exp(g * t) * (0.5 * m * jnp.sum(v**2) - 0.5 * k * jnp.sum(q**2))

    model = LagrangianModel(
        lagrangian, ("x",), {"m": (), "k": (), "gamma": ()},
        separable=None, time_reversible=True,  # even in v: the echo runs anti-damped, exactly
    )
    return model, _f64(dict(m=m, k=k, gamma=gamma))


def damped_solution(t, x0, v0, m, k, c):
    """Analytic solution of `m x'' + c x' + k x = 0` (underdamped), returns `x(t)`.

    Also the Caldirola–Kanai solution with `c = γ m`: `x = e^{−γt/2}(A cos ω_d t + B sin ω_d t)`.
    """
    t = np.asarray(t, float)
    gamma = c / m
    wd = np.sqrt(k / m - 0.25 * gamma**2)
    a = x0
    b = (v0 + 0.5 * gamma * x0) / wd
    return np.exp(-0.5 * gamma * t) * (a * np.cos(wd * t) + b * np.sin(wd * t))


# ------------------------------------------------------------------ a model that fails
def sqrt_well(k=0.01):
    """`L = ½ẋ² − k√x`: the force `−k/(2√x)` is NaN once x < 0, which a particle released
    towards the wall reaches after a few steps (a solve that fails at a known step from finite
    inputs). Separable, so the trapezoid rule takes the explicit path."""

    def potential(q, t, params, u):
        return params["k"] * jnp.sum(jnp.sqrt(q))

    def lagrangian(q, v, t, params, u):
        return 0.5 * jnp.sum(v**2) - potential(q, t, params, u)

    model = LagrangianModel(lagrangian, ("x",), {"k": ()},
                            separable=SeparableStructure(lambda p: jnp.ones(1), potential, True))
    return model, _f64(dict(k=k))
