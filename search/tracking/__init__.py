"""Tracking: recording a study outside Optuna. A small base (`Tracker`) with its
invariants, `NullTracker`, and MLflow in `paretotune.tracking.mlflow`."""

from paretotune.tracking._base import (
    FinishedTrial,
    FrontRow,
    FrontSnapshot,
    NullTracker,
    StudyRef,
    Tracker,
    TrackerNews,
)

__all__ = [
    "FinishedTrial",
    "FrontRow",
    "FrontSnapshot",
    "NullTracker",
    "StudyRef",
    "Tracker",
    "TrackerNews",
]
