"""Datasets: loading (bundled sklearn sets, user CSV/NPZ), validation, views and splits.

Loaded arrays are cached per process keyed by the dataset dict and the file's mtime, so
a long-lived worker reads its data once. Features are always returned flat, float32
``(n, n_features)``; ``DatasetInfo`` says how the rows can be viewed as images or
sequences.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from paretotune.errors import DatasetError

if TYPE_CHECKING:
    from sklearn.model_selection import KFold, StratifiedKFold

Task = Literal["classification", "regression"]
BUILTIN_SOURCES = ("digits", "wine", "breast_cancer", "diabetes")
_KNOWN_KEYS = frozenset({"source", "path", "target", "task", "image_shape"})
MAX_CLASSES = 50  # an integer-valued target with more distinct values is regression


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and task of a dataset, enough to validate a spec against it."""

    task: Task
    n_rows: int
    n_features: int
    n_classes: int | None
    image_shape: tuple[int, int, int] | None  # (C, H, W)
    sequence_shape: tuple[int, int] | None  # (steps, features)
    name: str = "dataset"

    def supports(self, family: str) -> bool:
        """Whether a family applies: mlp always, cnn on images, rnn/transformer on sequences."""
        if family == "mlp":
            return True
        if family == "cnn":
            return self.image_shape is not None
        if family in ("rnn", "transformer"):
            return self.sequence_shape is not None
        return False

    def check_family(self, family: str) -> None:
        """Raise ValueError naming the family and the dataset when it does not apply."""
        if not self.supports(family):
            need = "an image shape" if family == "cnn" else "a sequence shape"
            raise ValueError(
                f"architecture: family {family!r} does not apply to dataset {self.name!r} "
                f"(it needs {need}; flat features of {self.n_features} columns have none)"
            )


# What loading each bundled set as it is gives (tests compare this with a real load):
# checking a spec against one then needs no scikit-learn import (~1.5 s) in the driver.
BUILTIN_INFO = {
    "digits": DatasetInfo("classification", 1797, 64, 10, (1, 8, 8), (8, 8), "digits"),
    "wine": DatasetInfo("classification", 178, 13, 3, None, None, "wine"),
    "breast_cancer": DatasetInfo("classification", 569, 30, 2, None, None, "breast_cancer"),
    "diabetes": DatasetInfo("regression", 442, 10, None, None, None, "diabetes"),
}


@dataclass(frozen=True)
class LoadedDataset:
    """All rows of a dataset: flat float32 features, encoded targets, and its info."""

    X: np.ndarray
    y: np.ndarray  # int64 class codes 0..K-1, or float32 targets
    info: DatasetInfo
    class_labels: tuple[Any, ...] | None  # original label of each class code


@dataclass(frozen=True)
class Fold:
    """One train/validation split of the train+val part."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class Splits:
    """A dataset split: the held-out test part and one (holdout) or k (k-fold) folds."""

    info: DatasetInfo
    class_labels: tuple[Any, ...] | None
    folds: tuple[Fold, ...]
    X_test: np.ndarray
    y_test: np.ndarray


def dataset_info(dataset: Mapping[str, Any]) -> DatasetInfo:
    """The task, size and views of a dataset (loads it once per process, then cached).

    Raises:
        DatasetError: the dataset cannot be read or is unusable.
    """
    if set(dataset) == {"source"} and dataset["source"] in BUILTIN_INFO:
        return BUILTIN_INFO[dataset["source"]]  # the driver need not import scikit-learn
    return read_dataset(dataset).info


def read_dataset(dataset: Mapping[str, Any]) -> LoadedDataset:
    """Load and validate every row of a dataset (cached per dict and file mtime)."""
    if not isinstance(dataset, Mapping):
        raise DatasetError(f"dataset: expected a mapping, got {dataset!r}")
    unknown = sorted(set(dataset) - _KNOWN_KEYS)
    if unknown:
        raise DatasetError(f"dataset.{unknown[0]}: unknown key (known: {sorted(_KNOWN_KEYS)})")
    return _read_cached(*dataset_key(dataset))


def dataset_key(dataset: Mapping[str, Any]) -> tuple[Any, int]:
    """A hashable identity of a dataset: its frozen dict and its file's mtime (0 if none)."""
    path = dataset.get("path")
    mtime = os.stat(path).st_mtime_ns if isinstance(path, str) and os.path.isfile(path) else 0
    return _freeze(dataset), mtime


