"""Per-step overhead of BPTT and the echo against a hand-written leapfrog + `jax.grad` (not a test).

    python benchmarks/step_overhead.py               # full grid (~3–5 min on 2 CPU cores)
    python benchmarks/step_overhead.py --quick       # smoke run (small grid, few repeats)
    python benchmarks/step_overhead.py --no-write    # print only, leave docs/benchmarks.md alone

The problem, at every size `n ∈ {4, 16, 64, 256}` units and `N ∈ {10³, 10⁴}` steps: a chain of
`n` Duffing oscillators with nearest-neighbour springs, driven by two inputs through per-unit
gains (network compiler, SymPy):

    L = Σ_i [½ m_i ẋ_i² − ½ κ_i x_i² − ¼ γ_i x_i⁴ + (b1_i u1 + b2_i u2) x_i] − Σ_i ½ k_i (x_{i+1} − x_i)²

trapezoid rule (explicit Störmer–Verlet path), dt = 0.05, inputs `u1 = sin 0.7t`, `u2 = cos 1.3t`,
loss `Σ_{k=1..N} ½ (x_{n−1}(t_k) − y_k)²` on the last unit; gradients w.r.t. all six
parameter arrays. Compared, each `jax.jit`-compiled (compilation excluded), called in turn
each round (interleaved), median over rounds with `block_until_ready`:

- hand: 15 lines — the same potential written with `jnp`, velocity Verlet in `lax.scan` with
  the force carried between steps, `jax.grad` of the summed loss;
- BPTT: `lep.bptt_gradient` (jit of the public call);
- echo: `lep.eqprop_gradient(method=lep.Echo())` (centered, default β) and the tangent echo.

Also: the eager public calls (validation + dispatch, no outer `jit`) at N = 10³, and a profile
of the echo's pieces at N = 10⁴ (free pass; echo passes without `∂θL_d`; with the fused
`∂θL_d`; with `∂θL_d` by one `jax.grad` of `L_d` per step, the pre-fusion way).
Results replace the section "## Per-step overhead (driven oscillator chains)" of
`docs/benchmarks.md`.
"""

from __future__ import annotations

import _docs  # benchmarks/_docs.py (the script's folder is on sys.path)

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Per-step overhead (driven oscillator chains)"
DT = 0.05


def build(n: int):
    """`(integ, params, q0, v0)` for the driven chain of `n` Duffing units (see the docstring)."""
    import jax.numpy as jnp
    import numpy as np
    import sympy

    import lagrangian_eqprop as lep

    t = sympy.Symbol("t")
    x, xa, xb = (sympy.Function(s)(t) for s in ("x", "xa", "xb"))
    m, kappa, gamma, b1, b2, k = sympy.symbols("m kappa gamma b1 b2 k")
    u1, u2 = sympy.Function("u1")(t), sympy.Function("u2")(t)
    half = sympy.Rational(1, 2)
    node = lep.NodeTerm(half * m * x.diff(t) ** 2 - half * kappa * x**2 - sympy.Rational(1, 4) * gamma * x**4
                        + (b1 * u1 + b2 * u2) * x, [x], [m, kappa, gamma, b1, b2], [u1, u2])
    edge = lep.EdgeTerm(-half * k * (xb - xa) ** 2, ([xa], [xb]), [k])
    model = lep.compile_network(n, [(i, i + 1) for i in range(n - 1)], [node], [edge], dim=1, time=t,
                                inputs=[u1, u2])
    rng = np.random.default_rng(0)
    params = {"m": 1.0 + 0.1 * rng.random(n), "kappa": 1.0 + rng.random(n), "gamma": 0.1 * rng.random(n),
              "b1": rng.standard_normal(n), "b2": rng.standard_normal(n), "k": 0.5 + rng.random(n - 1)}
    params = {name: jnp.asarray(value) for name, value in params.items()}
    integ = lep.VariationalIntegrator(model, DT, "trapezoid")
    assert integ.explicit
    return integ, params, jnp.asarray(0.1 * rng.standard_normal(n)), jnp.zeros(n)


