"""The metric names every trial reports, by task: no torch, so the driver can check a
spec's objectives without importing it."""

from __future__ import annotations

from typing import Literal

COST_METRICS = frozenset(
    {"train_time_s", "latency_ms", "size_bytes", "peak_mem_mb", "throughput_sps"}
)
CLASSIFICATION_METRICS = frozenset({"accuracy", "f1_macro", "roc_auc"})
REGRESSION_METRICS = frozenset({"mse", "mae", "r2"})
METRIC_NAMES: frozenset[str] = CLASSIFICATION_METRICS | REGRESSION_METRICS | COST_METRICS


def task_metrics(task: Literal["classification", "regression"]) -> frozenset[str]:
    """The metric names of :data:`METRIC_NAMES` a task produces (its own plus the costs).

    ``roc_auc`` is left out of a trial's metrics when undefined (a class absent from the
    validation rows).
    """
    if task == "classification":
        return CLASSIFICATION_METRICS | COST_METRICS
    if task == "regression":
        return REGRESSION_METRICS | COST_METRICS
    raise ValueError(f"task: {task!r} is not one of ['classification', 'regression']")
