"""`paretotune status`, `logs` and `stop`: what a study is doing, and stopping it cleanly.

Whether a driver runs a study is read from its driver lock (`paretotune.study._lock`):
for a journal file or a SQLite database, ``<file>.<study>.lock`` is ``flock``-ed by the
driver for its whole run and holds ``{pid, host, since}``. It is tested with a
non-blocking shared ``flock`` on a descriptor of its own, released at once; a lock file
that does not exist is not created. A study on a database server is tested by taking its
lock and letting it go at once.

A submitted study is a Ray job whose metadata names it (``paretotune.study``, set by
`paretotune.cli._submit.submit_study`), or whose entrypoint does (``--name STUDY``).

Stopping never kills: a local driver gets SIGINT (SIGTERM where it ignores SIGINT, as a
driver started with ``&`` from a script does), which it turns into an orderly end (its
running trials closed as interrupted and queued again, MLflow closed, the lock let go);
a job is stopped by Ray, which sends its driver SIGTERM, which the driver turns into an
orderly exit too. `status` and `logs` only read: they create no storage, lock or MLflow
store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import math
import os
import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretotune.errors import ClusterError, ParetotuneError, StudyBusyError, StudyNotFoundError
from paretotune.study import resolve_storage_url
from paretotune.study._lock import _sqlite_file, driver_lock, holder_text
from paretotune.study._storage import journal_path

if TYPE_CHECKING:
    from paretotune.results.client import Client

STUDY_METADATA = "paretotune.study"  # the job metadata key `submit_study` names the study by
TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
STATES = ("COMPLETE", "FAIL", "INTERRUPTED", "PRUNED", "RUNNING", "WAITING")
STOP_TIMEOUT_S = 60.0
PROGRESS_EVERY_S = 10.0
_POLL_S = 0.5
_HOLDER_WORDS = re.compile(r"by another driver \((.*)\); wait for it")
_PID_HOST = re.compile(r"^pid (\d+) on (.+), since \d\d:\d\d:\d\d$")


class NotRunningError(ParetotuneError, RuntimeError):
    """The study (or job) to stop is not running; the message names it."""


class JobNotFoundError(ParetotuneError, LookupError):
    """No Ray job of that id (nor any job of a study of that name) at the address."""


class StopTimeoutError(ParetotuneError, RuntimeError):
    """The driver did not let go of its study in time (exit 1: it may still be closing)."""


# -- who runs a study ------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """The driver holding a study's lock: its pid and host where known, and in words."""

    text: str
    pid: int | None = None
    host: str | None = None
    since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "since": self.since, "holder": self.text}


def driver_holder(storage_url: str | None, study: str) -> Holder | None:
    """The live driver running ``study`` now, or None. Creates nothing."""
    url = resolve_storage_url(storage_url)
    beside = journal_path(url) or _sqlite_file(url)
    if beside is not None:
        return _file_holder(beside.with_name(f"{beside.name}.{study}.lock"))
    if url.startswith("sqlite:"):  # an in-memory database: no other process can run it
        return None
    try:
        with driver_lock(url, study):
            return None
    except StudyBusyError as err:
        found = _HOLDER_WORDS.search(str(err))
        return _holder_of_words(found.group(1) if found else "another process")


def _file_holder(path: Path) -> Holder | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        for _ in range(10):  # a driver that just took the lock writes its name right after
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            try:
                held = json.loads(os.pread(fd, 4096, 0) or b"{}")
                since = float(held["since"])
                return Holder(
                    holder_text(held["pid"], held["host"], since),
                    int(held["pid"]),
                    str(held["host"]),
                    since,
                )
            except (ValueError, KeyError, TypeError):
                time.sleep(0.1)
        return Holder("another process")
    finally:
        os.close(fd)


def _holder_of_words(text: str) -> Holder:
    found = _PID_HOST.match(text)
    if found is None:
        return Holder(text)
    return Holder(text, int(found.group(1)), found.group(2))


# -- Ray jobs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A Ray job as `status` shows it."""

    submission_id: str
    job_id: str | None
    status: str
    study: str | None
    entrypoint: str
    start_time: float | None  # Unix seconds
    end_time: float | None
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_JOB_STATES

    def words(self) -> str:
        when = ""
        if self.start_time:
            when = f", started {_clock(self.start_time)}"
            if self.end_time:
                when += f", ended {_clock(self.end_time)}"
        return f"job {self.submission_id} {self.status}{when}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "job_id": self.job_id,
            "status": self.status,
            "study": self.study,
            "entrypoint": self.entrypoint,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "message": self.message,
        }


