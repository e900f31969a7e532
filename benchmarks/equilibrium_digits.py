"""Digits (scikit-learn's 8×8) with the thesis' layered Hopfield network: EqProp vs implicit differentiation.

    python benchmarks/equilibrium_digits.py                 # 64-128-10, 10 epochs, both estimators
    python benchmarks/equilibrium_digits.py --epochs 20 --hidden 256 --out runs/digits-bench

Trains the `digits` task twice side by side on the same batches (the trainer's lockstep): static
EqProp (centered, β = 0.01) and implicit differentiation (`jax.grad` through the equilibrium
solve), and prints held-out accuracy per epoch, the final accuracies, the wall time per run
and the agreement of the EqProp gradient with the implicit one on a probe batch.
Target (issue 11): ≥ 97 % held-out accuracy in under 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import lagrangian_eqprop.tasks._equilibrium_tasks  # noqa: E402,F401  (registers digits, resistive, allostery)
from lagrangian_eqprop import Implicit  # noqa: E402
from lagrangian_eqprop._equilibrium_gradient import EquilibriumEqProp  # noqa: E402
from lagrangian_eqprop.tasks import get_task  # noqa: E402
from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run folder (metrics, plots); default: in memory")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    options = {"hidden": args.hidden, "seed": args.seed}
    task = get_task("digits", **options)
    config = TrainConfig(task="digits", estimator=EquilibriumEqProp(beta=args.beta), reference=Implicit(),
                         epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, probe_every=1,
                         probe_size=8, seed=args.seed, task_options=dict(task.options))
    trainer = Trainer(config, task=task)
    print(f"digits: 64-{args.hidden}-10 hard-sigmoid Hopfield network, {task.num_train} training / {task.num_test} "
          f"held-out images; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, JAX {jax.__version__}")

    def report(epoch, records):
        parts = [f"{r['run']}: test {r['test_accuracy']:.2%} train {r['train_accuracy']:.2%}"
                 + (f" cos {r['cosine']:.6f}" if r.get("cosine") is not None else "") for r in records]
        print(f"epoch {epoch:3d}  " + "  |  ".join(parts), flush=True)

    result = trainer.fit(args.out, progress=False, plots=args.out is not None, callbacks=[report])
    total = time.perf_counter() - started
    print()
    print(result.summary_table())
    summary = {run: {"test_accuracy": result.final(run)["test_accuracy"],
                     "train_accuracy": result.final(run)["train_accuracy"],
                     "train_time_s": result.final(run)["wall_time"]} for run in result.runs}
    summary["total_wall_time_s"] = total
    summary["settings"] = vars(args)
    print(json.dumps(summary, indent=2))
    return 0 if summary["eqprop"]["test_accuracy"] >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
