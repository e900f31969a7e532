"""Data-parallel training step: one batch of trajectories split over 1, 2, 4, ... devices.

    python benchmarks/data_parallel.py                       # CPU: 4 forced host devices
    python benchmarks/data_parallel.py --devices 1 2 4 8 --batch 64 --num-steps 3000   # e.g. on GPUs

Runs unchanged on a CPU, a GPU node or a TPU slice: on a CPU it makes JAX see several host
devices (`XLA_FLAGS=--xla_force_host_platform_device_count`, set before JAX starts unless the
variable already sets it; the flag does nothing to GPUs or TPUs). For each device count the
`Trainer` of the flagship tracking task (echo estimator, longer trajectories, one batch) is built
with `TrainConfig(devices=D)`, and its jitted optimiser step is timed on the same batch
(compiled once, then the median of interleaved repeats with `block_until_ready`). Reported per
device count: the step time, the speed-up over one device (no placement), the per-device
memory of the compiled step (XLA's memory analysis), the collectives in its HLO, and the
largest relative difference of the updated parameters from the one-device step.
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
    parser.add_argument("--devices", type=int, nargs="+", default=None,
                        help="device counts (default 1, 2, 4, ... up to the devices JAX sees; 4 forced on a CPU)")
    parser.add_argument("--batch", type=int, default=32, help="samples per batch (a multiple of every device count)")
    parser.add_argument("--num-steps", type=int, default=1000, help="integrator steps per sample")
    parser.add_argument("--masses", type=int, default=64, help="masses in the tracking chain")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    wanted = max(args.devices or [4])
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={wanted}").strip()

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from lagrangian_eqprop.training import TrainConfig, Trainer

    load0, started = os.getloadavg()[0], time.perf_counter()
    counts = args.devices or [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= jax.device_count()]
    config = TrainConfig(task="tracking", estimator="echo", reference="none", epochs=1, batch_size=args.batch,
                         probe_every=0, task_options={"num_train": args.batch, "num_test": 1,
                                                      "num_steps": args.num_steps, "n_masses": args.masses})
    runs = {}
    for devices in [None, *counts]:
        trainer = Trainer(config.replace(devices=devices))
        state = trainer.parallel.replicate(trainer.initial_state()["echo"])
        batch = next(trainer.batches(1))
        step = trainer._steps["echo"]  # the trainer's jitted optimiser step (what `fit` calls)
        compiled = jax.jit(lambda r, o, b, step=step: step(r, o, b)).lower(
            state["raw"], state["opt_state"], batch).compile()
        text, memory = compiled.as_text(), compiled.memory_analysis()
        t0 = time.perf_counter()
        out = jax.block_until_ready(step(state["raw"], state["opt_state"], batch))
        runs[devices] = {
            "call": lambda step=step, state=state, batch=batch: jax.block_until_ready(
                step(state["raw"], state["opt_state"], batch)),
            "first": time.perf_counter() - t0, "raw": {k: np.asarray(v) for k, v in out[0].items()},
            "times": [],
            "memory": (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes)
            if memory is not None else float("nan"),
            "collectives": {c: len(re.findall(c + r"[.(-]", text))
                            for c in ("all-reduce", "all-gather", "collective-permute")},
        }
    for _ in range(args.rounds):
        for run in runs.values():
            t0 = time.perf_counter()
            run["call"]()
            run["times"].append(time.perf_counter() - t0)

    base = runs[None]
    device = jax.devices()[0]
    print(f"Command: `python {' '.join(['benchmarks/data_parallel.py', *sys.argv[1:]])}` (total runtime "
          f"{time.perf_counter() - started:.0f} s).")
    print(f"Machine: {jax.device_count()} {device.platform} device(s) ({device.device_kind}), {os.cpu_count()} CPU "
          f"cores ({platform.machine()}); Python {platform.python_version()}, jax {jax.__version__}, float64; "
          f"1-min load average at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}.")
    print(f"Workload: tracking task ({args.masses} masses), echo estimator, {args.num_steps} steps per sample, one batch of "
          f"{args.batch} samples: per-sample gradients (vmap), batch mean, one Adam update; median of "
          f"{args.rounds} interleaved calls.")
    print()
    print("| devices | step, median (min) | speed-up vs 1 device | samples/s | memory per device (XLA) "
          "| all-reduce / all-gather in HLO | max rel. diff of params vs 1 device |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for devices, run in runs.items():
        median = statistics.median(run["times"])
        diff = max(float(np.max(np.abs(run["raw"][k] - base["raw"][k]) / np.maximum(np.abs(base["raw"][k]), 1e-300)))
                   for k in base["raw"])
        label = "1 (no placement)" if devices is None else str(devices)
        c = run["collectives"]
        print(f"| {label} | {median * 1e3:.1f} ms ({min(run['times']) * 1e3:.1f}) | "
              f"{statistics.median(base['times']) / median:.2f}× | {args.batch / median:,.0f} | "
              f"{run['memory'] / 2**20:.2f} MiB | {c['all-reduce']} / {c['all-gather']} | {diff:.1e} |")


if __name__ == "__main__":
    main()
