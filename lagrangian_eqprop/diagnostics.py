"""Gradient-agreement diagnostics: EqProp estimates against exact gradients of the same scheme.

Agreement with backpropagation through time (cosine similarity, norm ratio) is a first-class
diagnostic (theory §4): every estimator is compared with `jax.grad` through the *same*
discrete scheme — BPTT (`bptt_gradient`) for the initial-value estimators (`"echo"`,
`"naive"`) and the implicit-function-theorem gradient (`implicit_gradient`) for the
fixed-endpoint estimator (`"bvp"`) — over a sweep of nudging strengths `β`. The error should
fall like `β²` for the centered variant and like `β` for the one-sided ones, until round-off
(`~ε/β`) takes over; `agreement_sweep` fits that slope on the part above the round-off floor.

    result = agreement_sweep(integ, params, cost, betas=np.logspace(-1, -5, 9),
                             q0=q0, v0=v0, num_steps=200)
    print(format_agreement_report(result))
    plot_agreement(result, "agreement.png")      # from lagrangian_eqprop.plotting

Everything here is eager NumPy on concrete arrays (a diagnostic, not a training step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Real

from ._contrasts import VARIANTS, as_contrast
from ._estimators import AbstractEqProp, as_estimator, run_estimator
from ._references import BPTT, Implicit
from ._solution import GradientResult
from .errors import EstimatorError

__all__ = ["AgreementSweep", "SlopeFit", "agreement_sweep", "fit_error_slope", "format_agreement_report",
           "gradient_agreement"]

METRICS = ("cosine", "norm_ratio", "max_rel_error")
ALL = "all"

# Problem keyword arguments each family of estimators accepts.
_IVP_KEYS = ("q0", "v0", "p0", "num_steps", "inputs")
_BVP_KEYS = ("q_start", "q_end", "num_steps", "inputs")


# --------------------------------------------------------------------- agreement
def _as_gradient_dict(grads, what: str) -> dict[str, np.ndarray]:
    if isinstance(grads, GradientResult):
        grads = grads.params
    if not isinstance(grads, Mapping):
        raise TypeError(f"{what} must be a dict {{parameter name: array}} (or a GradientResult), got {type(grads).__name__}.")
    return {str(k): np.asarray(v, dtype=np.float64) for k, v in grads.items()}


def _metrics(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    est = est.ravel()
    ref = ref.ravel()
    n_est = float(np.linalg.norm(est))
    n_ref = float(np.linalg.norm(ref))
    max_ref = float(np.max(np.abs(ref))) if ref.size else 0.0
    max_diff = float(np.max(np.abs(est - ref))) if ref.size else 0.0
    if n_est == 0.0 and n_ref == 0.0:
        cosine, ratio = 1.0, 1.0
    elif n_est == 0.0 or n_ref == 0.0:
        cosine, ratio = 0.0, (np.inf if n_ref == 0.0 else 0.0)
    else:
        cosine = float(np.dot(est, ref) / (n_est * n_ref))
        ratio = n_est / n_ref
    if max_ref == 0.0:
        rel = 0.0 if max_diff == 0.0 else np.inf
    else:
        rel = max_diff / max_ref
    return {"cosine": cosine, "norm_ratio": ratio, "max_rel_error": rel}


def gradient_agreement(estimate, reference) -> dict[str, dict[str, float]]:
    """Compare a gradient estimate with a reference gradient, per parameter and overall.

    **Arguments:**
    - `estimate`, `reference`: dicts `{parameter name: array}` with the same keys and shapes
      (a `GradientResult` is accepted too; its `params` are used).

    **Returns:** `{name: {"cosine", "norm_ratio", "max_rel_error"}}` for every parameter name,
    plus an `"all"` entry over the concatenation of all parameters (in sorted name order):
    - `cosine`: `⟨est, ref⟩ / (‖est‖ ‖ref‖)` (1 when both are zero, 0 when only one is);
    - `norm_ratio`: `‖est‖ / ‖ref‖` (1 when both are zero, `inf` when only `ref` is);
    - `max_rel_error`: `max|est − ref| / max|ref|` (0 when both are zero, `inf` when only
      `ref` is).

    All values are Python floats.
    """
    est = _as_gradient_dict(estimate, "estimate")
    ref = _as_gradient_dict(reference, "reference")
    if set(est) != set(ref):
        raise ValueError(
            f"estimate and reference have different parameters: {sorted(est)} vs {sorted(ref)}."
        )
    if ALL in est:
        raise ValueError(f"a parameter may not be called {ALL!r} (reserved for the overall entry).")
    names = sorted(ref)
    out = {}
    for name in names:
        if est[name].shape != ref[name].shape:
            raise ValueError(
                f"parameter {name!r}: estimate has shape {est[name].shape}, reference {ref[name].shape}."
            )
        out[name] = _metrics(est[name], ref[name])
    flat = lambda d: np.concatenate([d[n].ravel() for n in names]) if names else np.zeros(0)
    out[ALL] = _metrics(flat(est), flat(ref))
    return out


# ---------------------------------------------------------------------- slopes
@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit `log(error) = slope · log(β) + intercept` on the points in `used`.

    `used` is a boolean mask over the sweep's `betas`; points in the round-off regime (where
    the error has stopped decreasing with `β`) are left out. `slope` is `nan` when fewer than
    two points qualify.
    """

    slope: float
    intercept: float
    used: np.ndarray

    @property
    def num_points(self) -> int:
        return int(np.sum(self.used))


