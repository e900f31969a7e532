"""`Trainer`: the optimisation loop — estimators side by side on the same batches, metrics,
gradient-agreement probes, checkpoints and resume.

Every estimator sits behind the same step: per-sample `GradientResult`s (vmapped over the
batch), the mean physical gradient pulled back through the constraint transforms to `raw`,
one optax update. A failed solve in a step, a non-finite loss or gradient stops training with
a `TrainingError` naming the run, the step and the cause; the last good checkpoint is kept.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._estimators import AbstractEstimator, as_estimator
from .._solution import check_solution
from ..diagnostics import gradient_agreement
from ..errors import ConfigError, ConvergenceError, TrainingError
from ..tasks import Task, get_task
from ._checkpoint import CHECKPOINT, CONFIG, METRICS, json_safe, load_checkpoint, save_checkpoint, write_json
from ._config import TrainConfig, make_optimizer
from ._constraints import CONSTRAINTS, to_unconstrained
from ._distributed import data_parallel
from ._report import TrainResult, finalise

__all__ = ["Trainer", "resume", "train"]


class Trainer:
    """Trains a task's physical parameters with one estimator (plus an optional reference).

    **Arguments:**
    - `config`: a `TrainConfig` (validated; `None` fields take the task's recommendations).
    - `task`: an already built `Task` (default: `get_task(config.task, **config.task_options)`,
      with the task's `seed` defaulting to `config.seed`).

    **Raises:** `ConfigError` for invalid settings (e.g. the fixed-endpoint estimator on a task
    without fixed endpoints, or the echo on a system it is not exact for).
    """

    def __init__(self, config: TrainConfig | None = None, task: Task | None = None):
        config = (config or TrainConfig()).validate(registered=task is None)
        if task is None:
            options = dict(config.task_options)
            options.setdefault("seed", config.seed)
            task = get_task(config.task, **options)
        self.task = task
        self.config = config.resolve(task)
        dtype = _float_dtype(task.train)
        self.estimators = {run: est.resolve(dtype) for run, est in self.config.estimators().items()}
        for estimator in self.estimators.values():
            task.check_estimator(estimator)
        self.runs = tuple(self.estimators)
        cfg = self.config
        self.batch_size = min(cfg.batch_size, task.num_train)
        self.num_batches = task.num_train // self.batch_size
        # Data parallel (`devices`, or a multi-process run): batches split over a device mesh,
        # everything else replicated; otherwise `parallel` places nothing.
        self.parallel = data_parallel(cfg.devices, self.batch_size)
        self.constraints = dict(task.trainable)
        decayed = {name: kind == "none" for name, kind in self.constraints.items()}
        self.optimizer = make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.schedule,
                                        cfg.epochs * self.num_batches, cfg.weight_decay, decayed)
        self.fixed = {k: v for k, v in task.params.items() if k not in self.constraints}
        self.initial_raw = to_unconstrained(task.params, self.constraints)
        probe = min(cfg.probe_size, task.num_train)
        self.probe_batch = {k: v[:probe] for k, v in task.train.items()}
        self.eval_batch = task.train if task.test is None else {
            k: jnp.concatenate([task.train[k], task.test[k]]) for k in task.train}
        self._eval_input, self._num_eval = self.parallel.shard_padded(self.eval_batch)
        self._probe_input = self.parallel.shard_or_replicate(self.probe_batch)
        self._steps = {run: eqx.filter_jit(self._make_step(est)) for run, est in self.estimators.items()}
        self._evaluate = eqx.filter_jit(self._evaluate_impl)
        self._probe = {run: eqx.filter_jit(self._make_probe(est)) for run, est in self.estimators.items()
                       if type(est) is not type(task.exact_reference(est))}

    # ------------------------------------------------------------------ parameters
    def physical(self, raw: dict) -> dict:
        """Physical parameters: fixed ones plus `transform(raw)` for the trained ones."""
        params = dict(self.fixed)
        for name, kind in self.constraints.items():
            params[name] = CONSTRAINTS[kind].forward(raw[name])
        return params

    def initial_state(self) -> dict:
        """`{run: {"raw", "opt_state"}}` at the task's initial parameters."""
        return {run: {"raw": dict(self.initial_raw), "opt_state": self.optimizer.init(self.initial_raw)}
                for run in self.runs}

    # ------------------------------------------------------------------- estimators
    def _estimator(self, estimator) -> AbstractEstimator:
        if isinstance(estimator, AbstractEstimator):
            return estimator
        if estimator in self.estimators:
            return self.estimators[estimator]
        dtype = _float_dtype(self.task.train)
        built = as_estimator(estimator)
        if hasattr(built, "beta"):
            built = as_estimator(estimator, self.config.beta, self.config.variant)
        return built.resolve(dtype)

    def sample_gradient(self, estimator, params: dict, sample: dict):
        """The estimator's `GradientResult` (loss, physical gradient, result) for one sample."""
        return self.task.gradient(self._estimator(estimator), params, sample)

    def loss_and_grad(self, estimator, raw: dict, batch: dict, *, with_result: bool = False):
        """Mean batch loss and its gradient w.r.t. the unconstrained parameters `raw` (and, with
        `with_result`, the per-sample results, to check for failed solves)."""
        params, pullback = jax.vjp(self.physical, raw)
        out = jax.vmap(lambda s: self.sample_gradient(estimator, params, s))(batch)
        mean_grads = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), out.params)
        (raw_grads,) = pullback({k: mean_grads[k] for k in params})
        loss = jnp.mean(out.loss)
        return (loss, raw_grads, out.result, out.stats) if with_result else (loss, raw_grads)

    def physical_gradient(self, estimator, raw: dict, batch: dict) -> dict:
        """Mean batch gradient w.r.t. the *physical* trained parameters (for agreement checks)."""
        params = self.physical(raw)
        out = jax.vmap(lambda s: self.sample_gradient(estimator, params, s))(batch)
        return {k: jnp.mean(out.params[k], axis=0) for k in self.constraints}

    def _make_step(self, estimator):
        optimizer = self.optimizer

        def step(raw, opt_state, batch):
            loss, grads, result, stats = self.loss_and_grad(estimator, raw, batch, with_result=True)
            # optax mixes its int32 step count with floats (bias correction): standard promotion
            # for the update alone, whatever the caller's promotion mode.
            with jax.numpy_dtype_promotion("standard"):
                updates, new_opt_state = optimizer.update(grads, opt_state, raw)
            return self.parallel.gather((optax.apply_updates(raw, updates), new_opt_state, loss,
                                         optax.tree.norm(grads), result, stats))

        return step

    def _make_probe(self, estimator):
        reference = self.task.exact_reference(estimator)

        def probe(raw, batch):
            return self.parallel.gather((self.physical_gradient(estimator, raw, batch),
                                         self.physical_gradient(reference, raw, batch)))

        return probe

    # ------------------------------------------------------------------- evaluation
    def _evaluate_impl(self, raw, batch):
        """Per-sample losses and class scores of the free runs, and the task's energy error."""
        params = self.physical(raw)
        losses, logits, result, stats = jax.vmap(lambda s: self.task.evaluate(params, s))(batch)
        return self.parallel.gather((losses, logits, self.task.energy_error(params), result, stats))

    def evaluate(self, raw: dict) -> dict:
        """Metrics of one parameter state (`train_loss`, `test_loss`, accuracies, errors).

        **Raises:** `ConvergenceError` when a free run of the evaluation batch fails.
        """
        losses, logits, energy_error, result, stats = self._evaluate(raw, self._eval_input)
        check_solution(None, result, stats, what=f"evaluation run of task {self.task.name}")
        losses = np.asarray(losses)[:self._num_eval]  # rows past it pad the batch to the devices
        n_train = self.task.num_train
        out = {"train_loss": float(np.mean(losses[:n_train])),
               "test_loss": float(np.mean(losses[n_train:])) if self.task.test is not None else None,
               "energy_error": float(energy_error)}
        if self.task.classes is not None:
            pred = np.argmax(np.asarray(logits)[:self._num_eval], axis=-1)
            labels = np.asarray(self.eval_batch["label"])
            correct = pred == labels
            out["train_accuracy"] = float(np.mean(correct[:n_train]))
            out["test_accuracy"] = float(np.mean(correct[n_train:])) if self.task.test is not None else None
        if self.task.true_params is not None:
            params = self.physical(raw)
            num = sum(float(jnp.sum((params[k] - v) ** 2)) for k, v in self.task.true_params.items())
            den = sum(float(jnp.sum(v**2)) for v in self.task.true_params.values())
            out["param_error"] = math.sqrt(num / den)
        return out

    def batches(self, epoch: int):
        """The batches of an epoch (shuffled by `default_rng([seed, epoch])`, remainder dropped)."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.task.num_train)
        for b in range(self.num_batches):
            idx = jnp.asarray(order[b * self.batch_size:(b + 1) * self.batch_size])
            yield self.parallel.shard({k: v[idx] for k, v in self.task.train.items()})

    # ------------------------------------------------------------------------- loop
    def fit(
        self,
        out_dir=None,
        *,
        resume: bool = False,
        progress: bool = True,
        plots: bool = True,
        callbacks: Sequence[Callable[[int, list], None]] = (),
    ) -> TrainResult:
        """Train for `config.epochs` epochs (each run in lockstep on the same batches).

        **Arguments:**
        - `out_dir`: run folder (created); `None` keeps everything in memory.
        - `resume`: continue the run in `out_dir` from its checkpoint when there is one (its
          configuration must be this one, apart from `epochs`); an empty or new folder starts
          a fresh run; a run stopped before its first checkpoint restarts from epoch 0 with a
          warning. Without `resume`, `out_dir` must not hold a run.
        - `progress`: show a tqdm bar with the live loss of each run.
        - `plots`: write the PNG plots at the end.
        - `callbacks`: `callback(epoch, records)` after each epoch's checkpoint (raising
          `KeyboardInterrupt` there simulates a kill).

        **Returns:** a `TrainResult`.

        **Raises:** `TrainingError` naming the run, step and cause on a non-finite loss or
        gradient or a failed solve (the last good checkpoint is kept); `ConfigError` when
        `out_dir` holds a different run.
        """
        cfg = self.config
        out_dir = None if out_dir is None else os.fspath(out_dir)
        state = self.initial_state()
        start_epoch, step, wall = 0, 0, {run: 0.0 for run in self.runs}
        history: list[dict] = []
        if out_dir is not None:
            if self.parallel.is_main:
                state, start_epoch, step, wall, history = self._open_run_folder(out_dir, resume, state, wall)
            else:  # another process of a multi-process run: it reads the folder, process 0 writes it
                state, start_epoch, step, wall = self._read_run_folder(out_dir, resume, state, wall)
                out_dir = None
        state = self.parallel.replicate(state)

        if start_epoch == 0 and not history:
            for run in self.runs:
                record = self._epoch_record(run, 0, step, state[run]["raw"], [], [], wall[run], 0.0)
                history.append(record)
                self._log(out_dir, record)

        bar = None
        if progress and start_epoch < cfg.epochs and self.parallel.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=f"{cfg.task} [{'+'.join(self.runs)}]",
                       unit="epoch", dynamic_ncols=True)
        completed = True
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                losses = {run: [] for run in self.runs}
                norms = {run: [] for run in self.runs}
                epoch_time = {run: 0.0 for run in self.runs}
                for batch in self.batches(epoch):
                    step += 1
                    for run in self.runs:
                        t0 = time.perf_counter()
                        new_state, loss, gnorm = self._train_step(run, state[run], batch, epoch, step, out_dir)
                        dt = time.perf_counter() - t0
                        epoch_time[run] += dt
                        state[run] = new_state
                        losses[run].append(loss)
                        norms[run].append(gnorm)
                        self._log(out_dir, {"kind": "step", "run": run, "epoch": epoch, "step": step,
                                            "loss": loss, "grad_norm": gnorm, "time": dt})
                records = []
                for run in self.runs:
                    wall[run] += epoch_time[run]
                    record = self._epoch_record(run, epoch, step, state[run]["raw"], losses[run], norms[run],
                                                wall[run], epoch_time[run])
                    records.append(record)
                    history.append(record)
                    self._log(out_dir, record)
                if out_dir is not None:
                    self._checkpoint(out_dir, state, epoch, step, wall)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({run: f"{r['train_loss']:.3e}" for run, r in zip(self.runs, records)})
                for callback in callbacks:
                    callback(epoch, records)
        except KeyboardInterrupt:
            completed = False
        finally:
            if bar is not None:
                bar.close()
        result = TrainResult(
            config=cfg, task=self.task, runs=self.runs,
            params={run: self.physical(state[run]["raw"]) for run in self.runs},
            initial_params=self.physical(self.initial_raw), history=history, out_dir=out_dir,
            completed=completed, trained=dict(self.constraints),
        )
        if out_dir is not None and completed:
            finalise(result, plots)
        return result

    def _open_run_folder(self, out_dir, resume, state, wall):
        """Prepare `out_dir` for a fresh run or load its checkpoint (see `fit`)."""
        os.makedirs(out_dir, exist_ok=True)
        ckpt = os.path.join(out_dir, CHECKPOINT)
        config_path = os.path.join(out_dir, CONFIG)
        holds_run = any(os.path.exists(os.path.join(out_dir, name)) for name in (CHECKPOINT, METRICS, CONFIG))
        if holds_run and not resume:
            raise ConfigError(
                f"{out_dir} already holds a run; continue it with `lagrangian-eqprop resume {out_dir}` "
                "or choose another output folder."
            )
        start_epoch, step, history = 0, 0, []
        if resume and os.path.exists(config_path):
            self._check_same_config(config_path)
        for name in os.listdir(out_dir):  # temporaries of a process killed mid-write
            if resume and ".tmp-" in name:
                os.remove(os.path.join(out_dir, name))
        if resume and os.path.exists(ckpt):
            state, meta = load_checkpoint(ckpt, state)
            if tuple(meta["runs"]) != self.runs:
                raise ConfigError(f"checkpoint {ckpt} holds runs {meta['runs']}, this configuration {self.runs}.")
            start_epoch, step, wall = meta["epoch"], meta["step"], meta["wall_time"]
            history = self._read_history(out_dir, start_epoch)
        else:
            if resume and holds_run:
                warnings.warn(f"{out_dir} holds no checkpoint yet (the run stopped before its first epoch "
                              "ended): starting it again from epoch 0.", stacklevel=3)
            open(os.path.join(out_dir, METRICS), "w").close()
        self._write_config(config_path, start_epoch)
        return state, start_epoch, step, wall, history

    def _read_run_folder(self, out_dir, resume, state, wall):
        """What a process other than 0 needs from `out_dir`: the checkpoint to resume from
        (read only; process 0 checks and writes the folder)."""
        ckpt = os.path.join(out_dir, CHECKPOINT)
        if resume and os.path.exists(ckpt):
            state, meta = load_checkpoint(ckpt, state)
            return state, meta["epoch"], meta["step"], meta["wall_time"]
        return state, 0, 0, wall

    def _check_same_config(self, config_path) -> None:
        """Refuse to resume a run written by a different configuration (naming the fields)."""
        with open(config_path) as handle:
            saved = json.load(handle)["config"]
        current = self.config.to_dict()
        differing = sorted(k for k in set(saved) | set(current)
                           if k not in ("epochs", "devices") and json.dumps(saved.get(k), sort_keys=True)
                           != json.dumps(current.get(k), sort_keys=True))
        if differing:
            detail = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in differing)
            raise ConfigError(f"cannot resume {os.path.dirname(config_path)}: it was written by a different "
                              f"configuration ({detail}). Resume it with its own configuration, or start a new "
                              "run in another folder.")

    def _write_config(self, config_path, start_epoch) -> None:
        """`config.json`: the configuration, plus the history of `epochs` when a resume extends
        (or shortens) the run."""
        epochs_history = []
        if os.path.exists(config_path):
            with open(config_path) as handle:
                saved = json.load(handle)
            epochs_history = saved.get("epochs_history") or [saved["config"].get("epochs")]
        if not epochs_history or epochs_history[-1] != self.config.epochs:
            epochs_history.append(self.config.epochs)
        write_json(config_path, {"config": self.config.to_dict(), "runs": list(self.runs),
                                 "epochs_history": epochs_history})

    def _train_step(self, run, run_state, batch, epoch, step, out_dir):
        where = f"run {run!r}, step {step} (epoch {epoch})"
        kept = (f"; the last good checkpoint is kept in {os.path.join(out_dir, CHECKPOINT)}"
                if out_dir is not None and epoch > 1 else "")
        raw, opt_state, loss, gnorm, result, stats = self._steps[run](run_state["raw"], run_state["opt_state"], batch)
        try:
            check_solution(None, result, stats, what=f"{self.estimators[run].describe()} (task {self.task.name})")
        except ConvergenceError as err:
            raise TrainingError(f"training stopped at {where}: {err}{kept}.") from err
        loss, gnorm = float(loss), float(gnorm)
        if not math.isfinite(loss):
            raise TrainingError(f"training stopped at {where}: the loss is non-finite ({loss}){kept}. "
                                "Try a smaller learning rate or time step.")
        if not math.isfinite(gnorm):
            raise TrainingError(f"training stopped at {where}: the gradient is non-finite (norm {gnorm}){kept}. "
                                "Try a smaller learning rate, a smaller β or a smaller time step.")
        return {"raw": raw, "opt_state": opt_state}, loss, gnorm

    def _epoch_record(self, run, epoch, step, raw, losses, norms, wall_time, epoch_time):
        try:
            metrics = self.evaluate(raw)
        except ConvergenceError as err:
            raise TrainingError(f"evaluation failed for run {run!r} after epoch {epoch} (step {step}): {err}") from err
        record = {"kind": "epoch", "run": run, "epoch": epoch, "step": step,
                  "batch_loss": float(np.mean(losses)) if losses else None,
                  "grad_norm": float(np.mean(norms)) if norms else None, **metrics,
                  "wall_time": wall_time, "epoch_time": epoch_time}
        cfg = self.config
        if run in self._probe and cfg.probe_every and epoch % cfg.probe_every == 0:
            est, ref = self._probe[run](raw, self._probe_input)
            agreement = gradient_agreement(est, ref)["all"]
            record.update({k: float(agreement[k]) for k in ("cosine", "norm_ratio", "max_rel_error")})
            record["agreement_reference"] = self.task.exact_reference(self.estimators[run]).name
        return record

    def _checkpoint(self, out_dir, state, epoch, step, wall):
        path = os.path.join(out_dir, CHECKPOINT)
        meta = {"epoch": epoch, "step": step, "wall_time": wall, "runs": list(self.runs),
                "config": self.config.to_dict()}
        try:
            save_checkpoint(path, state, meta)
        except OSError as err:
            raise TrainingError(f"could not write the checkpoint after epoch {epoch} ({err}); the previous "
                                f"checkpoint in {path} is intact.") from err

    @staticmethod
    def _log(out_dir, record):
        if out_dir is None:
            return
        with open(os.path.join(out_dir, METRICS), "a") as handle:
            handle.write(json.dumps({k: json_safe(v) for k, v in record.items()}) + "\n")

    @staticmethod
    def _read_history(out_dir, last_epoch) -> list[dict]:
        """Epoch records up to the checkpoint; drops (and rewrites away) anything logged after it."""
        path = os.path.join(out_dir, METRICS)
        kept, history = [], []
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line torn by a kill
                        continue
                    if record.get("epoch", 0) <= last_epoch:
                        kept.append(line if line.endswith("\n") else line + "\n")
                        if record.get("kind") == "epoch":
                            history.append({k: (float("nan") if v is None and k in ("train_loss",) else v)
                                            for k, v in record.items()})
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as handle:
            handle.writelines(kept)
        os.replace(tmp, path)
        return history


# ========================================================================= conveniences
def _float_dtype(samples: dict):
    """The floating dtype of a task's samples (labels are integers)."""
    return next(x.dtype for x in jax.tree_util.tree_leaves(samples) if jnp.issubdtype(x.dtype, jnp.floating))


