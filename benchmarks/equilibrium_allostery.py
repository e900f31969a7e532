"""Allosteric task on a 2-D elastic network (≥ 100 nodes): EqProp vs implicit differentiation, with a plot.

    python benchmarks/equilibrium_allostery.py                      # 10×10 = 100 nodes, ratio 1
    python benchmarks/equilibrium_allostery.py --rows 12 --cols 12 --ratio -1 --out runs/allostery

Trains the `allostery` task (stiffnesses and rest lengths, its default) with static EqProp (centered, default β) and with
implicit differentiation side by side, then reports the achieved target strain ratio `ε_T/ε_S`
for both, checked independently by SciPy's BFGS on a NumPy transcription of the spring energy,
and writes `plots/network.png` (the network before and after, edges coloured by strain).
Target (issue 11): the ratio within 1 % of the goal.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import lagrangian_eqprop.tasks._equilibrium_tasks as equilibrium_tasks  # noqa: E402
from lagrangian_eqprop import Implicit  # noqa: E402
from lagrangian_eqprop._equilibrium_gradient import EquilibriumEqProp  # noqa: E402
from lagrangian_eqprop.tasks import get_task  # noqa: E402
from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402


def scipy_ratio(task, params) -> float:
    """`ε_T/ε_S` from SciPy's minimiser on the spring energy written in NumPy (independent check)."""
    layout = task.plot_fn.keywords["layout"]
    positions, edges, source = np.asarray(layout["positions"]), layout["edges"], layout["source"]
    free = layout["free_nodes"]
    k, rest_lengths = np.asarray(params["k"]), np.asarray(params["l"])
    clamped = np.asarray(task.train["inputs"][0]).reshape(2, 2)

    def energy(flat):  # value and gradient (the spring forces), in NumPy
        nodes = positions.copy()
        nodes[free] = flat.reshape(-1, 2)
        nodes[list(source)] = clamped
        d = nodes[edges[:, 1]] - nodes[edges[:, 0]]
        length = np.sqrt(np.sum(d * d, axis=1))
        tension = (k * (length - rest_lengths) / length)[:, None] * d
        grad = np.zeros_like(nodes)
        np.add.at(grad, edges[:, 1], tension)
        np.add.at(grad, edges[:, 0], -tension)
        return 0.5 * np.sum(k * (length - rest_lengths) ** 2), grad[free].ravel()

    nodes = scipy.optimize.minimize(energy, positions[free].ravel(), jac=True, method="BFGS",
                                    options={"gtol": 1e-12, "maxiter": 20000}).x
    nodes = nodes.reshape(-1, 2)
    row = {int(n): i for i, n in enumerate(free)}
    a, b = (nodes[row[int(t)]] for t in layout["target"])
    rest = float(task.train["rest"][0])
    return (np.linalg.norm(b - a) - rest) / rest / task.options["strain"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--strain", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run folder (default: a temporary folder)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    task = get_task("allostery", rows=args.rows, cols=args.cols, ratio=args.ratio, strain=args.strain, seed=args.seed)
    out = args.out or tempfile.mkdtemp(prefix="allostery-")
    config = TrainConfig(task="allostery", estimator=EquilibriumEqProp(), reference=Implicit(), epochs=args.epochs,
                         learning_rate=args.lr, probe_every=max(1, args.epochs // 10), seed=args.seed,
                         task_options=dict(task.options))
    num_nodes = args.rows * args.cols
    print(f"allostery: {num_nodes} nodes, {task.params['k'].shape[0]} springs; source strain {args.strain}, "
          f"goal ε_T/ε_S = {args.ratio}; initial ratio {equilibrium_tasks.strain_ratio(task, task.params):.4f}")
    result = Trainer(config, task=task).fit(out, progress=False)
    print(result.summary_table())
    summary = {}
    for run, params in result.params.items():
        ratio = equilibrium_tasks.strain_ratio(task, params)
        check = scipy_ratio(task, params)
        summary[run] = {"ratio": ratio, "ratio_scipy": check, "relative_error": abs(ratio / args.ratio - 1),
                        "train_time_s": result.final(run)["wall_time"]}
        print(f"{run:9s} ε_T/ε_S = {ratio:.6f} (SciPy check {check:.6f}), {abs(ratio / args.ratio - 1):.2e} from the "
              "goal")
    summary["total_wall_time_s"] = time.perf_counter() - started
    summary["plot"] = result.plots.get("network")
    print(json.dumps(summary, indent=2))
    return 0 if summary["eqprop"]["relative_error"] <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
