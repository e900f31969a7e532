"""Test configuration: every numerical test runs in float64 (the library itself never flips this)."""

import jax

jax.config.update("jax_enable_x64", True)