def data(num_steps: int):
    """Inputs `(N+1, 2)` and target `(N+1, 1)` at the nodes."""
    import jax.numpy as jnp

    t = DT * jnp.arange(num_steps + 1)
    return jnp.stack([jnp.sin(0.7 * t), jnp.cos(1.3 * t)], axis=1), 0.2 * jnp.sin(0.5 * t)[:, None]


def hand_gradient(params, q0, v0, us, target):
    """The hand-written reference: leapfrog + `jax.grad` (what a user writes in 15 lines)."""
    import jax
    import jax.numpy as jnp

    def potential(q, u, p):
        return (jnp.sum(0.5 * p["kappa"] * q**2 + 0.25 * p["gamma"] * q**4 - (p["b1"] * u[0] + p["b2"] * u[1]) * q)
                + 0.5 * jnp.sum(p["k"] * (q[1:] - q[:-1]) ** 2))

    def loss(p):
        force = jax.grad(potential)

        def step(carry, xs):
            q, mom, g = carry
            u, y = xs
            v = (mom - 0.5 * DT * g) / p["m"]
            q = q + DT * v
            g = force(q, u, p)
            return (q, p["m"] * v - 0.5 * DT * g, g), 0.5 * (q[-1] - y[0]) ** 2

        _, costs = jax.lax.scan(step, (q0, p["m"] * v0, force(q0, us[0], p)), (us[1:], target[1:]))
        return jnp.sum(costs)

    return jax.grad(loss)(params)


def methods(integ, num_steps: int, n: int) -> dict:
    """`{name: f(params, q0, v0, us, target) -> gradient dict}` (not yet jitted)."""
    import lagrangian_eqprop as lep

    def cost(target):
        return lep.TrackingCost(target, [n - 1])

    def bptt(params, q0, v0, us, target):
        return lep.bptt_gradient(integ, params, cost(target), q0=q0, v0=v0, num_steps=num_steps, inputs=us)

    def echo(params, q0, v0, us, target):
        return lep.eqprop_gradient(integ, params, cost(target), method=lep.Echo(), q0=q0, v0=v0,
                                   num_steps=num_steps, inputs=us)

    def tangent(params, q0, v0, us, target):
        return lep.eqprop_gradient(integ, params, cost(target), method=lep.Echo(variant="tangent"), q0=q0, v0=v0,
                                   num_steps=num_steps, inputs=us)

    return {"hand": hand_gradient, "bptt": bptt, "echo": echo, "echo (tangent)": tangent}


