"""A testing kit for the driver's policies: time and trials scripted, nothing real to wait for.

- `SimulatedClock`: the driver's clock, moved only by the executor and the tracker below
  (in the manner of Syne Tune's simulated time keeper).
- `ScriptedExecutor`: an `Executor` whose trials take scripted simulated seconds and
  return scripted metrics or errors.
- `RecordingTracker`: a `Tracker` that records every call and answers run ids after a
  scripted simulated delay (or never).

With these, budget, timeout, resume, re-queue after interruption, failures, early
stopping and the wait for run ids run in milliseconds, with no Ray and no MLflow process.
`simulate_study` wires them to `run_study`::

    run = simulate_study(spec, script, storage="study.journal", capacity=2)
    run.result.n_complete, run.clock.now(), run.tracker.finished
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paretotune._run import StudyResult, run_study
from paretotune.execution import EpochGate, Executor, TrialReport, TrialTask
from paretotune.objectives import StopTraining
from paretotune.tracking import FinishedTrial, FrontSnapshot, StudyRef, Tracker, TrackerNews


class SimulatedClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: float = 0.0):
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    def advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)


@dataclass
class Outcome:
    """What a scripted trial does: runs ``seconds`` of simulated time, then reports
    ``metrics`` or, with ``error`` set, fails. With a ``history`` (one entry per epoch),
    the seconds are spread evenly over its epochs, and an epoch gate (early stopping) sees
    each entry when that epoch ends, in simulated-time order across trials."""

    seconds: float = 1.0
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    lost: bool = False  # the error is the worker's loss (a dead process or node)
    # compression variants of its model (``compression: {variants: ...}``): compression ->
    # (metrics, seconds the fork took); reported whatever the trial's end
    variants: dict[str, tuple[dict[str, float], float]] = field(default_factory=dict)


Script = Callable[[TrialTask], Outcome]


@dataclass
class _Running:
    started: float
    outcome: Outcome
    report: TrialReport
    epochs_done: int = 0

    def next_event(self) -> float:
        """When its next epoch ends (or, without a history, when it ends)."""
        epochs = len(self.outcome.history)
        if not epochs:
            return self.started + self.outcome.seconds
        return self.started + self.outcome.seconds * (self.epochs_done + 1) / epochs


class ScriptedExecutor(Executor):
    """Runs each task as ``script(task)`` says, on simulated time.

    ``wait`` plays the running trials' epoch ends in time order up to ``timeout`` from
    now, moving ``clock`` along, and returns once a trial has ended (with every other that
    ends at the same moment). A script that raises fails its trial, as a worker would
    report it. ``interrupt_after`` raises KeyboardInterrupt from ``wait`` once that many
    trials were reported (a user's Ctrl-C).
    """

    def __init__(
        self,
        script: Script,
        clock: SimulatedClock,
        *,
        capacity: int = 1,
        interrupt_after: int | None = None,
    ):
        self._capacity = capacity
        self.script = script
        self.clock = clock
        self.interrupt_after = interrupt_after
        self.submitted: list[TrialTask] = []
        self.reported: list[TrialReport] = []
        self.shut_down = False
        self.gate: EpochGate | None = None
        self._running: list[_Running] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        self.gate = gate

    def submit(self, task: TrialTask) -> None:
        if len(self._running) >= self.capacity:
            raise RuntimeError("ScriptedExecutor: no idle worker")
        self.submitted.append(task)
        report = TrialReport(number=task.number)
        try:
            outcome = self.script(task)
        except Exception as err:
            outcome = Outcome(seconds=0.0, error=f"{type(err).__name__}: {err}")
        # whatever the trial's end: the driver is to add variants of complete trials only
        report.variants = [
            (kind, TrialReport(task.number, dict(metrics), worker_time_s=seconds))
            for kind, (metrics, seconds) in outcome.variants.items()
        ]
        self._running.append(_Running(self.clock.now(), outcome, report))

    def wait(self, timeout: float) -> list[TrialReport]:
        if self.interrupt_after is not None and len(self.reported) >= self.interrupt_after:
            raise KeyboardInterrupt
        if not self._running:
            return []
        horizon = self.clock.now() + timeout
        done: list[TrialReport] = []
        while self._running:
            running = min(self._running, key=lambda r: (r.next_event(), r.report.number))
            moment = running.next_event()
            if moment > horizon or (done and moment > self.clock.now()):
                break
            self.clock.advance_to(moment)
            if self._play_epoch(running):
                self._running.remove(running)
                done.append(running.report)
        if not done:
            self.clock.advance_to(horizon)
        self.reported += done
        return done

    def _play_epoch(self, running: _Running) -> bool:
        """End ``running``'s next epoch (or the whole trial); True when it has ended."""
        outcome, report = running.outcome, running.report
        history = outcome.history
        if history:
            entry = history[running.epochs_done]
            running.epochs_done += 1
            report.history.append(dict(entry))
            if self.gate is not None and outcome.error is None:
                try:
                    self.gate(report.number, running.epochs_done, entry)
                except StopTraining as stop:
                    report.stopped_at = stop.epoch
                    report.metrics = {k: v for k, v in entry.items() if k != "epoch"}
                    report.worker_time_s = self.clock.now() - running.started
                    return True
            if running.epochs_done < len(history):
                return False
        report.metrics = dict(outcome.metrics)
        report.error = outcome.error
        report.transient = outcome.lost
        report.worker_time_s = self.clock.now() - running.started
        return True

    def shutdown(self) -> None:
        self.shut_down = True


class RecordingTracker(Tracker):
    """Records every call; answers each started trial's run id ``run_id_delay_s``
    simulated seconds later (``math.inf``: never), as ``run-<number>``. With
    ``record_s``, it takes that many simulated seconds to record each finished trial, one
    after the other (a slow MLflow: its ``backlog`` then grows while trials are faster).

    With ``keeps_runs=False`` it makes no promise of run ids (as `NullTracker`).
    """

    def __init__(
        self,
        clock: SimulatedClock,
        *,
        keeps_runs: bool = True,
        run_id_delay_s: float = 0.0,
        record_s: float = 0.0,
        errors: Sequence[str] = (),
    ):
        self.clock = clock
        self.record_s = record_s
        self._recorded_at: list[float] = []  # when each finish is recorded, in order
        self.lags: list[int] = []  # finished trials not yet recorded, at each start
        self._keeps_runs = keeps_runs
        self.run_id_delay_s = run_id_delay_s
        self.calls: list[str] = []
        self.opened: list[StudyRef] = []
        self.started: list[int] = []
        self.labels: dict[int, dict[str, str]] = {}  # labels each trial was started with
        self.finished: dict[int, str] = {}  # trial number -> state
        self.reports: dict[int, TrialReport] = {}
        self.interrupted: list[int] = []
        self.repaired: list[FinishedTrial] = []
        self.logged: dict[int, dict[str, float]] = {}
        self.fronts: list[FrontSnapshot] = []
        self.charted: list[tuple[int, dict[str, float]]] = []  # (step, metrics)
        self.closed_with: str | None = None
        self._answers: list[tuple[float, int]] = []  # (when, trial number)
        self._errors = list(errors)

    @property
    def keeps_runs(self) -> bool:
        return self._keeps_runs

    @property
    def backlog(self) -> int:
        recorded = bisect.bisect_right(self._recorded_at, self.clock.now())  # (in order)
        return len(self.started) - recorded - len(set(self.interrupted))

    @property
    def location(self) -> str | None:
        return "recording://"

    def open_study(self, study: StudyRef) -> None:
        self.calls.append("open_study")
        self.opened.append(study)

    def start_trial(
        self, number: int, params: dict[str, Any], labels: Mapping[str, str] | None = None
    ) -> None:
        self.calls.append("start_trial")
        now = self.clock.now()
        self.lags.append(len(self._recorded_at) - bisect.bisect_right(self._recorded_at, now))
        self.labels[number] = dict(labels or {})
        self.started.append(number)
        if self._keeps_runs and math.isfinite(self.run_id_delay_s):
            self._answers.append((self.clock.now() + self.run_id_delay_s, number))

    def finish_trial(self, number: int, state: str, report: TrialReport) -> None:
        self.calls.append("finish_trial")
        last = self._recorded_at[-1] if self._recorded_at else -math.inf
        self._recorded_at.append(max(self.clock.now(), last) + self.record_s)
        self.finished[number] = state
        self.reports[number] = report

    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        self.calls.append("mark_interrupted")
        self.interrupted += list(numbers)

    def update_front(self, snapshot: FrontSnapshot) -> None:
        self.calls.append("update_front")
        self.fronts.append(snapshot)

    def chart_front(self, step: int, metrics: Mapping[str, float]) -> None:
        self.calls.append("chart_front")
        self.charted.append((step, dict(metrics)))

    def repair(self, finished: Sequence[FinishedTrial]) -> None:
        self.calls.append("repair")
        self.repaired += list(finished)

    def log_metrics(self, number: int, metrics: dict[str, float]) -> None:
        self.calls.append("log_metrics")
        self.logged.setdefault(number, {}).update(metrics)

    def poll(self, timeout: float = 0.0) -> TrackerNews:
        news = self._due()
        if not news.run_ids and not news.errors and timeout > 0:
            now = self.clock.now()
            upcoming = [when for when, _ in self._answers]
            later = bisect.bisect_right(self._recorded_at, now)
            upcoming += self._recorded_at[later : later + 1]
            self.clock.advance(min([timeout, *(w - self.clock.now() for w in upcoming)]))
            news = self._due()
        return news

    def close(self, status: str = "FINISHED") -> TrackerNews:
        self.calls.append("close")
        self.closed_with = status
        return self._due()

    def _due(self) -> TrackerNews:
        news = TrackerNews(experiment_id="0", parent_run_id="run-study")
        news.errors, self._errors = self._errors, []
        now = self.clock.now()
        for _, number in [a for a in self._answers if a[0] <= now]:
            news.run_ids[number] = f"run-{number}"
        self._answers = [a for a in self._answers if a[0] > now]
        return news


@dataclass
class Simulation:
    """What `simulate_study` ran: the study's result and the kit's parts, to inspect."""

    result: StudyResult
    executor: ScriptedExecutor
    tracker: RecordingTracker
    clock: SimulatedClock


# A small space of MLPs for simulated studies (their trials never train: a script plays them)
MLP_SPACE: dict[str, Any] = {
    "architecture": "mlp",
    "mlp": {"depth": [1, 2, 3], "width": [16, 32, 64, 128]},
    "optimizer": ["adam", "sgd"],
    "compression": ["none"],
}


def simulate_study(
    spec: dict[str, Any],
    script: Script,
    *,
    storage: str,
    capacity: int = 1,
    executor: ScriptedExecutor | None = None,
    tracker: RecordingTracker | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Simulation:
    """Run (or resume) ``spec``'s study with its trials played by ``script`` on a simulated
    clock: `run_study` as users call it, with a `ScriptedExecutor` (``capacity`` workers,
    unless ``executor`` is given) and a `RecordingTracker` (unless ``tracker`` is given)
    sharing one `SimulatedClock`. ``progress`` and ``overrides`` are `run_study`'s."""
    clock = executor.clock if executor else tracker.clock if tracker else SimulatedClock()
    executor = executor or ScriptedExecutor(script, clock, capacity=capacity)
    tracker = tracker or RecordingTracker(clock)
    result = run_study(
        spec,
        _played_by_the_script,
        storage=storage,
        executor=executor,
        tracker=tracker,
        clock=clock,
        progress=progress,
        **overrides,
    )
    return Simulation(result, executor, tracker, clock)


def _played_by_the_script(params: dict[str, Any]) -> dict[str, float]:
    """Marks the study as a custom-objective one; the scripted executor never calls it."""
    raise AssertionError("a simulated study's trials are played by its script")


__all__ = [
    "MLP_SPACE",
    "Outcome",
    "RecordingTracker",
    "ScriptedExecutor",
    "SimulatedClock",
    "Simulation",
    "simulate_study",
]
