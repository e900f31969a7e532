"""Scale-out with JAX's own runtime: data-parallel training over a device mesh, on one or many
processes.

- `DataParallel`: where the trainer puts its arrays. A 1-D `jax.sharding.Mesh` with the axis
  `"batch"`; batches of samples are split along it (`NamedSharding(mesh, P("batch"))`),
  parameters, optimiser state and evaluation inputs are replicated (`P()`). The trainer's
  jitted step is unchanged: XLA's SPMD partitioner (GSPMD) runs the vmapped per-sample
  gradients on each device's slice of the batch and inserts one all-reduce for the batch mean,
  so the same code runs on one CPU, several GPUs, a TPU slice or several hosts.
- `initialize_distributed`: `jax.distributed.initialize` from explicit arguments (coordinator
  address, number of processes, process id) or from the environment (Slurm, Open MPI and
  TPU pods are detected by JAX itself). Every process then runs the same program; each one
  feeds only its own rows of a batch (`jax.make_array_from_process_local_data`), and process
  0 alone writes the run folder.

Nothing here changes JAX's configuration on import; `initialize_distributed` is called by the
command line (or by the user) before any computation.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ConfigError

__all__ = ["BATCH_AXIS", "DataParallel", "data_parallel", "initialize_distributed"]

BATCH_AXIS = "batch"


class DataParallel(eqx.Module):
    """How training arrays are placed on devices.

    **Fields:**
    - `mesh`: a 1-D `Mesh` over the axis `"batch"`, or `None` (no placement: JAX's default
      device, exactly the single-device behaviour).

    Every method takes and returns pytrees; non-array leaves pass through unchanged.
    """

    mesh: Mesh | None = eqx.field(static=True, default=None)

    @property
    def size(self) -> int:
        """Number of devices the batch is split over (1 without a mesh)."""
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (process 0 of a multi-process run)."""
        return jax.process_index() == 0

    def _sharding(self, spec: PartitionSpec) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    def replicate(self, tree):
        """Every array leaf as a global array replicated on every device of the mesh (each
        process passes the same values: parameters, optimiser state, evaluation samples)."""
        if self.mesh is None:
            return tree
        sharding = self._sharding(PartitionSpec())
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)) if eqx.is_array(x) else x,
            tree)

    def local_rows(self, num: int) -> slice:
        """The rows of a batch of `num` samples that live on this process's devices."""
        sharding = self._sharding(PartitionSpec(BATCH_AXIS))
        blocks = sorted({(idx[0].start or 0, num if idx[0].stop is None else idx[0].stop)
                         for idx in sharding.addressable_devices_indices_map((num,)).values()})
        start, stop = blocks[0][0], blocks[-1][1]
        if sum(b - a for a, b in blocks) != stop - start:  # a device order that interleaves processes
            raise ConfigError(f"the devices of process {jax.process_index()} do not hold a contiguous block of "
                              f"the batch ({blocks}); build the mesh from jax.devices() in process order.")
        return slice(start, stop)

    def shard(self, batch):
        """A batch `{key: (B, ...)}` split along its leading axis over the mesh (`B` must be a
        multiple of `size`); each process contributes only its own rows."""
        if self.mesh is None:
            return batch
        sharding = self._sharding(PartitionSpec(BATCH_AXIS))

        def put(x):
            x = np.asarray(x)
            if x.shape[0] % self.size:
                raise ConfigError(f"a batch of {x.shape[0]} samples cannot be split evenly over {self.size} devices.")
            rows = self.local_rows(x.shape[0])
            return jax.make_array_from_process_local_data(sharding, x[rows], x.shape)

        return jax.tree_util.tree_map(put, batch)

    def shard_padded(self, batch) -> tuple[dict, int]:
        """`(sharded batch, B)`: the batch padded to a multiple of `size` by repeating its last
        sample, then split (for per-sample evaluations; drop the rows past `B`). Without a
        mesh the batch is returned as it is."""
        num = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
        if self.mesh is None:
            return batch, num
        pad = -num % self.size
        padded = jax.tree_util.tree_map(
            lambda x: np.concatenate([np.asarray(x), np.repeat(np.asarray(x)[-1:], pad, axis=0)]), batch)
        return self.shard(padded), num

    def shard_or_replicate(self, batch):
        """Split a batch when its size allows it, replicate it otherwise (for batch means,
        which padding would change)."""
        num = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
        return self.shard(batch) if num % self.size == 0 else self.replicate(batch)

    def gather(self, tree):
        """Inside `jit`: constrain every array leaf to be replicated, so each process can read
        it (per-sample losses, result codes and statistics of a sharded batch)."""
        if self.mesh is None:
            return tree
        sharding = self._sharding(PartitionSpec())
        return jax.tree_util.tree_map(
            lambda x: jax.lax.with_sharding_constraint(x, sharding) if eqx.is_array(x) else x, tree)


