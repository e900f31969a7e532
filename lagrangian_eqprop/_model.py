"""`LagrangianModel`: a compiled scalar Lagrangian and everything derived from it by autodiff.

Only the scalar `L(q, v, t, params, u)` is compiled (from SymPy, see `_symbolic/`); momenta,
energy, mass matrix and the Euler–Lagrange vector field are derived here with JAX autodiff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Inexact, Num, Real

from .errors import InputError

__all__ = ["LagrangianModel", "ParameterShapes", "Params", "SeparableStructure", "interpolate_inputs"]

Params = dict[str, Any]
Vec = Num[ArrayLike, " _"]  # a state or input vector (its length is checked by the callers; complex in a
# holomorphic echo pass)
Time = Real[ArrayLike, ""]


class ParameterShapes(dict):
    """Read-only, hashable `{parameter name: shape}` dict.

    `LagrangianModel.parameter_shapes` is a static field, so it must be hashable: JAX hashes
    static pytree data whenever a model (or a bound method such as `model.lagrangian`) is passed
    to `jax.jit`. A plain dict would raise `TypeError: unhashable type: 'dict'`.
    """

    def __init__(self, shapes=()):
        super().__init__({str(k): tuple(int(d) for d in v) for k, v in dict(shapes).items()})

    def __hash__(self):
        return hash(tuple(self.items()))

    def _read_only(self, *args, **kwargs):
        raise TypeError("parameter_shapes is read-only")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _read_only

    def __reduce__(self):  # copy / deepcopy / pickle
        return (ParameterShapes, (dict(self),))

    def __repr__(self):
        return f"ParameterShapes({dict(self)!r})"


class SeparableStructure(eqx.Module):
    """Marks `L = ½ vᵀ M(θ) v − V(q, t, θ, u)` with a mass matrix that depends on parameters only.

    Detected symbolically by the compiler; it enables the explicit Störmer–Verlet fast path of
    the trapezoid rule.

    **Fields:**
    - `mass_fn`: `params -> (n,)` diagonal of M when `diagonal` is True, else `(n, n)`.
    - `potential_fn`: `(q (n,), t (), params, u (m,)) -> ()` the potential V.
    - `diagonal`: whether M is diagonal.
    """

    mass_fn: Callable = eqx.field(static=True)
    potential_fn: Callable = eqx.field(static=True)
    diagonal: bool = eqx.field(static=True)

    def solve_mass(self, params: Params, p: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        """Velocity `M⁻¹ p` (shape `(n,)`)."""
        mass = self.mass_fn(params)
        if self.diagonal:
            return p / mass
        return jnp.linalg.solve(mass, p)

    def apply_mass(self, params: Params, v: Inexact[Array, " n"]) -> Inexact[Array, " n"]:
        """Momentum `M v` (shape `(n,)`)."""
        mass = self.mass_fn(params)
        if self.diagonal:
            return mass * v
        return mass @ v


class LagrangianModel(eqx.Module):
    """A Lagrangian system compiled to JAX.

    Build one with `compile_lagrangian` (whole expression) or `compile_network` (per-element
    terms on a graph); the fields are filled in by those compilers.

    **Fields:**
    - `lagrangian_fn`: `(q (n,), v (n,), t (), params, u (m,)) -> ()`.
    - `force_fn`: optional non-conservative generalised force `(q, v, t, params, u) -> (n,)`
      (Lagrange–d'Alembert); `None` for a purely variational system.
    - `coordinate_names`: names of the `n` generalised coordinates.
    - `parameter_shapes`: `{name: shape}` of the trainable parameters.
    - `input_names`: names of the `m` time-varying inputs.
    - `separable`: a `SeparableStructure` when L = ½vᵀMv − V with constant M, else `None`.
    - `time_reversible`: True when `L(q, −v, t) = L(q, v, t)` and there is no force, i.e. the
      echo (momentum reversal with inputs fed backwards) retraces a free trajectory.
    - `expression`: the SymPy expression (for display), or `None`.
    - `force_expressions`: the SymPy force expressions (for display), or `None`.
    - `symbolic`: the SymPy record the model was compiled from (`SymbolicLagrangian` or
      `SymbolicNetwork` from `symbolic.py`), used only for display (`euler_lagrange_equations`).
    - `constraint_fn`: holonomic constraints `(q, v, t, params, u) -> (c,)` (independent of `v`),
      `φ(q, t) = 0`, or `None`; `num_constraints`: `c`.
    - `analytic`: whether L continues analytically to complex states (no Abs, Piecewise, ...):
      the condition for the holomorphic echo (`None`: unknown, hand-built models).
    - `autonomous`: whether L (and any force) has no explicit time dependence (detected by the
      compilers; `None`: unknown). With no inputs and no force, the energy is then conserved.
    - `input_velocity_coupling`: whether `∂²L/∂v∂u ≠ 0` (an input that enters with the
      velocities, e.g. a moving pivot): then the Euler–Lagrange equations need the input's time
      derivative `u̇`. Detected symbolically by the compilers; `None` (unknown, hand-built
      models with inputs) is treated as coupled unless the model is separable.
    """

    lagrangian_fn: Callable = eqx.field(static=True)
    coordinate_names: tuple[str, ...] = eqx.field(static=True)
    parameter_shapes: ParameterShapes = eqx.field(static=True, converter=ParameterShapes)
    input_names: tuple[str, ...] = eqx.field(static=True, default=())
    force_fn: Callable | None = eqx.field(static=True, default=None)
    separable: SeparableStructure | None = None
    time_reversible: bool = eqx.field(static=True, default=True)
    expression: Any = eqx.field(static=True, default=None)
    force_expressions: Any = eqx.field(static=True, default=None)
    symbolic: Any = eqx.field(static=True, default=None)
    input_velocity_coupling: bool | None = eqx.field(static=True, default=None)
    autonomous: bool | None = eqx.field(static=True, default=None)
    constraint_fn: Callable | None = eqx.field(static=True, default=None)
    num_constraints: int = eqx.field(static=True, default=0)
    analytic: bool | None = eqx.field(static=True, default=None)

    # ------------------------------------------------------------------ sizes
    @property
    def num_dof(self) -> int:
        """Number of generalised coordinates `n`."""
        return len(self.coordinate_names)

    @property
    def num_inputs(self) -> int:
        """Number of time-varying inputs `m`."""
        return len(self.input_names)

    def default_input(self, dtype=None) -> Float[Array, " m"]:
        """An all-zero input vector of shape `(m,)` (also used when `m == 0`)."""
        return jnp.zeros((self.num_inputs,), dtype=dtype)

    def _u(self, u, q):
        return self.default_input(jnp.result_type(q)) if u is None else jnp.asarray(u)

    @property
    def constrained(self) -> bool:
        """Whether the model carries holonomic constraints."""
        return self.constraint_fn is not None

    def constraint(self, q: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, " c"]:
        """The constraint values `φ(q, t)`, shape `(c,)` (zero on the constraint manifold)."""
        return self.constraint_fn(q, jnp.zeros_like(q), t, params, self._u(u, q))

    def constraint_jacobian(self, q: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, "c n"]:
        """`Dφ = ∂φ/∂q`, shape `(c, n)`."""
        return jax.jacfwd(self.constraint, argnums=0)(jnp.asarray(q), t, params, u)

    @property
    def conserves_energy(self) -> bool:
        """True when the energy `p·v − L` is a constant of the motion: an autonomous L, no
        inputs, no non-conservative force."""
        return self.autonomous is True and self.num_inputs == 0 and self.force_fn is None

    def highest_frequency(self, q: Vec, t: Time, params: Params, u: Vec | None = None,
                          iterations: int = 60) -> Float[Array, ""]:
        """Estimate of the highest linearised angular frequency `ω_max` at rest at `q`: the
        square root of the largest eigenvalue of `M⁻¹K`, `K = −∂²L/∂q²` at `v = 0`, by power
        iteration with Hessian-vector products (a lower bound that converges from below; the
        mass matrix is solved densely unless the model is separable)."""
        q = jnp.asarray(q)
        zero = jnp.zeros_like(q)
        u = self._u(u, q)
        if self.separable is not None:
            def stiffness(x):
                return jax.jvp(lambda qq: jax.grad(self.separable.potential_fn)(qq, t, params, u), (q,), (x,))[1]

            def solve_mass(y):
                return self.separable.solve_mass(params, y)
        else:
            mass = self.mass_matrix(q, zero, t, params, u)

            def stiffness(x):
                return -jax.jvp(lambda qq: jax.grad(self.lagrangian)(qq, zero, t, params, u), (q,), (x,))[1]

            def solve_mass(y):
                return jnp.linalg.solve(mass, y)

        def body(_, x):
            y = solve_mass(stiffness(x))
            return y / jnp.maximum(jnp.linalg.norm(y), jnp.finfo(q.dtype).tiny)

        x0 = jnp.cos(1.0 + jnp.arange(q.shape[0], dtype=q.dtype))  # fixed, generic start
        x = jax.lax.fori_loop(0, iterations, body, x0 / jnp.linalg.norm(x0))
        eigenvalue = jnp.linalg.norm(solve_mass(stiffness(x)))
        return jnp.sqrt(eigenvalue)

    @property
    def needs_input_rate(self) -> bool:
        """Whether the equations of motion need `u̇` (see `input_velocity_coupling`)."""
        if self.num_inputs == 0 or self.separable is not None:
            return False
        return self.input_velocity_coupling is not False

    # --------------------------------------------------------------- physics
    def lagrangian(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, ""]:
        """The scalar Lagrangian `L(q, v, t; θ, u)`; `q`, `v` of shape `(n,)`."""
        return self.lagrangian_fn(q, v, t, params, self._u(u, q))

    def momentum(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, " n"]:
        """Canonical momentum `p = ∂L/∂v` (continuous Legendre transform), shape `(n,)`."""
        return jax.grad(self.lagrangian, argnums=1)(q, v, t, params, u)

    def energy(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, ""]:
        """Energy function `E = p·v − L` (the Hamiltonian in velocity coordinates)."""
        return jnp.dot(self.momentum(q, v, t, params, u), v) - self.lagrangian(q, v, t, params, u)

    def mass_matrix(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, "n n"]:
        """Velocity Hessian `∂²L/∂v²`, shape `(n, n)`."""
        return jax.hessian(self.lagrangian, argnums=1)(q, v, t, params, u)

    def force(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None) -> Inexact[Array, " n"]:
        """Non-conservative generalised force (zeros when the model has none)."""
        if self.force_fn is None:
            return jnp.zeros_like(q)
        return self.force_fn(q, v, t, params, self._u(u, q))

    def acceleration(self, q: Vec, v: Vec, t: Time, params: Params, u: Vec | None = None,
                     u_dot: Vec | None = None) -> Inexact[Array, " n"]:
        """Accelerations from the Euler–Lagrange equations `d/dt ∂L/∂v − ∂L/∂q = F`.

        `M a = ∂L/∂q − (∂²L/∂v∂q) v − ∂²L/∂v∂t − (∂²L/∂v∂u) u̇ + F`, solved with a linear solve
        (never a pseudo-inverse: a singular M is a modelling error). For a separable model
        (`L = ½vᵀMv − V`, constant M) this is `M a = −∇V + F`, with no Hessian. With holonomic
        constraints, `M a = … + Dφᵀλ` together with `φ̈ = 0` (a saddle-point solve).

        **Arguments:** `u_dot` `(m,)`, the inputs' time derivative, is required when the
        inputs enter with the velocities (`needs_input_rate`); `vector_field` supplies it from
        the input path. **Raises:** `InputError` when it is needed and missing.
        """
        if self.separable is not None and not self.constrained:
            grad_potential = jax.grad(self.separable.potential_fn)(q, t, params, self._u(u, q))
            return self.separable.solve_mass(params, self.force(q, v, t, params, u) - grad_potential)
        dtype = jnp.result_type(q)
        u = self._u(u, q)
        if u_dot is None:
            if self.needs_input_rate:
                raise InputError(
                    f"the inputs {self.input_names} enter the Lagrangian with the velocities (∂²L/∂v∂u ≠ 0), so "
                    "the accelerations need their time derivative: pass u_dot (vector_field takes it from the "
                    "input path)" + ("" if self.input_velocity_coupling else "; for a hand-built model whose "
                                     "inputs do not couple to velocities, set input_velocity_coupling=False") + ".")
            u_dot = jnp.zeros_like(u)
        dL_dv = jax.grad(self.lagrangian, argnums=1)
        dL_dq = jax.grad(self.lagrangian, argnums=0)(q, v, t, params, u)
        # d/dt (∂L/∂v) along (q̇, t, u̇) with v held fixed: one forward-mode JVP.
        _, mixed = jax.jvp(
            lambda qq, tt, uu: dL_dv(qq, v, tt, params, uu),
            (q, jnp.asarray(t, dtype=dtype), u),
            (v, jnp.ones((), dtype=dtype), jnp.asarray(u_dot, dtype=u.dtype)),
        )
        rhs = dL_dq - mixed + self.force(q, v, t, params, u)
        mass = self.mass_matrix(q, v, t, params, u)
        if not self.constrained:
            return jnp.linalg.solve(mass, rhs)
        # Holonomic constraints: M a = rhs + Dφᵀλ with φ̈ = Dφ a + γ = 0, where γ is the rest of
        # the second time derivative of φ along (v, 1): a saddle-point (KKT) solve.
        t = jnp.asarray(t, dtype=dtype)

        def phi_dot(qq, tt):
            return jax.jvp(lambda a, b: self.constraint(a, b, params, u), (qq, tt), (v, jnp.ones((), dtype)))[1]

        jacobian = self.constraint_jacobian(q, t, params, u)
        _, gamma = jax.jvp(phi_dot, (q, t), (v, jnp.ones((), dtype)))
        c = self.num_constraints
        kkt = jnp.block([[mass, -jacobian.T], [jacobian, jnp.zeros((c, c), dtype)]])
        solution = jnp.linalg.solve(kkt, jnp.concatenate([rhs, -gamma]))
        return solution[: q.shape[0]]

    def vector_field(self, t, state, args) -> tuple[Array, Array]:
        """First-order field `(q, v) ↦ (v, a)` in diffrax's `(t, y, args)` convention.

        `args = (params, input_fn)` where `input_fn(t) -> (m,)` is the input path (or `None`
        without inputs); its time derivative `u̇`, which the equations need when inputs enter
        with the velocities, is taken exactly by forward-mode differentiation of `input_fn`.
        """
        q, v = state
        params, input_fn = args
        if input_fn is None:
            return v, self.acceleration(q, v, t, params)
        t = jnp.asarray(t, dtype=jnp.result_type(q))
        u, u_dot = jax.jvp(input_fn, (t,), (jnp.ones_like(t),))
        return v, self.acceleration(q, v, t, params, u, u_dot)

    def ode_term(self) -> diffrax.ODETerm:
        """The continuous Euler–Lagrange equations as a `diffrax.ODETerm` on `y = (q, v)`."""
        return diffrax.ODETerm(self.vector_field)


def interpolate_inputs(times: Real[ArrayLike, " N1"], inputs: Real[ArrayLike, "N1 m"]) -> Callable:
    """Piecewise-linear `u(t) -> (m,)` through inputs sampled at the nodes (continuous references).

    A `diffrax.LinearInterpolation`'s bound `evaluate` (a pytree, so it can be passed through
    `jit` and diffrax's adjoints as an argument). The discrete Lagrangians use the same
    piecewise-linear path, evaluated locally within each interval (see `_discrete.py`).
    """
    return diffrax.LinearInterpolation(ts=jnp.asarray(times), ys=jnp.asarray(inputs)).evaluate
