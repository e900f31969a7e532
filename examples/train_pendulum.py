"""A chain of coupled nonlinear pendula learns a map from initial angles to the angles at time T.

The targets come from a teacher chain with other couplings and lengths; the student trains its
torsion-spring couplings `kappa` and pendulum lengths `l` (kept positive by a softplus
reparametrisation) with the echo estimator, BPTT alongside.

    python examples/train_pendulum.py [OUT_DIR]
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)

from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402

config = TrainConfig(task="pendulum", estimator="echo", reference="bptt", epochs=40, probe_every=5)
out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/pendulum"
result = Trainer(config).fit(out_dir, resume=True)
print(result.summary_table())
print(f"plots in {out_dir}/plots")
