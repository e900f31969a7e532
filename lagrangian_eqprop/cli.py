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
JAX and SymPy are imported only when a command needs them, so `--help` is instant. Run as a
program, it also keeps JAX's persistent compilation cache in the user's cache directory
(`~/.cache/lagrangian_eqprop/jax`; `--no-compile-cache` or `LAGRANGIAN_EQPROP_COMPILE_CACHE=off`
to opt out, `LAGRANGIAN_EQPROP_COMPILE_CACHE=DIR` to move it), so a second run skips most of
its compilation. `train`/`resume` split batches over devices (`--devices N`) and join
multi-process runs (`--coordinator HOST:PORT --num-processes N --process-id I`, or
`--distributed` under Slurm / Open MPI); see docs/scaling.md.

Exit status: 0 on success, 1 when a run or a solve fails, 2 for invalid input (bad values,
unknown names, unreadable files), 130 when interrupted (the last checkpoint is kept; continue
with `resume`). User-caused failures print one `error:` line, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

from ._cli_process import enable_compile_cache, freeze_heap, join_processes, process_seconds
from ._names import ESTIMATOR_NAMES, OPTIMIZER_NAMES, RULE_NAMES, SCHEDULE_NAMES, VARIANT_NAMES

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    from .errors import ConfigError

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
    from .errors import ConfigError, LagrangianEqPropError

    try:
        return systems.get(name, **options)
    except LagrangianEqPropError:
        raise
    except (TypeError, ValueError, ArithmeticError) as err:  # an option value the factory cannot use
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ConfigError(f"system {name}: cannot build it with {shown} ({type(err).__name__}: {err}).") from None


def _integrator(system, args):
    from ._integrate import VariationalIntegrator

    return VariationalIntegrator(system.model, args.dt, rule=args.rule)


# ================================================================================ list
def _cmd_list(args) -> int:
    from . import systems
    from .tasks import available_tasks, task_description

    print("Systems (lagrangian-eqprop show|simulate|gradcheck SYSTEM):")
    for name in systems.available():
        print(f"  {name:<28} {systems.describe(name)}")
    print()
    print("Tasks (lagrangian-eqprop train TASK):")
    for name in available_tasks():
        flag = "  [flagship, default]" if name == "tracking" else ""
        print(f"  {name:<28} {task_description(name)}{flag}")
    print()
    print(f"Estimators (train --estimator): {', '.join(ESTIMATOR_NAMES)}")
    print(f"Rules (--rule): {', '.join(RULE_NAMES)}")
    return EXIT_OK


# ================================================================================ show
def _cmd_show(args) -> int:
    import sympy

    from ._symbolic import euler_lagrange_equations, lagrangian_expression

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
    return EXIT_OK


# ============================================================================ simulate
def _cmd_simulate(args) -> int:
    import equinox as eqx
    import numpy as np

    from ._solution import check_solution
    from .plotting import plot_simulation

    from .errors import ConfigError

    system = _system(args.system, _parse_assignments(args.set, "--set"))
    model = system.model
    integ = _integrator(system, args)
    number = integ.stability_number(system.params, system.q0)
    if integ.explicit and number >= 2.0:
        raise ConfigError(f"--dt {args.dt}: past the stability limit of the explicit Störmer–Verlet step "
                          f"(ω_max·dt = {number:.3g} ≥ 2 at the initial state); take --dt below "
                          f"{2.0 * args.dt / number:.3g}, or --rule midpoint.")
    if number > 2.0:
        print(f"warning: ω_max·dt = {number:.3g} at the initial state: the step does not resolve the fastest "
              "oscillation; the implicit solution may be spurious (the energy monitor will tell).", file=sys.stderr)
    t0 = time.perf_counter()

    @eqx.filter_jit
    def run(params, q0, v0):
        traj = integ.simulate(params, q0, v0, args.steps, throw=False)
        return traj, integ.energies(params, traj)

    traj, energy = run(system.params, system.q0, system.v0)
    check_solution(traj, traj.result, traj.stats, what=f"simulate {args.system} ({integ.describe()}, dt={args.dt})")
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
    return EXIT_OK


# ================================================================================ train
def _train_config(args):
    import tomllib

    from .errors import ConfigError
    from .training import TrainConfig

    data = {}
    if args.config:
        try:
            with open(args.config, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file {args.config!r}.") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--config {args.config}: unreadable ({err}).") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--config {args.config}: invalid TOML ({err}).") from None
    flags = {"task": args.task, "estimator": args.estimator, "reference": args.reference, "beta": args.beta,
             "variant": args.variant, "optimizer": args.optimizer, "learning_rate": args.lr,
             "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "weight_decay": args.weight_decay,
             "probe_every": args.probe_every, "devices": args.devices, "schedule": args.schedule}
    data.update({k: v for k, v in flags.items() if v is not None})
    options = dict(data.get("task_options") or {})
    options.update(_parse_assignments(args.set, "--set"))
    if args.data is not None:
        if data.get("task", "tracking") != "sequence":
            raise ConfigError(f"--data is an option of the sequence task (train sequence --data {args.data}); task "
                              f"{data.get('task', 'tracking')!r} makes its own data.")
        options["data"] = args.data
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
        print(f"\nRun folder: {result.out_dir}  (config.json, metrics.jsonl, checkpoint.eqx, params.json, summary.json)")
        if result.plots:
            print("Plots:")
            for name, path in result.plots.items():
                print(f"  {name:<13} {path}")


