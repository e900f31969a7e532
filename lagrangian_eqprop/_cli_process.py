"""What the `lagrangian-eqprop` command sets up for its whole process (never the library):
JAX's persistent compilation cache, joining a multi-process run, the garbage collector at
start-up and shutdown, and the whole-process wall time it reports.

Everything here is process-wide, so `cli.main` applies it only when it runs as the program
(`argv is None`), except joining a multi-process run, which the user asks for with flags.
No JAX import at module level: `--help` stays instant.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["compile_cache_dir", "enable_compile_cache", "freeze_heap", "join_processes", "process_seconds"]

CACHE_ENV = "LAGRANGIAN_EQPROP_COMPILE_CACHE"


def compile_cache_dir(opt_out: bool = False) -> str | None:
    """Where the command keeps JAX's persistent compilation cache: `$LAGRANGIAN_EQPROP_COMPILE_CACHE`
    (a folder), else `lagrangian_eqprop/jax` in the user's cache directory (`$XDG_CACHE_HOME` or
    `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows). `None` when
    switched off (`opt_out`, i.e. `--no-compile-cache`, or the variable set to off/0/false/no)."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if opt_out or setting.lower() in ("0", "off", "false", "no", "none"):
        return None
    if setting:
        return os.path.expanduser(setting)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "lagrangian_eqprop", "jax")


def enable_compile_cache(opt_out: bool = False) -> str | None:
    """Turn JAX's persistent compilation cache on for this process, in `compile_cache_dir()`.
    A cache the user configured for JAX (`JAX_COMPILATION_CACHE_DIR`) is left alone.

    **Returns:** the cache folder in use, or `None`.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = compile_cache_dir(opt_out)
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None  # an unwritable cache folder only costs the time it would have saved
    jax.config.update("jax_compilation_cache_dir", path)
    # A training run compiles dozens of programs of tens of milliseconds each; JAX's default
    # threshold (1 s) would cache none of them.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def join_processes(coordinator: str | None, num_processes: int | None, process_id: int | None,
                   from_environment: bool) -> None:
    """`jax.distributed.initialize` when the command is one process of a multi-process run
    (explicit flags, or `from_environment`: Slurm, Open MPI, TPU pods); the processes other
    than 0 then print nothing (they also write nothing: see `Trainer.fit`).

    **Raises:** `ConfigError` for inconsistent flags or a cluster that cannot be formed.
    """
    if not from_environment and coordinator is None and num_processes is None and process_id is None:
        return
    import jax

    from .training._distributed import initialize_distributed

    initialize_distributed(coordinator, num_processes, process_id)
    if jax.process_index() != 0:
        sys.stdout = open(os.devnull, "w")


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's sight (`gc.freeze`): after the
    set-up (modules, compiled model, data live to the end anyway) and before the interpreter
    shuts down, whose collections over a heap of JAX, SymPy and equinox objects otherwise take
    about a second of a short run."""
    import gc

    gc.freeze()


def process_seconds(started: float, whole_process: bool = True) -> float:
    """Seconds since this process started, interpreter start-up and imports included (from
    `/proc` on Linux), with `whole_process`; otherwise, or where `/proc` is missing, since
    `started` (a `time.perf_counter()` value)."""
    if whole_process:
        try:
            with open("/proc/self/stat") as handle:
                start_ticks = float(handle.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
            with open("/proc/uptime") as handle:
                return float(handle.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AttributeError):
            pass
    return time.perf_counter() - started
