"""How a study runs: the driver, executors, trackers, the Pareto utilities, API and CLI.

The names below load on first use (PEP 562), so a process that needs one small module
(a Ray worker unpickling `search._worker`, the MLflow logging process) does not pay for
importing Optuna, MLflow and the client with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from objectives._lazy import lazy_exports

if TYPE_CHECKING:
    from search._client import Client, StudySummary
    from search._driver import StudyResult, run_study
    from search._executors import Executor, InProcessExecutor, RayExecutor
    from search._mlflow_process import MlflowTracker
    from search._pareto import dominates, hypervolume, nondominated_ranks, pareto_mask
    from search._records import TrialRecord
    from search._storage import open_storage
    from search._tracking import NullTracker, Tracker

_HOMES = {
    "Client": "search._client",
    "StudySummary": "search._client",
    "StudyResult": "search._driver",
    "run_study": "search._driver",
    "Executor": "search._executors",
    "InProcessExecutor": "search._executors",
    "RayExecutor": "search._executors",
    "MlflowTracker": "search._mlflow_process",
    "dominates": "search._pareto",
    "hypervolume": "search._pareto",
    "nondominated_ranks": "search._pareto",
    "pareto_mask": "search._pareto",
    "TrialRecord": "search._records",
    "open_storage": "search._storage",
    "NullTracker": "search._tracking",
    "Tracker": "search._tracking",
}

__all__ = [
    "Client",
    "Executor",
    "InProcessExecutor",
    "MlflowTracker",
    "NullTracker",
    "RayExecutor",
    "StudyResult",
    "StudySummary",
    "Tracker",
    "TrialRecord",
    "dominates",
    "hypervolume",
    "nondominated_ranks",
    "open_storage",
    "pareto_mask",
    "run_study",
]


__getattr__ = lazy_exports(__name__, _HOMES)
