"""Contract tests, in the style of Optuna's ``optuna/testing``: one class per base,
parametrised over every implementation, so a new backend is one fixture value."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paretotune.execution import (
    Executor,
    InProcessExecutor,
    RayExecutor,
    TrialReport,
    TrialTask,
)
from paretotune.testing import Outcome, RecordingTracker, ScriptedExecutor, SimulatedClock
from paretotune.tracking import FrontSnapshot, NullTracker, StudyRef, Tracker, TrackerNews
from paretotune.tracking._base import FrontRow
from paretotune.tracking.mlflow import MlflowTracker


def _square(params: dict) -> dict:
    if params.get("fail"):
        raise ValueError("asked to fail")
    return {"accuracy": params["x"] ** 2}


def _scripted(task: TrialTask) -> Outcome:
    return Outcome(seconds=1.0, metrics=_square(task.params))


@pytest.fixture()
def ray_executor(ray_cluster) -> Executor:
    return RayExecutor(2, None, _square)


RAY = pytest.param("ray", marks=pytest.mark.needs("Ray"))  # tiers it integration


@pytest.fixture(params=["in_process", "scripted", RAY])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if request.param == "in_process":
        made: Executor = InProcessExecutor(None, _square)
    elif request.param == "scripted":
        made = ScriptedExecutor(_scripted, SimulatedClock(), capacity=2)
    else:
        made = request.getfixturevalue("ray_executor")
    yield made
    made.shutdown()


def _drain(executor: Executor, tasks: list[TrialTask]) -> list[TrialReport]:
    """Run ``tasks`` keeping the executor full, the way the driver does."""
    pending, running, reports = list(tasks), 0, []
    for _ in range(10_000):
        while pending and running < executor.capacity:
            executor.submit(pending.pop(0))
            running += 1
        done = executor.wait(0.5)
        running -= len(done)
        reports += done
        if not pending and not running:
            return reports
    raise AssertionError("the executor never reported every task")


class TestExecutorContract:
    def test_each_task_is_reported_once_with_its_metrics(self, executor: Executor) -> None:
        tasks = [TrialTask(n, {"x": n}) for n in range(5)]
        reports = _drain(executor, tasks)
        assert sorted(r.number for r in reports) == list(range(5))
        assert all(r.error is None and r.metrics == {"accuracy": r.number**2} for r in reports)

    def test_a_raising_trial_is_an_error_report(self, executor: Executor) -> None:
        (report,) = _drain(executor, [TrialTask(7, {"x": 1, "fail": True})])
        assert report.number == 7 and "asked to fail" in (report.error or "")
        (after,) = _drain(executor, [TrialTask(8, {"x": 3})])
        assert after.metrics == {"accuracy": 9}, "a failed trial leaves the worker usable"

    def test_submitting_beyond_capacity_is_refused(self, executor: Executor) -> None:
        deadline = time.monotonic() + 120
        while isinstance(executor, RayExecutor) and executor.capacity < 2:  # (once placed)
            assert time.monotonic() < deadline, "Ray never placed both workers"
            executor.wait(0.2)
        for n in range(executor.capacity):
            executor.submit(TrialTask(n, {"x": n}))
        with pytest.raises(RuntimeError):
            executor.submit(TrialTask(99, {"x": 0}))

    def test_waiting_with_nothing_in_flight_returns_nothing(self, executor: Executor) -> None:
        assert executor.wait(0.01) == []


@pytest.fixture()
def mlflow_tracker(tmp_path: Path) -> Tracker:
    return MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")


MLFLOW = pytest.param("mlflow", marks=pytest.mark.needs("the MLflow logging process"))


@pytest.fixture(params=["null", "recording", MLFLOW])
def tracker(request: pytest.FixtureRequest) -> Tracker:
    if request.param == "null":
        return NullTracker()
    if request.param == "recording":
        return RecordingTracker(SimulatedClock())
    return request.getfixturevalue("mlflow_tracker")


def _snapshot() -> FrontSnapshot:
    row = FrontRow(0, None, {"x": 1}, {"accuracy": 1.0}, 0)
    return FrontSnapshot({"accuracy": "maximize"}, [row], 0.5, step=2, final=True)


class TestTrackerContract:
    def test_a_study_goes_through_in_order(self, tracker: Tracker) -> None:
        promised_runs = tracker.keeps_runs
        news = TrackerNews()
        tracker.open_study(StudyRef("contract", {"name": "contract"}, None, "uid-1"))
        tracker.start_trial(0, {"x": 1})
        tracker.start_trial(1, {"x": 2})
        news.merge(tracker.poll())
        tracker.finish_trial(0, "COMPLETE", TrialReport(0, metrics={"accuracy": 1.0}))
        tracker.finish_trial(1, "FAIL", TrialReport(1, error="ValueError: no"))
        tracker.update_front(_snapshot())
        tracker.repair([])
        tracker.mark_interrupted([])
        assert tracker.backlog >= 0
        news.merge(tracker.poll(0.01))
        news.merge(tracker.close("FINISHED"))
        assert news.errors == []
        if promised_runs:  # every started trial's run id came back
            assert set(news.run_ids) == {0, 1}
            assert all(isinstance(run_id, str) for run_id in news.run_ids.values())
        assert tracker.backlog == 0

    def test_interrupted_trials_are_closed(self, tracker: Tracker) -> None:
        tracker.open_study(StudyRef("contract-interrupted", {}))
        tracker.start_trial(0, {"x": 1})
        tracker.mark_interrupted([0])
        assert tracker.backlog == 0
        assert tracker.close("KILLED").errors == []

    def test_location_says_where_to_look(self, tracker: Tracker) -> None:
        assert tracker.location is None or isinstance(tracker.location, str)
        tracker.close()
