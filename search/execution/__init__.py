"""Execution: where trials run. A worker turns a task into a report; executors place
tasks on workers (in this process, or on Ray actors); the Ray connection starts or
joins a cluster. Nothing here touches the Optuna storage or MLflow."""

from paretotune.execution._base import Executor
from paretotune.execution._in_process import InProcessExecutor
from paretotune.execution._placement import WorkerAsk, require_placeable
from paretotune.execution._ray import RayExecutor, require_offered
from paretotune.execution._ray_connection import (
    ensure_ray,
    joined_address,
    start_ray_in_background,
    start_words,
    stop_ray,
    stop_ray_after_study,
    study_done_with_ray,
)
from paretotune.execution._worker import (
    EpochGate,
    TrialReport,
    TrialRunner,
    TrialTask,
    UserObjective,
)

__all__ = [
    "EpochGate",
    "Executor",
    "InProcessExecutor",
    "RayExecutor",
    "TrialReport",
    "TrialRunner",
    "TrialTask",
    "UserObjective",
    "WorkerAsk",
    "ensure_ray",
    "joined_address",
    "require_offered",
    "require_placeable",
    "start_ray_in_background",
    "start_words",
    "stop_ray",
    "stop_ray_after_study",
    "study_done_with_ray",
]
