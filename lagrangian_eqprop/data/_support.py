"""What the loaders share: the optional-dependency error, the cache directory, atomic writes.

Optional packages (`mnist1d`, `aeon`) are looked up only when a loader needs them, never when
`lagrangian_eqprop` is imported; a missing one raises `DataError` with the install command.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["CACHE_ENV", "INSTALL_COMMAND", "aeon_data_dir", "default_cache_dir", "missing_extra", "write_npz_atomic"]

INSTALL_COMMAND = "pip install -e '.[data]'"
"""The command that installs the data extras (`mnist1d`, `aeon`) from a checkout."""

CACHE_ENV = "LAGRANGIAN_EQPROP_CACHE"
"""Environment variable naming the cache directory (overrides the XDG default)."""


def missing_extra(package: str, purpose: str, cause: BaseException | None = None) -> DataError:
    """The `DataError` for a missing optional package, with the install command."""
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return DataError(
        f"{purpose} needs the optional package {package!r}, which cannot be imported{detail}. Install the data "
        f"extras from the lagrangian_eqprop checkout with: {INSTALL_COMMAND}   (or: pip install {package})")


def aeon_data_dir() -> Path:
    """The `datasets/data` folder shipped inside the installed `aeon` wheel.

    The package is located without being imported (importing `aeon.datasets` loads numba,
    pandas and scikit-learn, and has download paths this module never uses), so
    `pip install --no-deps aeon` is enough.

    **Returns:** the folder's path. Raises `DataError` (with the install command) if aeon is
    not installed or ships no data folder.
    """
    purpose = "Loading the UCR/UEA data sets shipped with aeon"
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError) as err:  # ValueError: a module in sys.modules without a spec
        raise missing_extra("aeon", purpose, err) from err
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("aeon", purpose)
    for location in spec.submodule_search_locations:
        folder = Path(location) / "datasets" / "data"
        if folder.is_dir():
            return folder
    try:
        version = importlib.metadata.version("aeon")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    raise DataError(f"aeon (version {version}, at {list(spec.submodule_search_locations)}) ships no datasets/data "
                    f"folder; install a release that does (aeon>=1.0,<2): {INSTALL_COMMAND}")


def default_cache_dir() -> Path:
    """The directory where generated data sets are cached.

    In order: `$LAGRANGIAN_EQPROP_CACHE`; `$XDG_CACHE_HOME/lagrangian_eqprop` (an absolute
    `XDG_CACHE_HOME` only, as the XDG specification says); `~/.cache/lagrangian_eqprop`.
    Empty variables are ignored. The directory is not created here.
    """
    explicit = os.environ.get(CACHE_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "lagrangian_eqprop"
    return Path.home() / ".cache" / "lagrangian_eqprop"


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to the `.npz` file `path` atomically: to a temporary file in the same
    directory, then `os.replace`, so that readers see the old file or the whole new one.
    Creates the directory. Raises `OSError` on failure (the temporary file is removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; a cache file is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
