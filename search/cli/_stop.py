"""`paretotune stop STUDY|JOB`: stopping a study cleanly, and saying what was kept.
Stopping never kills: a local driver gets SIGINT (SIGTERM where it ignores SIGINT, as a
driver started with ``&`` from a script does), which it turns into an orderly end (its
running trials closed as interrupted and queued again, MLflow closed, the lock let go),
and is waited for until it lets go of its driver lock; a job is stopped by Ray, which
sends its driver SIGTERM, which the driver turns into an orderly exit too, and is waited
for until it ends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from paretotune.cli._jobs import (
    TERMINAL_JOB_STATES,
    Job,
    address_of,
    job_status,
    jobs_at,
    need_address,
    no_job,
)
from paretotune.cli._options import Subparsers, add_storage
from paretotune.cli._status import open_reader, study_status
from paretotune.errors import (
    ClusterError,
    NotRunningError,
    StopTimeoutError,
    StudyNotFoundError,
    first_line,
)

HELP = (
    "stop a study's driver (on this machine) or a submitted study's Ray job cleanly: "
    "running trials are closed as interrupted, the next run resumes"
)

STOP_TIMEOUT_S = 60.0


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("stop", help=HELP)
    parser.add_argument("target", metavar="STUDY|JOB", help="a study, or a Ray job id")
    add_storage(parser)
    parser.add_argument(
        "--address", help="the cluster's job server, to stop a submitted study's job"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=STOP_TIMEOUT_S,
        help="wait at most S s for the driver to close its trials (default 60)",
    )


def run(args: argparse.Namespace) -> int:
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
    from paretotune.cli._stop_driver import stop_driver  # (Optuna: only once it stops one)

    say = say or _stderr
    if target.startswith("raysubmit_"):
        address = need_address(address, f"stop {target} (a job id)")
    ended: list[Job] = []
    if address:
        client, jobs = jobs_at(address)
        job = next((j for j in jobs if target in (j.submission_id, j.job_id)), None)
        if job is not None:
            return _stop_jobs(client, [job], address, storage, timeout_s, say)
        live = [j for j in jobs if j.study == target and not j.ended]
        if live:
            return _stop_jobs(client, live, address, storage, timeout_s, say)
        if target.startswith("raysubmit_"):
            raise no_job(target, address, jobs)
        ended = [j for j in jobs if j.study == target]
    try:
        return stop_driver(target, storage, timeout_s, say)
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
    from paretotune.cli._stop_driver import wait_until

    if all(job.ended for job in jobs):
        job = jobs[0]
        raise NotRunningError(f"job {job.submission_id} is not running: it ended {job.status}")
    ids = [job.submission_id for job in jobs]
    for job_id in ids:
        try:
            client.stop_job(job_id)
        except (OSError, RuntimeError) as err:
            raise ClusterError(
                f"--address {address}: cannot stop job {job_id}: {first_line(err)}"
            ) from None
    say(
        f"stopping {', '.join(ids)}: Ray sends its driver SIGTERM, which closes the running "
        f"trials as interrupted; waiting up to {timeout_s:.0f} s …"
    )
    states: dict[str, str] = {}

    def all_ended() -> bool:
        states.update({job_id: job_status(client, job_id) for job_id in ids})
        return all(s in TERMINAL_JOB_STATES for s in states.values())

    wait_until(
        all_ended,
        timeout_s,
        late=f"{', '.join(ids)} still running after {timeout_s:.0f} s; "
        f"`paretotune status --address {address}` shows when it ends",
        progress="… still stopping",
        say=say,
    )
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


def _kept(study: str, storage: str) -> str | None:
    """``N complete, M interrupted`` from the storage, where it can be read (best effort:
    a cluster's storage may not be reachable from here)."""
    from paretotune.study import resolve_storage_url

    try:
        client = open_reader(resolve_storage_url(storage))
        if client is None:
            return None
        status = study_status(client, resolve_storage_url(storage), study, None)
    except Exception:  # only the report's detail is lost
        return None
    return f"{status.trials['COMPLETE']} complete, {status.trials['INTERRUPTED']} interrupted"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