def fit_error_slope(
    betas,
    errors,
    *,
    min_local_slope: float = 0.5,
    min_slope_fraction: float = 0.7,
    floor: float = 0.0,
    ceiling: float = 0.5,
) -> SlopeFit:
    """Log–log slope of error vs `β`, fitted on the asymptotic part above the round-off floor.

    Round-off makes the error grow again like `~ε/β` below some `β`, and flattens the curve
    just above it; at large `β` the estimate can leave the asymptotic regime altogether. So:
    1. points whose error is not finite, `≤ floor` or `≥ ceiling` (a relative error of order
       one: the estimate is outside the small-β regime) are never used;
    2. points with `β` below the one with the smallest error are dropped (round-off branch);
    3. the smallest remaining point is dropped while its local log–log slope (to the next
       larger `β`) is below `min_local_slope` or below `min_slope_fraction` times the median
       local slope (the floor is flattening the curve);
    4. the largest remaining point is dropped while its local slope exceeds the median by more
       than the factor `1 / min_slope_fraction` (pre-asymptotic, e.g. near a divergence).

    **Returns:** a `SlopeFit`.
    """
    betas = np.abs(np.asarray(betas, dtype=np.float64))
    errors = np.asarray(errors, dtype=np.float64)
    used = np.zeros(betas.shape, dtype=bool)
    ok = np.flatnonzero(np.isfinite(errors) & (errors > floor) & (errors < ceiling) & (betas > 0))
    # Ascending β; for repeated β keep the first occurrence.
    _, first = np.unique(betas[ok], return_index=True)
    idx = ok[first]
    if idx.size:
        idx = idx[int(np.argmin(errors[idx])):]

    def local_slopes(idx):
        return np.diff(np.log(errors[idx])) / np.diff(np.log(betas[idx]))

    while idx.size >= 3:
        local = local_slopes(idx)
        threshold = max(min_local_slope, min_slope_fraction * float(np.median(local)))
        if local[0] >= threshold:
            break
        idx = idx[1:]
    while idx.size >= 3:
        local = local_slopes(idx)
        median = float(np.median(local))
        if median <= 0 or local[-1] <= median / min_slope_fraction:
            break
        idx = idx[:-1]
    used[idx] = True
    if idx.size < 2:
        return SlopeFit(float("nan"), float("nan"), used)
    slope, intercept = np.polyfit(np.log(betas[idx]), np.log(errors[idx]), 1)
    return SlopeFit(float(slope), float(intercept), used)


