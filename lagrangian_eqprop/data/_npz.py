"""`load_npz`: the user's own sequence data from a NumPy `.npz` archive, checked thoroughly.

The archive holds `x_train (n, T, c)`, `y_train (n,)`, `x_test (m, T, c)`, `y_test (m,)`
(`x` of shape `(n, T)` is read as one channel) and optionally `classes` (class names). Every
problem found — a missing array, a wrong shape, a non-finite value, a gap in the labels — raises
`DataError` naming the array and the problem.
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from ._dataset import SequenceDataset, check_finite, check_labels

__all__ = ["NPZ_ARRAYS", "load_npz"]

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays an `.npz` data file must hold."""

_OPTIONAL = ("classes", "description")
_FORMAT = "x_train (n, T, c), y_train (n,), x_test (m, T, c), y_test (m,)"


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        file = open(path, "rb")  # opened here so that it is closed whatever np.load does
    except FileNotFoundError as err:
        raise DataError(f"cannot read data file {path}: no such file.") from err
    except OSError as err:
        raise DataError(f"cannot read data file {path} ({type(err).__name__}: {err}).") from err
    with file:
        try:
            archive = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"cannot read data file {path} as a NumPy .npz archive ({type(err).__name__}: "
                            f"{err}).") from err
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"data file {path} holds a single array (.npy format), not an .npz archive with "
                            f"{_FORMAT}; save one with np.savez(path, x_train=..., y_train=..., x_test=..., "
                            "y_test=...).")
        with archive:
            return _arrays(archive, path)


def _arrays(archive, path: Path) -> dict[str, np.ndarray]:
    names = list(archive.files)
    missing = [name for name in NPZ_ARRAYS if name not in names]
    if missing:
        raise DataError(f"data file {path} lacks the array(s) {', '.join(missing)} (it holds: "
                        f"{', '.join(names) or 'nothing'}); expected {_FORMAT}.")
    unknown = [name for name in names if name not in NPZ_ARRAYS + _OPTIONAL]
    if unknown:
        warnings.warn(f"data file {path}: ignoring the array(s) {', '.join(unknown)} (known: "
                      f"{', '.join(NPZ_ARRAYS + _OPTIONAL)}).", stacklevel=4)
    arrays = {}
    for name in NPZ_ARRAYS + _OPTIONAL:
        if name not in names:
            continue
        try:
            arrays[name] = archive[name]
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise DataError(f"array {name} in {path} holds Python objects (dtype object), not numbers; "
                                "save numeric arrays.") from err
            raise DataError(f"cannot read array {name} in {path} ({err}).") from err
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
            raise DataError(f"cannot read array {name} in {path} ({type(err).__name__}: {err}).") from err
    return arrays


