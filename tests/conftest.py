"""Test configuration, as diffrax and optimistix run theirs.

- float64 everywhere (the library itself never flips this);
- strict dtype promotion and rank promotion: an implicit float32↔float64 mix or a silent
  broadcast between arrays of different rank is an error, not a quiet upcast;
- jaxtyping runtime checks (beartype) of every annotated function and module of the package,
  enabled by `--jaxtyping-packages` in pyproject's pytest options;
- JAX's persistent compilation cache in its own folder (`jax-tests` in the data cache folder,
  `lep.data.default_cache_dir()`, or `$LAGRANGIAN_EQPROP_TEST_COMPILE_CACHE`; `off` to disable): most
  of a test's time is XLA compiling its programs, which a repeated run then reads back.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def _test_compile_cache() -> str | None:
    # The folder of `lep.data.default_cache_dir()`, worked out here without importing the
    # package: imported from a conftest it would load before jaxtyping's import hook is in place.
    setting = os.environ.get("LAGRANGIAN_EQPROP_TEST_COMPILE_CACHE", "").strip()
    if setting.lower() in ("0", "off", "false", "no", "none"):
        return None
    if setting:
        return os.path.expanduser(setting)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = os.environ.get("LAGRANGIAN_EQPROP_CACHE", "") or (
        os.path.join(xdg, "lagrangian_eqprop") if os.path.isabs(xdg) else os.path.expanduser("~/.cache/lagrangian_eqprop"))
    return os.path.join(os.path.expanduser(base), "jax-tests")


_CACHE = _test_compile_cache()
if not jax.config.jax_compilation_cache_dir and _CACHE:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

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