def profile_pieces(integ, num_steps: int, n: int) -> dict:
    """The echo's pieces (same signature as `methods`): free pass; two echo passes (±β, vmapped)
    without `∂θL_d`, with the fused `∂θL_d`, and with one `jax.grad` of `L_d` per step."""
    import jax
    import jax.numpy as jnp

    import lagrangian_eqprop as lep
    from lagrangian_eqprop import _echo

    beta = 1e-5

    def setup(params, q0, v0, us, target):
        cost = lep.TrackingCost(target, [n - 1])
        times = integ.node_times(num_steps, q0.dtype)
        p0 = integ.initial_momentum(params, q0, v0, times[0], us[0])
        q_n, p_n, loss, _, _ = _echo.free_pass(integ, params, cost, q0, p0, times, us)
        return cost, times, q_n, p_n, loss

    def free(params, q0, v0, us, target):
        return setup(params, q0, v0, us, target)[2:]

    def bare(params, q0, v0, us, target):  # the free pass without its loss and energy monitor
        times = integ.node_times(num_steps, q0.dtype)
        out = integ.rollout(params, q0, integ.initial_momentum(params, q0, v0, times[0], us[0]), times, us,
                            save_trajectory=False)
        return out.q, out.p

    def passes(mode, batched=True):
        def run(params, q0, v0, us, target):
            cost, times, q_n, p_n, _ = setup(params, q0, v0, us, target)
            grad_cost = jax.grad(cost, argnums=1)

            def one(b):
                if mode == "fused":
                    return _echo.echo_pass(integ, params, cost, b, q_n, p_n, times, us)[0]["G"]

                def kick(j, q):
                    return jnp.where(j <= num_steps - 2, b * grad_cost(num_steps - 1 - j, q), jnp.zeros_like(q))

                def accumulate(j, q_a, q_b, node_a, node_b):  # ∂θL_d by its own reverse pass
                    return jax.grad(integ.discrete)(params, q_b, q_a, node_b, node_a)

                zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
                out = integ.rollout(params, q_n, -p_n + b * grad_cost(num_steps, q_n), times[::-1], us[::-1],
                                    kick=kick, save_trajectory=False,
                                    accumulate=accumulate if mode == "separate" else None,
                                    accumulator_init=zeros if mode == "separate" else None)
                return (out.q, out.p) if mode == "none" else out.accumulated

            betas = jnp.asarray([beta, -beta])
            return jax.vmap(one)(betas) if batched else (one(betas[0]), one(betas[1]))

        return run

    return {"rollout alone (no loss, no energy monitor)": bare, "free pass (loss summed, energy monitored)": free,
            "free + 2 echo passes (±β batched by vmap), no ∂θL_d": passes("none"),
            "free + 2 echo passes, no ∂θL_d, one after the other": passes("none", batched=False),
            "free + 2 echo passes, ∂θL_d fused with the force (the echo now)": passes("fused"),
            "free + 2 echo passes, fused ∂θL_d, one after the other": passes("fused", batched=False),
            "free + 2 echo passes, ∂θL_d by a jax.grad of L_d per step (before)": passes("separate")}


def interleaved(fns: dict, args: tuple, rounds: int, clock=time.process_time) -> dict:
    """Compile and warm up each, then `rounds` rounds calling each in turn: `{name: median s}`.

    The clock is the process's CPU time by default: on a shared machine (load above the core
    count) a run longer than a scheduler slice waits for the other jobs, which inflates wall
    times of long runs far more than of short ones (measured: 3× at 10⁴ steps); CPU time counts
    only this process's work (all its threads; these kernels run on one)."""
    import jax

    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = clock()
            jax.block_until_ready(fn(*args))
            samples[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def max_rel_err(grads, reference) -> float:
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(grads[k]) - np.asarray(reference[k])))
                     / max(float(np.max(np.abs(np.asarray(reference[k])))), 1e-300)) for k in reference)