def load_dataset(
    dataset: Mapping[str, Any],
    seed: int,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    kfold: int | None = None,
) -> Splits:
    """Split a dataset: test first (stratified for classification; none when
    ``test_fraction`` is 0), then a holdout or k folds of the rest.

    Raises:
        DatasetError: the dataset is unusable or too small for the requested split.
    """
    data = read_dataset(dataset)
    strat = data.info.task == "classification"
    try:
        everything = np.arange(data.info.n_rows)
        if test_fraction > 0:
            rest, test = _split(everything, data.y, test_fraction, seed, strat)
        else:
            rest, test = everything, everything[:0]
        if kfold is None:
            train, val = _split(rest, data.y, val_fraction, seed, strat)
            pairs = [(train, val)]
        else:
            pairs = _kfold(rest, data.y, kfold, seed, strat)
    except ValueError as err:
        raise DatasetError(f"dataset: {data.info.n_rows} rows cannot be split ({err})") from err
    folds = tuple(Fold(data.X[t], data.y[t], data.X[v], data.y[v]) for t, v in pairs)
    return Splits(data.info, data.class_labels, folds, data.X[test], data.y[test])


def _split(
    idx: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if stratify:
        try:
            a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y[idx])
            return a, b
        except ValueError:
            pass  # too few rows of a class for stratification: fall back to a plain split
    a, b = train_test_split(idx, test_size=fraction, random_state=seed)
    return a, b


def _kfold(
    idx: np.ndarray, y: np.ndarray, k: int, seed: int, stratify: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y[idx]) if stratify else np.array([])
    if stratify and counts[counts > 0].min() >= k:
        splitter: StratifiedKFold | KFold = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed)
    return [(idx[t], idx[v]) for t, v in splitter.split(idx, y[idx])]


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@functools.lru_cache(maxsize=8)
def _read_cached(key: tuple[tuple[str, Any], ...], mtime: int) -> LoadedDataset:
    del mtime  # part of the cache key only: an edited file is read again
    spec = dict(key)
    source = spec.get("source")
    if source in BUILTIN_SOURCES:
        X, y, name, image = _read_builtin(source)
    elif source in ("csv", "npz"):
        path = spec.get("path")
        if not isinstance(path, str) or not path:
            raise DatasetError(f"dataset.path: required for source {source!r}, got {path!r}")
        if os.path.isdir(path):
            raise DatasetError(f"dataset.path: {path!r} is a directory, not a {source} file")
        if not os.path.isfile(path):
            raise DatasetError(f"dataset.path: file {path!r} does not exist")
        name = os.path.basename(path)
        if source == "csv":
            X, y = _read_csv(path, name, spec.get("target"))
            image = None
        else:
            X, y, image = _read_npz(path, name)
    else:
        known = [*BUILTIN_SOURCES, "csv", "npz"]
        raise DatasetError(f"dataset.source: {source!r} is not one of {known}")
    if spec.get("image_shape") is not None:
        image = _image_shape(spec["image_shape"], X.shape[1])
    task = _task(y, spec.get("task"))
    return _assemble(X, y, task, name, image)


def _read_builtin(source: str) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int, int] | None]:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{source}")
    X, y = loader(return_X_y=True)
    image = (1, 8, 8) if source == "digits" else None
    return np.asarray(X), np.asarray(y), source, image


def _read_csv(path: str, name: str, target: Any) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if not isinstance(target, str) or not target:
        raise DatasetError(f"dataset.target: a column name is required for csv, got {target!r}")
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as err:  # pandas' parser errors are ValueErrors
        raise DatasetError(f"dataset.path: {name} cannot be read as csv ({err})") from err
    _check_header(path, name)
    if target not in frame.columns:
        header = [str(c) for c in frame.columns]
        listed = (
            f"columns: {', '.join(header)}"
            if _plain_header(header)
            else "its first line is no header of plain column names: is it a CSV file?"
        )
        raise DatasetError(f"dataset.target: column {target!r} not in {name} ({listed})")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DatasetError(f"dataset.path: {name} has no feature columns besides {target!r}")
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]):
            raise DatasetError(f"dataset.path: column {column!r} of {name} is not numeric")
    _check_nan(frame.isna().to_numpy(), [str(c) for c in frame.columns], name)
    X = features.to_numpy(dtype=np.float64)
    _check_infinite(np.isinf(X), [str(c) for c in features.columns], name)
    y = frame[target].to_numpy()
    if np.issubdtype(y.dtype, np.floating):
        _check_infinite(np.isinf(y)[:, None], [target], name)
    return X, y


