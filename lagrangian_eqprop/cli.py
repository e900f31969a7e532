"""`lagrangian-eqprop`: list, show, simulate, train, gradcheck and resume from the command line.

    lagrangian-eqprop list
    lagrangian-eqprop show double_pendulum
    lagrangian-eqprop simulate pendulum_chain --steps 2000 --dt 0.01
    lagrangian-eqprop train                      # flagship: tracking, echo vs BPTT side by side
    lagrangian-eqprop train sysid --estimator bvp --epochs 40 --out runs/sysid
    lagrangian-eqprop train --config run.toml --set num_train=16
    lagrangian-eqprop gradcheck mass_spring_chain
    lagrangian-eqprop resume runs/sysid --epochs 80

The CLI computes in float64 (it enables `jax_enable_x64`; the library itself never does).
Exit status: 0 on success, 1 when training or a solve fails, 2 for invalid input, 130 when
interrupted (the last checkpoint is kept; continue with `resume`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

__all__ = ["main"]

_SYSTEM_OPTION_HELP = "factory option of the system, e.g. --set n=8 (repeatable)"


def _enable_float64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def _parse_value(text: str):
    """A TOML literal (number, bool, list, quoted string) or, failing that, the raw string."""
    import tomllib

    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_assignments(items, what: str) -> dict:
    from .tasks import ConfigError

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} must look like key=value, got {item!r}.")
        value = _parse_value(value.strip())
        out[key.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def _default_out(prefix: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{prefix}-{stamp}")
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def _system(name: str, options: dict):
    from . import systems
    from .tasks import ConfigError

    try:
        return systems.get(name, **options)
    except TypeError as err:  # an unknown factory keyword
        import inspect

        names = list(inspect.signature(systems._REGISTRY[name]).parameters)
        raise ConfigError(f"system {name}: {err}; valid options: {', '.join(names)}") from None


# ================================================================================ list
def _cmd_list(args) -> int:
    from . import systems
    from .tasks import _REGISTRY, available_tasks

    print("Systems (lagrangian-eqprop show|simulate|gradcheck SYSTEM):")
    for name in systems.available():
        doc = (systems._REGISTRY[name].__doc__ or "").strip().splitlines()
        print(f"  {name:<28} {doc[0] if doc else ''}")
    print()
    print("Tasks (lagrangian-eqprop train TASK):")
    for name in available_tasks():
        doc = (_REGISTRY[name].__doc__ or "").strip().splitlines()
        flag = "  [flagship, default]" if name == "tracking" else ""
        print(f"  {name:<28} {doc[0] if doc else ''}{flag}")
    print()
    from .training import ESTIMATORS

    print(f"Estimators (train --estimator): {', '.join(ESTIMATORS)}")
    return 0


# ================================================================================ show
def _cmd_show(args) -> int:
    import sympy

    from .symbolic import euler_lagrange_equations, lagrangian_expression

    system = _system(args.system, _parse_assignments(args.set, "--set"))
    model = system.model
    L = lagrangian_expression(model)
    equations = euler_lagrange_equations(model)
    params = ", ".join(f"{k}{'' if s == () else list(s)}" for k, s in model.parameter_shapes.items())
    print(f"System: {args.system}")
    print(f"coordinates: {', '.join(model.coordinate_names)}")
    print(f"parameters:  {params or '—'}")
    print(f"inputs:      {', '.join(model.input_names) or '—'}")
    print(f"separable: {model.separable is not None}    time-reversible (echo exact): {model.time_reversible}")
    if not args.latex_only:
        import shutil

        width = max(shutil.get_terminal_size((160, 24)).columns, 120)
        print("\nLagrangian L =")
        print(sympy.pretty(L, use_unicode=True, num_columns=width))
        print("\nEuler–Lagrange equations  d/dt ∂L/∂q̇ − ∂L/∂q = Q:")
        for eq in equations:
            print(sympy.pretty(eq, use_unicode=True, num_columns=width))
            print()
    print("\nLaTeX:")
    print(f"L = {sympy.latex(L)}")
    for eq in equations:
        print(sympy.latex(eq))
    return 0


# ============================================================================ simulate
def _energy_series(integ, params, traj, us):
    import jax

    model = integ.model

    def energy(q, p, t, u):
        v = integ.velocity_estimate(params, q, p, t, u)
        return model.energy(q, v, t, params, u)

    return jax.vmap(energy)(traj.q, traj.p, traj.t, us)


def _cmd_simulate(args) -> int:
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np

    from .integrate import VariationalIntegrator
    from .plotting import plot_simulation

    system = _system(args.system, _parse_assignments(args.set, "--set"))
    model = system.model
    integ = VariationalIntegrator(model, args.dt, rule=args.rule)
    t0 = time.perf_counter()

    @eqx.filter_jit
    def run(params, q0, v0):
        traj = integ.simulate(params, q0, v0, args.steps)
        us = jnp.zeros((args.steps + 1, model.num_inputs), traj.q.dtype)
        return traj, _energy_series(integ, params, traj, us)

    traj, energy = run(system.params, system.q0, system.v0)
    energy = np.asarray(energy)
    elapsed = time.perf_counter() - t0
    out = args.out or _default_out(f"simulate-{args.system}")
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, "trajectory.npz"), t=np.asarray(traj.t), q=np.asarray(traj.q),
             p=np.asarray(traj.p), energy=energy, coordinates=np.asarray(model.coordinate_names))
    unit = "rad" if any(c.startswith("theta") for c in model.coordinate_names) else "m"
    plot = plot_simulation(np.asarray(traj.t), np.asarray(traj.q), energy, os.path.join(out, "simulation.png"),
                           labels=model.coordinate_names, unit=unit,
                           title=f"{args.system}: {args.rule} rule, h = {args.dt} s, {args.steps} steps")
    drift = float(np.max(np.abs(energy - energy[0])) / max(abs(float(energy[0])), 1e-300))
    print(f"Simulated {args.system} for {args.steps} steps of {args.dt} s ({args.rule} rule) in {elapsed:.2f} s.")
    print(f"max relative energy error: {drift:.2e}" + ("" if model.force_fn is None else " (the system has a non-conservative force)"))
    print(f"trajectory: {os.path.join(out, 'trajectory.npz')}")
    print(f"plot:       {plot}")
    return 0


# ================================================================================ train
def _train_config(args):
    import tomllib

    from .tasks import ConfigError
    from .training import TrainConfig

    data = {}
    if args.config:
        try:
            with open(args.config, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file {args.config!r}.") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--config {args.config}: invalid TOML ({err}).") from None
    flags = {"task": args.task, "estimator": args.estimator, "reference": args.reference, "beta": args.beta,
             "variant": args.variant, "optimizer": args.optimizer, "learning_rate": args.lr,
             "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
             "probe_every": args.probe_every}
    data.update({k: v for k, v in flags.items() if v is not None})
    options = dict(data.get("task_options") or {})
    options.update(_parse_assignments(args.set, "--set"))
    if options:
        data["task_options"] = options
    return TrainConfig.from_dict(data)


def _report(result) -> None:
    print()
    print(result.summary_table())
    if result.task.classes is not None:
        last = result.final()
        print(f"\nheld-out accuracy ({result.runs[0]}): {last.get('test_accuracy', float('nan')):.1%} "
              f"(chance {1 / len(result.task.classes):.1%})")
    if result.out_dir is not None:
        print(f"\nRun folder: {result.out_dir}  (config.json, metrics.jsonl, checkpoint.npz, params.json, summary.json)")
        if result.plots:
            print("Plots:")
            for name, path in result.plots.items():
                print(f"  {name:<13} {path}")


def _run_training(make_result, out_dir) -> int:
    from .training import TrainingError

    t0 = time.perf_counter()
    try:
        result = make_result()
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not result.completed:
        print(f"\ninterrupted after epoch {result.final()['epoch']}; the last checkpoint is kept. Continue with:\n"
              f"  lagrangian-eqprop resume {out_dir}", file=sys.stderr)
        return 130
    _report(result)
    print(f"total wall time: {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_train(args) -> int:
    from .training import Trainer

    config = _train_config(args)
    t0 = time.perf_counter()
    trainer = Trainer(config)
    cfg = trainer.config
    out = args.out or _default_out(f"{cfg.task}-{cfg.estimator}")
    print(f"task {cfg.task}: {trainer.task.description}")
    print(f"estimators: {' and '.join(trainer.runs)} (side by side, same initial parameters and batches); "
          f"{cfg.epochs} epochs × {trainer.num_batches} batch(es) of {trainer.batch_size}; "
          f"{cfg.optimizer} lr={cfg.learning_rate:g}; β={cfg.beta:g} ({cfg.variant}); seed {cfg.seed}")
    print(f"trained parameters: {', '.join(f'{k} ({v})' for k, v in trainer.constraints.items())}; "
          f"data generated in {time.perf_counter() - t0:.1f} s; writing to {out}")
    return _run_training(lambda: trainer.fit(out, progress=not args.no_progress, plots=not args.no_plots), out)


def _cmd_resume(args) -> int:
    from .training import read_config, resume

    config = read_config(args.dir)  # fails early with a clear message
    print(f"resuming {args.dir}: task {config.task}, estimator {config.estimator}, "
          f"to epoch {args.epochs or config.epochs}")
    return _run_training(lambda: resume(args.dir, epochs=args.epochs, progress=not args.no_progress,
                                        plots=not args.no_plots), args.dir)


# ============================================================================ gradcheck
def _cmd_gradcheck(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from .costs import TrackingCost
    from .diagnostics import agreement_sweep, format_agreement_report
    from .errors import EstimatorError
    from .integrate import VariationalIntegrator

    system = _system(args.system, _parse_assignments(args.set, "--set"))
    model, params = system.model, system.params
    integ = VariationalIntegrator(model, args.dt, rule=args.rule)
    N = args.steps
    inputs = None
    if model.num_inputs:
        times = np.asarray(integ.node_times(N, np.float64))
        inputs = jnp.asarray(0.5 * np.sin(times)[:, None] * np.ones(model.num_inputs))
    # Target: the motion of the same system with every parameter perturbed by ~10% (seeded).
    rng = np.random.default_rng(args.seed)
    teacher = {k: v * (1.0 + 0.1 * jnp.asarray(rng.standard_normal(np.shape(v)))) for k, v in params.items()}
    target = integ.simulate(teacher, system.q0, system.v0, N, inputs).q
    cost = TrackingCost(target, tuple(range(model.num_dof)), weight=1.0 / N)
    problem = dict(q0=system.q0, v0=system.v0, num_steps=N, inputs=inputs)
    if "bvp" in args.methods:
        free = integ.simulate(params, system.q0, system.v0, N, inputs).q
        problem.update(q_start=free[0], q_end=free[-1])
    print(f"{args.system}: {N} steps of {args.dt} s ({args.rule} rule); cost: tracking the motion of the same "
          "system with its parameters perturbed by ~10%, all coordinates")
    try:
        sweep = agreement_sweep(integ, params, cost, betas=args.betas, methods=args.methods,
                                variants=args.variants, **problem)
    except EstimatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_agreement_report(sweep))
    if args.out:
        from .plotting import plot_agreement

        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "report.txt"), "w") as handle:
            handle.write(format_agreement_report(sweep) + "\n")
        path = plot_agreement(sweep, os.path.join(args.out, "agreement.png"),
                              title=f"{args.system}: EqProp vs exact gradient")
        print(f"\nreport: {os.path.join(args.out, 'report.txt')}\nplot:   {path}")
    return 0


# ================================================================================ parser
def build_parser() -> argparse.ArgumentParser:
    from .training import ESTIMATORS, OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="lagrangian-eqprop",
        description="Lagrangian mechanics and least-action learning (time-dependent Equilibrium Propagation).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="list the systems and tasks")

    p = sub.add_parser("show", help="print a system's Lagrangian and Euler–Lagrange equations (pretty and LaTeX)")
    p.add_argument("system")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=_SYSTEM_OPTION_HELP)
    p.add_argument("--latex-only", action="store_true", help="print only the LaTeX forms")

    p = sub.add_parser("simulate", help="simulate a system; save the trajectory and a trajectory + energy plot")
    p.add_argument("system")
    p.add_argument("--steps", type=int, default=1000, help="number of steps N (default 1000)")
    p.add_argument("--dt", type=float, default=0.01, help="time step h in s (default 0.01)")
    p.add_argument("--rule", default="trapezoid", choices=("midpoint", "trapezoid", "galerkin"),
                   help="discrete Lagrangian (default trapezoid: explicit Störmer–Verlet when L = ½vᵀMv − V)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=_SYSTEM_OPTION_HELP)
    p.add_argument("--out", help="output folder (default runs/simulate-SYSTEM-<time>)")

    p = sub.add_parser("train", help="train a task (default: the flagship tracking task, echo vs BPTT)")
    p.add_argument("task", nargs="?", help="task name (default: tracking, or the config file's)")
    p.add_argument("--estimator", help=f"gradient estimator: {', '.join(ESTIMATORS)} (default echo)")
    p.add_argument("--reference", help="estimator trained side by side for comparison (default bptt; 'none' to skip)")
    p.add_argument("--beta", type=float, help="nudging strength β (default: the task's, 1e-3)")
    p.add_argument("--variant", help="EqProp variant: centered, positive, negative (default centered)")
    p.add_argument("--optimizer", help=f"optax optimiser: {', '.join(OPTIMIZERS)} (default adam)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the task's)")
    p.add_argument("--batch-size", type=int, help="samples per batch (default: the task's)")
    p.add_argument("--seed", type=int, help="master seed: data and batch order (default 0)")
    p.add_argument("--probe-every", type=int, help="gradient-agreement probe every k epochs (0: never; default 1)")
    p.add_argument("--config", help="TOML file with any of these keys and a [task_options] table")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="task option, e.g. --set num_train=16")
    p.add_argument("--out", help="run folder (default runs/TASK-ESTIMATOR-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")

    p = sub.add_parser("gradcheck", help="agreement of EqProp gradients with BPTT over a sweep of β")
    p.add_argument("system")
    p.add_argument("--steps", type=int, default=200, help="number of steps N (default 200)")
    p.add_argument("--dt", type=float, default=0.02, help="time step h in s (default 0.02)")
    p.add_argument("--rule", default="trapezoid", choices=("midpoint", "trapezoid", "galerkin"),
                   help="discrete Lagrangian (default trapezoid: explicit Störmer–Verlet when L = ½vᵀMv − V)")
    p.add_argument("--betas", type=float, nargs="+", default=[1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5, 1e-6])
    p.add_argument("--methods", nargs="+", default=["echo"], choices=("echo", "bvp", "naive"))
    p.add_argument("--variants", nargs="+", default=["centered", "positive"],
                   choices=("centered", "positive", "negative"))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=_SYSTEM_OPTION_HELP)
    p.add_argument("--seed", type=int, default=0, help="seed of the target's parameter perturbation")
    p.add_argument("--out", help="folder for report.txt and agreement.png")

    p = sub.add_parser("resume", help="continue an interrupted (or extend a finished) training run")
    p.add_argument("dir", help="run folder written by `train`")
    p.add_argument("--epochs", type=int, help="train up to this many epochs (default: the run's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


_COMMANDS = {"list": _cmd_list, "show": _cmd_show, "simulate": _cmd_simulate, "train": _cmd_train,
             "gradcheck": _cmd_gradcheck, "resume": _cmd_resume}


def main(argv=None) -> int:
    """Entry point of the `lagrangian-eqprop` script. **Returns:** the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _enable_float64()
    from .errors import ConvergenceError, EstimatorError, LagrangianError
    from .training import TrainingError

    try:
        return _COMMANDS[args.command](args)
    except (ValueError, LagrangianError, EstimatorError) as err:  # ConfigError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (TrainingError, ConvergenceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
