"""The MLflow logging process, started by `paretotune.tracking.mlflow.MlflowTracker`.

It runs an `MlflowRecorder` on the jobs the driver's tracker sends, in order, and sends
back what it learns. Jobs already waiting when the process gets to a trial are looked
through: a trial whose result is already queued is recorded in one go (run, params,
metrics, tags, end), which saves MLflow a transaction per short trial.

If the driver dies, the process still records every job it was sent, then exits: the
end of the pipe is its signal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, assert_never

from paretotune.errors import first_line
from paretotune.tracking.mlflow.protocol import (
    ChartFront,
    CloseStudy,
    FinishTrial,
    Job,
    LogMetrics,
    MarkInterrupted,
    News,
    OpenStudy,
    PublishFront,
    RecordsRepaired,
    RepairTrials,
    RunMade,
    StartTrial,
    StudyOpened,
    TrackingFailed,
    TrialRecorded,
)

# The logging process yields the cores to trials and the driver: on a 2-core machine its
# imports and SQLite writes otherwise slow the trials that run beside it (their train
# time is on the compute clock, but their wall time is the study's). A queue it lags
# behind on is bounded by the driver's run-id wait; at the end nothing else runs.
LOGGING_NICENESS = 10
CHART_BATCH = 200  # chart points charted in one MLflow call at most (a call takes 1,000)

# MLflow's REST client retries a server out of reach for ~2 min by default (7 retries,
# backoff factor 2). The logging process gives up after ~7 s instead: a longer outage
# opens the circuit breaker (`guard`), trials are held on disk meanwhile (`unlogged`),
# and the server is asked again every few seconds, so nothing waits out the retries.
SHORT_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

if TYPE_CHECKING:
    from paretotune.tracking._base import FrontSnapshot
    from paretotune.tracking.mlflow.recorder import MlflowRecorder


class Backlog:
    """Jobs received and not yet run, in order, with three shortcuts: a trial's finish
    that arrives while its start still waits is set aside and joined to the start (the
    trial is recorded in one go); the newest queued front snapshot is at hand (trials
    recorded before it get their Pareto tags with their results); and the front's chart
    points wait together, to be charted in one call (`take_charts`) when nothing else
    waits or `CHART_BATCH` of them do (the chart's order does not depend on the runs')."""

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.newest_front: FrontSnapshot | None = None
        self.charts: list[ChartFront] = []
        self._waiting_starts: set[int] = set()
        self._finishes: dict[int, FinishTrial] = {}

    def __bool__(self) -> bool:
        return bool(self.jobs) or bool(self.charts)

    def take_charts(self, *, now: bool = False) -> list[ChartFront]:
        """The chart points to chart now: all of them when nothing else waits (or
        ``now``), or when `CHART_BATCH` wait."""
        if now or not self.jobs or len(self.charts) >= CHART_BATCH:
            charts, self.charts = self.charts, []
            return charts
        return []

    def add(self, job: Job) -> None:
        if isinstance(job, ChartFront):
            self.charts.append(job)
            return
        if isinstance(job, FinishTrial) and job.number in self._waiting_starts:
            self._finishes[job.number] = job
            return
        if isinstance(job, StartTrial):
            self._waiting_starts.add(job.number)
        elif isinstance(job, PublishFront):
            self.newest_front = job.snapshot
        self.jobs.append(job)

    def pop(self) -> Job:
        job = self.jobs.popleft()
        if isinstance(job, StartTrial):
            self._waiting_starts.discard(job.number)
        elif isinstance(job, PublishFront) and job.snapshot is self.newest_front:
            self.newest_front = None
        return job

    def take_finish(self, number: int) -> FinishTrial | None:
        """Trial ``number``'s finish if it came before its start ran."""
        return self._finishes.pop(number, None)


def serve(
    jobs: Connection, news: Connection, tracking_uri: str, unlogged_dir: Path | None = None
) -> None:
    """Run jobs until `CloseStudy` or the end of the pipe; report what was learned."""
    from paretotune.tracking.mlflow.recorder import MlflowRecorder

    try:
        recorder = MlflowRecorder(tracking_uri, unlogged_dir)
    except Exception as err:  # no store: say so, and end (the driver goes on without)
        line = f"MLflow at {tracking_uri}: {type(err).__name__}: {first_line(err)}"
        _send(news, TrackingFailed(line))
        news.close()
        return
    backlog = Backlog()
    reported_errors = 0
    while True:
        if not backlog and recorder.has_trials and not jobs.poll(0):
            recorder.warm_up()  # idle between trials: get the final front's imports done
        due = recorder.log_due_params()  # params of runs whose trial did not end soon
        wait_s = 0.0 if backlog else None if due is None else max(0.0, due - time.monotonic())
        if not _read_waiting(jobs, backlog, wait_s=wait_s):
            recorder.close("KILLED")  # the driver died: its study did not finish
            break
        charts = backlog.take_charts()
        if charts:
            recorder.chart_front([(c.step, c.metrics) for c in charts])
        if not backlog.jobs:
            continue
        job = backlog.pop()
        if not isinstance(job, CloseStudy):  # (close asks the server itself)
            _tell_made(news, recorder, recorder.reconnect())
        _run_job(recorder, job, backlog, news)
        reported_errors = _tell_errors(news, recorder, reported_errors)
        if recorder.repaired:
            _send(news, RecordsRepaired(recorder.repaired))
            recorder.repaired = []
        if isinstance(job, CloseStudy):
            break
    news.close()


