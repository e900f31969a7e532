"""A network too big for one device: parameters and state split along the node axis.

    python benchmarks/sharded_network.py                          # CPU: 4 forced host devices
    python benchmarks/sharded_network.py --nodes 262144 --devices 1 2 4 8   # e.g. on GPUs

Runs unchanged on a CPU, a GPU node or a TPU slice (on a CPU it makes JAX see several host
devices with `XLA_FLAGS=--xla_force_host_platform_device_count`, set before JAX starts unless the
variable already sets it). Nothing in the library is special-cased: the arrays are placed with
`NamedSharding(mesh, PartitionSpec("nodes"))` and the integrator and the echo gradient are
jitted with that sharding for their outputs; XLA's SPMD partitioner splits the vmapped node
and edge terms and inserts the communication. Two networks:

- `ring`: a closed chain of `--nodes` masses (node `i` coupled to `i+1`, the last to the first):
  masses, stiffnesses and rest lengths are all `(nodes,)`. Neighbours are static slices of the
  state, which the partitioner turns into halo exchanges (one value per device boundary).
- `grid`: a `--grid`×`--grid` 2-D mass–spring lattice (`systems.mass_spring_network`), whose
  edges index the state through gathers, which the partitioner can only serve by gathering the
  whole state on every device (all-gather) each step.

Reported per device count: XLA's compiled memory per device (arguments, outputs, scratch), the
collectives in the HLO, the median wall time (interleaved repeats, `block_until_ready`), and
the largest difference of the result from the one-device run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16384, help="masses in the ring (a multiple of every device count)")
    parser.add_argument("--grid", type=int, default=64, help="side of the 2-D lattice (0: skip it)")
    parser.add_argument("--steps", type=int, default=200, help="integrator steps")
    parser.add_argument("--devices", type=int, nargs="+", default=None,
                        help="device counts (default 1, 2, 4, ... up to the devices JAX sees; 4 forced on a CPU)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    wanted = max(args.devices or [4])
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={wanted}").strip()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    jax.config.update("jax_enable_x64", True)
    import lagrangian_eqprop as lep
    from lagrangian_eqprop import systems
    from lagrangian_eqprop.systems.chains import chain_terms

    load0, started = os.getloadavg()[0], time.perf_counter()
    counts = args.devices or [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= jax.device_count()]
    rng = np.random.default_rng(0)

    # ring: x_i absolute positions, rest spacing 1; the closing spring's rest length spans the ring
    n = args.nodes
    t0 = time.perf_counter()
    node, edge, _ = chain_terms(False, False)
    ring = lep.compile_network(n, [(i, i + 1) for i in range(n - 1)] + [(n - 1, 0)], [node], [edge], dim=1)
    build_ring = time.perf_counter() - t0
    rest = np.arange(n, dtype=np.float64)
    problems = {"ring": (lep.VariationalIntegrator(ring, dt=0.05, rule="trapezoid"),
                         {"m": np.ones(n), "k": 1.0 + 0.1 * rng.random(n), "l": np.r_[np.ones(n - 1), -(n - 1.0)]},
                         rest + 0.1 * rng.standard_normal(n), np.zeros(n))}
    build_grid = 0.0
    if args.grid:
        t0 = time.perf_counter()
        lattice = systems.get("mass_spring_network", rows=args.grid, cols=args.grid, diagonals=False,
                              perturbation=0.1)
        build_grid = time.perf_counter() - t0
        problems["grid"] = (lep.VariationalIntegrator(lattice.model, dt=0.05, rule="trapezoid"),
                            {k: np.asarray(v) for k, v in lattice.params.items()}, np.asarray(lattice.q0),
                            np.asarray(lattice.v0))

    def jobs(integ, q0):
        """`{name: f(params, q0, v0)}`: the free run's final state and the echo gradient of a
        tracking cost on 8 coordinates (target: the rest state)."""
        idx = tuple(int(i) for i in np.linspace(0, q0.shape[0] - 1, 8))
        cost = lep.TrackingCost(jnp.zeros((args.steps + 1, len(idx))) + jnp.asarray(q0[list(idx)]), idx)
        return {
            "final state": lambda p, q, v: integ.final_state(p, q, v, args.steps, throw=False).q,
            "echo gradient": lambda p, q, v: lep.eqprop_gradient(integ, p, cost, method=lep.Echo(beta=1e-3), q0=q,
                                                                 v0=v, num_steps=args.steps, throw=False),
        }

    rows, calls = [], []
    for name, (integ, params, q0, v0) in problems.items():
        for job, fn in jobs(integ, q0).items():
            reference = None
            for devices in counts:
                sizes = [np.shape(x)[0] for x in (*params.values(), q0)]
                if any(size % devices for size in sizes):
                    print(f"skip {name}/{job} on {devices} devices: sizes {sorted(set(sizes))} not divisible")
                    continue
                sharding = NamedSharding(Mesh(np.asarray(jax.devices()[:devices]), ("nodes",)), PartitionSpec("nodes"))
                placed = jax.device_put(({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(q0),
                                         jnp.asarray(v0)), sharding)
                jitted = jax.jit(fn, out_shardings=sharding)
                t0 = time.perf_counter()
                compiled = jitted.lower(*placed).compile()
                first = time.perf_counter() - t0  # tracing, partitioning and compilation
                text, memory = compiled.as_text(), compiled.memory_analysis()
                result = jax.block_until_ready(jitted(*placed))
                flat = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(result)])
                reference = flat if reference is None else reference
                row = {"network": name, "job": job, "devices": devices, "first": first, "times": [],
                       "args": memory.argument_size_in_bytes, "out": memory.output_size_in_bytes,
                       "temp": memory.temp_size_in_bytes,
                       "collectives": {c: len(re.findall(c + r"[.(-]", text))
                                       for c in ("collective-permute", "all-reduce", "all-gather")},
                       "diff": float(np.max(np.abs(flat - reference)) / max(float(np.max(np.abs(reference))), 1e-300))}
                rows.append(row)
                calls.append((row, lambda jitted=jitted, placed=placed: jax.block_until_ready(jitted(*placed))))
    for _ in range(args.rounds):
        for row, call in calls:
            t0 = time.perf_counter()
            call()
            row["times"].append(time.perf_counter() - t0)

    device = jax.devices()[0]
    print(f"Command: `python {' '.join(['benchmarks/sharded_network.py', *sys.argv[1:]])}` (total runtime "
          f"{time.perf_counter() - started:.0f} s).")
    print(f"Machine: {jax.device_count()} {device.platform} device(s) ({device.device_kind}), {os.cpu_count()} CPU "
          f"cores ({platform.machine()}); Python {platform.python_version()}, jax {jax.__version__}, float64; "
          f"1-min load average at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}.")
    print(f"Networks: ring of {n:,} masses (built in {build_ring:.1f} s)"
          + (f", {args.grid}×{args.grid} lattice ({args.grid**2:,} nodes, built in {build_grid:.1f} s)" if args.grid else "")
          + f"; {args.steps} trapezoid (Störmer–Verlet) steps, dt = 0.05; echo β = 1e-3.")
    print()
    print("| network | job | devices | per device: args + out + temp (XLA) | total × devices | collective-permute "
          "/ all-reduce / all-gather | median (min) | compile | max rel. diff vs 1 device |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        per = (row["args"] + row["out"] + row["temp"]) / 2**20
        c = row["collectives"]
        print(f"| {row['network']} | {row['job']} | {row['devices']} | {row['args'] / 2**20:.2f} + {row['out'] / 2**20:.2f}"
              f" + {row['temp'] / 2**20:.2f} = {per:.2f} MiB | {per * row['devices']:.2f} MiB | "
              f"{c['collective-permute']} / {c['all-reduce']} / {c['all-gather']} | "
              f"{statistics.median(row['times']) * 1e3:.1f} ms ({min(row['times']) * 1e3:.1f}) | {row['first']:.2f} s | "
              f"{row['diff']:.1e} |")


if __name__ == "__main__":
    main()
