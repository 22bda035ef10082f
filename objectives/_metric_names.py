"""The metrics a trial reports and which way each is better: declared here, once. No
torch, so the driver and the spec validation read it without importing it.

Objectives may be chosen among `METRICS`. Other reported metrics (``n_params``,
``latency_cv``, ``test_*``, ``*_before_compression``, …) are minimised when queried,
except the scores in `OTHER_SCORES`; prefixes and suffixes keep the base's direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    task: Task | None  # None: a cost every task reports


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "maximize", "classification"),
        Metric("f1_macro", "maximize", "classification"),
        Metric("roc_auc", "maximize", "classification"),
        Metric("mse", "minimize", "regression"),
        Metric("mae", "minimize", "regression"),
        Metric("r2", "maximize", "regression"),
        Metric("train_time_s", "minimize", None),
        Metric("latency_ms", "minimize", None),
        Metric("size_bytes", "minimize", None),
        Metric("peak_mem_mb", "minimize", None),
        Metric("throughput_sps", "maximize", None),
    )
}
METRIC_NAMES: frozenset[str] = frozenset(METRICS)
OTHER_SCORES = frozenset({"precision_macro", "recall_macro"})  # reported, not objectives


def task_metrics(task: Task) -> frozenset[str]:
    """The metric names of `METRICS` a task produces (its own plus the costs).

    ``roc_auc`` is left out of a trial's metrics when undefined (a class absent from the
    validation rows).
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task: {task!r} is not one of ['classification', 'regression']")
    return frozenset(name for name, m in METRICS.items() if m.task in (task, None))


# The task's scores a trial reports beside its `METRICS` (each also as ``test_<score>``).
TASK_SCORES: dict[Task, frozenset[str]] = {
    "classification": frozenset({"accuracy", "f1_macro", "roc_auc"}) | OTHER_SCORES,
    "regression": frozenset({"mse", "mae", "rmse", "r2"}),
}
PRIMARY: dict[Task, str] = {"classification": "accuracy", "regression": "mse"}
# Every other metric a built-in trial may report (tests/objectives hold the objective to
# this list): latency's details, memory, times, compression's and k-fold's figures.
OTHER_REPORTED = frozenset(
    {
        "latency_ms_p90",
        "latency_cv",
        "latency_wall_ms",
        "latency_precise",
        "latency_retries",
        "latency_rounds",
        "serve_mem_mb",
        "train_wall_s",
        "val_time_s",
        "n_params",
        "n_params_nonzero",
        "size_bytes_dense",
        "sparsity",
        "teacher_train_time_s",
        "n_folds",
    }
)


def reported_metrics(task: Task) -> frozenset[str]:
    """Every metric name a built-in trial of ``task`` may report: what conditions over a
    study's metrics (``constraints``, ``stop_when``) may name."""
    scores = TASK_SCORES[task]
    primary = PRIMARY[task]
    before = {f"{name}_before_compression" for name in (primary, "latency_ms", "size_bytes")}
    return (
        task_metrics(task)
        | scores
        | {f"test_{score}" for score in scores}
        | before
        | {"n_params_before_compression", f"{primary}_std"}
        | OTHER_REPORTED
    )


# What an objective's value can be: a cost is never negative, a score of a share lies in
# [0, 1]. A value outside (a latency of -1e308) is no measurement: its trial fails.
NON_NEGATIVE = frozenset(
    {"train_time_s", "latency_ms", "size_bytes", "peak_mem_mb", "throughput_sps", "mse", "mae"}
)
UNIT_INTERVAL = frozenset({"accuracy", "f1_macro", "roc_auc"})


def out_of_range(name: str, value: float) -> str | None:
    """Why ``value`` cannot be metric ``name`` (None: it can)."""
    if name in NON_NEGATIVE and value < 0:
        return f"a negative {name} ({value:g})"
    if name in UNIT_INTERVAL and not 0.0 <= value <= 1.0:
        return f"{name} {value:g}, outside [0, 1]"
    return None


def metric_direction(name: str) -> Direction:
    """Which way ``name`` is better; ``test_`` and ``_before_compression`` keep the base's."""
    base = name.removeprefix("test_").removesuffix("_before_compression")
    if base in METRICS:
        return METRICS[base].direction
    return "maximize" if base in OTHER_SCORES else "minimize"