def data_parallel(devices: int | None, batch_size: int) -> DataParallel:
    """The placement for `TrainConfig.devices`.

    **Arguments:**
    - `devices`: number of devices to split each batch over (the first `devices` of
      `jax.devices()`), or `None`: every device of a multi-process run, no placement at all in
      a single process.
    - `batch_size`: the effective batch size, which must be a multiple of the device count.

    **Raises:** `ConfigError` when more devices are asked for than JAX sees, when a
    multi-process run is asked to use only part of its devices, or when the batch size is not
    a multiple of the device count.
    """
    available = jax.devices()
    if devices is None:
        if jax.process_count() == 1:
            return DataParallel()
        devices = len(available)
    if devices > len(available):
        hint = (" On a CPU, make JAX see several devices by setting "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} before it starts."
                if available[0].platform == "cpu" else "")
        raise ConfigError(f"config field 'devices': {devices} devices asked for, but JAX sees {len(available)} "
                          f"({available[0].platform}).{hint}")
    if jax.process_count() > 1 and devices != len(available):
        raise ConfigError(f"config field 'devices': a run over {jax.process_count()} processes uses all "
                          f"{len(available)} devices; got devices={devices}.")
    if batch_size % devices:
        raise ConfigError(f"config field 'devices': the batch size {batch_size} is not a multiple of {devices} "
                          f"devices; choose a batch size divisible by {devices} (--batch-size) or another "
                          "device count.")
    return DataParallel(Mesh(np.asarray(available[:devices]), (BATCH_AXIS,)))


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, timeout: int = 300) -> None:
    """Join a multi-process run (`jax.distributed.initialize`); call before any JAX computation.

    **Arguments:**
    - `coordinator`: `"HOST:PORT"` of process 0's coordination service; `num_processes`,
      `process_id` (0 … num_processes − 1). Left `None`, JAX reads them from the environment
      (Slurm, Open MPI, TPU pods, or `JAX_COORDINATOR_ADDRESS`).
    - `timeout`: seconds to wait for every process to join.

    On CPUs the cross-process collectives use Gloo (JAX's `jax_cpu_collectives_implementation`,
    the default in recent JAX; set here when it is off).

    **Raises:** `ConfigError` when the arguments are inconsistent or the processes cannot form
    the cluster (wrong address, port in use, a process missing).
    """
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be ≥ 1, got {num_processes}.")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id must be in 0 … {num_processes - 1}, got {process_id}.")
    if coordinator is not None and (":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit()):
        raise ConfigError(f"--coordinator must look like HOST:PORT, got {coordinator!r}.")
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=timeout)
    except (RuntimeError, ValueError) as err:  # JAX's own errors: missing arguments, connection failures
        raise ConfigError(f"could not join the multi-process run (coordinator {coordinator or 'from the environment'}, "
                          f"{num_processes or '?'} processes, process id {process_id if process_id is not None else '?'}):"
                          f" {err}") from None
