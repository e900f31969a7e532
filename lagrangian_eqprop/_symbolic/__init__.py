"""The symbolic front end: the only part of the engine that touches SymPy.

- `validate.py`: declarations (coordinates, parameters, inputs) and expressions → compiler symbols;
- `printing.py`: SymPy → JAX code;
- `structure.py`: degeneracy, separability, time-reversibility;
- `compile.py`: `compile_lagrangian` (one whole expression);
- `network.py`: `compile_network` (per-element terms on a graph; runtime in `_graph.py`);
- `display.py`: `lagrangian_expression`, `euler_lagrange_equations` (display only);
- `mechanics.py`: `from_mechanics` (sympy.physics.mechanics / pydy models → `compile_lagrangian`).
"""

from .compile import SymbolicLagrangian, compile_lagrangian
from .display import euler_lagrange_equations, lagrangian_expression
from .mechanics import from_mechanics
from .network import EdgeTerm, ExtraTerm, NodeTerm, SymbolicNetwork, compile_network, network_coordinates

__all__ = [
    "EdgeTerm",
    "ExtraTerm",
    "NodeTerm",
    "SymbolicLagrangian",
    "SymbolicNetwork",
    "compile_lagrangian",
    "compile_network",
    "euler_lagrange_equations",
    "from_mechanics",
    "lagrangian_expression",
    "network_coordinates",
]