def _read_npz(path: str, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int] | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError) as err:
        raise DatasetError(f"dataset.path: {name} cannot be read as npz ({err})") from err
    for key in ("X", "y"):
        if key not in arrays:
            raise DatasetError(
                f"dataset.path: {name} has no array {key!r} (arrays: {sorted(arrays)})"
            )
    X, y = arrays["X"], arrays["y"]
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DatasetError(f"dataset.path: array 'X' of {name} is not numeric (dtype {X.dtype})")
    if X.ndim not in (2, 3, 4):
        raise DatasetError(f"dataset.path: array 'X' of {name} has shape {X.shape}; need 2-4 dims")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(X):
        raise DatasetError(
            f"dataset.path: array 'y' of {name} has shape {y.shape}; need ({len(X)},)"
        )
    image = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:]) if X.ndim == 4 else None
    flat = X.reshape(len(X), -1).astype(np.float64)
    columns = [f"X[..., {i}]" for i in range(flat.shape[1])]
    _check_nan(np.isnan(flat), columns, name)
    _check_infinite(np.isinf(flat), columns, name)
    return flat, y, image  # type: ignore[return-value]


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .()\[\]-]{0,63}")


def _plain_header(header: list[str]) -> bool:
    """Whether a first line reads as a CSV header (two or more short plain names), so an
    error may list it: a dataset path naming any other file (a system file, a secret)
    never has its first line echoed back."""
    return len(header) >= 2 and all(_PLAIN_NAME.fullmatch(name) for name in header)


def _check_header(path: str, name: str) -> None:
    """Refuse a header that names a column twice: pandas would rename the second
    (``label.1``), and a repeated target would then be a feature (a silent leak)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    seen: set[str] = set()
    repeated = [c for c in header if c in seen or seen.add(c)]  # type: ignore[func-returns-value]
    if repeated:
        listed = ", ".join(repr(c) for c in dict.fromkeys(repeated))
        raise DatasetError(f"dataset.path: the header of {name} repeats the column {listed}")


def _check_infinite(mask: np.ndarray, columns: list[str], name: str) -> None:
    _check_cells(
        mask,
        columns,
        name,
        "infinite values",
        "; inf, -inf, or a number beyond float range such as 1e400",
    )


def _check_nan(mask: np.ndarray, columns: list[str], name: str) -> None:
    _check_cells(mask, columns, name, "NaN values")


def _check_cells(mask: np.ndarray, columns: list[str], name: str, what: str, why: str = "") -> None:
    """Refuse the cells ``mask`` marks, naming their columns (at most five)."""
    if mask.size and mask.any():
        bad = [columns[i] for i in np.flatnonzero(mask.any(axis=0))]
        listed = ", ".join(repr(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        word = "column" if len(bad) == 1 else "columns"
        raise DatasetError(
            f"dataset.path: {name} has {int(mask.sum())} {what} ({word} {listed}{why})"
        )


def _image_shape(value: Any, n_features: int) -> tuple[int, int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int) and v >= 1 for v in value)
        or int(np.prod(value)) != n_features
    ):
        raise DatasetError(
            f"dataset.image_shape: {value!r} must be [C, H, W] with C*H*W = {n_features}"
        )
    return (value[0], value[1], value[2])


def _task(y: np.ndarray, override: Any) -> Task:
    if override not in (None, "classification", "regression"):
        raise DatasetError(
            f"dataset.task: {override!r} is not one of ['classification', 'regression']"
        )
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    if not numeric:
        if override == "regression":
            raise DatasetError("dataset.task: 'regression' needs a numeric target")
        return "classification"
    if override is not None:
        return override  # type: ignore[no-any-return]
    values = y.astype(np.float64)
    if np.all(values == np.round(values)) and len(np.unique(values)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def _assemble(
    X: np.ndarray, y: np.ndarray, task: Task, name: str, image: tuple[int, int, int] | None
) -> LoadedDataset:
    if len(X) != len(y):
        raise DatasetError(f"dataset: {len(X)} feature rows but {len(y)} targets")
    if task == "classification":
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise DatasetError("dataset.task: 'classification' needs integer or string labels")
        labels, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes, minlength=len(labels))
        if len(labels) < 2:
            raise DatasetError(
                f"dataset: only one class ({labels.tolist()[0]!r}); at least 2 are needed"
            )
        for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
            if count < 2:
                raise DatasetError(
                    f"dataset: class {label} has {count} row; at least 2 per class are needed"
                )
        y_out: np.ndarray = codes.astype(np.int64)
        class_labels: tuple[Any, ...] | None = tuple(labels.tolist())
        n_classes: int | None = len(labels)
    else:
        y_out = y.astype(np.float32)
        class_labels, n_classes = None, None
    if image is not None:
        c, h, w = image
        sequence: tuple[int, int] | None = (h, c * w)
    else:
        sequence = None
    info = DatasetInfo(task, len(X), X.shape[1], n_classes, image, sequence, name)
    X_out = np.ascontiguousarray(X, dtype=np.float32)
    X_out.setflags(write=False)
    y_out.setflags(write=False)
    return LoadedDataset(X_out, y_out, info, class_labels)
