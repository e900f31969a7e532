"""Data-parallel and multi-process training (`training/_distributed.py`), the command's
compilation cache and whole-process time.

JAX fixes its device count when it starts, so every run on several devices is a fresh
subprocess: `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes one CPU look like N
devices, and two such processes on 127.0.0.1 form a multi-process run (Gloo collectives).
The reference is always the same configuration trained on one device in one process, with
no sharding at all; a batch mean that was not reduced across devices (or a shard fed twice)
would move the parameters by ~1e-3, far above the round-off tolerance used here.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from lagrangian_eqprop._cli_process import compile_cache_dir, process_seconds
from lagrangian_eqprop.cli import main
from lagrangian_eqprop.errors import ConfigError
from lagrangian_eqprop.training import TrainConfig, Trainer
from lagrangian_eqprop.training._distributed import data_parallel, initialize_distributed

_PYTEST_STARTED = time.perf_counter()  # at collection of this module
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small tracking run: 8 training samples in one batch of 8 (divisible by 1, 2 and 4 devices).
OPTIONS = {"n_masses": 4, "input_mass": 0, "tracked_mass": 2, "num_train": 8, "num_test": 4, "num_steps": 20}
CONFIG = dict(task="tracking", estimator="echo", reference="none", epochs=3, batch_size=8, probe_every=0,
              learning_rate=0.05, task_options=OPTIONS)
RTOL = 1e-10  # round-off of a batch mean summed in another order, through 3 Adam steps


def _env(devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               LAGRANGIAN_EQPROP_COMPILE_CACHE="off", JAX_PLATFORMS="cpu",
               OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def _python(script: str, devices: int, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], env=_env(devices),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _reference_params() -> dict:
    """The configuration trained in this process on one device, without any placement."""
    result = Trainer(TrainConfig.from_dict(CONFIG)).fit(None, progress=False, plots=False)
    return {k: np.asarray(v) for k, v in result.params["echo"].items()}


# ------------------------------------------------------------------ in-process checks
def test_devices_is_validated_and_never_blocks_a_resume():
    with pytest.raises(ConfigError, match="'devices'"):
        TrainConfig(devices=0).validate()
    with pytest.raises(ConfigError, match="'devices'"):
        TrainConfig(devices=2.5).validate()
    assert TrainConfig(devices=4).validate().to_dict()["devices"] == 4
    assert data_parallel(None, 8).mesh is None and data_parallel(None, 8).size == 1
    assert data_parallel(1, 7).size == 1
    too_many = jax.device_count() + 1
    with pytest.raises(ConfigError, match=f"{too_many} devices asked for.*XLA_FLAGS"):
        data_parallel(too_many, 8 * too_many)


@pytest.mark.parametrize("args, message", [
    (("localhost", 2, 0), "HOST:PORT"),
    (("localhost:x", 2, 0), "HOST:PORT"),
    (("127.0.0.1:1234", 2, 2), "--process-id must be in 0 … 1"),
    (("127.0.0.1:1234", 0, 0), "--num-processes must be ≥ 1"),
])
def test_bad_distributed_arguments_are_refused_before_jax_starts(args, message):
    with pytest.raises(ConfigError, match=message):
        initialize_distributed(*args)
    assert jax.process_count() == 1


def test_cli_refuses_bad_device_flags(capsys):
    assert main(["train", "--devices", "0"]) == 2
    assert "--devices" in capsys.readouterr().err
    assert main(["train", "--num-processes", "2", "--process-id", "5"]) == 2
    assert "--process-id must be in 0 … 1" in capsys.readouterr().err


def test_compile_cache_location_and_opt_out(monkeypatch, tmp_path):
    monkeypatch.delenv("LAGRANGIAN_EQPROP_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert compile_cache_dir() == os.path.join(str(tmp_path), "lagrangian_eqprop", "jax")
    assert compile_cache_dir(opt_out=True) is None
    monkeypatch.setenv("LAGRANGIAN_EQPROP_COMPILE_CACHE", str(tmp_path / "elsewhere"))
    assert compile_cache_dir() == str(tmp_path / "elsewhere")
    for off in ("off", "0", "false", "no"):
        monkeypatch.setenv("LAGRANGIAN_EQPROP_COMPILE_CACHE", off)
        assert compile_cache_dir() is None


def test_whole_process_time_counts_from_process_start():
    started = time.perf_counter()
    whole = process_seconds(started)
    assert whole > time.perf_counter() - started  # this process started before this test
    if os.path.exists("/proc/self/stat"):  # from /proc: at least the time pytest has run so far
        assert whole >= time.perf_counter() - _PYTEST_STARTED - 0.05
    assert 0 <= process_seconds(started, whole_process=False) < whole


# ------------------------------------------------------- several devices, one process
_DEVICES_SCRIPT = """
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    from lagrangian_eqprop.errors import ConfigError
    from lagrangian_eqprop.training import TrainConfig, Trainer, resume
    from lagrangian_eqprop.training._distributed import data_parallel

    config, out = TrainConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2]
    report = {"device_count": jax.device_count()}
    # 4 devices for epochs 1-2, then resumed on 2 devices for epoch 3
    trainer = Trainer(config.replace(devices=4, epochs=2))
    batch = next(trainer.batches(1))
    report["shards"] = sorted({tuple(s.data.shape) for s in batch["q0"].addressable_shards})
    report["num_shards"] = len(batch["q0"].addressable_shards)
    state = trainer.parallel.replicate(trainer.initial_state()["echo"])
    report["param_shards"] = sorted({tuple(s.data.shape) for s in state["raw"]["k"].addressable_shards})
    first = trainer.fit(out, progress=False, plots=False)
    report["history_4"] = [r["train_loss"] for r in first.history]
    final = resume(out, epochs=3, devices=2, progress=False, plots=False)
    report["params"] = {k: np.asarray(v).tolist() for k, v in final.params["echo"].items()}
    report["saved_devices"] = json.load(open(out + "/config.json"))["config"]["devices"]
    for devices, batch_size in ((4, 6), (8, 8)):
        try:
            data_parallel(devices, batch_size)
        except ConfigError as err:
            report[f"error_{devices}_{batch_size}"] = str(err)
    print(json.dumps(report))
