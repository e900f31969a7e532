"""System identification: recover the hidden spring stiffnesses of a mass–spring chain.

A teacher chain with unknown stiffnesses is observed; the student learns them from the
trajectories. This task has fixed-endpoint samples, so it can be trained with the thesis'
two-point boundary-value EqProp (`bvp`); here `echo` and `bvp` run side by side.

    python examples/train_sysid.py [OUT_DIR]
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402

config = TrainConfig(task="sysid", estimator="echo", reference="bvp", epochs=40, learning_rate=0.05)
out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/sysid"
result = Trainer(config).fit(out_dir, resume=True)
print(result.summary_table())
true_k = np.asarray(result.task.true_params["k"])
for run in result.runs:
    print(f"{run:>5}: k = {np.round(np.asarray(result.params[run]['k']), 3)}")
print(f" true: k = {np.round(true_k, 3)}")
print(f"plots in {out_dir}/plots")
