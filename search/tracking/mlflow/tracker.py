"""`MlflowTracker`: the driver's side of the MLflow logging process; it never waits.

Each call puts a typed job (`protocol`) on a queue and returns; a writer thread sends the
jobs down a pipe to the logging process (`process`), and a reader thread collects what
it sends back (the parent run id, each trial's run id, errors) for ``poll``. Running
MLflow in its own process takes its CPU work (SQLAlchemy, artifact writes) off the
driver's interpreter lock.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, assert_never

from paretotune.execution import TrialReport
from paretotune.tracking._base import FinishedTrial, FrontSnapshot, StudyRef, Tracker, TrackerNews
from paretotune.tracking.mlflow import protocol

_LOGGING_PROCESS = (
    "import sys; from paretotune.tracking.mlflow.process import main; main(sys.argv[1:])"
)


class MlflowTracker(Tracker):
    """Logs a study to the MLflow tracking server or store at ``tracking_uri``.

    Every call returns at once but ``close``, which waits for the logging process to
    record everything it was sent."""

    def __init__(self, tracking_uri: str, unlogged_dir: Path | None = None):
        """``unlogged_dir``: where trial records MLflow does not take are held until a
        resume or ``paretotune sync`` records them (none: they are not held)."""
        self.tracking_uri = tracking_uri
        self.unlogged_dir = unlogged_dir
        self.experiment_id: str | None = None
        self._recorded = 0
        self.repaired = 0  # trials whose records `repair` made agree with Optuna again
        self._numbers: set[int] = set()  # trials started by this tracker
        self._closing = False
        self._reported_end = False
        self._study_name = "STUDY"
        self._params: dict[int, dict[str, Any]] = {}  # the trials started, until recorded
        # finished trials sent, not yet recorded: held on disk if the process dies
        self._unrecorded: dict[int, protocol.FinishTrial] = {}
        self._held = 0  # trials held because the logging process died
        jobs_read, jobs_write = Pipe(duplex=False)
        news_read, news_write = Pipe(duplex=False)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LOGGING_PROCESS,
                str(jobs_read.fileno()),
                str(news_write.fileno()),
                tracking_uri,
                str(unlogged_dir or ""),
            ],
            pass_fds=(jobs_read.fileno(), news_write.fileno()),
            cwd=_existing_cwd(),
            start_new_session=True,  # Ctrl-C stops the driver, which then closes MLflow
        )
        jobs_read.close()
        news_write.close()
        self._outbox: queue.SimpleQueue[protocol.Job | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[protocol.News] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=_send_all,
            args=(self._outbox, jobs_write, self._inbox),
            name="mlflow-jobs",
            daemon=True,
        )
        self._reader = threading.Thread(
            target=_receive_all, args=(news_read, self._inbox), name="mlflow-news", daemon=True
        )
        self._writer.start()
        self._reader.start()

    @property
    def location(self) -> str | None:
        return self.tracking_uri

    @property
    def keeps_runs(self) -> bool:
        """True while the logging process can still answer with run ids."""
        return self._reader.is_alive() or not self._inbox.empty()

    @property
    def backlog(self) -> int:
        """Trials started but not yet recorded as finished by MLflow."""
        return len(self._numbers) - self._recorded

    def open_study(self, study: StudyRef) -> None:
        self._study_name = study.name
        self._outbox.put(protocol.OpenStudy(study))

    def start_trial(
        self, number: int, params: dict[str, Any], labels: Mapping[str, str] | None = None
    ) -> None:
        self._numbers.add(number)
        self._params[number] = dict(params)
        job = protocol.StartTrial(number, params, dict(labels or {}), time.time())
        self._outbox.put(job)

    def finish_trial(self, number: int, state: str, report: TrialReport) -> None:
        job = protocol.FinishTrial(number, state, report, time.time())
        self._unrecorded[number] = job
        if self._died():
            self._hold_unrecorded()
        else:
            self._outbox.put(job)

    def _died(self) -> bool:
        """Whether the logging process ended while the study runs (killed, crashed)."""
        return not self._closing and self._process.poll() is not None

    def _hold_unrecorded(self) -> None:
        """The logging process is gone: hold on disk every finished trial it did not
        record (its model too), as during an MLflow outage, for the next run or `sync`."""
        from paretotune.tracking.mlflow.unlogged import HeldTrial, UnloggedTrials

        held = UnloggedTrials(self.unlogged_dir)
        for number, job in list(self._unrecorded.items()):
            report = job.report
            if report.variants:  # (each variant is a trial of its own, held as one)
                report = dataclasses.replace(report, variants=[])
            params = self._params.get(number, {})
            if held.keep(HeldTrial(number, job.state, report, params)):
                del self._unrecorded[number]
                self._held += 1

    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        if numbers:
            self._recorded += sum(1 for n in numbers if n in self._numbers)
            self._outbox.put(protocol.MarkInterrupted(list(numbers), time.time()))

    def chart_front(self, step: int, metrics: Mapping[str, float]) -> None:
        self._outbox.put(protocol.ChartFront(step, dict(metrics)))

    def log_metrics(self, number: int, metrics: dict[str, float]) -> None:
        self._outbox.put(protocol.LogMetrics(number, dict(metrics)))

    def update_front(self, snapshot: FrontSnapshot) -> None:
        self._outbox.put(protocol.PublishFront(snapshot))

    def repair(self, finished: Sequence[FinishedTrial]) -> None:
        if finished:
            self._outbox.put(protocol.RepairTrials(list(finished)))

    def poll(self, timeout: float = 0.0) -> TrackerNews:
        news = TrackerNews()
        if not self._closing and not self._reader.is_alive() and self._inbox.empty():
            self._hold_unrecorded()
            if not self._reported_end:  # the process ended before close: say so once
                self._reported_end = True
                news.errors.append(
                    "the MLflow logging process ended early: the trials it did not record "
                    + (
                        f"are held in {self.unlogged_dir}, with their models"
                        if self.unlogged_dir
                        else "are not recorded"
                    )
                )
            return news
        try:
            message = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return news
        while True:
            self._absorb(message, news)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return news

    def _absorb(self, message: protocol.News, news: TrackerNews) -> None:
        match message:
            case protocol.StudyOpened(experiment_id, parent_run_id):
                news.experiment_id, news.parent_run_id = experiment_id, parent_run_id
                self.experiment_id = experiment_id or self.experiment_id
            case protocol.RunMade(number, run_id):
                news.run_ids[number] = run_id
            case protocol.TrialRecorded(number):
                self._recorded += 1
                self._unrecorded.pop(number, None)
                self._params.pop(number, None)
            case protocol.TrackingFailed(line):
                news.errors.append(line)
            case protocol.RecordsRepaired(numbers):
                self.repaired += len(numbers)
            case _:
                assert_never(message)

    def close(self, status: str = "FINISHED") -> TrackerNews:
        self._closing = True
        self._outbox.put(protocol.CloseStudy(status))
        self._outbox.put(None)
        self._writer.join()
        code = self._process.wait()
        self._reader.join()
        news = self.poll()
        if code != 0:
            news.errors.append(f"the MLflow logging process exited with code {code}")
        # what it never took, whatever ended it (killed, or gone early as when it could
        # not open its store): held with the models, for `paretotune sync`
        self._hold_unrecorded()
        if self._held:
            news.errors.append(
                f"MLflow: {self._held} trials' records (with their models) are kept in "
                f"{self.unlogged_dir}: run `paretotune sync {self._study_name}` to record them"
            )
        return news


def _existing_cwd() -> str | None:
    """The working directory for the logging process: ours, unless it is gone (a Ray job's
    driver can outlive the folder it was started in; Python then cannot even import from
    ``''`` on ``sys.path``), then the temporary directory."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return tempfile.gettempdir()
    return None


def _send_all(
    outbox: queue.SimpleQueue[protocol.Job | None],
    jobs: Connection,
    inbox: queue.SimpleQueue[protocol.News],
) -> None:
    """Writer thread: send the driver's jobs in order; drop them if the process is gone,
    and report a job that cannot be sent (say, a report that does not pickle)."""
    try:
        while (job := outbox.get()) is not None:
            try:
                jobs.send(job)
            except (BrokenPipeError, OSError):
                pass
            except Exception as err:
                what = type(job).__name__
                inbox.put(
                    protocol.TrackingFailed(
                        f"{what}: not sent to MLflow: {type(err).__name__}: {err}"
                    )
                )
    finally:
        jobs.close()


def _receive_all(news: Connection, inbox: queue.SimpleQueue[protocol.News]) -> None:
    """Reader thread: pass the process's news on until it closes the pipe."""
    while True:
        try:
            inbox.put(news.recv())
        except (EOFError, OSError):
            return
