"""A 10⁵-mass 2-D spring network: compile time, steps/s, and ∇V against hand-written forces (not a test).

    python benchmarks/large_network.py                  # 250 × 400 lattice (10⁵ masses), ~3–4 min
    python benchmarks/large_network.py --rows 25 --cols 40 --no-write   # small smoke run

The network: a `rows × cols` square lattice (`systems.grid_graph`) plus `rows·cols/10` random
extra springs between random pairs of nodes (seed 0), linear springs on the Euclidean length,
built with the catalog's `systems.mass_spring_network` (SymPy → `compile_network`); the
network runtime (`_graph.py`) cuts each index array into a static 2-D block (the lattice), a
run, and one gather for the random springs (`index_pieces`), whose gradient scatters back.
Measured:

1. compile time: SymPy → model (and how much of it is spent creating the SymPy coordinate
   functions, `network_coordinates`), then the first jitted ∇V and the first jitted
   `final_state` (trace + compile + run);
2. ∇V: `jax.grad` of the model's potential against hand-written vectorised forces on the same
   edge list: `jax.grad` of a `jnp` energy, and the force written out with the endpoints'
   contributions summed by `.at[].add` (scatter-add) or by one `jax.ops.segment_sum`;
3. steps/s of the explicit path (`VariationalIntegrator(..., "trapezoid").final_state`) against
   a hand-written leapfrog with the fastest hand-written force;
4. the alternatives for the runtime's gather and its transpose, on the same edge list: the
   transpose XLA derives (scatter-add), `jax.ops.segment_sum` (unsorted and on indices sorted
   once), a gather-only sum over a padded node–edge incidence table, and static 2-D slices for
   the lattice part (what `_graph.Rows` does for 1-D runs).

All timings: compiled first, then interleaved rounds; wall-clock medians (XLA may use both cores
on these sizes) and the process CPU time. Results replace the section
"## Large networks (10⁵-mass 2-D lattice with random springs)" of `docs/benchmarks.md`.
"""

from __future__ import annotations

import _docs  # benchmarks/_docs.py (the script's folder is on sys.path)

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Large networks (10⁵-mass 2-D lattice with random springs)"


def graph(rows: int, cols: int, seed: int = 0):
    """Rest positions `(rows·cols, 2)` and edges: the lattice, then the random extra springs."""
    import numpy as np

    from lagrangian_eqprop import systems

    positions, edges = systems.grid_graph(rows, cols)
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, rows * cols, (max(rows * cols // 10, 1), 2))
    extra = extra[extra[:, 0] != extra[:, 1]]
    return positions, np.concatenate([edges, extra]), len(edges)


def hand_forces(edges, num_nodes: int):
    """`{name: f(q, k, l) -> ∇V (2·num_nodes,)}` written by hand for the linear spring network."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    s, r = np.asarray(edges[:, 0]), np.asarray(edges[:, 1])
    both = np.concatenate([s, r])

    def pulls(q, k, l):
        x = q.reshape(-1, 2)
        a, b = x[s], x[r]
        dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        length = jnp.sqrt(dx * dx + dy * dy)
        c = k * (length - l) / length
        return jnp.stack([c * dx, c * dy], axis=1)  # ∂V/∂x_b; −that on x_a

    def energy(q, k, l):
        x = q.reshape(-1, 2)
        a, b = x[s], x[r]
        return 0.5 * jnp.sum(k * (jnp.sqrt((b[:, 0] - a[:, 0]) ** 2 + (b[:, 1] - a[:, 1]) ** 2) - l) ** 2)

    def scatter(q, k, l):
        f = pulls(q, k, l)
        return jnp.zeros((num_nodes, 2), q.dtype).at[r].add(f).at[s].add(-f).reshape(-1)

    def segment(q, k, l):
        f = pulls(q, k, l)
        return jax.ops.segment_sum(jnp.concatenate([-f, f]), both, num_nodes).reshape(-1)

    return {"hand: jax.grad of a jnp energy": jax.grad(energy),
            "hand: force, scatter-add (.at[].add)": scatter,
            "hand: force, one jax.ops.segment_sum": segment}


def transpose_alternatives(edges, num_nodes: int, rows: int, cols: int, lattice_edges: int):
    """`{name: f(q, k, l) -> ∇V}`: the same energy, its endpoints gathered and their gradients
    summed in different ways (what the network runtime could do instead)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    s, r = np.asarray(edges[:, 0]), np.asarray(edges[:, 1])
    both = np.concatenate([s, r])
    order = np.argsort(both, kind="stable")
    # node–edge incidence padded to the largest degree (entries past an edge's end read a zero row)
    degree = np.bincount(both, minlength=num_nodes)
    table = np.full((num_nodes, int(degree.max())), 2 * len(s))
    fill = np.zeros(num_nodes, dtype=np.int64)
    for slot, node in enumerate(both):
        table[node, fill[node]] = slot
        fill[node] += 1

    def spring_pull(a, b, k, l):
        dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        length = jnp.sqrt(dx * dx + dy * dy)
        c = k * (length - l) / length
        return jnp.stack([c * dx, c * dy], axis=1)

    def with_transpose(sum_rows):
        @jax.custom_vjp
        def endpoints(x):
            return x[s], x[r]

        def fwd(x):
            return endpoints(x), None

        def bwd(_, cotangents):
            g_a, g_b = cotangents
            return (sum_rows(jnp.concatenate([g_a, g_b])),)

        endpoints.defvjp(fwd, bwd)

        def energy(q, k, l):
            a, b = endpoints(q.reshape(-1, 2))
            d = b - a
            return 0.5 * jnp.sum(k * (jnp.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2) - l) ** 2)

        return lambda q, k, l: jax.grad(energy)(q, k, l).reshape(-1)

    def gather_energy(q, k, l):
        x = q.reshape(-1, 2)
        d = x[r] - x[s]
        return 0.5 * jnp.sum(k * (jnp.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2) - l) ** 2)

    def blocks_energy(q, k, l):
        # the lattice's springs as static 2-D slices of the (rows, cols) layout, the rest gathered
        x = q.reshape(-1, 2)
        grid = x.reshape(rows, cols, 2)
        horizontal = rows * (cols - 1)
        a = jnp.concatenate([grid[:, :-1].reshape(-1, 2), x[: (rows - 1) * cols], x[s[lattice_edges:]]])
        b = jnp.concatenate([grid[:, 1:].reshape(-1, 2), x[cols:], x[r[lattice_edges:]]])
        assert horizontal + (rows - 1) * cols == lattice_edges
        d = b - a
        return 0.5 * jnp.sum(k * (jnp.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2) - l) ** 2)

    return {
        "gather; transpose = XLA scatter-add (the runtime before)": lambda q, k, l: jax.grad(gather_energy)(q, k, l),
        "gather; transpose = one segment_sum": with_transpose(lambda g: jax.ops.segment_sum(g, both, num_nodes)),
        "gather; transpose = segment_sum on indices sorted once": with_transpose(
            lambda g: jax.ops.segment_sum(g[order], both[order], num_nodes, indices_are_sorted=True)),
        "gather; transpose = gather-only sum over a padded incidence table": with_transpose(
            lambda g: jnp.sum(jnp.concatenate([g, jnp.zeros((1, 2), g.dtype)])[table], axis=1)),
        "lattice by static 2-D slices, extra springs gathered (hand-written; the runtime now does this, `_graph.index_pieces`)": lambda q, k, l: jax.grad(blocks_energy)(q, k, l),
    }


