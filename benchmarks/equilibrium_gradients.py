"""Static EqProp against implicit differentiation, and the equilibrium solvers side by side.

    python benchmarks/equilibrium_gradients.py          # prints the Markdown tables of docs/equilibrium.md

1. Relative error of every estimator against the implicit gradient on the 5-unit tanh energy of
   the tests (parameters and inputs together), over β (real variants) and over |β|/R
   (holomorphic, 8 and 16 points), in float64 and float32; the estimated radius R.
3. The estimate of the radius of convergence R used by the holomorphic variant (Fourier fit on
   a probe circle) against the centered-contrast estimate of theory §5 (`_contrasts.estimate_radius`),
   over ten parameter draws: the error of the 8-point estimate at R̂/10.
2. The solvers on four energies (tanh, the 100-node elastic network under its source strain, the
   resistive network on one digit, the 64-128-10 hard-sigmoid Hopfield network on one digit):
   iterations and time per solve (compiled, median of 5), final natural residual.
"""

from __future__ import annotations

import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

sys.path.insert(0, "tests")
import lagrangian_eqprop.tasks._equilibrium_tasks as equilibrium_tasks  # noqa: E402
from lagrangian_eqprop import Newton  # noqa: E402
from lagrangian_eqprop._contrasts import estimate_radius  # noqa: E402
from lagrangian_eqprop._equilibrium import NewtonMinimiser, ProjectedGradient, equilibrium_state  # noqa: E402
from lagrangian_eqprop._equilibrium_gradient import _grads, convergence_radius, equilibrium_gradient  # noqa: E402
from lagrangian_eqprop.tasks import get_task  # noqa: E402
from test_equilibrium import TANH, TailCost, _problem, _rel  # noqa: E402


def gradient_tables() -> None:
    params, x, cost = _problem(0)
    reference = equilibrium_gradient(TANH, params, x, cost, method="implicit", return_all=True)
    radius = convergence_radius(TANH, params, x, cost)
    print(f"### Estimators vs implicit differentiation (5-unit tanh energy, float64; R = {radius:.3f})\n")
    tangent = _rel(equilibrium_gradient(TANH, params, x, cost, variant="tangent", return_all=True), reference)
    print(f"tangent (forward mode, no β): {tangent:.1e}\n")
    print("| β | centered | positive | negative |\n|---:|---:|---:|---:|")
    for beta in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 6.06e-6, 1e-6, 1e-7):
        errors = [_rel(equilibrium_gradient(TANH, params, x, cost, beta=beta, variant=v, return_all=True), reference)
                  for v in ("centered", "positive", "negative")]
        print(f"| {beta:.2g} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    print("\n| |β|/R | holomorphic, 8 points | 16 points |\n|---:|---:|---:|")
    for fraction in (0.5, 0.33, 0.2, 0.1, 0.05, 0.02, 0.01):
        errors = [_rel(equilibrium_gradient(TANH, params, x, cost, beta=fraction * radius, variant="holomorphic",
                                            points=k, return_all=True), reference) for k in (8, 16)]
        print(f"| {fraction:g} | {errors[0]:.1e} | {errors[1]:.1e} |")
    jax.config.update("jax_enable_x64", False)
    try:
        p32 = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in params.items()}
        x32 = jnp.asarray(np.asarray(x, np.float32))
        c32 = TailCost(jnp.asarray(np.asarray(cost.target, np.float32)), 3)
        print("\nfloat32 (against the float64 implicit gradient): "
              + ", ".join(f"{v} {_rel(equilibrium_gradient(TANH, p32, x32, c32, variant=v, return_all=True), reference):.1e}"
                          for v in ("centered", "tangent", "holomorphic"))
              + f", implicit {_rel(equilibrium_gradient(TANH, p32, x32, c32, method='implicit', return_all=True), reference):.1e}")
    finally:
        jax.config.update("jax_enable_x64", True)