# ---------------------------------------------------------------------- sweep
@dataclasses.dataclass(frozen=True)
class AgreementSweep:
    """Result of `agreement_sweep`.

    **Fields:**
    - `betas`: the nudging strengths, shape `(B,)`.
    - `methods`, `variants`: what was swept.
    - `names`: parameter names (sorted) followed by `"all"`.
    - `metrics`: `{(method, variant): {name: {metric: array (B,)}}}` with the metrics of
      `gradient_agreement` for every `β`.
    - `slopes`: `{(method, variant): SlopeFit}` of the overall `max_rel_error` vs `β`.
    - `references`: `{method: reference gradient dict}`; `reference_kinds`: `{method: "bptt" |
      "implicit" | "given"}`.
    - `eps`: machine epsilon of the reference's dtype (the round-off floor is `~ eps/β` times a
      problem-dependent constant).
    - `floor_constants`: `{(method, variant): c}` with the round-off floor estimated as `c·eps/β`
      from the points below the fitted range (`nan` when the sweep never reached the floor).
    """

    betas: np.ndarray
    methods: tuple[str, ...]
    variants: tuple[str, ...]
    names: tuple[str, ...]
    metrics: dict
    slopes: dict
    references: dict
    reference_kinds: dict
    eps: float
    floor_constants: dict

    def error(self, method: str, variant: str, name: str = ALL, metric: str = "max_rel_error") -> np.ndarray:
        """A metric as an array over `betas` (default: overall max relative error)."""
        return self.metrics[(method, variant)][name][metric]

    def slope(self, method: str, variant: str) -> float:
        """Fitted log–log slope of the overall max relative error vs `β`."""
        return self.slopes[(method, variant)].slope

    @staticmethod
    def expected_slope(variant: str) -> float:
        """2 for `"centered"`, 1 for the one-sided variants."""
        return as_contrast(variant).expected_slope

    def rows(self) -> list[dict[str, Any]]:
        """Flat records `{method, variant, beta, name, cosine, norm_ratio, max_rel_error}`."""
        out = []
        for (method, variant), per_name in self.metrics.items():
            for b, beta in enumerate(self.betas):
                for name in self.names:
                    row = {"method": method, "variant": variant, "beta": float(beta), "name": name}
                    row.update({m: float(per_name[name][m][b]) for m in METRICS})
                    out.append(row)
        return out


def _problem_for(kind: str, problem: dict) -> dict:
    keys = _BVP_KEYS if kind == "boundary" else _IVP_KEYS
    return {k: v for k, v in problem.items() if k in keys}


def _reference_estimator(estimator) -> object:
    return Implicit() if estimator.problem_kind == "boundary" else BPTT()


def _compute_reference(reference_estimator, integ, params, cost, problem):
    kw = _problem_for(reference_estimator.problem_kind, problem)
    return run_estimator(reference_estimator, integ, params, cost, **kw).params


def _estimators(methods, variants) -> list:
    """`[(method name, variant name, estimator object)]` to sweep."""
    out = []
    for method in methods:
        if isinstance(method, AbstractEqProp):
            out.append((method.name, method.contrast.name, method))
            continue
        for variant in variants:
            estimator = as_estimator(method, variant=variant)
            if not isinstance(estimator, AbstractEqProp):
                raise EstimatorError(f"method {method!r} is not an EqProp estimator; it has no β to sweep.")
            out.append((estimator.name, variant, estimator))
    return out


