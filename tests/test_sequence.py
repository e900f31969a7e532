"""The `sequence` task: physical networks (`systems.oscillator_network` in `PhysicalLayer`s) with
autodiff glue on real data — gradients of the whole model by the echo equal BPTT's, a tiny
MNIST-1D run beats chance by far, the user's own `.npz` (classification and regression) and
its errors through the CLI."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian_eqprop as lep
from lagrangian_eqprop import systems
from lagrangian_eqprop.tasks import get_task


def rel_err(tree, reference):
    return max(float(jnp.max(jnp.abs(tree[k] - reference[k]))) / float(jnp.max(jnp.abs(reference[k])))
               for k in reference)


@functools.lru_cache(maxsize=None)
def tiny_mnist1d(architecture="stacked"):
    return get_task("sequence", data="mnist1d", architecture=architecture, units=8, width=8, num_train=8,
                    num_test=8)


def random_readout(task, seed=0):
    """The readout starts at zero (so nothing upstream gets a gradient): randomise it."""
    params = dict(task.params)
    params["out.W"] = jnp.asarray(np.random.default_rng(seed).normal(size=params["out.W"].shape))
    return params


@pytest.mark.parametrize("architecture", [pytest.param("stacked", marks=pytest.mark.slow), "physical"])
def test_whole_model_gradient_by_the_echo_equals_bptt(architecture):
    """Encoder, glue and readout by autodiff; every physical block by the echo's VJP."""
    task = tiny_mnist1d(architecture)
    params = random_readout(task)
    sample = {k: v[0] for k, v in task.train.items()}
    bptt = jax.jit(lambda p: task.gradient(lep.BPTT(), p, sample))(params)
    echo = jax.jit(lambda p: task.gradient(lep.Echo(), p, sample))(params)
    tangent = jax.jit(lambda p: task.gradient(lep.Echo(variant="tangent"), p, sample))(params)
    physical = [k for k in params if k.startswith("b0.")]
    assert physical and all(float(jnp.max(jnp.abs(bptt.params[k]))) > 0 for k in physical)
    assert rel_err(echo.params, bptt.params) <= 1e-6
    assert rel_err(tangent.params, bptt.params) <= 1e-10
    np.testing.assert_allclose(float(echo.loss), float(bptt.loss), rtol=1e-12)


def test_spatial_presentation_is_a_step_force_and_trains_by_the_echo():
    """`presentation="spatial"`: the whole sequence as `T·c` constant forces `B x` held for
    `hold_steps` steps. Positions equal a hand-written velocity Verlet of the pendulum network
    (the trapezoid rule's explicit form); the gradient by the echo equals BPTT's."""
    task = get_task("sequence", data="mnist1d", architecture="physical", presentation="spatial", hold_steps=12,
                    units=6, unit="pendulum", coupling_scale=0.5, readout_points=0, num_train=4, num_test=4)
    assert task.num_steps == 12 and task.params["out.W"].shape == (6, 10)
    params = random_readout(task)
    x = task.train["x"][0]
    T = x.shape[0]
    gains = jnp.stack([params[f"b0.b{j}"] for j in range(T)], axis=1)  # (n, T): one column per value
    force_in = gains @ x[:, 0]
    m, omega, k = params["b0.m"], params["b0.omega"], params["b0.k"]
    edges = systems.oscillator_graph(6, "dense")
    stiffness = jnp.zeros((6, 6)).at[edges[:, 0], edges[:, 1]].set(k)
    stiffness = stiffness + stiffness.T
    laplacian = jnp.diag(jnp.sum(stiffness, axis=1)) - stiffness

    def force(q):
        return -m * omega**2 * jnp.sin(q) - laplacian @ q + force_in

    h, q, v, hand = task.integ.dt, jnp.zeros(6), jnp.zeros(6), [jnp.zeros(6)]
    for _ in range(12):
        v = v + 0.5 * h * force(q) / m
        q = q + h * v
        v = v + 0.5 * h * force(q) / m
        hand.append(q)
    np.testing.assert_allclose(task.trajectories(params, x), np.stack(hand), rtol=1e-12, atol=1e-13)
    sample = {k_: v_[0] for k_, v_ in task.train.items()}
    bptt = jax.jit(lambda p: task.gradient(lep.BPTT(), p, sample))(params)
    echo = jax.jit(lambda p: task.gradient(lep.Echo(variant="tangent"), p, sample))(params)
    assert float(jnp.max(jnp.abs(bptt.params["b0.b3"]))) > 0
    assert rel_err(echo.params, bptt.params) <= 1e-10
    with pytest.raises(lep.ConfigError, match="architecture='physical'"):
        get_task("sequence", presentation="spatial")
    with pytest.raises(lep.ConfigError, match="presentation"):
        get_task("sequence", architecture="physical", presentation="sideways")


