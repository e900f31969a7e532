"""Learning tasks for physical systems, with their data generated in-package (nothing downloaded).

Registered tasks (`available_tasks()`; build one with `get_task(name, **overrides)`):

- `tracking` — the flagship: six masses coupled by springs between two walls, an input force
  drives the first mass; train the couplings so that the fourth mass follows a target signal
  (produced by a hidden teacher chain driven by the same input, so it can be followed exactly).
- `sysid` — system identification, student–teacher: recover the hidden spring stiffnesses of a
  walled mass–spring chain from its observed trajectories. Supports fixed-endpoint training
  (`estimator="bvp"`).
- `classification` — an oscillator chain reads a 1-D signal (sine, square or sawtooth with
  random frequency, phase and noise) as the force on its first mass; the squared displacements
  of three readout masses at the end of the run are the class scores.
- `pendulum` — a chain of torsionally coupled nonlinear pendula learns the map from an initial
  angle pattern to the pattern at time T produced by a teacher chain (couplings and lengths).
- `sequence` — real sequence data (MNIST-1D, the UCR/UEA sets shipped with aeon, your own
  `.npz`) classified or regressed by physical networks of oscillators (`PhysicalLayer` blocks
  with autodiff glue, or one physical network with a linear readout); see `SequenceTask`.
- `digits`, `resistive`, `allostery` — systems at static equilibrium trained by static EqProp
  (`EquilibriumTask`, docs/equilibrium.md): a layered Hopfield network and a nonlinear resistive
  network on scikit-learn's bundled 8×8 digits, and an elastic network taught an allosteric
  response.

Samples are dicts of arrays with a leading sample axis; every sample has `q0`, `v0` (initial
state), `inputs` (node-sampled inputs, `(N+1, m)`, only when the system has inputs) and the
data its cost needs (`target`, `label`, ...); fixed-endpoint tasks also carry `q_start`,
`q_end`.
"""

from ..errors import ConfigError
from . import _classification, _equilibrium_tasks, _mechanics, _sequence  # noqa: F401  (register the tasks)
from ._classification import classification
from ._equilibrium_task import EquilibriumTask
from ._equilibrium_tasks import allostery, digits, resistive
from ._mechanics import pendulum, sysid, tracking
from ._sequence import SequenceTask, sequence
from ._task import Task, available_tasks, get_task, register, resolve_options, task_description, task_options

__all__ = [
    "ConfigError",
    "EquilibriumTask",
    "SequenceTask",
    "allostery",
    "Task",
    "available_tasks",
    "classification",
    "digits",
    "get_task",
    "pendulum",
    "register",
    "resolve_options",
    "resistive",
    "sequence",
    "sysid",
    "task_description",
    "task_options",
    "tracking",
]
