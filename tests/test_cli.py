"""End-to-end tests of the `lagrangian-eqprop` command line, run in-process on tiny configs."""

import contextlib
import io
import json

import pytest

from lagrangian_eqprop.cli import main

TINY = ["--set", "n_masses=3", "--set", "num_train=4", "--set", "num_test=2", "--set", "num_steps=10"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny `train` through a TOML config plus flags, shared by the tests below."""
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "run.toml"
    config.write_text(
        'task = "sysid"\nestimator = "echo"\nreference = "none"\nepochs = 3\nbatch_size = 2\n'
        "probe_every = 0\n[task_options]\nn_masses = 3\nnum_train = 4\nnum_test = 2\n"
    )
    out_dir = folder / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", "--config", str(config), "--set", "num_steps=10", "--lr", "0.05",
                     "--out", str(out_dir), "--no-progress"])
    return code, out_dir, stdout.getvalue()


def test_train_writes_a_complete_run_folder(trained_run, capsys):
    code, out_dir, out = trained_run
    assert code == 0
    assert "estimator" in out and "reduction" in out and "initial loss" in out
    assert "Plots:" in out and str(out_dir / "plots" / "loss.png") in out
    for name in ("config.json", "metrics.jsonl", "checkpoint.eqx", "params.json", "summary.json"):
        assert (out_dir / name).is_file(), name
    for plot in ("loss", "trajectories", "parameters"):
        assert (out_dir / "plots" / f"{plot}.png").stat().st_size > 1000
    config = json.loads((out_dir / "config.json").read_text())["config"]
    assert config["task"] == "sysid" and config["learning_rate"] == 0.05 and config["epochs"] == 3
    assert config["task_options"]["num_steps"] == 10 and config["task_options"]["n_masses"] == 3
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3]
    assert all(r["train_loss"] > 0 and r["wall_time"] >= 0 for r in epochs)
    assert {"loss", "grad_norm", "step"} <= set(next(r for r in records if r["kind"] == "step"))
    params = json.loads((out_dir / "params.json").read_text())
    assert {"echo", "initial", "true", "trained"} <= set(params) and params["trained"] == {"k": "positive"}


def test_resume_extends_the_run(trained_run, capsys):
    _, out_dir, _ = trained_run
    code, out, err = run(capsys, "resume", str(out_dir), "--epochs", "4", "--no-progress", "--no-plots")
    assert code == 0, err
    assert "resuming" in out and "echo" in out
    epochs = [json.loads(line)["epoch"] for line in (out_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "epoch"]
    assert epochs == [0, 1, 2, 3, 4]


def test_train_refuses_an_existing_run_folder(trained_run, capsys):
    _, out_dir, _ = trained_run
    code, out, err = run(capsys, "train", "sysid", *TINY, "--epochs", "1", "--out", str(out_dir), "--no-progress")
    assert code == 2 and "already holds a run" in err and "resume" in err


# Exit status 2: input the user can fix. Each case is checked for its exact code and message,
# and that no traceback is printed.
BAD_INPUT = [
    (["train", "nosuchtask"], "available tasks: tracking, sysid, classification, pendulum"),
    (["train", "sysid", "--estimator", "magic"], "unknown estimator 'magic'; choose one of echo, bvp, naive, bptt"),
    (["train", "sysid", "--set", "bogus=1"], "unknown option(s) 'bogus'"),
    (["train", "sysid", "--set", "num_steps=abc"], "option 'num_steps' must be an integer"),
    (["train", "sysid", "--lr", "-1"], "config field 'learning_rate'"),
    (["train", "sysid", "--epochs", "0"], "config field 'epochs'"),
    (["train", "sysid", "--weight-decay", "-0.1"], "config field 'weight_decay'"),
    (["train", "sysid", "--config", "/nonexistent/run.toml"], "no such file"),
    (["show", "nosuchsystem"], "available systems:"),
    (["simulate", "nosuchsystem"], "available systems:"),
    (["show", "harmonic_oscillator", "--set", "bogus=1"], "valid options: mass"),
    (["simulate", "mass_spring_chain", "--set", "n=abc"], "system mass_spring_chain: cannot build it with n='abc'"),
    (["resume", "/nonexistent/run"], "not a run folder"),
    (["simulate", "harmonic_oscillator", "--dt", "-1"], "--dt: must be a positive finite number"),
    (["simulate", "harmonic_oscillator", "--rule", "rk4"], "invalid choice: 'rk4'"),
    (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_naming_the_problem(argv, message, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err + out


def test_bad_config_file_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("task = 'sysid'\nepochs = [\n")
    code, out, err = run(capsys, "train", "--config", str(config))
    assert code == 2 and "invalid TOML" in err and "Traceback" not in err
    config.write_bytes(b"\xff\xfe\x00garbage")
    code, out, err = run(capsys, "train", "--config", str(config))
    assert code == 2 and str(config) in err and "Traceback" not in err


def test_resume_of_a_folder_without_a_run_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "resume", str(tmp_path))
    assert code == 2 and "not a run folder" in err


# Exit status 1: the run itself failed (a blow-up, a failed solve).
def test_failed_simulation_exits_1_without_traceback(capsys):
    code, out, err = run(capsys, "simulate", "double_pendulum", "--rule", "midpoint", "--dt", "3", "--steps", "50")
    assert code == 1, err
    warning, error = err.strip().splitlines()  # the up-front step-size warning, then the error
    assert warning.startswith("warning: ω_max·dt = 12.6")
    assert error.startswith("error: simulate double_pendulum") and "step" in error and "Newton" in error
    assert "Traceback" not in err


def test_help_exits_0(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and "Exit status" in out
    code, out, err = run(capsys, "train", "--help")
    assert code == 0 and "--estimator" in out


def test_interrupt_exits_130(monkeypatch, capsys):
    from lagrangian_eqprop import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli._COMMANDS, "list", interrupted)
    code, out, err = run(capsys, "list")
    assert code == 130 and "interrupted" in err


def test_bad_config_file_key_is_named(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("task = 'sysid'\nlearning_rat = 0.1\n")
    code, out, err = run(capsys, "train", "--config", str(config))
    assert code == 2 and "'learning_rat'" in err and "valid keys" in err


def test_bvp_on_an_initial_value_task_is_refused(capsys):
    code, out, err = run(capsys, "train", "pendulum", "--estimator", "bvp", "--set", "num_train=2",
                         "--set", "num_steps=5")
    assert code == 2 and "fixed-endpoint" in err


def test_list_show_simulate_gradcheck(tmp_path, capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "tracking" in out and "mass_spring_chain" in out
    assert "echo, bvp, naive, bptt, implicit, adjoint" in out and "midpoint, trapezoid, galerkin" in out
    code, out, _ = run(capsys, "show", "harmonic_oscillator")
    assert code == 0 and "Euler–Lagrange" in out and "LaTeX" in out and r"\frac" in out
    code, out, err = run(capsys, "simulate", "harmonic_oscillator", "--steps", "50", "--out", str(tmp_path / "sim"))
    assert code == 0, err
    assert (tmp_path / "sim" / "trajectory.npz").is_file() and (tmp_path / "sim" / "simulation.png").is_file()
    assert "max relative energy error" in out
    code, out, err = run(capsys, "gradcheck", "harmonic_oscillator", "--steps", "20", "--betas", "1e-2", "1e-3",
                         "--variants", "centered")
    assert code == 0, err
    assert "cosine" in out and "centered" in out
    code, out, err = run(capsys, "gradcheck", "damped_oscillator", "--steps", "10", "--betas", "1e-3")
    assert code == 2 and "not exact" in err  # a refusal: the echo is not exact for a damped system
