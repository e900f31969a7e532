"""Checkpoints and run-folder files, written atomically (temporary file, flush, `os.replace`).

A checkpoint is one file: a JSON header (epoch, step, wall time, runs, config) followed by the
leaves of the training state, serialised with `equinox.tree_serialise_leaves`. A crash at any
moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

import equinox as eqx
import jax
import numpy as np

from ..errors import TrainingError

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "PARAMS", "SUMMARY", "json_safe", "load_checkpoint", "read_meta",
           "save_checkpoint", "tree_to_json", "write_json"]

CHECKPOINT = "checkpoint.eqx"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
PARAMS = "params.json"
SUMMARY = "summary.json"
_MAGIC = b"LEPCKPT1"


def _atomic_write(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path, tree, meta: dict) -> str:
    """Write `meta` (JSON) and the leaves of `tree` to `path` atomically. **Returns:** the path."""
    path = os.fspath(path)
    header = json.dumps(meta).encode()

    def write(handle):
        handle.write(_MAGIC + struct.pack("<Q", len(header)) + header)
        eqx.tree_serialise_leaves(handle, tree)

    _atomic_write(path, write)
    return path


def load_checkpoint(path, template) -> tuple[Any, dict]:
    """Read a checkpoint written by `save_checkpoint` into the structure of `template`.

    **Returns:** `(tree, meta)`. **Raises:** `TrainingError` when the file is missing,
    unreadable, or does not match the template (a different configuration wrote it).
    """
    path = os.fspath(path)
    mismatches = []

    def checked(handle, like):
        value = eqx.default_deserialise_filter_spec(handle, like)
        if eqx.is_array(like) and (np.shape(value) != np.shape(like)):
            mismatches.append((np.shape(value), np.shape(like)))
        return value

    try:
        with open(path, "rb") as handle:
            if handle.read(len(_MAGIC)) != _MAGIC:
                raise ValueError("not a lagrangian_eqprop checkpoint (older versions wrote checkpoint.npz)")
            (size,) = struct.unpack("<Q", handle.read(8))
            meta = json.loads(handle.read(size))
            tree = eqx.tree_deserialise_leaves(handle, template, filter_spec=checked)
            trailing = handle.read(1)
    except FileNotFoundError:
        raise TrainingError(f"no checkpoint at {path}.") from None
    except Exception as err:  # noqa: BLE001  (format, EOF and JSON errors)
        raise TrainingError(f"checkpoint {path} is unreadable or was written by a different configuration: "
                            f"{type(err).__name__}: {err}") from None
    if mismatches or trailing:
        detail = (f"an array of shape {mismatches[0][0]} where this configuration has {mismatches[0][1]}"
                  if mismatches else "more arrays than this configuration has")
        raise TrainingError(f"checkpoint {path} holds {detail}: it was written by a different configuration.")
    return jax.tree_util.tree_map(lambda x: x, tree), meta


def read_meta(path) -> dict:
    """The JSON header of a checkpoint (epoch, step, wall time, runs, config)."""
    try:
        with open(os.fspath(path), "rb") as handle:
            if handle.read(len(_MAGIC)) != _MAGIC:
                raise ValueError("not a lagrangian_eqprop checkpoint")
            (size,) = struct.unpack("<Q", handle.read(8))
            return json.loads(handle.read(size))
    except Exception as err:  # noqa: BLE001
        raise TrainingError(f"checkpoint {path} is unreadable: {type(err).__name__}: {err}") from None


def tree_to_json(tree) -> dict:
    return {k: np.asarray(v).tolist() for k, v in tree.items()}


def write_json(path, data) -> None:
    """Write `data` as indented JSON, atomically."""
    text = (json.dumps(data, indent=2, allow_nan=True) + "\n").encode()
    _atomic_write(os.fspath(path), lambda handle: handle.write(text))


def json_safe(value):
    """`None` for a non-finite float (JSON has no NaN/inf), else the value."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
