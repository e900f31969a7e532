"""`load_ucr`: the UCR/UEA classification data sets shipped inside aeon's wheel, read offline.

The `.ts` files under `aeon/datasets/data/<Name>/` are read by a small strict parser of the
`.ts` format (header tags, `:`-separated channels, a class label last), after locating the
installed `aeon` package without importing it: nothing is downloaded, and numba, pandas and
scikit-learn (which `aeon.datasets` imports) are not needed. The test suite checks the parser
against aeon's own `load_from_ts_file` where aeon's dependencies are installed.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from ._dataset import SequenceDataset
from ._support import INSTALL_COMMAND, aeon_data_dir

__all__ = ["UCR_DATASETS", "load_ucr", "read_ts_file"]

_BAKE_OFF = ("A. Bagnall, J. Lines, A. Bostrom, J. Large and E. Keogh, 'The great time series classification bake "
             "off', Data Mining and Knowledge Discovery 31 (2017): single train/test split accuracies")

# name → the published split: sizes, length (or (shortest, longest)), channels, classes, and the
# single-split test accuracies (1NN with Euclidean distance / MLP) from the bake-off.
UCR_DATASETS = {
    "GunPoint": dict(num_train=50, num_test=150, length=150, channels=1, classes=2,
                     references={"1NN-Euclidean": 0.913, "MLP": 0.927}),
    "ItalyPowerDemand": dict(num_train=67, num_test=1029, length=24, channels=1, classes=2,
                             references={"1NN-Euclidean": 0.955, "MLP": 0.946}),
    "ArrowHead": dict(num_train=36, num_test=175, length=251, channels=1, classes=3,
                      references={"1NN-Euclidean": 0.800, "MLP": 0.709}),
    "BasicMotions": dict(num_train=40, num_test=40, length=100, channels=6, classes=4, references={}),
    "JapaneseVowels": dict(num_train=270, num_test=370, length=(7, 29), channels=12, classes=9, references={}),
}
"""The UCR/UEA data sets `load_ucr` reads, with their published split and reference accuracies."""


def read_ts_file(path: str | Path) -> tuple[list[np.ndarray], list[str], dict]:
    """Read a classification `.ts` file (the UCR/UEA archive's text format).

    **Arguments:**
    - `path`: the `.ts` file.

    **Returns:** `(series, labels, header)`: one float64 array `(T_i, c)` per case, the class
    label of each case (strings, as written), and the header (`problemname`, `classlabels`
    (declared labels in order), `dimensions`, `equallength`, `serieslength`, `comments`).
    Missing values (`?`) become NaN. Raises `DataError` naming the file and line of any problem.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the .ts file {path} ({type(err).__name__}: {err}).") from err
    header: dict = {"comments": [], "classlabels": None, "dimensions": None}
    series, labels, in_data = [], [], False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"{path}, line {number}"
        if not line:
            continue
        if line.startswith("#"):
            header["comments"].append(line[1:].strip())
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{where}: expected a header tag (@...) before @data, got {line[:40]!r}.")
            tag, _, value = line[1:].partition(" ")
            tag, words = tag.lower(), value.split()
            if tag == "data":
                if header["classlabels"] is None:
                    raise DataError(f"{where}: no @classLabel header; only classification .ts files are supported.")
                in_data = True
            elif tag == "classlabel":
                if not words or words[0].lower() != "true" or len(words) < 2:
                    raise DataError(f"{where}: '@classLabel {value}' declares no class labels; only "
                                    "classification .ts files are supported.")
                header["classlabels"] = tuple(words[1:])
            elif tag == "timestamps" and words[:1] == ["true"]:
                raise DataError(f"{where}: time-stamped .ts files are not supported.")
            elif tag in ("dimensions", "serieslength"):
                if not words or not words[0].isdigit():
                    raise DataError(f"{where}: @{tag} needs a positive integer, got {value!r}.")
                header[tag] = int(words[0])
            elif tag in ("univariate", "equallength", "missing"):
                header[tag] = words[:1] == ["true"]
            else:
                header[tag] = value
            continue
        *channels, label = line.split(":")
        if not channels:
            raise DataError(f"{where}: a case needs values and a class label separated by ':'.")
        try:
            values = [np.asarray([float("nan") if v.strip() == "?" else float(v) for v in channel.split(",")])
                      for channel in channels]
        except ValueError as err:
            raise DataError(f"{where}: a value is not a number ({err}).") from err
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise DataError(f"{where}: the channels of one case have different lengths {sorted(lengths)}.")
        expected = header["dimensions"] or (1 if header.get("univariate", True) else None)
        if expected is not None and len(values) != expected:
            raise DataError(f"{where}: {len(values)} channel(s), the header declares {expected}.")
        if series and len(values) != series[0].shape[1]:
            raise DataError(f"{where}: {len(values)} channel(s), earlier cases have {series[0].shape[1]}.")
        label = label.strip()
        if label not in header["classlabels"]:
            raise DataError(f"{where}: class label {label!r} is not among the declared {header['classlabels']}.")
        series.append(np.stack(values, axis=1))
        labels.append(label)
    if not series:
        raise DataError(f"{path}: no cases (no @data section or an empty one).")
    if header.get("equallength") and len({s.shape[0] for s in series}) != 1:
        raise DataError(f"{path}: declared of equal length but holds lengths {sorted({s.shape[0] for s in series})}.")
    return series, labels, header


def _pad(series: list[np.ndarray], length: int, at: Literal["start", "end"]) -> np.ndarray:
    out = np.zeros((len(series), length, series[0].shape[1]))
    for i, s in enumerate(series):
        if at == "end":
            out[i, : s.shape[0]] = s
        else:
            out[i, length - s.shape[0]:] = s
    return out


def load_ucr(name: str, *,
             unequal_length: Literal["pad_start", "pad_end", "truncate"] = "pad_start") -> SequenceDataset:
    """A UCR/UEA classification data set shipped with aeon: `GunPoint`, `ItalyPowerDemand`,
    `ArrowHead` (univariate), `BasicMotions`, `JapaneseVowels` (multivariate).

    The archive's own train/test split is used. Labels are mapped to `0..C-1` in the order the
    file's `@classLabel` header declares them; `classes` keeps the original names. Values are
    as in the archive (the UCR series are z-normalised per series; UEA ones are not).

    **Arguments:**
    - `name`: one of `UCR_DATASETS` (case-insensitive).
    - `unequal_length`: only for data sets of unequal lengths (JapaneseVowels: 7 to 29 steps).
      `"pad_start"` (default) pads every sequence with zeros *before* its first step up to the
      longest length of both splits, so all sequences end at the last step (a system at rest
      and undriven during the padding reaches the end in the state the sequence leaves it in);
      `"pad_end"` pads after the last step; both record the original lengths
      (`lengths_train`, `lengths_test`) and the padded end (`padding`). `"truncate"` keeps the
      first `T_min` steps of every sequence (the shortest length of both splits; 7 for
      JapaneseVowels) and drops the rest.

    **Returns:** a classification `SequenceDataset`: `x_train (n, T, c)`, `x_test (m, T, c)`
    float64, int64 labels; `references` holds the bake-off single-split accuracies
    (1NN-Euclidean, MLP) for GunPoint, ItalyPowerDemand and ArrowHead.

    Raises `DataError`: unknown name, aeon not installed (with `pip install -e '.[data]'`), a
    shipped file missing or unreadable, or a split that differs from the published one.
    """
    canonical = {key.lower(): key for key in UCR_DATASETS}.get(str(name).lower())
    if canonical is None:
        raise DataError(f"unknown UCR/UEA data set {name!r}; the ones shipped with aeon are "
                        f"{', '.join(UCR_DATASETS)}.")
    if unequal_length not in ("pad_start", "pad_end", "truncate"):
        raise DataError(f"unequal_length is {unequal_length!r}; expected 'pad_start', 'pad_end' or 'truncate'.")
    folder = aeon_data_dir() / canonical
    try:
        version = importlib.metadata.version("aeon")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    splits = {}
    for split in ("TRAIN", "TEST"):
        path = folder / f"{canonical}_{split}.ts"
        if not path.is_file():
            raise DataError(f"aeon {version} does not ship {path}; install aeon>=1.0,<2 with: {INSTALL_COMMAND}")
        splits[split] = read_ts_file(path)
    (train, train_labels, header), (test, test_labels, test_header) = splits["TRAIN"], splits["TEST"]
    classes = header["classlabels"]
    if test_header["classlabels"] != classes:
        raise DataError(f"{canonical}: the training file declares classes {classes}, the test file "
                        f"{test_header['classlabels']}.")
    index = {label: i for i, label in enumerate(classes)}
    y_train = np.asarray([index[label] for label in train_labels], dtype=np.int64)
    y_test = np.asarray([index[label] for label in test_labels], dtype=np.int64)

    expected = UCR_DATASETS[canonical]
    lengths = {"train": np.asarray([s.shape[0] for s in train]), "test": np.asarray([s.shape[0] for s in test])}
    all_lengths = np.concatenate([lengths["train"], lengths["test"]])
    found = dict(num_train=len(train), num_test=len(test), channels=train[0].shape[1], classes=len(classes),
                 length=int(all_lengths[0]) if np.all(all_lengths == all_lengths[0])
                 else (int(all_lengths.min()), int(all_lengths.max())))
    differs = {key: (found[key], expected[key]) for key in found if found[key] != expected[key]}
    if differs:
        raise DataError(f"{canonical} as shipped by aeon {version} differs from the published split "
                        f"(found, published): {differs}; the reference accuracies would not apply.")

    extra = {}
    if isinstance(found["length"], tuple):
        if unequal_length == "truncate":
            shortest = found["length"][0]
            x_train = np.stack([s[:shortest] for s in train])
            x_test = np.stack([s[:shortest] for s in test])
            note = f"Unequal lengths {found['length']} truncated to the first {shortest} steps."
        else:
            at = "start" if unequal_length == "pad_start" else "end"
            longest = found["length"][1]
            x_train, x_test = _pad(train, longest, at), _pad(test, longest, at)
            extra = dict(lengths_train=lengths["train"].astype(np.int64), lengths_test=lengths["test"].astype(np.int64),
                         padding=at)
            note = (f"Unequal lengths {found['length']} zero-padded at the {at} to {longest} steps "
                    "(original lengths in lengths_train / lengths_test).")
    else:
        x_train, x_test = np.stack(train), np.stack(test)
        note = ""

    references = dict(expected["references"])
    shown = "; ".join(f"{method} {accuracy:.3f}" for method, accuracy in references.items())
    description = " ".join(part for part in (
        " ".join(header["comments"]).strip(),
        (f"UCR/UEA archive split: {found['num_train']} training / {found['num_test']} test sequences, "
         f"{found['channels']} channel(s), {found['classes']} classes (labels 0..{found['classes'] - 1} are "
         f"the declared classes {classes})."),
        note,
        f"Bake-off single-split test accuracies: {shown}." if references else "") if part)
    source = (f"UCR/UEA time series classification archive (timeseriesclassification.com), file shipped in aeon "
              f"{version} (aeon/datasets/data/{canonical})" + (f"; accuracies: {_BAKE_OFF}." if references else "."))
    return SequenceDataset(name=canonical, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                           kind="classification", classes=tuple(classes), description=description,
                           references=references, source=source, **extra)
