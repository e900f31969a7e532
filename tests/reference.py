"""Independent continuous references for the integrator and EqProp tests.

`reference_solution` integrates the continuous Euler–Lagrange equations
(`LagrangianModel.ode_term()`, accelerations from autodiff of L) with an adaptive
high-order Runge–Kutta method from diffrax at tight tolerances. It shares nothing with the
discrete variational machinery except the scalar Lagrangian itself.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp
import numpy as np


def reference_solution(model, params, q0, v0, t_end, times=None, input_fn=None, *, t0=0.0,
                       rtol=1e-12, atol=1e-12, solver="dopri8", max_steps=1_000_000):
    """Positions and velocities of the continuous system at `times` (default: `[t_end]`).

    **Arguments:**
    - `model`: a `LagrangianModel`; `params`: its parameter dict.
    - `q0`, `v0`: initial positions and velocities `(n,)` at `t0`.
    - `t_end`: final time; `times`: increasing save times in `[t0, t_end]`.
    - `input_fn`: `u(t) -> (m,)` for models with inputs (see `model.interpolate_inputs` for
      node-sampled inputs), or `None`.
    - `solver`: `"dopri8"` (default) or `"tsit5"`.

    **Returns:** `(q, v)` as NumPy arrays of shape `(len(times), n)`.
    """
    times = np.atleast_1d(np.asarray([t_end] if times is None else times, dtype=np.float64))
    q0 = jnp.asarray(q0, dtype=jnp.float64)
    v0 = jnp.asarray(v0, dtype=jnp.float64)
    method = {"dopri8": diffrax.Dopri8, "tsit5": diffrax.Tsit5}[solver]()
    sol = diffrax.diffeqsolve(
        model.ode_term(),
        method,
        t0=float(t0),
        t1=float(t_end),
        dt0=None,
        y0=(q0, v0),
        args=(params, input_fn),
        saveat=diffrax.SaveAt(ts=jnp.asarray(times)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    q, v = sol.ys
    return np.asarray(q), np.asarray(v)


def fit_order(step_sizes, errors) -> float:
    """Least-squares slope of `log(error)` against `log(h)`."""
    return float(np.polyfit(np.log(np.asarray(step_sizes)), np.log(np.asarray(errors)), 1)[0])
