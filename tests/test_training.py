"""Training loop, tasks, constraints, checkpoints and resume (float64, tiny budgets)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lagrangian_eqprop import training
from lagrangian_eqprop.training import _checkpoint as checkpoint_module
from lagrangian_eqprop.tasks import ConfigError, available_tasks, get_task, task_options
from lagrangian_eqprop.training import (
    CONSTRAINTS,
    TrainConfig,
    Trainer,
    TrainingError,
    load_checkpoint,
    resume,
    save_checkpoint,
)

# A few-second system-identification problem shared by the checkpoint/resume tests.
TINY_SYSID = dict(n_masses=3, num_train=4, num_test=2, num_steps=10, dt=0.05)


def tiny_config(**changes):
    base = dict(task="sysid", estimator="echo", reference="none", epochs=4, batch_size=2,
                probe_every=0, learning_rate=0.05, task_options=dict(TINY_SYSID))
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def sysid_trainer():
    return Trainer(tiny_config())


def params_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


# ---------------------------------------------------------------- reparametrisation
@pytest.mark.parametrize("kind", ["positive", "log", "none"])
def test_constraint_roundtrip_and_chain_rule(kind):
    c = CONSTRAINTS[kind]
    theta = jnp.array([1e-3, 0.5, 1.0, 7.0])
    raw = c.inverse(theta)
    np.testing.assert_allclose(c.forward(raw), theta, rtol=1e-12)
    # dℒ/draw = dℒ/dθ · transform'(raw) for ℒ = Σ θ²
    g_raw = jax.grad(lambda r: jnp.sum(c.forward(r) ** 2))(raw)
    deriv = jax.vmap(jax.grad(c.forward))(raw)
    np.testing.assert_allclose(g_raw, 2 * theta * deriv, rtol=1e-12)
    if kind != "none":
        assert bool(jnp.all(c.forward(jnp.array([-50.0, 0.0, 50.0])) > 0))


def test_positive_constraint_rejects_nonpositive_initial_values():
    with pytest.raises(ConfigError, match="'k' must be positive"):
        training.to_unconstrained({"k": jnp.array([1.0, -0.5])}, {"k": "positive"})


# ------------------------------------------------------------------------- tasks
def test_task_registry_and_messages():
    assert available_tasks()[0] == "tracking"
    assert set(available_tasks()) == {"tracking", "sysid", "classification", "pendulum", "sequence", "digits",
                                      "resistive", "allostery"}
    with pytest.raises(ConfigError, match="available tasks: tracking, sysid"):
        get_task("nope")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'bogus'.*valid options: n_masses"):
        get_task("sysid", bogus=1)
    with pytest.raises(ConfigError, match="'num_steps' must be an integer"):
        get_task("sysid", num_steps=2.5)
    with pytest.raises(ConfigError, match="'dt' must be > 0"):
        get_task("sysid", dt=-0.1)
    with pytest.raises(ConfigError, match="'tracked_mass' must be a mass index"):
        get_task("tracking", tracked_mass=9)
    assert task_options("tracking")["n_masses"] == 6


def test_task_data_is_seeded():
    a = get_task("sysid", **TINY_SYSID, seed=3)
    b = get_task("sysid", **TINY_SYSID, seed=3)
    c = get_task("sysid", **TINY_SYSID, seed=4)
    for key in a.train:
        np.testing.assert_array_equal(a.train[key], b.train[key])
    np.testing.assert_array_equal(a.true_params["k"], b.true_params["k"])
    assert not np.array_equal(a.true_params["k"], c.true_params["k"])


TINY_TASKS = {
    "tracking": (dict(num_train=4, num_test=0, num_steps=60),
                 dict(epochs=15, batch_size=4, reference="bptt", probe_every=5)),
    "classification": (dict(num_train=30, num_test=15, num_steps=150, window=50),
                       dict(epochs=10, batch_size=10, learning_rate=0.1)),
    "pendulum": (dict(num_train=4, num_test=0, num_steps=30), dict(epochs=15, batch_size=4)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tracking", "sysid", "classification", "pendulum"])
def test_each_task_loss_decreases(name, sysid_trainer):
    if name == "sysid":
        trainer, epochs = sysid_trainer, sysid_trainer.config.epochs
    else:
        options, settings = TINY_TASKS[name]
        settings = dict(dict(estimator="echo", reference="none", probe_every=0), **settings)
        trainer, epochs = Trainer(TrainConfig(task=name, task_options=options, **settings)), settings["epochs"]
    result = trainer.fit(None, progress=False)
    first, last = result.initial(), result.final()
    assert last["epoch"] == epochs
    factor = 0.7 if name == "classification" else 0.5
    assert last["train_loss"] < factor * first["train_loss"], (first["train_loss"], last["train_loss"])
    # Störmer–Verlet's bounded energy error at the task's dt (classification trains stiffer springs)
    assert np.isfinite(last["energy_error"]) and last["energy_error"] < (5e-2 if name == "classification" else 1e-2)
    if name == "classification":  # the reported accuracies, recomputed from the trained parameters
        task, params = trainer.task, result.params["echo"]
        for split, key in ((task.train, "train_accuracy"), (task.test, "test_accuracy")):
            correct = []
            for i in range(split["q0"].shape[0]):
                sample = {k: v[i] for k, v in split.items()}
                q = task.integ.simulate(params, sample["q0"], sample["v0"], task.num_steps, sample["inputs"]).q
                cost = task.cost_fn(sample)
                scores = np.mean([np.asarray(cost.logits(q[k])) for k in range(task.num_steps - 49, task.num_steps + 1)],
                                 axis=0)
                correct.append(int(np.argmax(scores)) == int(sample["label"]))
            assert last[key] == pytest.approx(np.mean(correct)), key
    if name == "tracking":  # EqProp and BPTT side by side: same gradients, same trajectory of parameters
        assert result.runs == ("echo", "bptt")
        probe = result.final("echo")
        assert probe["cosine"] > 1 - 1e-9 and abs(probe["norm_ratio"] - 1) < 1e-5
        assert probe["agreement_reference"] == "bptt" and "cosine" not in result.final("bptt")
        np.testing.assert_allclose(result.params["echo"]["k"], result.params["bptt"]["k"], rtol=1e-6)
        assert "bptt" in result.summary_table()


# -------------------------------------------------------------- estimators agree
@pytest.mark.slow
def test_bvp_and_adjoint_estimators(sysid_trainer):
    tr = sysid_trainer
    batch = {k: v[:2] for k, v in tr.probe_batch.items()}

    @jax.jit
    def grads(raw):
        return {name: tr.physical_gradient(name, raw, batch)["k"] for name in ("bvp", "implicit", "adjoint", "bptt")}

    g = grads(tr.initial_raw)
    np.testing.assert_allclose(g["bvp"], g["implicit"], rtol=1e-5, atol=1e-12)
    # the continuous adjoint differs from the discrete gradient by the O(h²) scheme error
    np.testing.assert_allclose(g["adjoint"], g["bptt"], rtol=2e-2, atol=1e-3 * float(jnp.max(jnp.abs(g["bptt"]))))
    # the training loop's raw-space gradient is the physical one times softplus'(raw)
    loss, g_raw = jax.jit(lambda raw: tr.loss_and_grad("bvp", raw, batch))(tr.initial_raw)
    np.testing.assert_allclose(g_raw["k"], g["bvp"] * jax.nn.sigmoid(tr.initial_raw["k"]), rtol=1e-10)
    assert np.isfinite(loss)


# ------------------------------------------------------------------ reproducible
def test_same_seed_same_numbers(sysid_trainer):
    a = sysid_trainer.fit(None, progress=False)
    b = sysid_trainer.fit(None, progress=False)
    params_equal(a.params["echo"], b.params["echo"])
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    # (a freshly built trainer reproducing the numbers is checked by the resume test)


# ------------------------------------------------------------------------ resume
def test_resume_reaches_the_same_parameters(sysid_trainer, tmp_path):
    full = sysid_trainer.fit(tmp_path / "full", progress=False, plots=False)

    def kill_after_two(epoch, records):
        if epoch == 2:
            raise KeyboardInterrupt

    cut = sysid_trainer.fit(tmp_path / "cut", progress=False, plots=False, callbacks=[kill_after_two])
    assert not cut.completed
    _, meta = load_checkpoint(tmp_path / "cut" / "checkpoint.eqx", sysid_trainer.initial_state())
    assert meta["epoch"] == 2
    # a half-written temporary file from a kill mid-write must not matter
    (tmp_path / "cut" / "checkpoint.eqx.tmp-99999").write_bytes(b"garbage")
    resumed = resume(tmp_path / "cut", progress=False, plots=False)
    assert resumed.completed and resumed.final()["epoch"] == 4
    assert not (tmp_path / "cut" / "checkpoint.eqx.tmp-99999").exists()
    params_equal(resumed.params["echo"], full.params["echo"])
    losses = lambda d: [json.loads(line)["train_loss"] for line in open(d / "metrics.jsonl")
                        if json.loads(line)["kind"] == "epoch"]
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    # resuming a finished run is a no-op that keeps the result
    again = resume(tmp_path / "cut", progress=False, plots=False)
    params_equal(again.params["echo"], full.params["echo"])
    # extending it continues from the checkpoint
    longer = resume(tmp_path / "cut", epochs=5, progress=False, plots=False)
    assert longer.final()["epoch"] == 5


def test_refuses_to_overwrite_a_run(sysid_trainer, tmp_path):
    sysid_trainer.fit(tmp_path, progress=False, plots=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        sysid_trainer.fit(tmp_path, progress=False, plots=False)


# -------------------------------------------------------------------- checkpoints
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.eqx"
    tree = {"a": jnp.arange(3.0), "b": (jnp.ones((2, 2)), jnp.int32(7))}
    save_checkpoint(path, tree, {"epoch": 1})

    def crash(src, dst):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(checkpoint_module.os, "replace", crash)
    newer = jax.tree_util.tree_map(lambda x: x + 1, tree)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, newer, {"epoch": 2})
    monkeypatch.undo()
    loaded, meta = load_checkpoint(path, tree)
    assert meta["epoch"] == 1
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(x, y), loaded, tree)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.eqx"]  # no temporary left behind
    with pytest.raises(TrainingError, match="different configuration"):
        load_checkpoint(path, {"a": jnp.arange(3.0)})


def test_crash_while_checkpointing_keeps_the_previous_checkpoint(sysid_trainer, tmp_path, monkeypatch):
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        if str(dst).endswith("checkpoint.eqx"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", flaky_replace)
    with pytest.raises(TrainingError, match="after epoch 2.*previous checkpoint.*intact"):
        sysid_trainer.fit(tmp_path, progress=False, plots=False)
    monkeypatch.undo()
    state, meta = load_checkpoint(tmp_path / "checkpoint.eqx", sysid_trainer.initial_state())
    assert meta["epoch"] == 1


# ---------------------------------------------------------------- failure modes
def test_failed_solve_stops_naming_the_step_and_keeps_the_checkpoint(sysid_trainer, tmp_path):
    train = sysid_trainer.task.train
    clean = train["target"]

    def poison(epoch, records):  # corrupt the data after the first epoch's checkpoint
        if epoch == 1:
            train["target"] = clean.at[:, 3].set(jnp.nan)  # the echo's momentum kicks become NaN

    try:
        with pytest.raises(TrainingError, match=r"run 'echo', step 3 \(epoch 2\): echo estimator.*failed.*"
                                                 r"last good checkpoint is kept"):
            sysid_trainer.fit(tmp_path, progress=False, plots=False, callbacks=[poison])
    finally:
        train["target"] = clean
    _, meta = load_checkpoint(tmp_path / "checkpoint.eqx", sysid_trainer.initial_state())
    assert meta["epoch"] == 1


def test_non_finite_loss_or_gradient_stops_naming_the_step(sysid_trainer, monkeypatch):
    real = sysid_trainer._steps["echo"]

    def nan_loss(raw, opt_state, batch):
        new_raw, new_opt, loss, norm, result, stats = real(raw, opt_state, batch)
        return new_raw, new_opt, loss * jnp.nan, norm, result, stats

    monkeypatch.setitem(sysid_trainer._steps, "echo", nan_loss)
    with pytest.raises(TrainingError, match=r"step 1 \(epoch 1\): the loss is non-finite \(nan\)"):
        sysid_trainer.fit(None, progress=False)

    def inf_grad(raw, opt_state, batch):
        new_raw, new_opt, loss, norm, result, stats = real(raw, opt_state, batch)
        return new_raw, new_opt, loss, norm + jnp.inf, result, stats

    monkeypatch.setitem(sysid_trainer._steps, "echo", inf_grad)
    with pytest.raises(TrainingError, match=r"step 1 \(epoch 1\): the gradient is non-finite"):
        sysid_trainer.fit(None, progress=False)


# --------------------------------------------------------------------- config
def test_config_messages_name_the_field():
    with pytest.raises(ConfigError, match="'estimator'.*choose one of echo, bvp, naive, bptt, implicit, adjoint"):
        TrainConfig(estimator="magic").validate()
    with pytest.raises(ConfigError, match="'beta'"):
        TrainConfig(beta=0.0).validate()
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig(learning_rate=-1.0).validate()
    with pytest.raises(ConfigError, match="'epochs'"):
        TrainConfig(epochs=2.5).validate()
    with pytest.raises(ConfigError, match="'task'.*available tasks"):
        TrainConfig(task="nope").validate()
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\) 'epoch'.*valid keys"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="option 'num_train'"):
        TrainConfig(task="sysid", task_options={"num_train": "many"}).validate()


def test_weight_decay_is_decoupled_and_spares_physical_constants():
    """`weight_decay`: each step also subtracts `lr · wd · θ` from the parameters trained as
    stored, never from those trained through a positivity map (masses, stiffnesses, ...)."""
    from lagrangian_eqprop.training._config import make_optimizer

    params = {"w": jnp.array([1.0, -2.0]), "k": jnp.array([3.0])}
    grads = {"w": jnp.array([0.2, 0.4]), "k": jnp.array([1.0])}
    opt = make_optimizer("sgd", 0.1, weight_decay=0.5, decayed={"w": True, "k": False})
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * (grads["w"] + 0.5 * params["w"]), rtol=1e-15)
    np.testing.assert_allclose(updates["k"], -0.1 * grads["k"], rtol=1e-15)
    plain = make_optimizer("adam", 0.1)
    decayed = make_optimizer("adam", 0.1, weight_decay=0.5, decayed={"w": True, "k": False})
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float (as the loop allows)
        u0, _ = plain.update(grads, plain.init(params), params)
        u1, _ = decayed.update(grads, decayed.init(params), params)
    np.testing.assert_allclose(u1["w"] - u0["w"], -0.1 * 0.5 * params["w"], rtol=1e-12)
    np.testing.assert_array_equal(u1["k"], u0["k"])
    # In a run: sysid trains only the positive stiffnesses `k`, so decay changes nothing there.
    base = Trainer(tiny_config(epochs=1)).fit(None, progress=False, plots=False)
    with_decay = Trainer(tiny_config(epochs=1, weight_decay=0.5)).fit(None, progress=False, plots=False)
    params_equal(base.params["echo"], with_decay.params["echo"])
    with pytest.raises(ConfigError, match="'weight_decay'"):
        TrainConfig(weight_decay=-1.0).validate()


def test_bvp_needs_a_fixed_endpoint_task():
    with pytest.raises(ConfigError, match="fixed-endpoint task.*sysid"):
        Trainer(TrainConfig(task="pendulum", estimator="bvp", task_options=dict(num_train=2, num_steps=5)))


def test_a_hand_built_task_trains_and_resumes(sysid_trainer, tmp_path):
    import dataclasses

    task = dataclasses.replace(sysid_trainer.task, name="my_chain", options={})
    config = TrainConfig(estimator="echo", reference="none", epochs=2, batch_size=4, probe_every=0)
    trainer = Trainer(config, task=task)
    assert trainer.config.task == "my_chain"
    result = trainer.fit(tmp_path, progress=False, plots=False)
    with pytest.raises(ConfigError, match="unknown task 'my_chain'"):
        resume(tmp_path, progress=False)  # a hand-built task is not in the registry ...
    longer = resume(tmp_path, epochs=3, task=task, progress=False, plots=False)  # ... so pass it
    assert longer.final()["epoch"] == 3 and result.final()["epoch"] == 2


# ----------------------------------------------------------------- resume is honest
def test_resume_with_a_different_config_refuses_naming_the_fields(sysid_trainer, tmp_path):
    sysid_trainer.fit(tmp_path, progress=False, plots=False)
    saved = (tmp_path / "config.json").read_text()
    other = Trainer(sysid_trainer.config.replace(learning_rate=0.2, seed=3))
    with pytest.raises(ConfigError, match=r"different configuration \(learning_rate: saved 0.05, now 0.2; "
                                          r"seed: saved 0, now 3"):
        other.fit(tmp_path, resume=True, progress=False, plots=False)
    assert (tmp_path / "config.json").read_text() == saved  # nothing rewritten


def test_resume_without_a_checkpoint_says_so(sysid_trainer, tmp_path):
    def kill_at_once(epoch, records):
        raise KeyboardInterrupt

    # a run killed before its first checkpoint: config and metrics exist, no checkpoint
    sysid_trainer.fit(tmp_path, progress=False, plots=False, callbacks=[kill_at_once])
    (tmp_path / "checkpoint.eqx").unlink()
    with pytest.warns(UserWarning, match="holds no checkpoint yet.*starting it again from epoch 0"):
        result = resume(tmp_path, progress=False, plots=False)
    assert result.final()["epoch"] == sysid_trainer.config.epochs


def test_resume_epochs_are_recorded_and_cannot_go_back(sysid_trainer, tmp_path):
    sysid_trainer.fit(tmp_path, progress=False, plots=False)
    epochs = sysid_trainer.config.epochs
    with pytest.raises(ConfigError, match=f"has trained {epochs} epochs already"):
        resume(tmp_path, epochs=epochs - 1, progress=False, plots=False)
    resume(tmp_path, epochs=epochs + 1, progress=False, plots=False)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["epochs_history"] == [epochs, epochs + 1] and data["config"]["epochs"] == epochs + 1
