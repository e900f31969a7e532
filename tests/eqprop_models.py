"""Extra hand-written test systems for `tests/test_eqprop.py` (not in `tests/models.py`).

- `magnetic_particle`: a charged particle in a uniform magnetic field, `L` has a term linear in
  the velocity, so `L(q, −v) ≠ L(q, v)`: not time-reversible. Compiled with
  `compile_lagrangian` when the SymPy front end is importable (its `time_reversible` is then
  detected symbolically), else written by hand.
"""

from __future__ import annotations

import jax.numpy as jnp

from lagrangian_eqprop import LagrangianModel


def magnetic_particle(m=1.0, k=1.0, b=0.7):
    """`L = ½m(ẋ² + ẏ²) + ½b(x ẏ − y ẋ) − ½k(x² + y²)` (uniform field b, harmonic trap k).

    **Returns:** `(model, params, compiled)`; `compiled` says whether `compile_lagrangian` built it.
    """
    params = {name: jnp.asarray(value, dtype=jnp.float64) for name, value in dict(m=m, k=k, b=b).items()}
    try:
        import sympy

        from lagrangian_eqprop import compile_lagrangian
    except ImportError:
        compile_lagrangian = None
    if compile_lagrangian is not None:
        t = sympy.Symbol("t")
        x, y = sympy.Function("x")(t), sympy.Function("y")(t)
        ms, ks, bs = sympy.symbols("m k b")
        xd, yd = x.diff(t), y.diff(t)
        L = ms / 2 * (xd**2 + yd**2) + bs / 2 * (x * yd - y * xd) - ks / 2 * (x**2 + y**2)
        return compile_lagrangian(L, [x, y], [ms, ks, bs]), params, True

    def lagrangian(q, v, t, params, u):
        x, y = q[0], q[1]
        xd, yd = v[0], v[1]
        return (
            0.5 * params["m"] * (xd**2 + yd**2)
            + 0.5 * params["b"] * (x * yd - y * xd)
            - 0.5 * params["k"] * (x**2 + y**2)
        )

    model = LagrangianModel(lagrangian, ("x", "y"), {"m": (), "k": (), "b": ()}, time_reversible=False)
    return model, params, False
