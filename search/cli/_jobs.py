"""The Ray jobs of studies, as `paretotune status`, `logs` and `stop` read them through
Ray's Job API: the job server's address, a client for it, every job it knows and the one
a command names. A submitted study is a Ray job whose metadata names it
(``paretotune.study``, set by `paretotune.cli._submit.submit_study`), or whose entrypoint
does (``paretotune run … --name STUDY``), so a study is found by its name as well as by
its job's id.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import asdict, dataclass
from typing import Any

from paretotune.errors import ClusterError, JobNotFoundError, ParetotuneError, first_line

STUDY_METADATA = "paretotune.study"  # the job metadata key `submit_study` names the study by
TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


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
        return asdict(self)


def address_of(given: str | None) -> str | None:
    """The job server: ``--address``, else ``$RAY_API_SERVER_ADDRESS`` (as `ray job` reads)."""
    return given or os.environ.get("RAY_API_SERVER_ADDRESS") or None


def need_address(given: str | None, what: str) -> str:
    """`address_of`, which ``what`` (the command, in words) cannot do without.

    Raises:
        ParetotuneError: neither ``--address`` nor ``$RAY_API_SERVER_ADDRESS`` is given.
    """
    address = address_of(given)
    if not address:
        raise ParetotuneError(
            f"{what} needs the cluster's job server: --address http://HEAD:8265 "
            "(or $RAY_API_SERVER_ADDRESS)"
        )
    return address


def jobs_at(address: str) -> tuple[Any, list[Job]]:
    """A `JobSubmissionClient` for the job server at ``address``, and every job it knows,
    oldest first.

    Raises:
        ClusterError: the job server cannot be reached there, or does not list its jobs.
    """
    client = _job_client(address)
    return client, _list_jobs(client, address)


def _job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (OSError, RuntimeError, ValueError, TypeError) as err:
        raise ClusterError(
            f"--address {address}: cannot reach a Ray job server: {first_line(err)}"
        ) from None


def _list_jobs(client: Any, address: str) -> list[Job]:
    try:
        details = client.list_jobs()
    except (OSError, RuntimeError) as err:
        raise ClusterError(
            f"--address {address}: cannot list the jobs: {first_line(err)}"
        ) from None
    jobs = [_job_of(d) for d in details]
    return sorted(jobs, key=lambda j: (j.start_time or 0.0, j.submission_id))


def job_status(client: Any, job_id: str) -> str:
    """The job's state now (``UNKNOWN`` where the server does not say)."""
    try:
        return str(client.get_job_status(job_id)).split(".")[-1]
    except (OSError, RuntimeError):
        return "UNKNOWN"


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


def no_job(target: str, address: str, jobs: list[Job]) -> JobNotFoundError:
    """The error for a ``target`` that names no job among ``jobs`` (the latest listed)."""
    known = ", ".join(j.submission_id for j in jobs[-5:]) or "none"
    return JobNotFoundError(
        f"no job {target!r} at {address}, nor a job of a study of that name "
        f"(latest jobs there: {known})"
    )


def _clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))
