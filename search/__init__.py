"""How a study runs: the driver, executors, trackers, the Pareto utilities, API and CLI."""

from search._client import Client, StudySummary
from search._driver import StudyResult, run_study
from search._executors import Executor, InProcessExecutor, RayExecutor
from search._mlflow_process import MlflowTracker
from search._pareto import dominates, hypervolume, nondominated_ranks, pareto_mask
from search._records import TrialRecord
from search._storage import open_storage
from search._tracking import NullTracker, Tracker

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
