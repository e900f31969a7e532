"""Figures for the diagnostics and training reports.

Every function builds its own `matplotlib.figure.Figure` (no pyplot, so no global figure state
and no GUI backend is needed: PNGs are written with Agg) and writes it to `path`.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_agreement"]


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    return path


def plot_agreement(result, path, *, name: str = "all", metric: str = "max_rel_error", title: str | None = None) -> str:
    """Log–log plot of gradient error vs `β` for every (method, variant) of an agreement sweep.

    Draws reference slopes `O(β)` and `O(β²)` (anchored at the largest `β` of the one-sided and
    centered series) and the round-off floor `~ c·ε/β` (with `c` estimated from the sweep when
    it reached the floor, else 1). Points left out of the slope fit are drawn hollow.

    **Arguments:**
    - `result`: an `AgreementSweep` from `diagnostics.agreement_sweep`.
    - `path`: output file (PNG, PDF, SVG… by extension).
    - `name`: which parameter's error to plot (default `"all"`, the concatenated vector).
    - `metric`: `"max_rel_error"` (default) or another metric of `gradient_agreement`.
    - `title`: figure title (default: a description of the sweep).

    **Returns:** the path written.
    """
    betas = np.abs(np.asarray(result.betas, dtype=np.float64))
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    markers = {"centered": "o", "positive": "^", "negative": "v"}
    multi = len(result.methods) > 1
    all_errors = []
    anchors = {}
    for (method, variant), per_name in result.metrics.items():
        err = np.asarray(per_name[name][metric], dtype=np.float64)
        fit = result.slopes[(method, variant)]
        label = f"{method} / {variant}" if multi else variant
        if np.isfinite(fit.slope):
            label += f" (slope {fit.slope:.2f})"
        good = np.isfinite(err) & (err > 0)
        all_errors.append(err[good])
        (line,) = ax.loglog(betas[good], err[good], "-", marker=markers.get(variant, "o"), label=label,
                            markerfacecolor="none")
        used = good & fit.used
        ax.loglog(betas[used], err[used], linestyle="none", marker=markers.get(variant, "o"), color=line.get_color())
        if np.any(used):
            i = np.argmax(np.where(used, betas, -np.inf))
            order = result.expected_slope(variant)
            anchors.setdefault(order, (betas[i], err[i]))
    b_line = np.geomspace(betas.min(), betas.max(), 50)
    for order, style, text in ((1.0, "--", "O(β)"), (2.0, ":", "O(β²)")):
        if order in anchors:
            b0, e0 = anchors[order]
            ax.loglog(b_line, e0 * (b_line / b0) ** order, style, color="0.4", linewidth=1.0, label=text)
    floors = [c for c in result.floor_constants.values() if np.isfinite(c)]
    c = float(np.median(floors)) if floors else 1.0
    floor = c * result.eps / b_line
    ax.loglog(b_line, floor, "-.", color="0.6", linewidth=1.0, label="round-off ~ ε/β")
    ax.annotate("round-off floor ~ ε/β", xy=(b_line[0], floor[0]), xytext=(4, 4), textcoords="offset points",
                fontsize=8, color="0.4")
    errors = np.concatenate(all_errors) if all_errors else np.zeros(0)
    if errors.size:
        ax.set_ylim(max(errors.min() / 10.0, 1e-18), errors.max() * 10.0)
    what = "all parameters" if name == "all" else f"parameter {name}"
    ylabel = {"max_rel_error": "max |est − ref| / max |ref|"}.get(metric, metric)
    ax.set_xlabel("nudging strength β")
    ax.set_ylabel(f"{ylabel} ({what})")
    refs = ", ".join(sorted(set(result.reference_kinds.values())))
    ax.set_title(title if title is not None else f"EqProp gradient vs {refs} reference")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


# ============================================================ training reports (training.py)
__all__ += [
    "plot_accuracy_curves",
    "plot_agreement_history",
    "plot_loss_curves",
    "plot_parameters",
    "plot_simulation",
    "plot_trajectory_comparison",
]

_RUN_STYLES = {"echo": "C0", "bvp": "C2", "bptt": "C1", "adjoint": "C3"}


def _by_run(history, key):
    """`{run: (epochs, values)}` of an epoch-record key, skipping missing values."""
    out = {}
    for record in history:
        if record.get("kind", "epoch") != "epoch":
            continue
        value = record.get(key)
        if value is None or not np.isfinite(value):
            continue
        epochs, values = out.setdefault(record["run"], ([], []))
        epochs.append(record["epoch"])
        values.append(value)
    return {run: (np.asarray(e), np.asarray(v)) for run, (e, v) in out.items()}


def plot_loss_curves(history, path, *, unit: str = "", title: str | None = None) -> str:
    """Training (solid) and held-out (dashed) loss per epoch for every estimator of a run.

    The first estimator is drawn wide and pale, the others on top of it, so curves that
    coincide (EqProp and BPTT) stay visible.

    **Arguments:** `history`: the epoch records of `training.TrainResult.history` (or
    `metrics.jsonl` lines); `path`: output file; `unit`: the loss's unit. **Returns:** the path.
    """
    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for i, (run, (epochs, values)) in enumerate(_by_run(history, "train_loss").items()):
        color = _RUN_STYLES.get(run)
        width, alpha = (4.0, 0.45) if i == 0 else (1.3, 1.0)
        ax.semilogy(epochs, values, "-", color=color, linewidth=width, alpha=alpha, label=f"{run} — training set")
        test = _by_run(history, "test_loss").get(run)
        if test is not None:
            ax.semilogy(test[0], test[1], "--", color=color, linewidth=width, alpha=alpha,
                        label=f"{run} — held-out set")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({unit}; free run, mean per sample)" if unit else "loss (free run, mean per sample)")
    ax.set_title(title or "loss curves")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_agreement_history(history, path, *, title: str | None = None) -> str:
    """Agreement of the estimator's gradient with the exact one (BPTT, or the implicit gradient
    for `bvp`) on the probe batch, per epoch: `1 − cosine` (top) and the norm-ratio and
    max-relative errors (bottom), on log scales floored at 1e-17 (float64 round-off)."""
    floor = 1e-17
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    ax_cos = fig.add_subplot(2, 1, 1)
    ax_err = fig.add_subplot(2, 1, 2, sharex=ax_cos)
    for run, (epochs, values) in _by_run(history, "cosine").items():
        color = _RUN_STYLES.get(run)
        ax_cos.semilogy(epochs, np.maximum(np.abs(1.0 - values), floor), "o-", color=color, markersize=3,
                        label=run)
        ratio = _by_run(history, "norm_ratio").get(run)
        if ratio is not None:
            ax_err.semilogy(ratio[0], np.maximum(np.abs(ratio[1] - 1.0), floor), "o-", color=color, markersize=3,
                            label=f"{run}: |norm ratio − 1|")
        rel = _by_run(history, "max_rel_error").get(run)
        if rel is not None:
            ax_err.semilogy(rel[0], np.maximum(rel[1], floor), "s--", color=color, markersize=3, alpha=0.7,
                            label=f"{run}: max |est − exact| / max |exact|")
    ax_cos.set_ylabel("|1 − cosine similarity|")
    ax_cos.set_title(title or "gradient agreement")
    ax_cos.grid(True, which="both", alpha=0.3)
    ax_cos.legend(fontsize=8)
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("relative error")
    ax_err.grid(True, which="both", alpha=0.3)
    ax_err.legend(fontsize=7)
    return _save(fig, path)


def plot_accuracy_curves(history, path, *, title: str | None = None) -> str:
    """Training (solid) and held-out (dashed) classification accuracy per epoch."""
    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for run, (epochs, values) in _by_run(history, "train_accuracy").items():
        color = _RUN_STYLES.get(run)
        ax.plot(epochs, 100 * values, "-", color=color, label=f"{run} — training set")
        test = _by_run(history, "test_accuracy").get(run)
        if test is not None:
            ax.plot(test[0], 100 * test[1], "--", color=color, label=f"{run} — held-out set")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion_matrix(labels, predicted, classes, path, *, title: str | None = None) -> str:
    """Confusion matrix (rows: true class, columns: predicted; counts, colour by row fraction)."""
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    size = len(classes)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 + 0.55 * size, 1.0 + 0.5 * size), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(size):
        for j in range(size):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if fractions[i, j] > 0.6 else "black")
    ax.set_xticks(range(size), [str(c) for c in classes], fontsize=7, rotation=45)
    ax.set_yticks(range(size), [str(c) for c in classes], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(np.trace(counts)) / max(int(counts.sum()), 1)
    ax.set_title(f"{title or 'confusion matrix'} (accuracy {100 * accuracy:.1f}%)", fontsize=9)
    return _save(fig, path)


def plot_trajectory_comparison(times, before, after, path, *, target=None, target_times=None,
                               labels=(), unit: str = "", title: str | None = None) -> str:
    """Displayed coordinates of one sample before and after training, against the target.

    **Arguments:**
    - `times`: node times `(N+1,)` in s.
    - `before`: `(N+1, d)` with the initial parameters; `after`: `{run: (N+1, d)}`.
    - `target`, `target_times`: the target `(M, d)` at `target_times` (a whole signal, or a
      final pattern drawn as markers), or `None`.
    - `labels`, `unit`: coordinate names and their unit (e.g. `"m"`, `"rad"`).
    """
    before = np.asarray(before)
    d = before.shape[1]
    fig = Figure(figsize=(7.0, 1.9 * d + 1.2), dpi=100)
    axes = [fig.add_subplot(d, 1, i + 1) for i in range(d)]
    for i, ax in enumerate(axes):
        ax.plot(times, before[:, i], color="0.6", linewidth=1.0, label="before training")
        for j, (run, traj) in enumerate(after.items()):
            ax.plot(times, np.asarray(traj)[:, i], color=_RUN_STYLES.get(run), linewidth=1.2,
                    linestyle="-" if j == 0 else "--", label=f"after training ({run})")
        if target is not None:
            tgt = np.asarray(target)
            if tgt.shape[0] > 1:
                ax.plot(target_times, tgt[:, i], "k:", linewidth=1.5, label="target")
            else:
                ax.plot(target_times, tgt[:, i], "k*", markersize=10, label="target at T")
        name = labels[i] if i < len(labels) else f"q_{i}"
        ax.set_ylabel(f"{name} ({unit})" if unit else name, fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("time t (s)")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title(title or "trajectories before and after training")
    return _save(fig, path)


def plot_parameters(learned, path, *, initial=None, true=None, units=None, title: str | None = None) -> str:
    """Learned parameters (per estimator) next to the initial and the true (teacher) values.

    **Arguments:** `learned`: `{run: {name: array}}`; `initial`, `true`: `{name: array}` or
    `None`; `units`: `{name: unit}`.
    """
    names = sorted(next(iter(learned.values())))
    units = units or {}
    fig = Figure(figsize=(7.0, 2.6 * len(names) + 0.6), dpi=100)
    for row, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, row + 1)
        series = []
        if initial is not None and name in initial:
            series.append(("initial", np.ravel(initial[name]), "0.75"))
        for run, values in learned.items():
            series.append((f"learned ({run})", np.ravel(values[name]), _RUN_STYLES.get(run)))
        if true is not None and name in true:
            series.append(("true (teacher)", np.ravel(true[name]), "k"))
        size = max(s[1].size for s in series)
        index = np.arange(size)
        width = 0.8 / len(series)
        for j, (label, values, color) in enumerate(series):
            ax.bar(index[: values.size] + (j - (len(series) - 1) / 2) * width, values, width, label=label, color=color)
        unit = units.get(name, "")
        ax.set_ylabel(f"{name} ({unit})" if unit else name)
        ax.set_xlabel(f"{name} index (element of the network)")
        ax.set_xticks(index)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        if row == 0:
            ax.set_title(title or "parameters")
    return _save(fig, path)


def plot_simulation(times, q, energy, path, *, labels=(), unit: str = "", energy_unit: str = "J",
                    title: str | None = None) -> str:
    """A simulated trajectory (top) and its energy and relative energy error (bottom).

    **Arguments:** `times (N+1,)` in s, `q (N+1, n)`, `energy (N+1,)`; `labels`/`unit` for the
    coordinates.
    """
    q = np.asarray(q)
    energy = np.asarray(energy)
    fig = Figure(figsize=(7.0, 6.0), dpi=100)
    ax = fig.add_subplot(3, 1, 1)
    n = q.shape[1]
    shown = range(min(n, 10))
    for i in shown:
        ax.plot(times, q[:, i], label=labels[i] if i < len(labels) else f"q_{i}")
    ax.set_ylabel(f"coordinates ({unit})" if unit else "coordinates")
    ax.set_title(title or "simulation")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax_e = fig.add_subplot(3, 1, 2, sharex=ax)
    ax_e.plot(times, energy, color="C3")
    ax_e.set_ylabel(f"energy E ({energy_unit})")
    ax_e.grid(True, alpha=0.3)
    ax_r = fig.add_subplot(3, 1, 3, sharex=ax)
    scale = max(abs(float(energy[0])), np.finfo(float).tiny)
    ax_r.plot(times, (energy - energy[0]) / scale, color="C4")
    ax_r.set_ylabel("(E − E₀) / |E₀|")
    ax_r.set_xlabel("time t (s)")
    ax_r.grid(True, alpha=0.3)
    return _save(fig, path)