def train(config: TrainConfig | dict | None = None, out_dir=None, **kwargs) -> TrainResult:
    """Build a `Trainer` from a config (or a dict of its fields) and run `fit(out_dir, **kwargs)`."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    return Trainer(config).fit(out_dir, **kwargs)


def resume(out_dir, *, epochs: int | None = None, task: Task | None = None, progress: bool = True,
           plots: bool = True, callbacks=(), devices: int | None = None) -> TrainResult:
    """Continue the run in `out_dir` from its checkpoint (optionally to a new number of epochs,
    recorded in `config.json`'s `epochs_history`).

    With the same configuration the result is the one an uninterrupted run would have given:
    the checkpoint holds the parameters and optimiser state, and the batch order of each epoch
    depends only on `(seed, epoch)`. Pass `task` for a run of a hand-built `Task`, `devices` to
    continue on another number of devices (`TrainConfig.devices`; the same result to round-off).

    **Raises:** `ConfigError` when `out_dir` is not a run folder, or when `epochs` is below the
    epochs already trained.
    """
    from ._config import read_config

    config = read_config(out_dir, registered=task is None)
    if epochs is not None:
        ckpt = os.path.join(os.fspath(out_dir), CHECKPOINT)
        done = 0
        if os.path.exists(ckpt):
            from ._checkpoint import read_meta

            done = read_meta(ckpt)["epoch"]
        if epochs < done:
            raise ConfigError(f"{out_dir} has trained {done} epochs already; resume --epochs must be ≥ {done}, "
                              f"got {epochs}.")
        config = TrainConfig.from_dict(dict(config.to_dict(), epochs=epochs), registered=task is None)
    if devices is not None:
        config = TrainConfig.from_dict(dict(config.to_dict(), devices=devices), registered=task is None)
    return Trainer(config, task=task).fit(out_dir, resume=True, progress=progress, plots=plots, callbacks=callbacks)