def agreement_sweep(
    integ,
    params,
    cost,
    betas: Sequence[float] | Real[ArrayLike, " B"],
    methods: Sequence = ("echo",),
    variants: Sequence[str] = ("centered", "positive", "negative"),
    reference=None,
    *,
    jit: bool = True,
    fit_options: Mapping[str, float] | None = None,
    **problem,
) -> AgreementSweep:
    """Agreement of EqProp estimators with the exact gradient over a sweep of `β`.

    The reference is computed once per kind: BPTT through the same integrator for
    initial-value estimators (`Echo`, `Naive`), the implicit-function-theorem gradient for the
    fixed-endpoint one (`FixedEndpoints`).

    **Arguments:**
    - `integ`, `params`, `cost`: as in `eqprop_gradient`.
    - `betas`: nudging strengths (non-zero), e.g. `np.logspace(-1, -6, 11)`.
    - `methods`: estimator names (`"echo"`, `"bvp"`, `"naive"`), each swept over `variants`,
      and/or EqProp estimator objects (`lep.Echo(variant="positive")`; their own variant, their
      `beta` replaced by each of `betas`).
    - `variants`: any of `"centered"`, `"positive"`, `"negative"` (for names).
    - `reference`: `None` (computed), a gradient dict used for every method, or
      `{method name: gradient dict}`.
    - `jit`: compile each estimator once with `β` traced (default), instead of running it
      eagerly for every `β`.
    - `fit_options`: keyword arguments for `fit_error_slope` (`min_local_slope`,
      `min_slope_fraction`, `floor`, `ceiling`).
    - `**problem`: the problem data — `q0`, `v0` or `p0`, `num_steps`, `inputs` for the
      initial-value methods; `q_start`, `q_end`, `num_steps`, `inputs` for `"bvp"` (pass both
      sets when sweeping both kinds; each method takes the keys it needs).

    A `β` at which a solve fails (e.g. the nudge is too strong) gives NaN metrics there.

    **Returns:** an `AgreementSweep`.
    """
    for v in variants:
        if v not in VARIANTS:
            raise EstimatorError(f"Unknown variant {v!r}; choose one of {', '.join(VARIANTS)}.")
    swept = _estimators(tuple(methods), tuple(variants))
    betas = np.asarray(betas, dtype=np.float64).ravel()
    if betas.size == 0 or not np.all(np.isfinite(betas)) or np.any(betas == 0):
        raise EstimatorError(f"betas must be non-empty, finite and non-zero, got {betas!r}.")
    if "num_steps" not in problem:
        raise EstimatorError("agreement_sweep needs num_steps (and the problem's initial or boundary data).")

    references, kinds, cache = {}, {}, {}
    for name, _, estimator in swept:
        if name in references:
            continue
        given = reference.get(name) if _is_per_method(reference) else reference
        if given is not None:
            references[name], kinds[name] = given, "given"
            continue
        ref = _reference_estimator(estimator)
        if ref.name not in cache:
            cache[ref.name] = _compute_reference(ref, integ, params, cost, problem)
        references[name], kinds[name] = cache[ref.name], ref.name
    references = {m: _as_gradient_dict(r, "reference") for m, r in references.items()}
    method_names = tuple(dict.fromkeys(name for name, _, _ in swept))
    first = references[method_names[0]] if method_names else {}
    dtype = next(iter(first.values())).dtype if first else np.float64
    eps = float(np.finfo(dtype).eps)
    names = tuple(sorted(first)) + (ALL,)

    metrics, slopes, floors = {}, {}, {}
    for name, variant, estimator in swept:
        kw = _problem_for(estimator.problem_kind, problem)

        def estimate(beta, estimator=estimator, kw=kw):
            out = run_estimator(estimator.with_beta(beta), integ, params, cost, throw=False, **kw)
            ok = out.result._value == 0
            return jax.tree_util.tree_map(lambda g: jnp.where(ok, g, jnp.nan), out.params)

        fn = jax.jit(estimate) if jit else estimate
        per_name = {n: {k: np.empty(betas.shape) for k in METRICS} for n in names}
        for b, beta in enumerate(betas):
            arg = np.asarray(beta, dtype=dtype) if jit else float(beta)
            agreement = gradient_agreement(fn(arg), references[name])
            for n in names:
                for k in METRICS:
                    per_name[n][k][b] = agreement[n][k]
        metrics[(name, variant)] = per_name
        fit = fit_error_slope(betas, per_name[ALL]["max_rel_error"], **dict(fit_options or {}))
        slopes[(name, variant)] = fit
        floors[(name, variant)] = _floor_constant(betas, per_name[ALL]["max_rel_error"], fit, eps)
    return AgreementSweep(
        betas=betas, methods=method_names, variants=tuple(dict.fromkeys(v for _, v, _ in swept)), names=names,
        metrics=metrics, slopes=slopes, references=references, reference_kinds=kinds, eps=eps,
        floor_constants=floors,
    )