def address_of(given: str | None) -> str | None:
    """The job server: ``--address``, else ``$RAY_API_SERVER_ADDRESS`` (as `ray job` reads)."""
    return given or os.environ.get("RAY_API_SERVER_ADDRESS") or None


def _need_address(given: str | None, what: str) -> str:
    address = address_of(given)
    if not address:
        raise ParetotuneError(
            f"{what} needs the cluster's job server: --address http://HEAD:8265 "
            "(or $RAY_API_SERVER_ADDRESS)"
        )
    return address


def job_client(address: str) -> Any:
    """A `JobSubmissionClient` for ``address``.

    Raises:
        ClusterError: the job server cannot be reached there.
    """
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (OSError, RuntimeError, ValueError, TypeError) as err:
        raise ClusterError(
            f"--address {address}: cannot reach a Ray job server: {_first(err)}"
        ) from None


def list_jobs(client: Any, address: str) -> list[Job]:
    """Every job the cluster knows, oldest first."""
    try:
        details = client.list_jobs()
    except (OSError, RuntimeError) as err:
        raise ClusterError(f"--address {address}: cannot list the jobs: {_first(err)}") from None
    jobs = [_job_of(d) for d in details]
    return sorted(jobs, key=lambda j: (j.start_time or 0.0, j.submission_id))


def _job_of(details: Any) -> Job:
    status = str(details.status).split(".")[-1]
    start, end = details.start_time, details.end_time
    return Job(
        submission_id=details.submission_id or details.job_id or "?",
        job_id=details.job_id,
        status=status,
        study=_study_of_job(details.metadata or {}, details.entrypoint or ""),
        entrypoint=details.entrypoint or "",
        start_time=start / 1000 if start else None,  # Ray keeps milliseconds
        end_time=end / 1000 if end else None,
        message=details.message or "",
    )


def _study_of_job(metadata: dict[str, str], entrypoint: str) -> str | None:
    """The study a job runs: its metadata's ``paretotune.study``, else a ``paretotune
    run … --name STUDY`` entrypoint's name."""
    if metadata.get(STUDY_METADATA):
        return metadata[STUDY_METADATA]
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        return None
    if "paretotune" not in " ".join(words[:3]) or "run" not in words:
        return None
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "--name":
            return value
        if flag.startswith("--name="):
            return flag.removeprefix("--name=")
    return None


def find_job(jobs: list[Job], target: str) -> Job | None:
    """The job with id ``target`` (submission or job id), else the latest job of the study
    called ``target``, else None."""
    for job in jobs:
        if target in (job.submission_id, job.job_id):
            return job
    of_study = [job for job in jobs if job.study == target]
    return of_study[-1] if of_study else None


def _no_job(target: str, address: str, jobs: list[Job]) -> JobNotFoundError:
    known = ", ".join(j.submission_id for j in jobs[-5:]) or "none"
    return JobNotFoundError(
        f"no job {target!r} at {address}, nor a job of a study of that name "
        f"(latest jobs there: {known})"
    )


# -- status ------------------------------------------------------------------------------


