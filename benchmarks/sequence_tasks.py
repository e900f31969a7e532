"""Learning on real sequence data, echo next to BPTT (benchmarks, not tests).

    python benchmarks/sequence_tasks.py mnist1d            # stacked network, echo + BPTT, 30 epochs
    python benchmarks/sequence_tasks.py mnist1d-tangent    # the same with the tangent (exact) echo
    python benchmarks/sequence_tasks.py mnist1d-physical   # one physical network + linear readout
    python benchmarks/sequence_tasks.py ucr                # GunPoint, ItalyPowerDemand, ArrowHead, BasicMotions, JapaneseVowels
    python benchmarks/sequence_tasks.py ucr-physical       # the same five, one physical network + linear readout
    python benchmarks/sequence_tasks.py throughput         # samples/s and peak memory, echo vs BPTT
    python benchmarks/sequence_tasks.py all
    ... --no-write                                         # print only, leave docs/benchmarks.md alone

Every training run is the command a user types (`lagrangian-eqprop train sequence ...`, echo and
BPTT side by side from the same initial parameters, the same batches), run as a subprocess:
the reported time is the whole process (start-up, data, compilation, training, plots). The
accuracies are read from the run folder's `summary.json`; each run's section in
docs/benchmarks.md is replaced by the new numbers (the other sections are kept).
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "sequence_tasks.json")  # every run's numbers, merged
SECTION = "## Learning on real sequence data (echo vs BPTT)"

# Per data set: task options and training settings (small training sets get more epochs).
UCR_RUNS = {
    "GunPoint": dict(options=dict(units=32, width=16), epochs=150, batch=10, lr=1e-2),
    "ItalyPowerDemand": dict(options=dict(units=32, width=16), epochs=150, batch=16, lr=1e-2),
    "ArrowHead": dict(options=dict(units=32, width=16), epochs=150, batch=12, lr=1e-2),
    "BasicMotions": dict(options=dict(units=32, width=16), epochs=150, batch=10, lr=1e-2),
    "JapaneseVowels": dict(options=dict(units=32, width=16), epochs=60, batch=16, lr=1e-2),
}
# One physical network + linear readout, the whole sequence presented at once as constant forces
# (`presentation=spatial`; its time-average position is the readout): what the physics alone learns.
PHYSICAL = dict(architecture="physical", presentation="spatial", unit="pendulum", coupling="bilinear",
                readout_points=0, hold_steps=20)
BAKE_OFF = {"GunPoint": (0.913, 0.927), "ItalyPowerDemand": (0.955, 0.946), "ArrowHead": (0.800, 0.709)}


def machine() -> str:
    import jax

    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.system()}; Python "
            f"{platform.python_version()}, jax {jax.__version__}, float64; 1-min load average at start "
            f"{load:.2f}")


def train(name: str, data: str, options: dict, *, epochs: int, batch: int, lr: float, out_root: str,
          extra=()) -> dict:
    """One `train sequence` run as a subprocess; **returns** its summary rows and timings."""
    out = os.path.join(out_root, name)
    command = [sys.executable, "-m", "lagrangian_eqprop", "train", "sequence", "--data", data, "--epochs", str(epochs),
               "--batch-size", str(batch), "--lr", str(lr), "--schedule", "cosine", "--no-progress", "--out", out,
               *extra]
    for key, value in options.items():
        command += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json")) as handle:
        rows = {row["run"]: row for row in json.load(handle)["rows"]}
    with open(os.path.join(out, "config.json")) as handle:
        config = json.load(handle)["config"]
    beta, variant = config["beta"], config["variant"]
    with open(os.path.join(out, "metrics.jsonl")) as handle:  # the probe's agreement with BPTT, every epoch
        errors = [r["max_rel_error"] for r in map(json.loads, handle) if r.get("max_rel_error") is not None]
    shown = " ".join(c if " " not in c else repr(c) for c in command[3:]).replace(out_root, "OUT")
    return {"name": name, "rows": rows, "wall": wall, "command": f"lagrangian-eqprop {shown}", "out": out,
            "beta": beta, "variant": variant, "probe_error": max(errors) if errors else None}


def mnist1d(out_root) -> list[dict]:
    return [train("mnist1d", "mnist1d", {}, epochs=30, batch=32, lr=1e-2, out_root=out_root)]


def mnist1d_tangent(out_root) -> list[dict]:
    return [train("mnist1d-tangent", "mnist1d", {}, epochs=30, batch=32, lr=1e-2, out_root=out_root,
                  extra=("--variant", "tangent"))]


def mnist1d_physical(out_root) -> list[dict]:
    options = dict(PHYSICAL, units=256, graph="random", degree=8, coupling_scale=0.4)
    return [train("mnist1d-physical", "mnist1d", options, epochs=20, batch=32, lr=3e-3, out_root=out_root,
                  extra=("--weight-decay", "0.3"))]


def ucr_physical(out_root) -> list[dict]:
    return [train(f"{name}-physical", name, dict(PHYSICAL, units=32), epochs=spec["epochs"], batch=spec["batch"],
                  lr=3e-3, out_root=out_root) for name, spec in UCR_RUNS.items()]


def ucr(out_root) -> list[dict]:
    return [train(name, name, spec["options"], epochs=spec["epochs"], batch=spec["batch"], lr=spec["lr"],
                  out_root=out_root) for name, spec in UCR_RUNS.items()]


def throughput(repeats: int = 7) -> dict:
    """Samples/s of one training step (batch 32) with the echo and with BPTT, interleaved
    medians, and the compiled peak memory of the batch gradient at T and 10 T integrator steps."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import lagrangian_eqprop as lep
    from lagrangian_eqprop.tasks import get_task

    out = {"speed": {}, "memory": {}}
    task = get_task("sequence", data="mnist1d", num_train=32, num_test=32)
    batch = task.train

    def step_fn(estimator):
        def step(params, batch):
            results = jax.vmap(lambda s: task.gradient(estimator, params, s))(batch)
            return jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), results.params)
        return eqx.filter_jit(step)

    estimators = {"echo": lep.Echo(), "bptt": lep.BPTT()}
    steps = {name: step_fn(e) for name, e in estimators.items()}
    for name, step in steps.items():
        jax.block_until_ready(step(task.params, batch))
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(task.params, batch))
            times[name].append(time.perf_counter() - start)
    for name in steps:
        median = statistics.median(times[name])
        out["speed"][name] = {"median_s": median, "samples_per_s": 32 / median}
    for substeps in (1, 10):
        long = get_task("sequence", data="mnist1d", num_train=32, num_test=32, substeps=substeps)
        for name, estimator in estimators.items():
            def grad(params, batch, estimator=estimator, long=long):
                results = jax.vmap(lambda s: long.gradient(estimator, params, s))(batch)
                return jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), results.params)
            analysis = jax.jit(grad).lower(long.params, long.train).compile().memory_analysis()
            out["memory"][(name, long.num_steps)] = analysis.temp_size_in_bytes
    return out


