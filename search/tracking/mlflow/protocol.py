"""What the driver's `MlflowTracker` and the logging process send each other, typed.

Jobs go down one pipe in call order; news comes back up another. Both ends dispatch with
``match`` over these unions, so mypy checks that each side handles every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paretotune.execution import TrialReport
from paretotune.tracking._base import FinishedTrial, FrontSnapshot, StudyRef


@dataclass(frozen=True)
class OpenStudy:
    study: StudyRef


@dataclass(frozen=True)
class StartTrial:
    number: int
    params: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)  # tagged ``paretotune.<label>``
    at: float = 0.0  # Unix time the driver dispatched it (0: unknown)


@dataclass(frozen=True)
class FinishTrial:
    number: int
    state: str
    report: TrialReport
    at: float = 0.0  # Unix time the driver told its outcome (0: unknown)


@dataclass(frozen=True)
class MarkInterrupted:
    numbers: list[int]
    at: float = 0.0  # Unix time the driver closed them (0: unknown)


@dataclass(frozen=True)
class RepairTrials:
    trials: list[FinishedTrial]


@dataclass(frozen=True)
class LogMetrics:
    number: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class ChartFront:
    step: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class PublishFront:
    snapshot: FrontSnapshot


@dataclass(frozen=True)
class CloseStudy:
    status: str


Job = (
    OpenStudy
    | LogMetrics
    | StartTrial
    | FinishTrial
    | MarkInterrupted
    | RepairTrials
    | ChartFront
    | PublishFront
    | CloseStudy
)


@dataclass(frozen=True)
class StudyOpened:
    experiment_id: str | None
    parent_run_id: str | None


@dataclass(frozen=True)
class RunMade:
    number: int
    run_id: str | None  # None: MLflow could not make the run


@dataclass(frozen=True)
class TrialRecorded:
    number: int


@dataclass(frozen=True)
class TrackingFailed:
    line: str


@dataclass(frozen=True)
class RecordsRepaired:
    numbers: list[int]  # trials whose records were made to agree with Optuna again


News = StudyOpened | RunMade | TrialRecorded | TrackingFailed | RecordsRepaired
