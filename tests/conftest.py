"""Test configuration, as diffrax and optimistix run theirs.

- float64 everywhere (the library itself never flips this);
- strict dtype promotion and rank promotion: an implicit float32↔float64 mix or a silent
  broadcast between arrays of different rank is an error, not a quiet upcast;
- jaxtyping runtime checks (beartype) of every annotated function and module of the package,
  enabled by `--jaxtyping-packages` in pyproject's pytest options.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import jaxtyping
import pytest


@pytest.fixture
def without_runtime_types():
    """Turn the jaxtyping runtime checks off for one test: for tests of the library's own
    validation messages, which a type check of the signature would otherwise pre-empt."""
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. The suite compiles thousands of
    programs in one process; kept to the end they take gigabytes, and a full run aborted once
    inside XLA's compiler late in the suite (not reproducible on its own). Modules share few
    programs, so recompiling costs little."""
    yield
    jax.clear_caches()