def load_npz(path: str | os.PathLike, *, kind: Literal["classification", "regression"] | None = None,
             name: str | None = None) -> SequenceDataset:
    """Your own sequence data set from an `.npz` file (`np.savez(path, x_train=..., ...)`).

    **Arguments:**
    - `path`: the `.npz` file, holding `x_train (n, T, c)`, `y_train (n,)`, `x_test (m, T, c)`,
      `y_test (m,)`; `x` of shape `(n, T)` is read as `c = 1`. Optional: `classes` (`(C,)`
      strings, the class names) and `description` (a 0-d string). Other arrays are ignored
      with a warning.
    - `kind`: `None` (default) infers it from `y`'s dtype: integer (or boolean) labels →
      `"classification"`, floating targets → `"regression"`. `"classification"` also accepts
      floating labels that are whole numbers; `"regression"` also accepts integers.
    - `name`: the data set's name; default the file's stem.

    **Returns:** a `SequenceDataset`. `x` stays float32 if both splits are float32, else
    becomes float64 (integers included); class labels become int64 `0..C-1`; regression
    targets take `x`'s dtype.

    Raises `DataError` naming the problem: unreadable file, missing arrays, ranks or shapes
    (both shapes named), train/test length or channel mismatch, NaN/inf (which array, how
    many, where), non-numeric dtypes, label gaps (the missing classes named), test labels
    absent from training, a `classes` array of the wrong length.
    """
    path = Path(path).expanduser()
    arrays = _read(path)
    where = f" in {path}"
    for array_name in NPZ_ARRAYS:
        array = arrays[array_name]
        if array.dtype.kind not in "biuf":
            raise DataError(f"{array_name}{where} has dtype {array.dtype}: not real numbers (non-numeric or "
                            "complex); expected integers or floats.")
    shapes = {array_name: arrays[array_name].shape for array_name in NPZ_ARRAYS}
    xs = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise DataError(f"x_{split}{where} has shape {x.shape} (rank {x.ndim}); expected (n, T, c), or (n, T) "
                            "for one channel.")
        if y.ndim != 1:
            hint = " (flatten it with y.ravel())" if y.ndim == 2 and y.shape[1] == 1 else ""
            raise DataError(f"y_{split}{where} has shape {y.shape} (rank {y.ndim}); expected (n,), one target per "
                            f"sequence{hint}.")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"x_{split}{where} has shape {shapes[f'x_{split}']} but y_{split} has shape {y.shape}: "
                            f"{x.shape[0]} sequences and {y.shape[0]} targets.")
        if min(x.shape) == 0:
            raise DataError(f"x_{split}{where} has shape {shapes[f'x_{split}']}: no samples, time steps or channels.")
        xs[split] = x
    if xs["train"].shape[1] != xs["test"].shape[1]:
        raise DataError(f"x_train{where} has shape {shapes['x_train']} but x_test has shape {shapes['x_test']}: "
                        f"sequence lengths T differ ({xs['train'].shape[1]} vs {xs['test'].shape[1]}).")
    if xs["train"].shape[2] != xs["test"].shape[2]:
        raise DataError(f"x_train{where} has shape {shapes['x_train']} but x_test has shape {shapes['x_test']}: "
                        f"channel counts c differ ({xs['train'].shape[2]} vs {xs['test'].shape[2]}).")
    for array_name in NPZ_ARRAYS:
        check_finite(array_name, arrays[array_name], where)

    dtype = np.float32 if all(x.dtype == np.float32 for x in xs.values()) else np.float64
    x_train, x_test = (xs[split].astype(dtype, copy=False) for split in ("train", "test"))
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    label_kinds = {y_train.dtype.kind, y_test.dtype.kind}
    inferred = "regression" if "f" in label_kinds else "classification"
    if kind is None:
        if "f" in label_kinds and label_kinds - {"f"}:
            raise DataError(f"y_train{where} has dtype {y_train.dtype} but y_test {y_test.dtype}: one holds integer "
                            "labels, the other floats; save both as integers (classification) or floats "
                            "(regression), or pass kind=.")
        kind = inferred
    if kind not in ("classification", "regression"):
        raise DataError(f"kind is {kind!r}; expected 'classification', 'regression' or None.")

    extra = {}
    if kind == "classification":
        labels = {}
        for split, y in (("y_train", y_train), ("y_test", y_test)):
            if y.dtype.kind == "f" and not np.all(y == np.round(y)):
                bad = y[y != np.round(y)]
                raise DataError(f"{split}{where} holds {bad.size} non-integer value(s) (e.g. {bad[0]}); class labels "
                                "must be whole numbers 0..C-1 (or load with kind='regression').")
            labels[split] = y.astype(np.int64)
        names = arrays.get("classes")
        if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
            raise DataError(f"classes{where} has shape {names.shape} and dtype {names.dtype}; expected a 1-D array "
                            "of class names (strings).")
        num_classes = check_labels(labels["y_train"], labels["y_test"], None if names is None else len(names), where)
        if names is not None and len(names) != num_classes:
            raise DataError(f"classes{where} names {len(names)} classes but the labels are 0..{num_classes - 1}.")
        classes = tuple(str(c) for c in names) if names is not None else tuple(str(i) for i in range(num_classes))
        y_train, y_test = labels["y_train"], labels["y_test"]
    else:
        classes = None
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
    if "description" in arrays:
        text = arrays["description"]
        if text.ndim != 0 or text.dtype.kind not in "US":
            raise DataError(f"description{where} has shape {text.shape} and dtype {text.dtype}; expected one string "
                            "(np.asarray('...')).")
        extra["description"] = str(text)
    else:
        extra["description"] = (f"User data from {path}: {x_train.shape[0]} training / {x_test.shape[0]} test "
                                f"sequences of {x_train.shape[1]} steps and {x_train.shape[2]} channel(s), {kind}.")
    return SequenceDataset(name=name or path.stem, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                           kind=kind, classes=classes, source=str(path), **extra)