def render(runs: list[dict], speed: dict | None, header: str) -> str:
    lines = [SECTION, "", header, ""]
    if runs:
        lines += ["| data set | architecture | test accuracy, echo | test accuracy, BPTT | reference (published) | "
                  "whole process (both runs) | train time echo / BPTT |", "|---|---|---:|---:|---|---:|---:|"]
        from lagrangian_eqprop.data import load_dataset

        for run in runs:
            rows = run["rows"]
            data = run["name"].split("-")[0]  # "<data set>[-physical]"
            refs = load_dataset(data).references if data else {}
            ref = ", ".join(f"{k} {100 * v:.1f}%" for k, v in refs.items()) or "—"
            if data in BAKE_OFF:
                ref = f"1NN-ED {100 * BAKE_OFF[data][0]:.1f}%, MLP {100 * BAKE_OFF[data][1]:.1f}%"
            echo, bptt = rows.get("echo", {}), rows.get("bptt", {})
            arch = ("one physical network + linear readout" if "physical" in run["name"] else
                    "stacked, tangent echo" if "tangent" in run["name"] else "stacked")
            lines.append(
                f"| {data} | {arch} | {100 * echo.get('test_accuracy', float('nan')):.1f}% | "
                f"{100 * bptt.get('test_accuracy', float('nan')):.1f}% | {ref} | {run['wall'] / 60:.1f} min | "
                f"{echo.get('wall_time', float('nan')) / 60:.1f} / {bptt.get('wall_time', float('nan')) / 60:.1f} min |")
        lines += ["", "Commands (`OUT` is a scratch folder) and when they ran:", ""]
        for run in runs:
            probe = run.get("probe_error")
            variant = run.get("variant", "centered")
            detail = ("" if run.get("beta") is None else
                      "; tangent echo (exact, no β)" if variant == "tangent" else
                      f"; echo {variant} at β = {run['beta']:g}") + (
                "" if probe is None else f", probe gradient vs BPTT ≤ {probe:.1e} relative at every epoch")
            lines.append(f"- `{run['command']}` — {run.get('measured', '')}{detail}")
            if run.get("note"):  # written by hand into the results file: what a run showed
                lines.append(f"  {run['note']}")
    if speed:
        lines += ["", "**Throughput and memory** (MNIST-1D stacked network, batch of 32, one training step; "
                  "interleaved medians; memory = XLA temp buffers of the compiled batch gradient; command "
                  f"`python benchmarks/sequence_tasks.py throughput`, {speed.get('measured', '')}):", "",
                  "| | echo | BPTT | echo / BPTT |", "|---|---:|---:|---:|"]
        e, b = speed["speed"]["echo"], speed["speed"]["bptt"]
        lines.append(f"| samples/s | {e['samples_per_s']:.1f} | {b['samples_per_s']:.1f} | "
                     f"{e['median_s'] / b['median_s']:.2f}× time |")
        for n in sorted({k[1] for k in speed["memory"]}):
            me, mb = speed["memory"][("echo", n)], speed["memory"][("bptt", n)]
            lines.append(f"| memory at N = {n} | {me / 2**20:.1f} MiB | {mb / 2**20:.1f} MiB | {me / mb:.2f}× |")
        lines += ["", "The echo's memory still grows with N here, through what the stacked network keeps for autodiff "
                  "outside the physical blocks (each block's outputs `(N+1, units)` and the glue's activations); "
                  "the physical passes themselves keep O(1) per block, while BPTT also stores every step of every block."]
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    _docs.write_section(DOCS, SECTION, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="+", choices=("mnist1d", "mnist1d-tangent", "mnist1d-physical", "ucr",
                                                    "ucr-physical", "throughput", "all", "render"), help="render: rewrite the section from the stored results")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "benchmarks"), help="scratch folder for the runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    what = ({"mnist1d", "mnist1d-tangent", "mnist1d-physical", "ucr", "ucr-physical", "throughput"}
            if "all" in args.what else set(args.what))
    stored = {"runs": {}, "speed": None}
    if os.path.exists(RESULTS):
        with open(RESULTS) as handle:
            stored = json.load(handle)
    today = f"{datetime.date.today()}, {machine()}"
    new = []
    if "mnist1d" in what:
        new += mnist1d(args.out)
    if "mnist1d-tangent" in what:
        new += mnist1d_tangent(args.out)
    if "mnist1d-physical" in what:
        new += mnist1d_physical(args.out)
    if "ucr" in what:
        new += ucr(args.out)
    if "ucr-physical" in what:
        new += ucr_physical(args.out)
    for run in new:
        run["measured"] = today
        stored["runs"][run["name"]] = {k: v for k, v in run.items() if k != "out"}
    if "throughput" in what:
        speed = throughput()
        stored["speed"] = {"speed": speed["speed"], "measured": today,
                           "memory": [[k[0], k[1], v] for k, v in speed["memory"].items()]}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump(stored, handle, indent=1)
    speed = stored["speed"]
    if speed is not None:
        speed = dict(speed, memory={(a, b): v for a, b, v in speed["memory"]})
    header = ("Each row comes from the command listed under the table, run as a whole process; when it was "
              "measured and on what machine is listed with it (`benchmarks/results/sequence_tasks.json` keeps "
              "every number).")
    section = render(list(stored["runs"].values()), speed, header)
    print(section)
    if not args.no_write:
        write(section)


if __name__ == "__main__":
    main()
