"""Equilibrium tasks through the trainer (issue 11): digits, resistive, allostery.

Accuracies and strain ratios are recomputed independently of the trainer's metrics: free states
by a fresh `solve_equilibrium` per sample (digits), and the elastic network's rest state by
SciPy's minimiser on a NumPy transcription of the spring energy (allostery).
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import lagrangian_eqprop.tasks._equilibrium_tasks as equilibrium_tasks
from lagrangian_eqprop import ConfigError, DataError, Implicit
from lagrangian_eqprop._equilibrium import solve_equilibrium
from lagrangian_eqprop._equilibrium_gradient import EquilibriumEqProp
from lagrangian_eqprop.tasks import get_task
from lagrangian_eqprop.training import TrainConfig, Trainer


def _train(task, estimator, epochs, learning_rate, batch_size=None, reference="none", out=None):
    config = TrainConfig(task=task.name, estimator=estimator, reference=reference, epochs=epochs,
                         learning_rate=learning_rate, batch_size=batch_size, probe_every=0,
                         task_options=dict(task.options))
    return Trainer(config, task=task).fit(out, progress=False, plots=out is not None)


@pytest.mark.slow
def test_digits_tiny_budget_beats_chance_by_far():
    task = get_task("digits", hidden=32, num_train=320, num_test=160)
    result = _train(task, EquilibriumEqProp(beta=0.01), epochs=3, learning_rate=3e-3, batch_size=16)
    params = result.params["eqprop"]
    correct = []
    for x, label in zip(np.asarray(task.test["inputs"]), np.asarray(task.test["label"])):
        sample = {"inputs": jnp.asarray(x)}
        s = solve_equilibrium(task.model, params, x, task.start(params, sample), solver=task.solver, expect=None).s
        correct.append(int(np.argmax(np.asarray(s)[-10:])) == int(label))
    accuracy = float(np.mean(correct))
    assert accuracy >= 0.6  # chance: 0.1
    assert accuracy == pytest.approx(result.final()["test_accuracy"], abs=1e-12)


def _spring_energy_numpy(positions, edges, k, l, source, x):
    free = np.array([i for i in range(positions.shape[0]) if i not in source])

    def energy(flat):  # value and gradient (the spring forces), in NumPy
        nodes = positions.copy()
        nodes[free] = flat.reshape(-1, 2)
        nodes[list(source)] = x.reshape(2, 2)
        d = nodes[edges[:, 1]] - nodes[edges[:, 0]]
        length = np.sqrt(np.sum(d * d, axis=1))
        tension = (k * (length - l) / length)[:, None] * d
        grad = np.zeros_like(nodes)
        np.add.at(grad, edges[:, 1], tension)
        np.add.at(grad, edges[:, 0], -tension)
        return 0.5 * np.sum(k * (length - l) ** 2), grad[free].ravel()

    return energy, free


@pytest.mark.slow
def test_allostery_on_a_small_network_reaches_the_target_ratio(tmp_path):
    task = get_task("allostery", rows=6, cols=6, ratio=1.0, strain=0.05)  # 36 nodes (5×5 stalls at ratio 0.77)
    assert abs(equilibrium_tasks.strain_ratio(task, task.params)) < 0.1
    result = _train(task, EquilibriumEqProp(), epochs=150, learning_rate=0.05, out=tmp_path / "run")
    params = result.params["eqprop"]
    assert equilibrium_tasks.strain_ratio(task, params) == pytest.approx(1.0, rel=1e-2)
    # independent check: SciPy minimises a NumPy transcription of the spring energy
    layout = task.plot_fn.keywords["layout"]
    energy, free = _spring_energy_numpy(np.asarray(layout["positions"]), layout["edges"], np.asarray(params["k"]),
                                        np.asarray(params["l"]), layout["source"], np.asarray(task.train["inputs"][0]))
    rest = scipy.optimize.minimize(energy, np.asarray(layout["positions"])[free].ravel(), jac=True, method="BFGS",
                                   options={"gtol": 1e-12, "maxiter": 20000})
    nodes = rest.x.reshape(-1, 2)
    row = {int(n): i for i, n in enumerate(free)}
    a, b = (nodes[row[int(t)]] for t in layout["target"])
    rest_length = float(task.train["rest"][0])
    ratio = (np.linalg.norm(b - a) - rest_length) / rest_length / 0.05
    assert ratio == pytest.approx(1.0, rel=1e-2)
    assert (tmp_path / "run" / "plots" / "network.png").exists()


@pytest.mark.slow
def test_resistive_gradients_of_every_variant_agree_with_implicit_differentiation():
    task = get_task("resistive", hidden=6, num_train=4, num_test=0)
    sample = {k: v[1] for k, v in task.train.items()}
    gradient = eqx.filter_jit(lambda estimator, params, sample: task.gradient(estimator, params, sample))
    reference = gradient(Implicit(), task.params, sample)
    scale = float(jnp.linalg.norm(reference.params["g"]))
    # This soft network has a small radius of convergence, R ≈ 7e-4 (convergence_radius): the centered
    # bias ~ (β/R)² needs β ≪ R (at β = 1e-4 it is 2e-2); the holomorphic variant finds R itself.
    for estimator, tolerance in ((EquilibriumEqProp(beta=1e-7), 1e-6), (EquilibriumEqProp(variant="holomorphic"), 1e-8)):
        estimate = gradient(estimator.resolve(jnp.float64), task.params, sample)
        assert float(jnp.linalg.norm(estimate.params["g"] - reference.params["g"])) <= tolerance * scale
        assert int(estimate.result._value) == 0


def test_time_dependent_estimators_are_refused_on_static_tasks():
    task = get_task("allostery", rows=4, cols=4)
    with pytest.raises(ConfigError, match="eqprop"):
        Trainer(TrainConfig(task="allostery", estimator="echo", reference="none", task_options=dict(task.options)),
                task=task)


def test_task_options_are_checked():
    with pytest.raises(ConfigError, match="must not exceed"):
        get_task("digits", num_train=1700, num_test=200)
    with pytest.raises(ConfigError, match="rows"):
        get_task("allostery", rows=3)
    with pytest.raises(ConfigError, match="'trained' must be one of stiffness, rest_length, both"):
        get_task("allostery", rows=4, cols=4, trained="mass")


def test_a_static_estimator_is_refused_on_time_dependent_tasks():
    with pytest.raises(ConfigError, match="estimator"):
        Trainer(TrainConfig(task="tracking", estimator="eqprop", reference="none", epochs=1))


def test_missing_scikit_learn_is_a_data_error_naming_the_install(monkeypatch):
    equilibrium_tasks.load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(DataError, match="pip install"):
            get_task("digits", num_train=10, num_test=0)
    finally:
        equilibrium_tasks.load_digits.cache_clear()


@pytest.mark.slow
def test_a_static_task_trains_with_its_own_estimator_by_default(tmp_path):
    # `lagrangian-eqprop train allostery` with no --estimator: static EqProp next to implicit
    # differentiation (the defaults "echo"/"bptt" are for time-dependent tasks).
    from lagrangian_eqprop.cli import main

    assert main(["train", "allostery", "--set", "rows=4", "--set", "cols=4", "--epochs", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    config = TrainConfig.from_dict(__import__("json").load(open(tmp_path / "run" / "config.json"))["config"])
    assert config.run_names() == ("eqprop", "implicit")
