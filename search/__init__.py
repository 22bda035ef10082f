"""paretotune: multi-objective search of accuracy vs. training time vs. latency, on
Optuna, Ray and MLflow.

The public API::

    from paretotune import Client, run_study

The package is laid out by concern, imports pointing one way (a test walks them)::

    cli -> _run/_driver -> stopping -> results -> tracking -> study, execution
        -> spaces -> objectives -> errors

- `paretotune.spaces`: what is searched (the spec, its validation, sampling).
- `paretotune.objectives`: what a trial measures (datasets, models, training).
- `paretotune.study`: the Optuna storage, sampler, opening and resuming a study.
- `paretotune.execution`: where trials run (a worker, executors, the Ray connection).
- `paretotune.tracking`: where trials are recorded (a base; MLflow).
- `paretotune.results`: Pareto maths, trial records, selection and the `Client`.
- `paretotune.stopping`: multi-objective early stopping (MO-ASHA).
- `paretotune.cli`: the ``paretotune`` command.
- `paretotune.errors`: every error for a user's mistake, under `ParetotuneError`.
- `paretotune.testing`: a simulated clock, a scripted executor, a recording tracker.

The names below load on first use (PEP 562), so a process that needs one small module
(a Ray worker unpickling the trial runner, the MLflow logging process) does not pay for
importing Optuna, MLflow and the client with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paretotune._lazy import lazy_exports

if TYPE_CHECKING:
    from paretotune._run import StudyResult, run_study
    from paretotune.errors import (
        ClusterError,
        DatasetError,
        ExpressionError,
        ModelFileError,
        NoModelError,
        NoTrialMatchesError,
        ParetotuneError,
        SpecError,
        StudyBusyError,
        StudyNotFoundError,
        TrialNotFoundError,
        UnknownMetricError,
    )
    from paretotune.execution import Executor, InProcessExecutor, RayExecutor
    from paretotune.results.client import Client, StudySummary
    from paretotune.results.pareto import dominates, hypervolume, nondominated_ranks, pareto_mask
    from paretotune.results.records import TrialRecord, TrialSet
    from paretotune.spaces import StudySpec, load_spec
    from paretotune.spaces._overrides import Overrides
    from paretotune.study import open_storage
    from paretotune.tracking import NullTracker, Tracker
    from paretotune.tracking.mlflow import MlflowTracker

_HOMES = {
    "Client": "paretotune.results.client",
    "StudySummary": "paretotune.results.client",
    "StudyResult": "paretotune._run",
    "run_study": "paretotune._run",
    "Executor": "paretotune.execution",
    "InProcessExecutor": "paretotune.execution",
    "RayExecutor": "paretotune.execution",
    "MlflowTracker": "paretotune.tracking.mlflow",
    "NullTracker": "paretotune.tracking",
    "Tracker": "paretotune.tracking",
    "dominates": "paretotune.results.pareto",
    "hypervolume": "paretotune.results.pareto",
    "nondominated_ranks": "paretotune.results.pareto",
    "pareto_mask": "paretotune.results.pareto",
    "TrialRecord": "paretotune.results.records",
    "TrialSet": "paretotune.results.records",
    "Overrides": "paretotune.spaces",
    "StudySpec": "paretotune.spaces",
    "load_spec": "paretotune.spaces",
    "open_storage": "paretotune.study",
    **{
        name: "paretotune.errors"
        for name in (
            "ClusterError",
            "DatasetError",
            "ExpressionError",
            "ModelFileError",
            "NoModelError",
            "NoTrialMatchesError",
            "ParetotuneError",
            "SpecError",
            "StudyBusyError",
            "StudyNotFoundError",
            "TrialNotFoundError",
            "UnknownMetricError",
        )
    },
}

__all__ = [
    "Client",
    "ClusterError",
    "DatasetError",
    "Executor",
    "ExpressionError",
    "InProcessExecutor",
    "MlflowTracker",
    "ModelFileError",
    "NoModelError",
    "NoTrialMatchesError",
    "NullTracker",
    "Overrides",
    "ParetotuneError",
    "RayExecutor",
    "SpecError",
    "StudyBusyError",
    "StudyNotFoundError",
    "StudyResult",
    "StudySpec",
    "StudySummary",
    "Tracker",
    "TrialNotFoundError",
    "TrialRecord",
    "TrialSet",
    "UnknownMetricError",
    "dominates",
    "hypervolume",
    "load_spec",
    "nondominated_ranks",
    "open_storage",
    "pareto_mask",
    "run_study",
]

__getattr__ = lazy_exports(__name__, _HOMES)
