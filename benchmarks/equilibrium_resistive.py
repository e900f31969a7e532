"""Digits with a nonlinear resistive network (co-content energy, diodes): EqProp vs implicit differentiation.

    python benchmarks/equilibrium_resistive.py                          # 130 sources, 32 hidden, 10 pairs
    python benchmarks/equilibrium_resistive.py --variant holomorphic --epochs 5

Trains the conductances of the `resistive` task side by side with static EqProp (centered at the
default β, or holomorphic at |β| = R/10) and implicit differentiation, and prints the held-out
accuracy of both, the gradient agreement on a probe batch and the wall times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import lagrangian_eqprop.tasks._equilibrium_tasks  # noqa: E402,F401  (registers the tasks)
from lagrangian_eqprop import Implicit  # noqa: E402
from lagrangian_eqprop._equilibrium_gradient import EquilibriumEqProp  # noqa: E402
from lagrangian_eqprop.tasks import get_task  # noqa: E402
from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--variant", default="centered", choices=("centered", "positive", "negative", "holomorphic"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    task = get_task("resistive", hidden=args.hidden, seed=args.seed)
    config = TrainConfig(task="resistive", estimator=EquilibriumEqProp(variant=args.variant), reference=Implicit(),
                         epochs=args.epochs, learning_rate=args.lr, batch_size=32, probe_every=1, seed=args.seed,
                         task_options=dict(task.options))
    print(f"resistive: {task.model.num_inputs} sources, {args.hidden} hidden nodes (diodes), 10 output pairs, "
          f"{task.params['g'].shape[0]} conductances; {task.num_train} / {task.num_test} images")

    def report(epoch, records):
        print(f"epoch {epoch:3d}  " + "  |  ".join(
            f"{r['run']}: test {r['test_accuracy']:.2%}" + (f" cos {r['cosine']:.9f}" if r.get("cosine") else "")
            for r in records), flush=True)

    result = Trainer(config, task=task).fit(args.out, progress=False, plots=args.out is not None, callbacks=[report])
    print(result.summary_table())
    summary = {run: {"test_accuracy": result.final(run)["test_accuracy"], "train_time_s": result.final(run)["wall_time"]}
               for run in result.runs}
    summary["total_wall_time_s"] = time.perf_counter() - started
    summary["settings"] = vars(args)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
