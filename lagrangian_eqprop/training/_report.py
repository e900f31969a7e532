"""What a training run returns and writes at the end: `TrainResult`, the summary table,
`params.json`, `summary.json` and the plots."""

from __future__ import annotations

import dataclasses
import math
import os


from ..tasks import Task
from ._checkpoint import PARAMS, SUMMARY, json_safe, tree_to_json, write_json
from ._config import TrainConfig

__all__ = ["TrainResult", "finalise", "write_plots"]


@dataclasses.dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    **Fields:** `config` (resolved), `task`, `runs` (estimator names, primary first),
    `params` (`{run: final physical params}`), `initial_params`, `history` (epoch records),
    `out_dir` (or `None`), `plots` (`{name: path}`), `completed` (False when interrupted),
    `trained` (`{parameter: constraint}` of the trained parameters).
    """

    config: TrainConfig
    task: Task
    runs: tuple[str, ...]
    params: dict
    initial_params: dict
    history: list
    out_dir: str | None = None
    plots: dict = dataclasses.field(default_factory=dict)
    completed: bool = True
    trained: dict = dataclasses.field(default_factory=dict)

    def final(self, run: str | None = None) -> dict:
        """The last epoch record of `run` (default: the primary estimator)."""
        run = self.runs[0] if run is None else run
        return [r for r in self.history if r["run"] == run][-1]

    def initial(self, run: str | None = None) -> dict:
        run = self.runs[0] if run is None else run
        return [r for r in self.history if r["run"] == run][0]

    def loss_reduction(self, run: str | None = None) -> float:
        """Initial over final training loss (≥ 10 means the loss fell tenfold)."""
        return self.initial(run)["train_loss"] / self.final(run)["train_loss"]

    def summary_rows(self) -> list[dict]:
        rows = []
        for run in self.runs:
            first, last = self.initial(run), self.final(run)
            rows.append({
                "run": run,
                "epochs": last["epoch"],
                "initial_loss": first["train_loss"],
                "final_loss": last["train_loss"],
                "reduction": first["train_loss"] / last["train_loss"] if last["train_loss"] else float("inf"),
                "test_loss": last.get("test_loss"),
                "cosine": next((r["cosine"] for r in reversed(self.history)
                                if r["run"] == run and r.get("cosine") is not None), None),
                "param_error": last.get("param_error"),
                "test_accuracy": last.get("test_accuracy"),
                "energy_error": last.get("energy_error"),
                "wall_time": last["wall_time"],
            })
        return rows

    def summary_table(self) -> str:
        """A plain-text table: one row per estimator."""
        head = ["estimator", "epochs", "initial loss", "final loss", "reduction", "test loss",
                "cos vs exact", "param err", "test acc", "energy err", "train time"]
        lines = []
        for row in self.summary_rows():
            def f(x, spec):
                return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)
            lines.append([row["run"], str(row["epochs"]), f(row["initial_loss"], ".3e"), f(row["final_loss"], ".3e"),
                          f(row["reduction"], ".1f" if row["reduction"] < 1e4 else ".2e") + "×", f(row["test_loss"], ".3e"), f(row["cosine"], ".9f"),
                          f(row["param_error"], ".2%"), f(row["test_accuracy"], ".1%"),
                          f(row["energy_error"], ".1e"), f(row["wall_time"], ".1f") + " s"])
        widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in lines)])


def finalise(result: TrainResult, plots: bool) -> None:
    """Write `params.json`, `summary.json` and (with `plots`) the PNG plots of a finished run."""
    out_dir = result.out_dir
    task = result.task
    payload = {run: tree_to_json(p) for run, p in result.params.items()}
    payload["initial"] = tree_to_json(result.initial_params)
    if task.true_params is not None:
        payload["true"] = tree_to_json(task.true_params)
    payload["trained"] = {name: kind for name, kind in result.trained.items()}
    write_json(os.path.join(out_dir, PARAMS), payload)
    write_json(os.path.join(out_dir, SUMMARY),
                {"rows": [{k: json_safe(v) for k, v in row.items()} for row in result.summary_rows()],
                 "completed": result.completed})
    if plots:
        result.plots = write_plots(result)


def write_plots(result: TrainResult) -> dict:
    """Loss curves, agreement with the exact gradient, accuracy, and the task's own plots
    (`task.plot_results`: trajectories, parameters), as PNG files."""
    from .. import plotting

    task = result.task
    folder = os.path.join(result.out_dir, "plots")
    os.makedirs(folder, exist_ok=True)
    written = {}
    title = f"{task.name}: " + " vs ".join(result.runs)
    written["loss"] = plotting.plot_loss_curves(result.history, os.path.join(folder, "loss.png"),
                                                unit=task.loss_unit, title=title)
    if any(r.get("cosine") is not None for r in result.history):
        written["agreement"] = plotting.plot_agreement_history(
            result.history, os.path.join(folder, "agreement.png"),
            title=f"{task.name}: gradient agreement with the exact gradient (probe batch)")
    if task.classes is not None:
        written["accuracy"] = plotting.plot_accuracy_curves(
            result.history, os.path.join(folder, "accuracy.png"), title=f"{task.name}: accuracy")
    written.update(task.plot_results(result, folder))
    return written