"""


@pytest.mark.slow
def test_training_on_four_devices_equals_one_device(tmp_path):
    proc = _python(_DEVICES_SCRIPT, 4, json.dumps(CONFIG), tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["device_count"] == 4
    # each device holds a quarter of the batch; the parameters are whole on every device
    assert report["num_shards"] == 4 and report["shards"] == [[2, OPTIONS["n_masses"]]]
    assert report["param_shards"] == [[OPTIONS["n_masses"] + 1]]
    assert report["saved_devices"] == 2
    assert "not a multiple of 4 devices" in report["error_4_6"]
    assert "8 devices asked for, but JAX sees 4" in report["error_8_8"]

    reference = Trainer(TrainConfig.from_dict(CONFIG))
    result = reference.fit(None, progress=False, plots=False)
    np.testing.assert_allclose([r["train_loss"] for r in result.history][:3], report["history_4"], rtol=RTOL)
    for name, value in result.params["echo"].items():
        np.testing.assert_allclose(report["params"][name], np.asarray(value), rtol=RTOL, atol=0, err_msg=name)
    assert not np.allclose(report["params"]["k"], np.asarray(reference.task.params["k"]))  # it did train


# ----------------------------------------------------- two processes × two devices
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli_flags(config: dict) -> list[str]:
    flags = ["train", config["task"], "--estimator", config["estimator"], "--reference", config["reference"],
             "--epochs", str(config["epochs"]), "--batch-size", str(config["batch_size"]),
             "--probe-every", str(config["probe_every"]), "--lr", str(config["learning_rate"]),
             "--no-progress", "--no-plots"]
    for key, value in config["task_options"].items():
        flags += ["--set", f"{key}={value}"]
    return flags


@pytest.mark.slow
def test_two_processes_on_localhost_equal_one_process(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "lagrangian_eqprop", *_cli_flags(CONFIG), "--out", str(tmp_path / f"run{i}"),
         "--devices", "4", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
        env=_env(2), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    try:
        outputs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    out0, out1 = outputs[0][0], outputs[1][0]
    assert "4 cpu device(s), 2 process(es)" in out0 and "total wall time" in out0
    assert "task tracking" not in out1 and "total wall time" not in out1  # only process 0 prints ...
    assert not (tmp_path / "run1").exists()  # ... and writes
    saved = json.loads((tmp_path / "run0" / "params.json").read_text())["echo"]
    reference = _reference_params()
    for name, value in reference.items():
        np.testing.assert_allclose(saved[name], value, rtol=RTOL, atol=0, err_msg=name)


# ------------------------------------------ the command's compilation cache, whole-process time
@pytest.mark.slow
def test_command_fills_the_compile_cache_and_reports_whole_process_time(tmp_path):
    cache = tmp_path / "cache"
    env = dict(_env(1), LAGRANGIAN_EQPROP_COMPILE_CACHE=str(cache))
    runs = []
    for name in ("cold", "warm"):
        proc = subprocess.run([sys.executable, "-m", "lagrangian_eqprop", *_cli_flags(CONFIG),
                               "--out", str(tmp_path / name)], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "total wall time" in proc.stdout and "whole process" in proc.stdout
        runs.append(json.loads((tmp_path / name / "params.json").read_text())["echo"])
        if name == "cold":
            entries = {p.name for p in cache.iterdir()}
            assert len(entries) >= 5, entries  # every compilation of the run, however short
    assert runs[0] == runs[1]  # an executable from the cache computes the same numbers
    assert {p.name for p in cache.iterdir()} == entries  # the warm run compiled nothing new
