"""Training physical systems: an optax loop over batches, any gradient estimator.

    from lagrangian_eqprop.training import TrainConfig, Trainer
    result = Trainer(TrainConfig(task="tracking", estimator="echo", reference="bptt")).fit("runs/demo")
    print(result.summary_table())

- `_config.py`: `TrainConfig` (estimators by name or as objects, optimiser, schedule, seed);
- `_constraints.py`: positive parameters by reparametrisation (`CONSTRAINTS`), never clipping;
- `_checkpoint.py`: atomic checkpoints (`equinox.tree_serialise_leaves`) and run-folder files;
- `_loop.py`: `Trainer` — estimators side by side on the same batches, probes, resume;
- `_report.py`: `TrainResult`, the summary table, `params.json`, `summary.json`, plots.

**Runs on disk** (`Trainer.fit(out_dir)`): `config.json` (the resolved configuration),
`metrics.jsonl` (one JSON record per step and per epoch and run), `checkpoint.eqx` (written
atomically), `params.json` (final physical parameters), `summary.json` and `plots/*.png`.
`resume(out_dir)` continues from the checkpoint and reaches the same parameters as an
uninterrupted run (batch order depends only on `(seed, epoch)`).
"""

from .._references import ESTIMATORS
from ..errors import ConfigError, TrainingError
from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import OPTIMIZERS, TrainConfig, read_config
from ._constraints import CONSTRAINTS, Constraint, to_unconstrained
from ._loop import Trainer, resume, train
from ._report import TrainResult

__all__ = [
    "CONSTRAINTS",
    "ConfigError",
    "Constraint",
    "ESTIMATORS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "load_checkpoint",
    "read_config",
    "resume",
    "save_checkpoint",
    "to_unconstrained",
    "train",
]