def test_oscillator_network_catalog_entry():
    model, params, q0, v0 = systems.oscillator_network(5, 2, unit="duffing", coupling="fpu", graph="ring")
    assert model.num_dof == 5 and model.num_inputs == 2 and model.time_reversible and model.analytic
    assert set(params) == {"m", "omega", "a", "k", "kq", "b0", "b1"} and params["k"].shape == (5,)
    # Euler–Lagrange by hand: m ẍ = −m ω² (x + a x³) + Σ_j b_j u_j − ∂/∂x Σ_edges (k r²/2 + kq r⁴/4).
    rng = np.random.default_rng(0)
    x, v, u = rng.normal(size=5), rng.normal(size=5), rng.normal(size=2)
    edges = systems.oscillator_graph(5, "ring")
    force = -np.asarray(params["m"]) * np.asarray(params["omega"]) ** 2 * (x + np.asarray(params["a"]) * x**3)
    force += np.asarray(params["b0"]) * u[0] + np.asarray(params["b1"]) * u[1]
    for (a, b), k, kq in zip(edges, np.asarray(params["k"]), np.asarray(params["kq"])):
        r = x[b] - x[a]
        tension = k * r + kq * r**3
        force[a] += tension
        force[b] -= tension
    acceleration = model.acceleration(jnp.asarray(x), jnp.asarray(v), 0.0, params, jnp.asarray(u))
    np.testing.assert_allclose(acceleration, force / np.asarray(params["m"]), rtol=1e-12, atol=1e-12)
    dense = systems.oscillator_graph(6, "dense")
    assert len(dense) == 15
    sparse = systems.oscillator_graph(20, "random", degree=3, seed=1)
    assert len(sparse) >= 30 and np.all(sparse[:, 0] < sparse[:, 1])
    model, params, _, _ = systems.oscillator_network(4, 1, unit="pendulum", coupling="sine")
    assert model.separable is not None and set(params) == {"m", "omega", "k", "b0"}
    # bilinear (signed) couplings: m ẍ = −m ω² sin x + Σ_b J_ab x_b + B u, J of both signs.
    model, params, _, _ = systems.oscillator_network(5, 1, unit="pendulum", coupling="bilinear", graph="dense",
                                                     coupling_scale=2.0)
    J = np.asarray(params["J"])
    assert set(params) == {"m", "omega", "J", "b0"} and J.min() < 0 < J.max() and model.time_reversible
    couplings = np.zeros((5, 5))
    couplings[tuple(systems.oscillator_graph(5, "dense").T)] = J
    couplings = couplings + couplings.T
    force = (-np.asarray(params["m"]) * np.asarray(params["omega"]) ** 2 * np.sin(x) + couplings @ x
             + np.asarray(params["b0"]) * u[0])
    acceleration = model.acceleration(jnp.asarray(x), jnp.asarray(v), 0.0, params, jnp.asarray(u[:1]))
    np.testing.assert_allclose(acceleration, force / np.asarray(params["m"]), rtol=1e-12, atol=1e-12)
    with pytest.raises(lep.LagrangianError, match="unit"):
        systems.oscillator_network(4, unit="spring")


@pytest.mark.slow
def test_a_tiny_mnist1d_run_beats_chance_by_far():
    """500 training sequences, 16 units × 2 blocks, 6 short epochs of the echo: 2.5× chance
    (measured 30 %; the full benchmark reaches ~91 %, docs/benchmarks.md)."""
    from lagrangian_eqprop.training import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(task="sequence", reference="none", epochs=6, batch_size=16, learning_rate=2e-2,
                                  probe_every=0, task_options=dict(num_train=500, num_test=500, units=16, width=16)))
    result = trainer.fit(None, progress=False, plots=False)
    assert result.final("echo")["test_accuracy"] >= 0.25


def _write_npz(path, y_train, y_test, x_train=None, x_test=None):
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(len(y_train), 12, 2)) if x_train is None else x_train
    x_test = rng.normal(size=(len(y_test), 12, 2)) if x_test is None else x_test
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def _cli(*args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "lagrangian_eqprop", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_train_sequence_on_your_own_npz(tmp_path):
    """`train sequence --data FILE.npz`: integer labels → classification, floats → regression;
    the run folder has the confusion matrix and trajectory plots; bad files exit with status 2."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 12, 2))
    labels = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64)
    path = _write_npz(tmp_path / "mine.npz", labels[:16], labels[16:], x[:16], x[16:])
    done = _cli("train", "sequence", "--data", path, "--epochs", "1", "--set", "units=4", "--set", "width=4",
                "--no-progress", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary  # written by a finished run
    assert (tmp_path / "run" / "plots" / "confusion_echo.png").exists()
    assert (tmp_path / "run" / "plots" / "trajectories.png").exists()
    regression = get_task("sequence", data=_write_npz(tmp_path / "reg.npz", rng.normal(size=16), rng.normal(size=8)),
                          units=4, width=4)
    assert regression.kind == "regression" and regression.classes is None
    gaps = _write_npz(tmp_path / "gaps.npz", np.array([0, 2, 0, 2]), np.array([0, 2]))
    failed = _cli("train", "sequence", "--data", gaps, "--epochs", "1", "--no-progress", cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "label" in failed.stderr


def test_bad_data_and_options_are_named(tmp_path):
    nan = _write_npz(tmp_path / "nan.npz", np.array([0, 1]), np.array([0, 1]),
                     x_train=np.full((2, 12, 2), np.nan))
    with pytest.raises(lep.DataError, match="NaN|finite"):
        get_task("sequence", data=nan)
    with pytest.raises(lep.DataError):
        get_task("sequence", data=str(tmp_path / "missing.npz"))
    with pytest.raises(lep.ConfigError, match="architecture"):
        get_task("sequence", architecture="transformer")
    with pytest.raises(lep.ConfigError, match="one block"):
        get_task("sequence", architecture="physical", blocks=2)
    with pytest.raises(lep.ConfigError, match="unit"):
        get_task("sequence", unit="spring", num_train=2, num_test=2)
    from lagrangian_eqprop.training import TrainConfig, Trainer

    with pytest.raises(lep.ConfigError, match="echo.*bptt"):
        Trainer(TrainConfig(task="sequence", estimator="naive", task_options=dict(num_train=4, num_test=4, units=4,
                                                                                  width=4)))