def _run_training(make_result, out_dir, args) -> int:
    result = make_result()
    if not result.completed:
        print(f"\ninterrupted after epoch {result.final()['epoch']}; the last checkpoint is kept. Continue with:\n"
              f"  lagrangian-eqprop resume {out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(result)
    where = "whole process" if args.whole_process else "since the command started"
    print(f"total wall time: {process_seconds(args.started, args.whole_process):.1f} s ({where}: start-up, imports, data, compilation, "
          "training and plots)")
    return EXIT_OK


def _cmd_train(args) -> int:
    from .training import Trainer

    config = _train_config(args)
    trainer = Trainer(config)
    if args.whole_process:
        freeze_heap()
    cfg = trainer.config
    out = args.out or _default_out(f"{cfg.task}-{trainer.runs[0]}")
    print(f"task {cfg.task}: {trainer.task.description}")
    print(f"estimators: {' and '.join(e.describe() for e in trainer.estimators.values())} (side by side, same "
          f"initial parameters and batches); {cfg.epochs} epochs × {trainer.num_batches} batch(es) of "
          f"{trainer.batch_size}; {cfg.optimizer} lr={cfg.learning_rate:g}; seed {cfg.seed}")
    print(f"trained parameters: {', '.join(f'{k} ({v})' for k, v in trainer.constraints.items())}; "
          f"set up in {process_seconds(args.started, args.whole_process):.1f} s; writing to {out}")
    if trainer.parallel.mesh is not None:
        import jax

        print(f"data parallel: each batch split over {trainer.parallel.size} {jax.devices()[0].platform} device(s), "
              f"{jax.process_count()} process(es)")
    return _run_training(lambda: trainer.fit(out, progress=not args.no_progress, plots=not args.no_plots), out,
                         args)


def _cmd_resume(args) -> int:
    import warnings

    from .training import read_config, resume

    config = read_config(args.dir)  # fails early with a clear message
    print(f"resuming {args.dir}: task {config.task}, estimator {config.run_names()[0]}, "
          f"to epoch {args.epochs or config.epochs}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def run():
            return resume(args.dir, epochs=args.epochs, progress=not args.no_progress, plots=not args.no_plots,
                          devices=args.devices)

        code = _run_training(run, args.dir, args)
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    return code


# ============================================================================ gradcheck
def _cmd_gradcheck(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from ._costs import TrackingCost
    from .diagnostics import agreement_sweep, format_agreement_report

    system = _system(args.system, _parse_assignments(args.set, "--set"))
    model, params = system.model, system.params
    integ = _integrator(system, args)
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
    sweep = agreement_sweep(integ, params, cost, betas=args.betas, methods=args.methods,
                            variants=args.variants, **problem)
    print(format_agreement_report(sweep))
    if args.out:
        from .plotting import plot_agreement

        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "report.txt"), "w") as handle:
            handle.write(format_agreement_report(sweep) + "\n")
        path = plot_agreement(sweep, os.path.join(args.out, "agreement.png"),
                              title=f"{args.system}: EqProp vs exact gradient")
        print(f"\nreport: {os.path.join(args.out, 'report.txt')}\nplot:   {path}")
    return EXIT_OK


# ================================================================================ parser
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _shared_parsers() -> dict[str, argparse.ArgumentParser]:
    """Flags shared by several commands, defined once (argparse parents)."""
    system = argparse.ArgumentParser(add_help=False)
    system.add_argument("system", help="a catalog system (see `lagrangian-eqprop list`)")
    system.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="factory option of the system, e.g. --set n=8 (repeatable)")

    def stepping(steps: int, dt: float) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--steps", type=_positive_int, default=steps, help=f"number of steps N (default {steps})")
        parser.add_argument("--dt", type=_positive_float, default=dt, help=f"time step h in s (default {dt})")
        parser.add_argument("--rule", default="trapezoid", choices=RULE_NAMES,
                            help="discrete Lagrangian (default trapezoid: explicit Störmer–Verlet when L = ½vᵀMv − V)")
        return parser

    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.add_argument("--devices", type=_positive_int,
                     help="split every batch over N devices (data parallel; the batch size must be a multiple of N)")
    run.add_argument("--coordinator", metavar="HOST:PORT", help="multi-process run: address of process 0")
    run.add_argument("--num-processes", type=_positive_int, metavar="N", help="multi-process run: number of processes")
    run.add_argument("--process-id", type=int, metavar="I", help="multi-process run: this process, 0 … N-1")
    run.add_argument("--distributed", action="store_true",
                     help="join a multi-process run described by the environment (Slurm, Open MPI; see docs/scaling.md)")
    run.add_argument("--no-compile-cache", action="store_true",
                     help="do not use the persistent compilation cache (~/.cache/lagrangian_eqprop/jax)")
    return {"system": system, "simulate": stepping(1000, 0.01), "gradcheck": stepping(200, 0.02), "run": run}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy import: building it is instant)."""
    parser = argparse.ArgumentParser(
        prog="lagrangian-eqprop",
        description="Lagrangian mechanics and least-action learning (time-dependent Equilibrium Propagation).",
        epilog="Exit status: 0 ok, 1 run failed, 2 bad input, 130 interrupted.",
    )
    shared = _shared_parsers()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="list the systems, tasks, estimators and rules")

    p = sub.add_parser("show", parents=[shared["system"]],
                       help="print a system's Lagrangian and Euler–Lagrange equations (pretty and LaTeX)")
    p.add_argument("--latex-only", action="store_true", help="print only the LaTeX forms")

    p = sub.add_parser("simulate", parents=[shared["system"], shared["simulate"]],
                       help="simulate a system; save the trajectory and a trajectory + energy plot")
    p.add_argument("--out", help="output folder (default runs/simulate-SYSTEM-<time>)")

    p = sub.add_parser("train", parents=[shared["run"]],
                       help="train a task (default: the flagship tracking task, echo vs BPTT)")
    p.add_argument("task", nargs="?", help="task name (default: tracking, or the config file's; see `list`)")
    p.add_argument("--estimator", help=f"gradient estimator: {', '.join(ESTIMATOR_NAMES)} (default: the task's, "
                   "echo for time-dependent tasks, eqprop for static ones)")
    p.add_argument("--reference", help="estimator trained side by side for comparison (default bptt; 'none' to skip)")
    p.add_argument("--beta", type=float, help="nudging strength β (default: the task's, 1e-3)")
    p.add_argument("--variant", help=f"EqProp variant: {', '.join(VARIANT_NAMES)} (default centered)")
    p.add_argument("--optimizer", help=f"optax optimiser: {', '.join(OPTIMIZER_NAMES)} (default adam)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay on weights, biases and input gains "
                   "(not on positive physical constants: masses, frequencies, stiffnesses; default 0)")
    p.add_argument("--schedule", choices=SCHEDULE_NAMES, help="learning rate over the run (default: the task's)")
    p.add_argument("--data", metavar="NAME_OR_FILE",
                   help="sequence task: a data set (mnist1d, GunPoint, ItalyPowerDemand, ArrowHead, BasicMotions, "
                        "JapaneseVowels) or an .npz file with x_train (n, T, c), y_train (n,), x_test, y_test")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the task's)")
    p.add_argument("--batch-size", type=int, help="samples per batch (default: the task's)")
    p.add_argument("--seed", type=int, help="master seed: data and batch order (default 0)")
    p.add_argument("--probe-every", type=int, help="gradient-agreement probe every k epochs (0: never; default 1)")
    p.add_argument("--config", help="TOML file with any of these keys and a [task_options] table")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="task option, e.g. --set num_train=16")
    p.add_argument("--out", help="run folder (default runs/TASK-ESTIMATOR-<time>)")

    p = sub.add_parser("gradcheck", parents=[shared["system"], shared["gradcheck"]],
                       help="agreement of EqProp gradients with BPTT over a sweep of β")
    p.add_argument("--betas", type=float, nargs="+", default=[1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5, 1e-6])
    p.add_argument("--methods", nargs="+", default=["echo"], choices=("echo", "bvp", "naive"))
    p.add_argument("--variants", nargs="+", default=["centered", "positive"], choices=VARIANT_NAMES)
    p.add_argument("--seed", type=int, default=0, help="seed of the target's parameter perturbation")
    p.add_argument("--out", help="folder for report.txt and agreement.png")

    p = sub.add_parser("resume", parents=[shared["run"]],
                       help="continue an interrupted (or extend a finished) training run")
    p.add_argument("dir", help="run folder written by `train`")
    p.add_argument("--epochs", type=int, help="train up to this many epochs (default: the run's)")
    return parser


_COMMANDS = {"list": _cmd_list, "show": _cmd_show, "simulate": _cmd_simulate, "train": _cmd_train,
             "gradcheck": _cmd_gradcheck, "resume": _cmd_resume}


def main(argv=None) -> int:
    """Entry point of the `lagrangian-eqprop` script. **Returns:** the exit status."""
    started = time.perf_counter()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        return int(stop.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    args.started = started
    args.whole_process = argv is None  # run as the program (not called from Python)
    from .errors import LagrangianEqPropError

    try:
        _enable_float64()
        if args.whole_process:
            enable_compile_cache(getattr(args, "no_compile_cache", False))
        join_processes(getattr(args, "coordinator", None), getattr(args, "num_processes", None),
                       getattr(args, "process_id", None), getattr(args, "distributed", False))
        return _COMMANDS[args.command](args)
    except LagrangianEqPropError as err:
        # The library's hint about `throw=False` is for Python callers, not for this command.
        print(f"error: {str(err).split(' Pass throw=False')[0]}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if args.whole_process:
            freeze_heap()  # the interpreter's shutdown then skips collecting a big heap


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
