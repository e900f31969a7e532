"""Flagship task: six driven oscillators learn to make the fourth mass follow a target signal.

Trains the spring stiffnesses with the echo (time-dependent EqProp) estimator and, side by
side from the same start on the same batches, with backpropagation through time (BPTT), then
prints a summary table and where the plots are. Same as `lagrangian-eqprop train` with a
smaller budget.

    python examples/train_tracking.py [OUT_DIR]
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # the library never flips global flags itself

from lagrangian_eqprop.training import TrainConfig, Trainer  # noqa: E402

config = TrainConfig(
    task="tracking",
    estimator="echo",        # EqProp: free run forward, two nudged echo runs backward
    reference="bptt",        # trained side by side for comparison
    beta=1e-3,
    learning_rate=0.05,
    epochs=60,
    task_options={"num_train": 8, "num_test": 4, "num_steps": 300},
)
out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/tracking"
trainer = Trainer(config)
print(trainer.task.description)
result = trainer.fit(out_dir, resume=True)  # resume=True: rerunning continues (or just reports) the run
print(result.summary_table())
print(f"loss fell {result.loss_reduction():.0f}× (echo); plots:")
for name, path in result.plots.items():
    print(f"  {name:<13} {path}")
