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