def _read_waiting(jobs: Connection, backlog: Backlog, *, wait_s: float | None) -> bool:
    """Move every job already sent into ``backlog``, waiting up to ``wait_s`` for one
    (None: until one comes). False when nothing is left to do: the pipe ended and the
    backlog is empty."""
    try:
        if jobs.poll(wait_s):
            backlog.add(jobs.recv())
        while jobs.poll(0):
            backlog.add(jobs.recv())
    except (EOFError, OSError):
        return bool(backlog)
    return True


def _run_job(recorder: MlflowRecorder, job: Job, backlog: Backlog, news: Connection) -> None:
    match job:
        case OpenStudy(study):
            recorder.open_study(study)
            _send(news, StudyOpened(recorder.experiment_id or None, recorder.parent_run_id))
        case StartTrial(number, params, labels, at):
            recorder.expect_front(backlog.newest_front)
            finish = backlog.take_finish(number)
            outcome = None if finish is None else (finish.state, finish.report)
            run_id = recorder.start_trial(
                number,
                params,
                outcome,
                labels,
                dispatched_at=at,
                told_at=0.0 if finish is None else finish.at,
            )
            _send(news, RunMade(number, run_id))
            if finish is not None:
                _send(news, TrialRecorded(number))
        case FinishTrial(number, state, report, at):
            recorder.expect_front(backlog.newest_front)
            recorder.finish_trial(number, state, report, told_at=at)
            _send(news, TrialRecorded(number))
        case MarkInterrupted(numbers, at):
            recorder.mark_interrupted(numbers, at)
        case ChartFront(step, metrics):  # (`Backlog` keeps these apart)
            recorder.chart_front([(step, metrics)])
        case LogMetrics(number, metrics):
            recorder.log_metrics(number, metrics)
        case RepairTrials(trials):
            for number, run_id in recorder.repair(trials).items():
                _send(news, RunMade(number, run_id))
        case PublishFront(snapshot):
            charts = backlog.take_charts(now=True)  # the points before the front's own
            recorder.chart_front([(c.step, c.metrics) for c in charts])
            recorder.update_front(snapshot, superseded=backlog.newest_front is not None)
        case CloseStudy(status):
            charts = backlog.take_charts(now=True)
            recorder.chart_front([(c.step, c.metrics) for c in charts])
            _tell_made(news, recorder, recorder.close(status))
        case _:
            assert_never(job)


def _tell_made(news: Connection, recorder: MlflowRecorder, made: dict[int, str] | None) -> None:
    """After a reconnection: the study's record (if it was opened only now) and the runs
    made for trials held meanwhile."""
    if made is None:
        return
    _send(news, StudyOpened(recorder.experiment_id or None, recorder.parent_run_id))
    for number, run_id in made.items():
        _send(news, RunMade(number, run_id))


def _tell_errors(news: Connection, recorder: MlflowRecorder, reported: int) -> int:
    for line in recorder.errors[reported:]:
        _send(news, TrackingFailed(line))
    return len(recorder.errors)


def _send(news: Connection, message: News) -> None:
    try:
        news.send(message)
    except (BrokenPipeError, OSError):
        pass  # the driver is gone: keep recording what it sent


def main(argv: list[str]) -> None:
    """The process's entry point: ``JOBS_FD NEWS_FD TRACKING_URI [UNLOGGED_DIR]``."""
    jobs_fd, news_fd, uri = int(argv[0]), int(argv[1]), argv[2]
    unlogged_dir = Path(argv[3]) if len(argv) > 3 and argv[3] else None
    with contextlib.suppress(OSError):  # trials first: logging takes what they leave
        os.nice(LOGGING_NICENESS)
    for name, value in SHORT_RETRIES.items():  # the user's own settings win
        os.environ.setdefault(name, value)
    # MLflow prints "View run ... at: URL" for every run it ends on a tracking server: not
    # for the user's terminal, which shows the study's progress. Errors go back as news.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    serve(
        Connection(jobs_fd, writable=False), Connection(news_fd, readable=False), uri, unlogged_dir
    )
    # Every MLflow call was synchronous, so all is committed: skip the interpreter's
    # teardown, which the driver's close() would wait for (MLflow's exit hooks alone take
    # over a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