@dataclass
class StudyStatus:
    """One study: its trials by state, its front, its driver and its jobs."""

    name: str
    storage: str
    stored: bool  # False: only a job names it; the study is not in the storage (yet)
    trials: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    interrupted: list[int] = field(default_factory=list)
    objectives: dict[str, str] = field(default_factory=dict)
    pareto_size: int = 0
    hypervolume: float = 0.0
    stop_reason: str | None = None
    driver: Holder | None = None
    jobs: list[Job] | None = None  # None: no job server asked

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "storage": self.storage,
            "stored": self.stored,
            "trials": self.trials,
            "interrupted_trials": self.interrupted,
            "objectives": self.objectives,
            "pareto_size": self.pareto_size,
            "hypervolume": self.hypervolume if math.isfinite(self.hypervolume) else None,
            "stop_reason": self.stop_reason,
            "running": self.driver is not None,
            "driver": self.driver.as_dict() if self.driver else None,
            "jobs": None if self.jobs is None else [j.as_dict() for j in self.jobs],
        }

    def lines(self) -> list[str]:
        if not self.stored:
            lines = [f"{self.name}: not in {self.storage} (yet)"]
        else:
            counts = self.trials
            failed = f"{counts['FAIL']} failed, {counts['INTERRUPTED']} interrupted"
            if self.interrupted:
                failed += f" ({', '.join(map(str, self.interrupted))})"
            lines = [
                f"{self.name} ({self.storage})",
                f"  trials: {counts['COMPLETE']} complete, {failed}, {counts['PRUNED']} pruned, "
                f"{counts['RUNNING']} running, {counts['WAITING']} waiting",
                f"  Pareto front: {self.pareto_size} trials, hypervolume {self.hypervolume:.4g}",
            ]
            if self.driver is not None:
                lines.append(f"  driver: running ({self.driver.text})")
            else:
                last = f"; last run ended: {self.stop_reason}" if self.stop_reason else ""
                lines.append(f"  driver: not running{last}")
                if counts["RUNNING"]:
                    n = counts["RUNNING"]
                    left = "RUNNING trial was" if n == 1 else "RUNNING trials were"
                    lines.append(
                        f"  {n} {left} left by a driver that died: the next run closes "
                        "them as interrupted and runs them again"
                    )
        for job in self.jobs or ():
            lines.append(f"  {job.words()}")
        if self.jobs == [] and self.stored:
            lines.append("  no Ray job names this study")
        return lines


def collect_status(
    study: str | None, storage: str | None, address: str | None
) -> list[StudyStatus]:
    """The status of ``study`` (None: every study in the storage, and those only a job
    at ``address`` names yet).

    Raises:
        StudyNotFoundError: the storage file does not exist, or holds no such study (and
            no job names it).
        ClusterError: the job server at ``address`` cannot be reached.
    """
    url = resolve_storage_url(storage)
    jobs: list[Job] | None = None
    if address:
        jobs = list_jobs(job_client(address), address)
    client = _reader(url)
    stored = client.study_names() if client is not None else []
    if study is not None:
        names = [study]
    else:
        names = sorted(set(stored) | {j.study for j in jobs or () if j.study})
    statuses = []
    for name in names:
        of_study = None if jobs is None else [j for j in jobs if j.study == name]
        if name in stored:
            assert client is not None
            statuses.append(_status(client, url, name, of_study))
        elif of_study:
            statuses.append(StudyStatus(name, url, stored=False, jobs=of_study))
        elif client is None:
            raise _missing_storage(url)
        else:
            client.load_study(name)  # raises StudyNotFoundError, listing the studies there
    if not statuses and client is None:
        raise _missing_storage(url)
    return statuses


def _reader(url: str) -> Client | None:
    """A `Client` over the storage, or None where its file does not exist (opening it
    would create it)."""
    from paretotune.results.client import Client

    path = journal_path(url) or _sqlite_file(url)
    if path is not None and not path.exists():
        return None
    return Client(storage=url)


def _missing_storage(url: str) -> StudyNotFoundError:
    path = journal_path(url) or _sqlite_file(url)
    return StudyNotFoundError(
        f"--storage {url}: {path} does not exist (no study has run with this storage; "
        "pass --storage, or set $PARETOTUNE_STORAGE)"
    )


def _status(client: Client, url: str, name: str, jobs: list[Job] | None) -> StudyStatus:
    from paretotune.study._attrs import interrupted_numbers, was_interrupted

    summary = client.summary(name)
    study = client.load_study(name)
    marked = interrupted_numbers(study)
    interrupted = sorted(
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL" and was_interrupted(t, marked)
    )
    trials = dict.fromkeys(STATES, 0) | {
        s: n for s, n in summary.trials_by_state.items() if s in STATES
    }
    trials["FAIL"] -= len(interrupted)
    trials["INTERRUPTED"] = len(interrupted)
    return StudyStatus(
        name=name,
        storage=url,
        stored=True,
        trials=trials,
        interrupted=interrupted,
        objectives=summary.objectives,
        pareto_size=summary.pareto_size,
        hypervolume=summary.hypervolume,
        stop_reason=summary.stop_reason,
        driver=driver_holder(url, name),
        jobs=jobs,
    )


# -- stop --------------------------------------------------------------------------------