def _energies():
    params, x, _ = _problem(0)
    yield "tanh (5 states)", TANH, params, x, jnp.zeros(5), True
    allostery = get_task("allostery")
    sample = {k: v[0] for k, v in allostery.train.items()}
    yield "elastic 10×10 (196 states)", allostery.model, allostery.params, sample["inputs"], allostery.start(
        allostery.params, sample), True
    resistive = get_task("resistive", num_train=2, num_test=0)
    sample = {k: v[0] for k, v in resistive.train.items()}
    yield "resistive (52 states)", resistive.model, resistive.params, sample["inputs"], jnp.zeros(52), True
    digits = get_task("digits", num_train=2, num_test=0)
    sample = {k: v[0] for k, v in digits.train.items()}
    yield "Hopfield 64-128-10, box (138 states)", digits.model, digits.params, sample["inputs"], digits.start(
        digits.params, sample), False


def solver_table() -> None:
    solvers = {"NewtonMinimiser() (dense)": NewtonMinimiser(),
               "NewtonMinimiser(lx.CG)": NewtonMinimiser(linear_solver=lx.CG(rtol=1e-12, atol=1e-12, max_steps=500)),
               "ProjectedGradient()": ProjectedGradient(max_steps=5000),
               "optx.BFGS": optx.BFGS(rtol=1e-10, atol=1e-10), "lep.Newton() (root finder)": Newton(max_steps=50)}
    print("\n### Solvers (compiled; time per solve, median of 5; iterations; final natural residual)\n")
    print("| energy | solver | time | iterations | residual | result |\n|---|---|---:|---:|---:|---|")
    for label, model, params, x, s0, unbounded in _energies():
        for name, solver in solvers.items():
            if not unbounded and name in ("optx.BFGS", "lep.Newton() (root finder)"):
                continue
            run = jax.jit(lambda p, x, s, solver=solver, model=model: equilibrium_state(model, p, x, s, solver=solver,
                                                                                       expect=None))
            sol = jax.block_until_ready(run(params, x, s0))
            times = []
            for _ in range(5):
                t = time.perf_counter()
                jax.block_until_ready(run(params, x, s0))
                times.append(time.perf_counter() - t)
            print(f"| {label} | {name} | {1e3 * statistics.median(times):.2f} ms | "
                  f"{int(sol.stats.newton_iterations_max)} | {float(sol.stats.max_residual):.1e} | "
                  f"{'ok' if int(sol.result._value) == 0 else 'failed'} |", flush=True)


def radius_table() -> None:
    print("\n### Radius of convergence: Fourier fit (used) vs centered contrasts (theory §5)\n")
    print("| draw | R̂ fit | error at R̂/10 | R̂ contrasts | error at R̂/10 | R (aliasing law) |\n|---|---:|---:|---:|---:|---:|")
    for seed in range(10):
        if seed < 2:
            params, x, cost = _problem(seed)
        else:
            rng = np.random.default_rng(seed)
            scale = 0.6 if seed < 6 else 1.0
            params = {k: jnp.asarray(rng.normal() * scale) for k in TANH.parameter_shapes}
            x = jnp.asarray(rng.normal(size=2))
            cost = TailCost(jnp.asarray(rng.normal(size=2) * 2), 3)
        reference = equilibrium_gradient(TANH, params, x, cost, method="implicit", return_all=True)
        free = equilibrium_state(TANH, params, x, jnp.zeros(5)).s

        def nudged(b, params=params, x=x, cost=cost, free=free):
            sol = equilibrium_state(TANH, params, x, free, cost=cost, beta=b)
            return _grads(TANH, sol.s, params, x), (sol.result, sol.stats)

        contrasts = float(jax.jit(lambda: estimate_radius(nudged, jnp.float64))())
        fit = convergence_radius(TANH, params, x, cost)
        errors = [_rel(equilibrium_gradient(TANH, params, x, cost, beta=r / 10, variant="holomorphic",
                                            return_all=True), reference) for r in (fit, contrasts)]
        half = _rel(equilibrium_gradient(TANH, params, x, cost, beta=min(fit, contrasts) / 2, variant="holomorphic",
                                         return_all=True), reference)
        print(f"| {seed} | {fit:.3f} | {errors[0]:.1e} | {contrasts:.3f} | {errors[1]:.1e} | "
              f"{min(fit, contrasts) / 2 / half ** 0.125:.3f} |", flush=True)


if __name__ == "__main__":
    gradient_tables()
    radius_table()
    solver_table()
