"""Whole-process time of the main command (`lagrangian-eqprop train`), cold vs warm compilation cache.

    python benchmarks/startup.py                 # 3 rounds of the README's main command
    python benchmarks/startup.py --rounds 5 -- --epochs 20 --no-plots   # extra flags after --

Each round runs the command three times as a fresh process, in this order:
- `cold`: with an empty persistent compilation cache (a new temporary folder);
- `warm`: again, with the cache the cold run filled;
- `off`:  with the cache switched off (`LAGRANGIAN_EQPROP_COMPILE_CACHE=off`).
It reports, per kind, the wall time of the whole process measured from outside (fork to exit:
interpreter start-up, imports, data generation, tracing, compilation, training, plots and
interpreter shutdown), the time the command itself prints (`total wall time`, process start to
its last line) and its `set up` time, and the training time of the run (summary.json). The
machine's load average is printed with the numbers, since other jobs on a shared machine move
every absolute time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m lagrangian_eqprop`."""
    script = os.path.join(os.path.dirname(sys.executable), "lagrangian-eqprop")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "lagrangian_eqprop"]


def run_once(cache: str, extra: list[str], scratch: str) -> dict:
    out = tempfile.mkdtemp(dir=scratch)
    os.rmdir(out)
    env = dict(os.environ, LAGRANGIAN_EQPROP_COMPILE_CACHE=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    t0 = time.perf_counter()
    proc = subprocess.run([*command(), "train", "--no-progress", "--out", out, *extra], env=env,
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the command failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    reported = float(re.search(r"total wall time: ([\d.]+) s", proc.stdout).group(1))
    setup = float(re.search(r"set up in ([\d.]+) s", proc.stdout).group(1))
    with open(os.path.join(out, "summary.json")) as handle:
        summary = json.load(handle)
    rows = summary["rows"] if isinstance(summary, dict) and "rows" in summary else summary
    train = sum(float(r["wall_time"]) for r in rows)
    return {"wall": wall, "reported": reported, "setup": setup, "train": train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="flags passed on to `train` (after --)")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    times: dict[str, list[dict]] = {"cold": [], "warm": [], "off": []}
    scratch = tempfile.mkdtemp(prefix="lep-startup-")
    try:
        for r in range(args.rounds):
            cache = os.path.join(scratch, f"cache{r}")
            for kind, setting in (("cold", cache), ("warm", cache), ("off", "off")):
                times[kind].append(run_once(setting, args.extra, scratch))
                print(f"round {r + 1} {kind:<4}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times[kind][-1].items()),
                      flush=True)
            size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache))
            entries = len(os.listdir(cache))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jax"], check=True)
        import_jax = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jax; jax.config.update('jax_enable_x64', True); "
                        "import lagrangian_eqprop.training"], check=True, cwd=REPO)
        import_training = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    import jax

    print()
    print(f"Command: `python benchmarks/startup.py --rounds {args.rounds}"
          + (f" -- {' '.join(args.extra)}" if args.extra else "") + f"` (total runtime "
          f"{time.perf_counter() - started:.0f} s). Timed command: `{' '.join(['lagrangian-eqprop', 'train', '--no-progress', '--out', 'DIR', *args.extra])}`.")
    print(f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), {platform.system()}; Python "
          f"{platform.python_version()}, jax {jax.__version__}; 1-min load average at start / end: "
          f"{load0:.2f} / {os.getloadavg()[0]:.2f}. Cache: {entries} entries, {size / 2**10:.0f} KiB.")
    print()
    print("| cache | whole process, median (min) | printed by the command | of which set-up | training (both runs) |")
    print("|---|---:|---:|---:|---:|")
    for kind, rows in times.items():
        def med(key):
            values = [row[key] for row in rows]
            return statistics.median(values), min(values)
        print(f"| {kind} | {med('wall')[0]:.1f} s ({med('wall')[1]:.1f}) | {med('reported')[0]:.1f} s | "
              f"{med('setup')[0]:.1f} s | {med('train')[0]:.1f} s |")
    cold, warm = (statistics.median(r["wall"] for r in times[k]) for k in ("cold", "warm"))
    print()
    print(f"warm / cold whole-process time: {warm / cold:.2f}× ({cold - warm:.1f} s saved). One process each: "
          f"`python -c pass` {interpreter:.2f} s, `import jax` {import_jax:.2f} s, `import "
          f"lagrangian_eqprop.training` (with JAX) {import_training:.2f} s.")


if __name__ == "__main__":
    main()