def _is_per_method(reference) -> bool:
    return (
        isinstance(reference, Mapping)
        and len(reference) > 0
        and all(isinstance(v, Mapping) for v in reference.values())
    )


def _floor_constant(betas, errors, fit: SlopeFit, eps: float) -> float:
    """`c` in `error ≈ c·eps/β` from the points smaller than the fitted range (nan if none)."""
    betas = np.abs(betas)
    if fit.num_points == 0:
        below = np.isfinite(errors) & (errors > 0)
    else:
        below = (betas < betas[fit.used].min()) & np.isfinite(errors) & (errors > 0)
    if not np.any(below):
        return float("nan")
    return float(np.median(errors[below] * betas[below] / eps))


# ---------------------------------------------------------------------- report
def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return f"{x!s:>9}"
    return f"{x:9.2e}"


def format_agreement_report(result: AgreementSweep, *, per_parameter: bool = True) -> str:
    """A plain-text table of the sweep (one row per method, variant and `β`), then the fitted
    slopes. Columns: overall cosine, norm ratio and max relative error, and (with
    `per_parameter`) each parameter's max relative error."""
    params = [n for n in result.names if n != ALL]
    lines = []
    refs = ", ".join(f"{m}: {result.reference_kinds[m]}" for m in result.methods)
    lines.append(f"Gradient agreement with the exact gradient of the same scheme (reference — {refs})")
    lines.append(f"parameters: {', '.join(f'{n} {result.references[result.methods[0]][n].shape}' for n in params)}")
    lines.append("max rel err = max|est − ref| / max|ref|; cosine and norm ratio over all parameters")
    lines.append("")
    head = ["method", "variant", "beta", "cosine", "norm ratio", "max rel err"]
    if per_parameter:
        head += [f"{n}: rel err" for n in params]
    widths = [max(len(h), 9) for h in head]
    widths[0] = max(widths[0], max(len(m) for m in result.methods))
    widths[1] = max(widths[1], max(len(v) for v in result.variants))
    fmt_row = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines.append(fmt_row(head))
    lines.append(fmt_row(["-" * w for w in widths]))
    for (method, variant), per_name in result.metrics.items():
        fit = result.slopes[(method, variant)]
        for b, beta in enumerate(result.betas):
            cells = [method, variant, f"{beta:9.1e}"]
            cos = per_name[ALL]["cosine"][b]
            cells.append(f"{cos:.9f}"[:11] if np.isfinite(cos) else str(cos))
            cells.append(_fmt(per_name[ALL]["norm_ratio"][b]))
            err = _fmt(per_name[ALL]["max_rel_error"][b]) + ("" if fit.used[b] else "*")
            cells.append(err)
            if per_parameter:
                cells += [_fmt(per_name[n]["max_rel_error"][b]) for n in params]
            lines.append(fmt_row(cells))
    lines.append("")
    lines.append("log–log slope of max rel err vs beta (* = left out of the fit: round-off floor or pre-asymptotic)")
    for (method, variant), fit in result.slopes.items():
        used = result.betas[fit.used]
        rng = f"beta in [{np.abs(used).min():.1e}, {np.abs(used).max():.1e}]" if used.size else "no points"
        slope = f"{fit.slope:5.2f}" if np.isfinite(fit.slope) else "  n/a"
        lines.append(
            f"  {method:<6} {variant:<9} slope {slope}  (expected {result.expected_slope(variant):.0f}; "
            f"{fit.num_points} of {result.betas.size} points, {rng})"
        )
    return "\n".join(lines)
