"""The `SequenceDataset` record every loader returns, and the checks every data set passes.

A data set is a training and a test split of sequences `x (n, T, c)` (samples, time steps,
channels) with one target per sequence `y (n,)`: integer class labels `0..C-1`
(classification) or real targets (regression). Arrays are NumPy (never JAX), read-only views;
the training code converts them. `standardise()` and `validation_split()` return new records.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal

import numpy as np
from jaxtyping import Bool, Float, Int, Real

from ..errors import DataError

__all__ = ["SequenceDataset"]

_KINDS = ("classification", "regression")


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _describe_values(values, total: int | None = None) -> str:
    values = sorted(int(v) for v in values)
    total = len(values) if total is None else total
    shown = ", ".join(str(v) for v in values[:20])
    return "{" + shown + (f", ... ({total} in all)" if total > 20 else "") + "}"


def check_finite(name: str, array: np.ndarray, where: str = "") -> None:
    """Raise `DataError` naming the array, the number of NaN and infinite values and the first
    offending index, if `array` is not finite."""
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    n_nan = int(np.isnan(array).sum())
    n_inf = int(array.size - finite.sum()) - n_nan
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    raise DataError(
        f"{name}{where} holds {n_nan} NaN and {n_inf} infinite value(s) out of {array.size} "
        f"(first at index {first}); remove or impute them before training.")


def check_labels(y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None, where: str = "") -> int:
    """Check integer class labels: non-negative, every class `0..C-1` present in the training
    split, no test label absent from training. Returns `C` (given, or `max(y_train) + 1`)."""
    for split, y in (("y_train", y_train), ("y_test", y_test)):
        if y.size and y.min() < 0:
            raise DataError(f"{split}{where} holds negative class labels {_describe_values(np.unique(y[y < 0]))}; "
                            "class labels must be 0..C-1.")
    present = np.unique(y_train)
    top = int(present[-1]) + 1 if present.size else 0
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise DataError(f"y_train{where} holds labels up to {top - 1} but only {num_classes} classes are named; "
                        f"labels must be 0..{num_classes - 1}.")
    if present.size < num_classes:  # a gap: name the first missing classes without enumerating 0..C-1
        seen = set(present.tolist())
        missing = list(itertools.islice((c for c in range(num_classes) if c not in seen), 20))
        raise DataError(
            f"y_train{where} has labels {_describe_values(present)}: class(es) "
            f"{_describe_values(missing, num_classes - present.size)} never occur; labels must be 0..C-1 with every "
            "class present in the training split (relabel, e.g. with np.unique(y, return_inverse=True)).")
    labels = np.unique(y_test)
    unseen = labels[labels >= num_classes]
    if unseen.size:
        counts = {int(v): int((y_test == v).sum()) for v in unseen[:20]}
        raise DataError(f"y_test{where} holds class label(s) {_describe_values(unseen)} that never occur in y_train "
                        f"(test samples per such label: {counts}); a classifier cannot learn them.")
    return num_classes


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SequenceDataset:
    """A sequence data set: a training and a test split of `x (n, T, c)` with targets `y (n,)`.

    **Fields:**
    - `name`: the data set's name (`"mnist1d"`, `"GunPoint"`, a file stem, ...).
    - `x_train`: `(n, T, c)` training sequences (`n` samples, `T` steps, `c` channels), float32 or
      float64 (the built-in loaders give float64); `x_test`: `(m, T, c)`, same dtype.
    - `y_train`: `(n,)` targets; `y_test`: `(m,)`. Classification: int64 labels `0..C-1`, every
      class present in the training split. Regression: floats of `x`'s dtype.
    - `kind`: `"classification"` or `"regression"`.
    - `classes`: the `C` class names (label `i` is `classes[i]`), `None` for regression.
    - `description`: what the data are, where they come from, how they were prepared.
    - `references`: published test accuracies `{method: accuracy in [0, 1]}` on this split
      (empty when none are recorded); `source`: the citation of the data and those numbers.
    - `lengths_train`, `lengths_test`: `(n,)` / `(m,)` original lengths when sequences of
      unequal length were padded to `T` (zeros; `padding` says at which end), else `None`.
    - `padding`: `"start"` or `"end"` for padded data sets, else `None`.
    - `standardisation`: `(mean (c,), std (c,))` after `standardise()`, else `None`.

    Arrays are stored as read-only views; the record is immutable (helpers return new ones).
    """

    name: str
    x_train: Float[np.ndarray, "n T c"]
    y_train: Real[np.ndarray, " n"]
    x_test: Float[np.ndarray, "m T c"]
    y_test: Real[np.ndarray, " m"]
    kind: Literal["classification", "regression"]
    classes: tuple[str, ...] | None = None
    description: str = ""
    references: dict[str, float] = dataclasses.field(default_factory=dict)
    source: str = ""
    lengths_train: Int[np.ndarray, " n"] | None = None
    lengths_test: Int[np.ndarray, " m"] | None = None
    padding: Literal["start", "end"] | None = None
    standardisation: tuple[Float[np.ndarray, " c"], Float[np.ndarray, " c"]] | None = None

    def __post_init__(self):
        self._check()
        for field in ("x_train", "y_train", "x_test", "y_test", "lengths_train", "lengths_test"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _readonly(value))

    def _check(self) -> None:
        where = f" of data set {self.name!r}"
        arrays = {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test}
        for field, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise DataError(f"{field}{where} is a {type(value).__name__}, not a NumPy array.")
        if self.kind not in _KINDS:
            raise DataError(f"kind{where} is {self.kind!r}; expected one of {_KINDS}.")
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if x.ndim != 3 or y.ndim != 1:
                raise DataError(f"x_{split}{where} has shape {x.shape} and y_{split} {y.shape}; expected (n, T, c) "
                                "and (n,).")
            if x.shape[0] != y.shape[0]:
                raise DataError(f"x_{split}{where} has shape {x.shape} but y_{split} {y.shape}: "
                                f"{x.shape[0]} sequences and {y.shape[0]} targets.")
            if min(x.shape) == 0:
                raise DataError(f"x_{split}{where} has shape {x.shape}: no samples, steps or channels.")
            if x.dtype not in (np.float32, np.float64):
                raise DataError(f"x_{split}{where} has dtype {x.dtype}; expected float32 or float64.")
            check_finite(f"x_{split}", x, where)
            check_finite(f"y_{split}", y, where)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"x_train{where} has shape {self.x_train.shape} but x_test {self.x_test.shape}: "
                            "the splits must share the sequence length T and the channels c.")
        if self.x_train.dtype != self.x_test.dtype:
            raise DataError(f"x_train{where} is {self.x_train.dtype} but x_test {self.x_test.dtype}; "
                            "both splits must share one dtype.")
        if self.kind == "classification":
            for split, y in (("y_train", self.y_train), ("y_test", self.y_test)):
                if y.dtype != np.int64:
                    raise DataError(f"{split}{where} has dtype {y.dtype}; class labels are int64.")
            if self.classes is None:
                raise DataError(f"a classification data set ({self.name!r}) needs its class names (classes).")
            check_labels(self.y_train, self.y_test, len(self.classes), where)
        else:
            if self.classes is not None:
                raise DataError(f"a regression data set ({self.name!r}) has no classes; got {self.classes}.")
            for split, y in (("y_train", self.y_train), ("y_test", self.y_test)):
                if y.dtype != self.x_train.dtype:
                    raise DataError(f"{split}{where} has dtype {y.dtype}; regression targets share x's dtype "
                                    f"({self.x_train.dtype}).")
        padded = (self.lengths_train is not None, self.lengths_test is not None, self.padding is not None)
        if any(padded) and not all(padded):
            raise DataError(f"data set {self.name!r}: lengths_train, lengths_test and padding go together.")
        if all(padded):
            if self.padding not in ("start", "end"):
                raise DataError(f"padding{where} is {self.padding!r}; expected 'start' or 'end'.")
            for split, lengths, x in (("train", self.lengths_train, self.x_train),
                                      ("test", self.lengths_test, self.x_test)):
                if lengths.shape != x.shape[:1] or lengths.min() < 1 or lengths.max() > x.shape[1]:
                    raise DataError(f"lengths_{split}{where} must be ({x.shape[0]},) integers in 1..{x.shape[1]}.")

    # ----------------------------------------------------------------------------------- sizes
    @property
    def num_train(self) -> int:
        """`n`, the number of training sequences."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """`m`, the number of test sequences."""
        return int(self.x_test.shape[0])

    @property
    def sequence_length(self) -> int:
        """`T`, the number of time steps of every (padded) sequence."""
        return int(self.x_train.shape[1])

    @property
    def num_channels(self) -> int:
        """`c`, the number of channels (1 for a univariate series)."""
        return int(self.x_train.shape[2])

    @property
    def num_classes(self) -> int | None:
        """`C` for classification, `None` for regression."""
        return None if self.classes is None else len(self.classes)

    def __repr__(self) -> str:
        extra = f", classes={self.num_classes}" if self.classes is not None else ""
        pad = f", padded at the {self.padding}" if self.padding else ""
        std = ", standardised" if self.standardisation is not None else ""
        return (f"SequenceDataset({self.name!r}, {self.kind}, train {self.x_train.shape}, test {self.x_test.shape}, "
                f"{self.x_train.dtype}{extra}{pad}{std})")

    # ----------------------------------------------------------------------------------- helpers
    def time_mask(self, split: Literal["train", "test"]) -> Bool[np.ndarray, "n T"]:
        """Which time steps hold data (not padding).

        **Arguments:**
        - `split`: `"train"` or `"test"`.

        **Returns:** a boolean `(n, T)` array, all `True` unless the data set was padded.
        """
        if split not in ("train", "test"):
            raise DataError(f"split is {split!r}; expected 'train' or 'test'.")
        x = self.x_train if split == "train" else self.x_test
        lengths = self.lengths_train if split == "train" else self.lengths_test
        steps = np.arange(x.shape[1])
        if lengths is None:
            return np.ones(x.shape[:2], dtype=bool)
        if self.padding == "end":
            return steps[None, :] < lengths[:, None]
        return steps[None, :] >= (x.shape[1] - lengths)[:, None]

    def standardise(self) -> SequenceDataset:
        """Per-channel standardisation fitted on the training split only.

        For each channel, the mean and standard deviation over all training sequences and time
        steps (data steps only when padded) are computed in float64; both splits become
        `(x - mean) / std` in their own dtype, padded steps stay 0. A channel that is constant
        in the training split keeps `std = 1` (it is only centred). Targets are unchanged.
        Standardising twice changes nothing beyond round-off.

        **Returns:** a new `SequenceDataset` with `standardisation = (mean (c,), std (c,))`
        (float64), so that new data can be scaled the same way.
        """
        mask = self.time_mask("train")
        values = self.x_train[mask].astype(np.float64)  # (data steps, c)
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 0.0, std, 1.0)

        def scale(x, split):
            scaled = ((x.astype(np.float64) - mean) / std).astype(x.dtype)
            return np.where(self.time_mask(split)[..., None], scaled, np.zeros((), x.dtype))

        return dataclasses.replace(self, x_train=scale(self.x_train, "train"), x_test=scale(self.x_test, "test"),
                                   standardisation=(mean, std))

    def validation_split(self, fraction: float = 0.2, seed: int = 0) -> SequenceDataset:
        """Hold out part of the training split for validation (the test split is left untouched
        and not returned).

        Classification splits are stratified: from each class, `round(fraction · count)`
        sequences go to validation, at most `count - 1` so that every class stays in training.
        Split first, then `standardise()`, so that the validation part stays out of the
        statistics.

        **Arguments:**
        - `fraction`: the share of the training split to hold out, in (0, 1).
        - `seed`: seed of the random choice (`numpy.random.default_rng`); same seed, same split.

        **Returns:** a new `SequenceDataset` named `"<name>/validation"` whose training split is
        the rest of the training split and whose *test* split is the validation part.
        """
        if not 0.0 < fraction < 1.0:
            raise DataError(f"validation fraction is {fraction}; expected a number in (0, 1).")
        rng = np.random.default_rng(seed)
        n = self.num_train
        if self.kind == "classification":
            held = []
            for label in range(self.num_classes):
                members = np.flatnonzero(self.y_train == label)
                count = min(round(fraction * members.size), members.size - 1)
                held.append(rng.permutation(members)[:count])
            held = np.concatenate(held)
        else:
            count = min(round(fraction * n), n - 1)
            held = rng.permutation(n)[:count]
        if held.size == 0:
            raise DataError(f"validation fraction {fraction} of the {n} training sequences of {self.name!r} holds "
                            "out nothing; use a larger fraction.")
        held = np.sort(held)
        kept = np.setdiff1d(np.arange(n), held)

        def lengths(index):
            return None if self.lengths_train is None else self.lengths_train[index]

        return dataclasses.replace(
            self, name=f"{self.name}/validation",
            x_train=self.x_train[kept], y_train=self.y_train[kept],
            x_test=self.x_train[held], y_test=self.y_train[held],
            lengths_train=lengths(kept), lengths_test=lengths(held),
            description=f"{self.description} Validation split (fraction {fraction}, seed {seed}) of the training "
                        "split: x_test/y_test hold the validation part, not the original test split.",
            references={})