def stop(
    target: str,
    *,
    storage: str | None,
    address: str | None,
    timeout_s: float = STOP_TIMEOUT_S,
    say: Callable[[str], None] | None = None,
) -> str:
    """Stop the job or the study ``target``; return the line saying what was kept.

    A job id (or, with a job server, a study one of its live jobs runs) is stopped by Ray;
    a study run by a driver on this machine gets SIGINT, and is waited for (at most
    ``timeout_s``) until it lets go of the study.

    Raises:
        NotRunningError: nothing runs ``target``.
        StudyNotFoundError, JobNotFoundError: no such study or job.
        StopTimeoutError: the driver still held the study after ``timeout_s``.
    """
    say = say or _stderr
    if target.startswith("raysubmit_"):
        address = _need_address(address, f"stop {target} (a job id)")
    ended: list[Job] = []
    if address:
        client = job_client(address)
        jobs = list_jobs(client, address)
        job = next((j for j in jobs if target in (j.submission_id, j.job_id)), None)
        if job is not None:
            return _stop_jobs(client, [job], address, storage, timeout_s, say)
        live = [j for j in jobs if j.study == target and not j.ended]
        if live:
            return _stop_jobs(client, live, address, storage, timeout_s, say)
        if target.startswith("raysubmit_"):
            raise _no_job(target, address, jobs)
        ended = [j for j in jobs if j.study == target]
    try:
        return _stop_driver(target, storage, timeout_s, say)
    except (NotRunningError, StudyNotFoundError):
        if not ended:
            raise
        last = ended[-1]
        raise NotRunningError(
            f"study {target!r} is not running: its latest job, {last.submission_id}, "
            f"ended {last.status}"
        ) from None


def _stop_jobs(
    client: Any,
    jobs: list[Job],
    address: str,
    storage: str | None,
    timeout_s: float,
    say: Callable[[str], None],
) -> str:
    if all(job.ended for job in jobs):
        job = jobs[0]
        raise NotRunningError(f"job {job.submission_id} is not running: it ended {job.status}")
    ids = [job.submission_id for job in jobs]
    for job_id in ids:
        try:
            client.stop_job(job_id)
        except (OSError, RuntimeError) as err:
            raise ClusterError(
                f"--address {address}: cannot stop job {job_id}: {_first(err)}"
            ) from None
    say(
        f"stopping {', '.join(ids)}: Ray sends its driver SIGTERM, which closes the running "
        f"trials as interrupted; waiting up to {timeout_s:.0f} s …"
    )
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    noted = started
    while True:
        states = {job_id: _job_status(client, job_id) for job_id in ids}
        if all(s in TERMINAL_JOB_STATES for s in states.values()):
            break
        if time.monotonic() > deadline:
            raise StopTimeoutError(
                f"{', '.join(ids)} still running after {timeout_s:.0f} s; "
                f"`paretotune status --address {address}` shows when it ends"
            )
        if time.monotonic() - noted >= PROGRESS_EVERY_S:
            noted = time.monotonic()
            say(f"… still stopping ({noted - started:.0f} s)")
        time.sleep(_POLL_S)
    study = next((job.study for job in jobs if job.study), None)
    ended = ", ".join(f"job {job_id} {state}" for job_id, state in states.items())
    kept = _kept(study, storage) if study and storage else None
    if study is None:
        return f"stopped: {ended}"
    what = f"{kept}; " if kept else ""
    return (
        f"stopped {study} ({ended}): {what}submit the same spec again to resume "
        "(the interrupted trials run again)"
    )


def _job_status(client: Any, job_id: str) -> str:
    try:
        return str(client.get_job_status(job_id)).split(".")[-1]
    except (OSError, RuntimeError):
        return "UNKNOWN"


def _kept(study: str, storage: str) -> str | None:
    """``N complete, M interrupted`` from the storage, where it can be read (best effort:
    a cluster's storage may not be reachable from here)."""
    try:
        client = _reader(resolve_storage_url(storage))
        if client is None:
            return None
        status = _status(client, resolve_storage_url(storage), study, None)
    except Exception:  # only the report's detail is lost
        return None
    return f"{status.trials['COMPLETE']} complete, {status.trials['INTERRUPTED']} interrupted"


