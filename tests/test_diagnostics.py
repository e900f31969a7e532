"""Gradient-agreement diagnostics (`lagrangian_eqprop.diagnostics`) and `plot_agreement`.

The test systems are the hand-written JAX models of `tests/models.py` (independent of the
SymPy compiler). float64 is switched on by `conftest.py`.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lagrangian_eqprop import TrackingCost
from lagrangian_eqprop.diagnostics import (
    AgreementSweep,
    agreement_sweep,
    fit_error_slope,
    format_agreement_report,
    gradient_agreement,
)
from lagrangian_eqprop import GradientResult
from lagrangian_eqprop.errors import EstimatorError
from lagrangian_eqprop import VariationalIntegrator

from models import fpu_chain


# ------------------------------------------------------------------ gradient_agreement
def test_gradient_agreement_hand_computed():
    est = {"a": jnp.array([1.0, 0.0]), "b": jnp.array(3.0)}
    ref = {"a": jnp.array([1.0, 1.0]), "b": jnp.array(2.0)}
    out = gradient_agreement(est, ref)
    assert set(out) == {"a", "b", "all"}
    # a: est (1, 0), ref (1, 1)
    assert out["a"]["cosine"] == pytest.approx(1.0 / math.sqrt(2.0), rel=1e-14)
    assert out["a"]["norm_ratio"] == pytest.approx(1.0 / math.sqrt(2.0), rel=1e-14)
    assert out["a"]["max_rel_error"] == pytest.approx(1.0, rel=1e-14)
    # b: est 3, ref 2
    assert out["b"]["cosine"] == pytest.approx(1.0, rel=1e-14)
    assert out["b"]["norm_ratio"] == pytest.approx(1.5, rel=1e-14)
    assert out["b"]["max_rel_error"] == pytest.approx(0.5, rel=1e-14)
    # all: est (1, 0, 3), ref (1, 1, 2): dot 7, norms √10 and √6, max|diff| 1, max|ref| 2
    assert out["all"]["cosine"] == pytest.approx(7.0 / math.sqrt(60.0), rel=1e-14)
    assert out["all"]["norm_ratio"] == pytest.approx(math.sqrt(10.0 / 6.0), rel=1e-14)
    assert out["all"]["max_rel_error"] == pytest.approx(0.5, rel=1e-14)
    for entry in out.values():
        assert all(isinstance(v, float) for v in entry.values())


def test_gradient_agreement_identical_opposite_and_zero():
    g = {"k": jnp.array([0.5, -2.0, 3.0])}
    same = gradient_agreement(g, g)["all"]
    assert same == {"cosine": pytest.approx(1.0), "norm_ratio": pytest.approx(1.0), "max_rel_error": 0.0}
    flipped = gradient_agreement({"k": -g["k"]}, g)["k"]
    assert flipped["cosine"] == pytest.approx(-1.0)
    assert flipped["max_rel_error"] == pytest.approx(2.0)
    zero = {"k": jnp.zeros(3)}
    assert gradient_agreement(zero, zero)["k"] == {"cosine": 1.0, "norm_ratio": 1.0, "max_rel_error": 0.0}
    only_ref_zero = gradient_agreement(g, zero)["k"]
    assert only_ref_zero["cosine"] == 0.0 and only_ref_zero["max_rel_error"] == np.inf
    assert gradient_agreement(zero, g)["k"]["norm_ratio"] == 0.0


def test_gradient_agreement_accepts_gradient_result_and_checks_keys():
    g = {"k": jnp.array([1.0, 2.0])}
    assert gradient_agreement(GradientResult(params=g), g)["all"]["max_rel_error"] == 0.0
    with pytest.raises(ValueError, match="different parameters"):
        gradient_agreement({"k": jnp.ones(2)}, {"m": jnp.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        gradient_agreement({"k": jnp.ones(2)}, {"k": jnp.ones(3)})


# ------------------------------------------------------------------ slope fit
def test_fit_error_slope_drops_round_off_floor():
    betas = np.logspace(-1, -8, 15)
    eps = np.finfo(np.float64).eps
    errors = 3.0 * betas**2 + 50.0 * eps / betas
    fit = fit_error_slope(betas, errors)
    assert fit.slope == pytest.approx(2.0, abs=0.05)
    # Every point on the rising round-off branch is left out, every clean point kept.
    assert not np.any(fit.used & (50.0 * eps / betas > 3.0 * betas**2))
    assert np.all(fit.used[3.0 * betas**2 > 1e3 * 50.0 * eps / betas])


def test_fit_error_slope_one_sided_and_degenerate():
    betas = np.logspace(0, -4, 9)
    fit = fit_error_slope(betas, 0.1 * betas)
    assert fit.slope == pytest.approx(1.0, abs=1e-12) and fit.num_points == 9
    # A diverged largest β is skipped; fewer than two usable points give nan.
    errors = 0.1 * betas
    errors[0] = np.inf
    assert fit_error_slope(betas, errors).num_points == 8
    assert math.isnan(fit_error_slope(betas[:1], errors[:1]).slope)


def test_fit_error_slope_drops_pre_asymptotic_large_beta():
    # Relative errors of order one (or a blow-up) at large β are not in the small-β regime.
    betas = np.logspace(-2, -7, 6)
    errors = np.array([5.1e37, 0.98, 1.46e-2, 1.47e-4, 1.47e-6, 1.5e-8])
    fit = fit_error_slope(betas, errors)
    assert list(fit.used) == [False, False, True, True, True, True]
    assert fit.slope == pytest.approx(2.0, abs=0.02)
    # A top point far steeper than the rest is trimmed too.
    errors = betas**2
    errors[0] *= 100.0
    fit = fit_error_slope(betas, errors)
    assert not fit.used[0] and fit.num_points == 5
    assert fit.slope == pytest.approx(2.0, abs=1e-12)


# ------------------------------------------------------------------ sweep on a tiny chain
NUM_STEPS = 40
BETAS = np.logspace(-1, -6, 11)


def _chain_problem():
    model, params = fpu_chain(4, k=1.0, beta=1.0)
    integ = VariationalIntegrator(model, 0.1, "trapezoid")
    q0 = jnp.array([0.3, -0.2, 0.1, 0.25])
    v0 = jnp.array([0.1, 0.0, -0.2, 0.05])
    target = 0.2 * jnp.sin(0.1 * jnp.arange(NUM_STEPS + 1.0))[:, None] * jnp.ones((1, 2))
    cost = TrackingCost(target, (0, 3))
    return integ, params, cost, q0, v0


@pytest.fixture(scope="module")
def chain_sweep():
    integ, params, cost, q0, v0 = _chain_problem()
    return agreement_sweep(integ, params, cost, BETAS, q0=q0, v0=v0, num_steps=NUM_STEPS)


def test_sweep_slopes_and_agreement(chain_sweep):
    result = chain_sweep
    assert isinstance(result, AgreementSweep)
    assert result.methods == ("echo",)
    assert result.variants == ("centered", "positive", "negative")
    assert result.names == ("beta", "k", "m", "all")
    assert result.reference_kinds == {"echo": "bptt"}
    assert result.slope("echo", "centered") == pytest.approx(2.0, abs=0.15)
    assert result.slope("echo", "positive") == pytest.approx(1.0, abs=0.15)
    assert result.slope("echo", "negative") == pytest.approx(1.0, abs=0.15)
    # Enough clean points went into every fit.
    for fit in result.slopes.values():
        assert fit.num_points >= 6
    # At small β the centered echo matches BPTT to high accuracy (theory §3c).
    small = np.argmin(np.abs(BETAS - 1e-4))
    assert result.error("echo", "centered")[small] < 1e-5
    assert result.error("echo", "centered", metric="cosine")[small] > 1.0 - 1e-10
    assert result.error("echo", "positive", "m", "norm_ratio")[small] == pytest.approx(1.0, abs=1e-2)
    rows = result.rows()
    assert len(rows) == 3 * BETAS.size * len(result.names)
    assert {"method", "variant", "beta", "name", "cosine", "norm_ratio", "max_rel_error"} <= set(rows[0])


def test_sweep_with_given_reference():
    integ, params, cost, q0, v0 = _chain_problem()
    wrong = {k: 2.0 * jnp.ones_like(v) for k, v in params.items()}
    result = agreement_sweep(integ, params, cost, [1e-3, 1e-4], variants=("centered",), reference=wrong,
                             q0=q0, v0=v0, num_steps=NUM_STEPS, jit=False)
    assert result.reference_kinds == {"echo": "given"}
    assert np.all(result.error("echo", "centered") > 1e-2)


def test_sweep_rejects_bad_arguments():
    integ, params, cost, q0, v0 = _chain_problem()
    with pytest.raises(EstimatorError, match="method"):
        agreement_sweep(integ, params, cost, [1e-3], methods=("bogus",), q0=q0, v0=v0, num_steps=4)
    with pytest.raises(EstimatorError, match="variant"):
        agreement_sweep(integ, params, cost, [1e-3], variants=("sideways",), q0=q0, v0=v0, num_steps=4)
    with pytest.raises(EstimatorError, match="non-zero"):
        agreement_sweep(integ, params, cost, [1e-3, 0.0], q0=q0, v0=v0, num_steps=4)


def test_report_names_everything(chain_sweep):
    text = format_agreement_report(chain_sweep)
    for word in ("echo", "centered", "positive", "negative", "bptt", "cosine", "norm ratio",
                 "max rel err", "slope", "beta", "k", "m"):
        assert word in text
    assert "1.0e-04" in text
    # One row per (variant, β) plus headers and slope lines.
    assert len(text.splitlines()) >= 3 * BETAS.size + 3
    short = format_agreement_report(chain_sweep, per_parameter=False)
    assert "k: rel err" not in short and "k: rel err" in text


def test_plot_writes_png(chain_sweep, tmp_path):
    import matplotlib.pyplot as plt

    from lagrangian_eqprop.plotting import plot_agreement

    before = plt.get_fignums()
    path = plot_agreement(chain_sweep, tmp_path / "sub" / "agreement.png")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    plot_agreement(chain_sweep, tmp_path / "k.png", name="k")
    assert (tmp_path / "k.png").stat().st_size > 5000
    assert plt.get_fignums() == before  # no pyplot state leaked


@pytest.mark.slow
def test_sweep_bvp_uses_implicit_reference():
    model, params = fpu_chain(3, k=1.0, beta=1.0)
    integ = VariationalIntegrator(model, 0.1, "midpoint")
    num_steps = 20
    target = 0.2 * jnp.sin(0.3 * jnp.arange(num_steps + 1.0))[:, None]
    cost = TrackingCost(target, (1,))
    result = agreement_sweep(
        integ, params, cost, np.logspace(-1, -4, 4), methods=("bvp",), variants=("centered",),
        q_start=jnp.array([0.3, -0.1, 0.2]), q_end=jnp.array([-0.2, 0.1, 0.3]), num_steps=num_steps,
    )
    assert result.reference_kinds == {"bvp": "implicit"}
    assert result.slope("bvp", "centered") == pytest.approx(2.0, abs=0.15)
    assert result.error("bvp", "centered")[-1] < 1e-6
