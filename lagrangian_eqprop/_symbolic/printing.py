"""Printing SymPy expressions as JAX code (`sympy.lambdify` with a JAX printer).

Every user symbol is renamed to a compiler symbol (`_lep_…`) before printing (see
`validate.make_table`), so names such as `pi`, `e`, `sin` or `gamma` never shadow the
constants and functions of the printed code.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.scipy.special  # noqa: F401  (namespace used by the printed code)
import sympy
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import JaxPrinter

__all__ = ["LagrangianJaxPrinter", "lambdify", "unsupported_functions"]


class LagrangianJaxPrinter(JaxPrinter):
    """`JaxPrinter` that sends the special functions it would print as `math.*` (which fail on
    traced values) to `jax.scipy.special`."""

    def _special(self, name: str, expr) -> str:
        args = ", ".join(self._print(a) for a in expr.args)
        return f"{self._module_format('jax.scipy.special.' + name)}({args})"

    def _print_erf(self, expr):
        return self._special("erf", expr)

    def _print_erfc(self, expr):
        return self._special("erfc", expr)

    def _print_gamma(self, expr):
        return self._special("gamma", expr)

    def _print_loggamma(self, expr):
        return self._special("gammaln", expr)

    def _print_factorial(self, expr):
        return self._special("factorial", expr)

    def _print_digamma(self, expr):
        return self._special("digamma", expr)

    def _print_polygamma(self, expr):
        return self._special("polygamma", expr)


def _lambdify_printer() -> LagrangianJaxPrinter:
    # The settings lambdify itself would use for its default printer.
    return LagrangianJaxPrinter(
        {
            "fully_qualified_modules": False,
            "inline": True,
            "allow_unknown_functions": True,
            "user_functions": {},
        }
    )


def unsupported_functions(expr: sympy.Expr) -> list[str]:
    """Names of the functions in `expr` that the JAX printer cannot print (sorted)."""
    strict = LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False})
    try:
        strict.doprint(expr)
        return []
    except PrintMethodNotImplementedError:
        pass
    culprits = set()
    for atom in expr.atoms(sympy.Function):
        try:
            LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False}).doprint(
                atom.func(*[sympy.Dummy() for _ in atom.args])
            )
        except PrintMethodNotImplementedError:
            culprits.add(str(atom.func))
        except Exception:  # noqa: BLE001  (odd argument patterns: fall back to the atom itself)
            try:
                LagrangianJaxPrinter({"strict": True, "allow_unknown_functions": False}).doprint(
                    atom
                )
            except PrintMethodNotImplementedError:
                culprits.add(str(atom.func))
    if not culprits:  # something else (not a function) is unprintable
        culprits.add(type(expr).__name__)
    return sorted(culprits)


def lambdify(arguments: list, expr) -> Callable:
    """`sympy.lambdify` to JAX with common-subexpression elimination (the only code printer)."""
    return sympy.lambdify(arguments, expr, modules="jax", printer=_lambdify_printer(), cse=True)