def _stop_driver(
    name: str, storage: str | None, timeout_s: float, say: Callable[[str], None]
) -> str:
    from paretotune.study._attrs import interrupted_numbers

    url = resolve_storage_url(storage)
    client = _reader(url)
    if client is None:
        raise _missing_storage(url)
    before = interrupted_numbers(client.load_study(name))  # StudyNotFoundError: one line
    holder = driver_holder(url, name)
    if holder is None:
        raise NotRunningError(f"study {name!r} in {url} is not running: no driver holds it")
    here = socket.gethostname()
    if holder.pid is None or holder.host is None:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, which cannot be signalled from here: "
            "stop it where it runs"
        )
    if holder.host != here:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, not on this machine ({here}): run "
            "`paretotune stop` there, or give --address for a study submitted as a Ray job"
        )
    sig = _stop_signal(holder.pid)
    try:
        os.kill(holder.pid, sig)
    except ProcessLookupError:
        pass  # it ended meanwhile
    except PermissionError:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, which this user may not signal"
        ) from None
    say(
        f"stopping {name}: sent {sig.name} to pid {holder.pid}; waiting up to "
        f"{timeout_s:.0f} s for it to close its running trials …"
    )
    started = time.monotonic()
    noted = started
    while driver_holder(url, name) is not None:
        if time.monotonic() - started > timeout_s:
            raise StopTimeoutError(
                f"pid {holder.pid} still runs study {name!r} after {timeout_s:.0f} s (it may "
                f"still be closing; `paretotune status {name}` shows when it is done)"
            )
        if time.monotonic() - noted >= PROGRESS_EVERY_S:
            noted = time.monotonic()
            say(f"… pid {holder.pid} is still closing ({noted - started:.0f} s)")
        time.sleep(_POLL_S)
    while _alive(holder.pid) and time.monotonic() - started < timeout_s:
        time.sleep(_POLL_S)  # the lock is let go before the driver stops its Ray
    after = _reader(url)
    assert after is not None
    status = _status(after, url, name, None)
    new = sorted(set(status.interrupted) - before)
    which = f" ({', '.join(map(str, new))}: queued to run again)" if new else ""
    return (
        f"stopped {name}: {status.trials['COMPLETE']} complete, {len(new)} interrupted{which}; "
        "run it again to resume"
    )


def _stop_signal(pid: int) -> signal.Signals:
    """SIGINT, unless the process ignores it (a job started with ``&`` from a script
    inherits SIGINT ignored): then SIGTERM, which the driver also ends in order on."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # no /proc (macOS): SIGINT
        return signal.SIGINT
    for line in lines:
        if line.startswith("SigIgn:"):
            if int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)):
                return signal.SIGTERM
    return signal.SIGINT


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


# -- logs --------------------------------------------------------------------------------


def show_logs(target: str, address: str, follow: bool) -> str:
    """Print a job's log (the latest job of a study called ``target`` if no job has that
    id); with ``follow``, until the job ends. Returns the job's final state."""
    client = job_client(address)
    jobs = list_jobs(client, address)
    job = find_job(jobs, target)
    if job is None:
        raise _no_job(target, address, jobs)
    if not follow:
        try:
            text = client.get_job_logs(job.submission_id)
        except (OSError, RuntimeError) as err:
            raise ClusterError(
                f"--address {address}: cannot read the log of {target}: {_first(err)}"
            ) from None
        sys.stdout.write(text)
        sys.stdout.flush()
        return job.status
    asyncio.run(_tail(client, job.submission_id))
    return _job_status(client, job.submission_id)


async def _tail(client: Any, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


# -- the commands --------------------------------------------------------------------------


def status_command(args: argparse.Namespace) -> int:
    statuses = collect_status(args.study, args.storage, address_of(args.address))
    if args.json:
        shown = [s.as_dict() for s in statuses]
        print(json.dumps(shown[0] if args.study else shown, indent=2, default=str))
        return 0
    if not statuses:
        print(f"no studies in {resolve_storage_url(args.storage)}")
        return 0
    print("\n\n".join("\n".join(status.lines()) for status in statuses))
    return 0


def logs_command(args: argparse.Namespace) -> int:
    address = _need_address(args.address, f"logs {args.job}")
    state = show_logs(args.job, address, args.follow)
    if args.follow:
        print(f"job {args.job}: {state}", file=sys.stderr)
        return 1 if state == "FAILED" else 0
    return 0


def stop_command(args: argparse.Namespace) -> int:
    try:
        line = stop(
            args.target,
            storage=args.storage,
            address=address_of(args.address),
            timeout_s=args.timeout,
        )
    except StopTimeoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(line)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": status_command,
    "logs": logs_command,
    "stop": stop_command,
}


def _clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
