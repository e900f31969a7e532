"""`load_dataset` and `available_datasets`: one entry point for every data set by name or path."""

from __future__ import annotations

import os
from typing import Any

from ..errors import DataError
from ._dataset import SequenceDataset
from ._mnist1d import load_mnist1d
from ._npz import load_npz
from ._ucr import UCR_DATASETS, load_ucr

__all__ = ["available_datasets", "load_dataset"]


def available_datasets() -> tuple[str, ...]:
    """The names `load_dataset` knows: `"mnist1d"` and the UCR/UEA data sets shipped with aeon
    (any path to an `.npz` file is accepted as well)."""
    return ("mnist1d", *UCR_DATASETS)


def load_dataset(name: str | os.PathLike, /, **kwargs: Any) -> SequenceDataset:
    """Load a data set by name, or the user's own from a path ending in `.npz`.

    **Arguments:**
    - `name`: `"mnist1d"` (→ `load_mnist1d`), a UCR/UEA name such as `"GunPoint"` (→ `load_ucr`;
      case-insensitive), or a path ending in `.npz` (→ `load_npz`).
    - `kwargs`: passed to that loader (`cache_dir=` for MNIST-1D, `unequal_length=` for UCR/UEA,
      `kind=` / `name=` for `.npz` files).

    **Returns:** the `SequenceDataset`. Raises `DataError` for an unknown name (listing the
    known ones) and whatever the loader raises.
    """
    text = os.fspath(name)
    if text.lower().endswith(".npz"):
        return load_npz(text, **kwargs)
    key = text.lower().replace("-", "").replace("_", "")
    if key == "mnist1d":
        return load_mnist1d(**kwargs)
    if text.lower() in {known.lower() for known in UCR_DATASETS}:
        return load_ucr(text, **kwargs)
    if os.sep in text or os.path.splitext(text)[1]:
        raise DataError(f"{text!r} is not a path ending in .npz (the only file format read; save your arrays with "
                        "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)) nor a known data set: "
                        f"{', '.join(available_datasets())}.")
    raise DataError(f"unknown data set {text!r}; available: {', '.join(available_datasets())}, or a path to an "
                    ".npz file with x_train, y_train, x_test, y_test.")
