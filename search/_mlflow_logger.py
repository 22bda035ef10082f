"""The MLflow logging process, started by `search._mlflow_process.MlflowTracker`.

It runs an `MlflowRecorder` on the jobs the driver's `MlflowTracker` sends, in order, and
sends back what it learns. Jobs already waiting when the process gets to a trial are
looked through: a trial whose result is already queued is recorded in one go (run,
params, metrics, tags, end), which saves MLflow a transaction per short trial.

If the driver dies, the process still records every job it was sent, then exits: the
end of the pipe is its signal.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

Job = tuple[str, tuple[Any, ...]]  # (what, arguments)


class Backlog:
    """Jobs received and not yet run, in order, with two shortcuts: a trial's ``finish``
    that arrives while its ``start`` still waits is set aside and joined to the start
    (the trial is recorded in one go), and the newest queued front snapshot is at hand
    (trials recorded before it get their Pareto tags with their results)."""

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.newest_front: Any = None
        self._waiting_starts: set[int] = set()
        self._finishes: dict[int, tuple[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def add(self, job: Job) -> None:
        name, args = job
        if name == "finish" and args[0] in self._waiting_starts:
            self._finishes[args[0]] = (args[1], args[2])
            return
        if name == "start":
            self._waiting_starts.add(args[0])
        elif name == "front":
            self.newest_front = args[0]
        self.jobs.append(job)

    def pop(self) -> Job:
        job = self.jobs.popleft()
        name, args = job
        if name == "start":
            self._waiting_starts.discard(args[0])
        elif name == "front" and args[0] is self.newest_front:
            self.newest_front = None
        return job

    def take_finish(self, number: int) -> tuple[str, Any] | None:
        """The (state, report) of trial ``number`` if its result came before its start ran."""
        return self._finishes.pop(number, None)


def serve(jobs: Connection, news: Connection, tracking_uri: str) -> None:
    """Run jobs until ``close`` or the end of the pipe; report what was learned."""
    from search._mlflow import MlflowRecorder

    try:
        recorder = MlflowRecorder(tracking_uri)
    except Exception as err:  # no store: say so, and end (the driver goes on without)
        _send(news, ("error", f"MLflow at {tracking_uri}: {type(err).__name__}: {err}"))
        news.close()
        return
    backlog = Backlog()
    reported_errors = 0
    while True:
        if not backlog and recorder.has_trials and not jobs.poll(0):
            recorder.warm_up()  # idle between trials: get the final front's imports done
        if not _read_waiting(jobs, backlog, block=not backlog):
            recorder.close("KILLED")  # the driver died: its study did not finish
            break
        name, args = backlog.pop()
        if name == "close":
            recorder.close(*args)
            _tell(news, recorder, reported_errors)
            break
        _run_job(recorder, name, args, backlog, news)
        reported_errors = _tell(news, recorder, reported_errors)
    news.close()


def _read_waiting(jobs: Connection, backlog: Backlog, *, block: bool) -> bool:
    """Move every job already sent into ``backlog`` (waiting for one when ``block``).
    False when nothing is left to do: the pipe ended and the backlog is empty."""
    try:
        if block:
            backlog.add(jobs.recv())
        while jobs.poll(0):
            backlog.add(jobs.recv())
    except (EOFError, OSError):
        pass
    return bool(backlog)


def _run_job(
    recorder: Any, name: str, args: tuple[Any, ...], backlog: Backlog, news: Connection
) -> None:
    if name == "open":
        recorder.open_study(*args)
        _send(news, ("study", recorder.experiment_id or None, recorder.parent_run_id))
    elif name == "start":
        recorder.expect_front(backlog.newest_front)
        number, params = args
        outcome = backlog.take_finish(number)
        _send(news, ("run", number, recorder.start_trial(number, params, outcome)))
        if outcome is not None:
            _send(news, ("recorded", number))
    elif name == "finish":
        recorder.expect_front(backlog.newest_front)
        recorder.finish_trial(*args)
        _send(news, ("recorded", args[0]))
    elif name == "interrupted":
        recorder.mark_interrupted(*args)
    elif name == "repair":
        for number, run_id in recorder.repair(*args).items():
            _send(news, ("run", number, run_id))
    elif name == "front":
        recorder.update_front(*args, superseded=backlog.newest_front is not None)


def _tell(news: Connection, recorder: Any, reported: int) -> int:
    for line in recorder.errors[reported:]:
        _send(news, ("error", line))
    return len(recorder.errors)


def _send(news: Connection, message: tuple[Any, ...]) -> None:
    try:
        news.send(message)
    except (BrokenPipeError, OSError):
        pass  # the driver is gone: keep recording what it sent


def main(argv: list[str]) -> None:
    """The process's entry point: ``JOBS_FD NEWS_FD TRACKING_URI``."""
    jobs_fd, news_fd, uri = int(argv[0]), int(argv[1]), argv[2]
    # MLflow prints "View run ... at: URL" for every run it ends on a tracking server: not
    # for the user's terminal, which shows the study's progress. Errors go back as news.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    serve(Connection(jobs_fd, writable=False), Connection(news_fd, readable=False), uri)
    # Every MLflow call was synchronous, so all is committed: skip the interpreter's
    # teardown, which the driver's close() would wait for (MLflow's exit hooks alone take
    # over a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
