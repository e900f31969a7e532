"""Root finders for implicit (midpoint) steps: the in-house `lep.Newton` against optimistix and
lineax alternatives, side by side in one run.

    python benchmarks/root_finders.py            # prints a Markdown section for docs/benchmarks.md

For each system: steps/s (median of interleaved repeats, compile excluded), Newton iterations
per step (mean / max), failed steps, and the largest deviation of the trajectory from the
default's. A last table shows the failure mode that makes the default's relative step test
necessary: positions of order 10³ with a small step, where a residual test against an absolute
tolerance cannot be met by round-off.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

import lagrangian_eqprop as lep  # noqa: E402
from lagrangian_eqprop import systems  # noqa: E402

REPEATS = 7


def finders(tol):
    return {
        "lep.Newton() (default: dense jacfwd + LU, relative step test)": None,
        "lep.Newton(linear_solver=lx.LU())": lep.Newton(linear_solver=lx.LU()),
        "lep.Newton(linear_solver=lx.GMRES) (matrix-free)": lep.Newton(linear_solver=lx.GMRES(rtol=tol, atol=tol)),
        "optx.Newton(rtol, atol) (Cauchy termination)": optx.Newton(rtol=tol, atol=tol),
        "optx.Chord(rtol, atol) (Cauchy termination)": optx.Chord(rtol=tol, atol=tol),
        "optx.Newton(rtol, atol, cauchy_termination=False)": optx.Newton(rtol=tol, atol=tol, cauchy_termination=False),
    }


def measure(system, dt, num_steps, tol=1e-12):
    model, params, q0, v0 = system
    rows, reference = [], None
    runs = {}
    for name, finder in finders(tol).items():
        integ = lep.VariationalIntegrator(model, dt, "midpoint", root_finder=finder)
        run = jax.jit(lambda p, q, v, integ=integ: integ.simulate(p, q, v, num_steps, throw=False))
        traj = jax.block_until_ready(run(params, q0, v0))
        runs[name] = (run, traj)
        if reference is None:
            reference = traj.q
    times = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, (run, _) in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(run(params, q0, v0))
            times[name].append(time.perf_counter() - t0)
    for name, (_, traj) in runs.items():
        ok = bool(traj.result == lep.RESULTS.successful)
        deviation = float(jnp.max(jnp.abs(traj.q - reference))) if ok else float("nan")
        rows.append((name, num_steps / statistics.median(times[name]), float(traj.stats.newton_iterations_mean),
                     int(traj.stats.newton_iterations_max), int(traj.stats.num_failures),
                     "ok" if ok else str(traj.result).split("<")[1].split(":")[0].rstrip(">"), deviation))
    return rows


def table(title, rows):
    lines = [f"**{title}**", "", "| root finder | steps/s | iterations mean / max | failed steps | result | "
             "max \\|q − q_default\\| |", "|---|---:|---:|---:|---|---:|"]
    for name, rate, mean, largest, failed, result, dev in rows:
        lines.append(f"| {name} | {rate:,.0f} | {mean:.2f} / {largest} | {failed} | {result} | "
                     f"{'—' if np.isnan(dev) else f'{dev:.1e}'} |")
    return "\n".join(lines)


def main():
    started = time.perf_counter()
    load = os.getloadavg()[0]
    double = systems.double_pendulum(theta0=(1.2, -0.6), omega0=(0.4, 0.0))
    chain = systems.pendulum_chain(64, amplitude=0.8)
    sections = [
        table("Double pendulum (2 DOF, non-separable), dt = 0.01, 2,000 steps",
              measure(double, 0.01, 2000)),
        table("64 coupled pendula (64 DOF), dt = 0.01, 200 steps", measure(chain, 0.01, 200)),
    ]
    model, params, _, _ = systems.harmonic_oscillator()
    far = (model, params, jnp.asarray([1.0e3]), jnp.asarray([1.0]))
    sections.append(table("Harmonic oscillator at |q| ≈ 10³ with dt = 10⁻³ (a residual with a round-off floor "
                          "ε·|q|/h ≈ 2e-10 above the tolerance 1e-12), 200 steps", measure(far, 1e-3, 200)))
    header = (f"Command: `python benchmarks/root_finders.py` — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU "
              f"cores ({platform.machine()}), Python {platform.python_version()}, jax {jax.__version__}, "
              f"optimistix {optx.__version__ if hasattr(optx, '__version__') else '0.1.0'}, float64, "
              f"1-min load at start {load:.2f}; total {time.perf_counter() - started:.0f} s. Tolerances rtol = atol = "
              "1e-12 for every solver; median of interleaved repeats, compile excluded.")
    print("## Root finders for implicit steps\n")
    print(header + "\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    sys.exit(main())
