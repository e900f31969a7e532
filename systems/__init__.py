"""Catalog of physical systems (installed as `lagrangian_eqprop.systems`), SymPy only.

Every entry is a factory returning a `System(model, params, q0, v0)` NamedTuple: the compiled
`LagrangianModel` plus default parameters and a default initial state, so that a demo can
simulate it directly::

    from lagrangian_eqprop import systems
    model, params, q0, v0 = systems.get("double_pendulum")
    chain = systems.mass_spring_chain(8, nonlinear=True, input_mass=0)

`available()` lists the registered names; `get(name, **kwargs)` calls the factory of that name
with `kwargs`. Each factory's docstring shows its Lagrangian.

Systems at static equilibrium (`energy_based`: `hopfield_network`, `resistive_network`,
`elastic_network`) return an `EnergySystem(model, params, x, s0, layout)` of an energy model
(`lep.compile_energy`); they are not in the registry, which lists systems to simulate.
"""

from __future__ import annotations

from collections.abc import Callable

from lagrangian_eqprop.errors import LagrangianError

from ._system import System, make_system
from .chains import free_chain, mass_spring_chain
from .energy_based import EnergySystem, elastic_network, hopfield_network, resistive_inputs, resistive_network
from .networks import grid_graph, mass_spring_network, random_graph
from .oscillator_networks import oscillator_graph, oscillator_network
from .oscillators import (
    caldirola_kanai_oscillator,
    damped_oscillator,
    driven_oscillator,
    harmonic_oscillator,
)
from .pendula import double_pendulum, pendulum_chain

__all__ = [
    "EnergySystem",
    "System",
    "available",
    "describe",
    "caldirola_kanai_oscillator",
    "damped_oscillator",
    "double_pendulum",
    "driven_oscillator",
    "elastic_network",
    "free_chain",
    "get",
    "grid_graph",
    "harmonic_oscillator",
    "hopfield_network",
    "make_system",
    "mass_spring_chain",
    "mass_spring_network",
    "options",
    "oscillator_graph",
    "oscillator_network",
    "pendulum_chain",
    "random_graph",
    "resistive_inputs",
    "resistive_network",
]

_REGISTRY: dict[str, Callable[..., System]] = {
    "caldirola_kanai_oscillator": caldirola_kanai_oscillator,
    "damped_oscillator": damped_oscillator,
    "double_pendulum": double_pendulum,
    "driven_oscillator": driven_oscillator,
    "free_chain": free_chain,
    "harmonic_oscillator": harmonic_oscillator,
    "mass_spring_chain": mass_spring_chain,
    "mass_spring_network": mass_spring_network,
    "oscillator_network": oscillator_network,
    "pendulum_chain": pendulum_chain,
}


def available() -> list[str]:
    """Names of the registered systems (sorted)."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    """The first line of a registered system's docstring."""
    lines = (_factory(name).__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def options(name: str) -> list[str]:
    """The keyword options of a registered system's factory."""
    import inspect

    return list(inspect.signature(_factory(name)).parameters)


def _factory(name: str) -> Callable[..., System]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise LagrangianError(
            f"unknown system {name!r}; available systems: {', '.join(available())}"
        ) from None


def get(name: str, **kwargs) -> System:
    """Build the named system.

    **Arguments:**
    - `name`: one of `available()`.
    - `**kwargs`: forwarded to the factory (see its docstring).

    **Returns:** a `System(model, params, q0, v0)`.

    **Raises:** `LagrangianError` (a `ValueError`) listing the valid names for an unknown name.
    """
    factory = _factory(name)
    unknown = sorted(set(kwargs) - set(options(name)))
    if unknown:
        raise LagrangianError(f"system {name}: unknown option(s) {', '.join(unknown)}; valid options: "
                              f"{', '.join(options(name))}")
    return factory(**kwargs)
