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


def metric_direction(name: str) -> Direction:
    """Which way ``name`` is better; ``test_`` and ``_before_compression`` keep the base's."""
    base = name.removeprefix("test_").removesuffix("_before_compression")
    if base in METRICS:
        return METRICS[base].direction
    return "maximize" if base in OTHER_SCORES else "minimize"