def write_section(path, text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    _docs.write_section(path, SECTION, text)


SMALL_LOOPS = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"


def run_grid(sizes, steps, rounds: int, with_eager: bool = True) -> tuple[list, dict]:
    """The size × N grid: `(rows, eager)`; each row has the medians and the agreements."""
    import jax

    rows, eager = [], {}
    for n in sizes:
        integ, params, q0, v0 = build(n)
        for num_steps in steps:
            us, target = data(num_steps)
            call = (params, q0, v0, us, target)
            raw = methods(integ, num_steps, n)
            fns = {name: jax.jit(fn) for name, fn in raw.items()}
            med = interleaved(fns, call, rounds if num_steps <= 1000 else max(3, rounds // 3))
            grads = {name: fn(*call) for name, fn in fns.items()}
            rows.append(dict(n=n, N=num_steps, med=med, bptt_err=max_rel_err(grads["bptt"], grads["hand"]),
                             echo_err=max_rel_err(grads["echo"], grads["bptt"]),
                             tangent_err=max_rel_err(grads["echo (tangent)"], grads["bptt"])))
            print(f"n={n:4d} N={num_steps:6d} " + "  ".join(f"{k} {v * 1e3:8.3f} ms" for k, v in med.items()),
                  file=sys.stderr, flush=True)
            if with_eager and not eager:
                eager_fns = {f"{name} (eager public call)": (lambda f: lambda *a: f(*a))(raw[name])
                             for name in ("bptt", "echo")}
                eager = {"case": [n, num_steps], "medians": interleaved(
                    {"hand (jit)": fns["hand"], "bptt (jit)": fns["bptt"], "echo (jit)": fns["echo"], **eager_fns},
                    call, rounds)}
    return rows, eager


def grid_in_subprocess(argv_child: list[str]) -> list:
    """The grid again in a fresh process with XLA's small-loop threshold raised (`SMALL_LOOPS`)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SMALL_LOOPS).strip()
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv_child, "--child-json"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows, ok) -> list[str]:
    lines = ["| units | N | hand | BPTT | echo | tangent echo | BPTT / hand (≤ 1.5) | echo / hand (≤ 2) "
             "| echo / BPTT | BPTT vs hand | echo vs BPTT | tangent vs BPTT |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["med"]
        lines.append(f"| {r['n']} | {r['N']:,} | {m['hand'] * 1e3:.2f} ms | {m['bptt'] * 1e3:.2f} ms | "
                     f"{m['echo'] * 1e3:.2f} ms | {m['echo (tangent)'] * 1e3:.2f} ms | "
                     f"**{m['bptt'] / m['hand']:.2f}** ({ok(m['bptt'] / m['hand'], 1.5)}) | "
                     f"**{m['echo'] / m['hand']:.2f}** ({ok(m['echo'] / m['hand'], 2.0)}) | "
                     f"{m['echo'] / m['bptt']:.2f} | {r['bptt_err']:.1e} | {r['echo_err']:.1e} | {r['tangent_err']:.1e} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,16,64,256")
    parser.add_argument("--steps", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds at N = 10³ (a third at larger N)")
    parser.add_argument("--profile-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--no-small-loops", action="store_true",
                        help="skip the second grid with XLA's small-loop threshold raised (a subprocess)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--child-json", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.rounds, args.profile_size = "4,16", "200,1000", 3, 16

    import jax

    jax.config.update("jax_enable_x64", True)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    if args.child_json:
        print(json.dumps(run_grid(sizes, steps, args.rounds, with_eager=False)[0]))
        return 0
    rows, eager = run_grid(sizes, steps, args.rounds)
    n_prof = args.profile_size if args.profile_size in sizes else sizes[-1]
    integ, params, q0, v0 = build(n_prof)
    num_steps = max(steps)
    us, target = data(num_steps)
    profile = interleaved({k: jax.jit(f) for k, f in profile_pieces(integ, num_steps, n_prof).items()},
                          (params, q0, v0, us, target), max(3, args.rounds // 3))
    child_argv = [a for a in argv if a not in ("--no-write", "--quick")]
    if args.quick:
        child_argv += ["--sizes", args.sizes, "--steps", args.steps, "--rounds", str(args.rounds)]
    small = None if args.no_small_loops else grid_in_subprocess(child_argv)
    runtime = time.perf_counter() - started

    try:
        revision = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip() or "unknown"
    except OSError:
        revision = "unknown"
    shown = " ".join(["python benchmarks/step_overhead.py", *argv])
    ok = lambda x, limit: "meets" if x <= limit else "MISSES"  # noqa: E731
    lines = [SECTION, "",
             f"Command: `{shown.strip()}` — {datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores "
             f"({platform.machine()}, {platform.system()}), Python {platform.python_version()}, jax {jax.__version__}, "
             f"float64; repository at `{revision}`; 1-min load average at start / end {load_start:.2f} / "
             f"{os.getloadavg()[0]:.2f}; total runtime {runtime:.0f} s. Times are medians of the **process CPU "
             "time** over interleaved rounds: with more runnable jobs than cores, a run longer than a scheduler "
             "slice waits for the others, which inflated wall times of 10⁴-step runs 3× against 10³-step ones "
             "in the same process; CPU time counts this process's work only (these kernels run on one core).", "",
             "Problem: a chain of n Duffing units driven by two inputs (compiled by `compile_network`), trapezoid "
             f"rule on the explicit Störmer–Verlet path, dt = {DT}, tracking loss on the last unit, gradient w.r.t. "
             "all six parameter arrays (`m`, `κ`, `γ`, `b1`, `b2` per unit, `k` per spring). *hand* = the same "
             "potential written with `jnp`, a 15-line leapfrog in `lax.scan` and `jax.grad`; BPTT = "
             "`lep.bptt_gradient`; echo = `lep.eqprop_gradient(method=lep.Echo())` (centered, β = ε^{1/3}); "
             "tangent = `Echo(variant=\"tangent\")`. All `jax.jit`-compiled, compilation excluded "
             f"({args.rounds} rounds at N ≤ 10³, {max(3, args.rounds // 3)} above).", ""]
    lines += table(rows, ok)
    big = [r for r in rows if r["N"] == max(steps)]
    lines += ["", f"echo / BPTT at N = {max(steps):,} (target ≤ 1.2): "
              + ", ".join(f"{r['n']} units {r['med']['echo'] / r['med']['bptt']:.2f} "
                          f"({ok(r['med']['echo'] / r['med']['bptt'], 1.2)})" for r in big) + ". "
              "Agreement columns: max over parameters of |difference| / max |reference| (BPTT vs hand: the same "
              "discrete scheme, round-off; echo vs BPTT: the centered contrast's O(β²) bias and ε/β round-off, "
              "which the growth of perturbations along a long chaotic run amplifies; the tangent echo has neither)."]
    if small is not None:
        lines += ["", "**The same grid with XLA's small-loop threshold raised** "
                  f"(`XLA_FLAGS={SMALL_LOOPS}`, a fresh process). XLA:CPU compiles a `while` loop into "
                  "one kernel only when an iteration touches fewer bytes than "
                  "`xla_cpu_small_while_loop_byte_threshold` (1 kB by default); otherwise it dispatches every "
                  "fused op of the body separately (~50–100 ns each). The echo's θ-accumulators and BPTT's "
                  "backward pass cross 1 kB even for 4 units, the hand-written leapfrog too:", ""]
        lines += table(small, ok)
        speed = {(r["n"], r["N"]): r["med"] for r in small}
        lines += ["", "Speed-up from the flag (default time ÷ time with the flag): " + "; ".join(
            f"{r['n']} units N = {r['N']:,}: hand {r['med']['hand'] / speed[(r['n'], r['N'])]['hand']:.1f}×, BPTT "
            f"{r['med']['bptt'] / speed[(r['n'], r['N'])]['bptt']:.1f}×, echo "
            f"{r['med']['echo'] / speed[(r['n'], r['N'])]['echo']:.1f}×" for r in rows) + ". The flag is "
            "process-wide and must be set before JAX starts, so the library does not set it; scripts and the "
            "CLI can."]
    n_eager, steps_eager = eager["case"]
    lines += ["", f"Eager public calls ({n_eager} units, N = {steps_eager:,}; what a script that calls "
              "`lep.bptt_gradient(...)` without its own `jit` sees: validation of the problem, the failure "
              "contract and dispatch on top of the compiled computation):", "", "| call | median |", "|---|---:|"]
    lines += [f"| {name} | {value * 1e3:.2f} ms |" for name, value in eager["medians"].items()]
    lines += ["", f"Profile of the echo's pieces ({n_prof} units, N = {num_steps:,}, median, same conditions):", "",
              "| piece | median |", "|---|---:|"]
    lines += [f"| {name} | {value * 1e3:.2f} ms |" for name, value in profile.items()]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        print(f"[updated {args.output}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