def timed(fns: dict, args: tuple, rounds: int) -> dict:
    """Warm up, then `rounds` interleaved rounds: `{name: (wall median, CPU median)}` in seconds."""
    import jax

    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def first_call(fn, *args) -> float:
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def write_section(path, text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    _docs.write_section(path, SECTION, text)


def ms(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:,.1f} µs"
    return f"{value * 1e3:,.2f} ms" if value < 1 else f"{value:,.2f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250)
    parser.add_argument("--cols", type=int, default=400)
    parser.add_argument("--steps", type=int, default=100, help="steps of the timed runs")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import sympy

    import lagrangian_eqprop as lep
    from lagrangian_eqprop import systems
    from lagrangian_eqprop._symbolic import network as symbolic_network

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    rows, cols = args.rows, args.cols
    positions, edges, lattice_edges = graph(rows, cols)
    num_nodes = rows * cols
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.ones(3)))  # backend start-up is not compile time

    sympy.core.cache.clear_cache()
    start = time.perf_counter()
    model, params, q0, v0 = systems.mass_spring_network(positions, edges, dim=2)
    build = time.perf_counter() - start
    sympy.core.cache.clear_cache()
    start = time.perf_counter()
    symbolic_network.network_coordinates(num_nodes, 2, None, sympy.Symbol("t"))
    coordinates = time.perf_counter() - start
    print(f"model: {num_nodes:,} masses, {len(edges):,} springs, SymPy → model {build:.1f} s "
          f"(of which coordinate functions {coordinates:.1f} s)", flush=True)

    params = {name: jnp.asarray(value, jnp.float64) * jnp.ones(model.parameter_shapes[name])
              for name, value in params.items()}
    k, l = params["k"], params["l"]
    rng = np.random.default_rng(1)
    q = jnp.asarray(q0) + 0.05 * jnp.asarray(rng.standard_normal(np.shape(q0)))
    u = model.default_input(jnp.float64)
    library_force = jax.jit(lambda q, k, l: jax.grad(model.separable.potential_fn)(q, 0.0, {**params, "k": k, "l": l}, u))
    first_force = first_call(library_force, q, k, l)
    integ = lep.VariationalIntegrator(model, 0.02, "trapezoid")
    assert integ.explicit
    p0 = integ.initial_momentum(params, q, jnp.zeros_like(q))
    run = jax.jit(lambda q, p, k, l: integ.final_state({**params, "k": k, "l": l}, q, p0=p, num_steps=args.steps))
    first_run = first_call(run, q, p0, k, l)

    hands = {name: jax.jit(f) for name, f in hand_forces(edges, num_nodes).items()}
    reference = np.asarray(library_force(q, k, l))
    agreement = {name: float(np.max(np.abs(np.asarray(f(q, k, l)) - reference)) / np.max(np.abs(reference)))
                 for name, f in hands.items()}
    force_times = timed({"library: jax.grad of the compiled potential": library_force, **hands}, (q, k, l),
                        args.rounds)
    fastest = min(hands, key=lambda name: force_times[name][0])
    hand_force = hands[fastest]
    mass = params["m"][0]

    def leapfrog(q, p, k, l):
        def body(carry, _):
            x, mom, g = carry
            v = (mom - 0.01 * g) / mass
            x = x + 0.02 * v
            g = hand_force(x, k, l)
            return (x, mass * v - 0.01 * g, g), None

        (x, mom, _), _ = jax.lax.scan(body, (q, p, hand_force(q, k, l)), None, length=args.steps)
        return x, mom

    leapfrog = jax.jit(leapfrog)
    q_lib = run(q, p0, k, l).q
    q_hand = leapfrog(q, p0, k, l)[0]
    run_agreement = float(np.max(np.abs(np.asarray(q_lib) - np.asarray(q_hand))))
    step_times = timed({"ours: final_state (explicit Störmer–Verlet)": lambda *a: run(*a).q,
                        f"hand-written leapfrog ({fastest.split(': ')[1]})": leapfrog},
                       (q, p0, k, l), max(3, args.rounds // 2))
    alternatives = {name: jax.jit(f) for name, f in
                    transpose_alternatives(edges, num_nodes, rows, cols, lattice_edges).items()}
    alt_agreement = {name: float(np.max(np.abs(np.asarray(f(q, k, l)) - reference)) / np.max(np.abs(reference)))
                     for name, f in alternatives.items()}
    alt_times = timed(alternatives, (q, k, l), args.rounds)
    runtime = time.perf_counter() - started

    try:
        revision = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip() or "unknown"
    except OSError:
        revision = "unknown"
    shown = " ".join(["python benchmarks/large_network.py", *(argv if argv is not None else sys.argv[1:])])
    lib_wall = force_times["library: jax.grad of the compiled potential"][0]
    lines = [SECTION, "",
             f"Command: `{shown.strip()}` — {datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores "
             f"({platform.machine()}, {platform.system()}), Python {platform.python_version()}, jax {jax.__version__}, "
             f"sympy {sympy.__version__}, float64; repository at `{revision}`; 1-min load average at start / end "
             f"{load_start:.2f} / {os.getloadavg()[0]:.2f} (shared cores: wall times are noisy, each table's rows "
             f"were measured in interleaved rounds); total runtime {runtime:.0f} s.", "",
             f"Network: {rows} × {cols} lattice (`systems.grid_graph`) + {len(edges) - lattice_edges:,} random extra "
             f"springs = {num_nodes:,} masses, {2 * num_nodes:,} coordinates, {len(edges):,} springs "
             "(`systems.mass_spring_network`, linear springs on the Euclidean length, no fixed nodes).", "",
             "**Compile time**", "", "| stage | time |", "|---|---:|",
             f"| SymPy → `LagrangianModel` (`mass_spring_network` → `compile_network`) | {ms(build)} |",
             f"| creating the {2 * num_nodes:,} SymPy coordinate functions alone "
             f"(`_symbolic.network.network_coordinates`, timed separately) | {ms(coordinates)} |",
             f"| first jitted ∇V (trace + compile + run) | {ms(first_force)} |",
             f"| first jitted `final_state`, {args.steps} steps (trace + compile + run) | {ms(first_run)} |", "",
             f"**∇V** (median of {args.rounds} interleaved rounds; agreement = max |Δ| / max |∇V| against the "
             "library):", "", "| force | wall | CPU | ÷ library (wall) | agreement |", "|---|---:|---:|---:|---:|"]
    for name, (wall, cpu) in force_times.items():
        lines.append(f"| {name} | {ms(wall)} | {ms(cpu)} | {wall / lib_wall:.2f} | "
                     f"{agreement.get(name, 0.0):.1e} |")
    lines += ["", f"**Explicit steps** ({args.steps} steps per run, dt = 0.02; final positions agree to "
              f"{run_agreement:.1e}):", "", "| run | wall | steps/s (wall) | CPU |", "|---|---:|---:|---:|"]
    for name, (wall, cpu) in step_times.items():
        lines.append(f"| {name} | {ms(wall)} | {args.steps / wall:,.0f} | {ms(cpu)} |")
    lines += ["", "**Gathering the endpoints and summing their gradients: the alternatives** (∇V of the same "
              "energy, median of interleaved rounds):", "", "| how | wall | CPU | agreement |", "|---|---:|---:|---:|"]
    for name, (wall, cpu) in alt_times.items():
        lines.append(f"| {name} | {ms(wall)} | {ms(cpu)} | {alt_agreement[name]:.1e} |")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        print(f"[updated {args.output}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
