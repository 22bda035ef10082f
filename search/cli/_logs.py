"""`paretotune logs JOB|STUDY [--follow]`: a Ray job's log, printed as the job server
keeps it. A study's name stands for its latest job (`paretotune.cli._jobs.find_job`);
``--follow`` tails the log until the job ends and exits 1 where the job FAILED. It only
reads: the job is neither changed nor stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from paretotune.cli._jobs import (
    find_job,
    job_status,
    jobs_at,
    need_address,
    no_job,
)
from paretotune.cli._options import Subparsers
from paretotune.errors import ClusterError, first_line


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("logs", help="print a submitted study's Ray job log")
    parser.add_argument("job", help="the job's id (raysubmit_…), or a study: its latest job")
    parser.add_argument(
        "--address", help="the cluster's job server (default $RAY_API_SERVER_ADDRESS)"
    )
    parser.add_argument("--follow", action="store_true", help="keep printing until the job ends")


def run(args: argparse.Namespace) -> int:
    address = need_address(args.address, f"logs {args.job}")
    state = show_logs(args.job, address, args.follow)
    if args.follow:
        print(f"job {args.job}: {state}", file=sys.stderr)
        return 1 if state == "FAILED" else 0
    return 0


def show_logs(target: str, address: str, follow: bool) -> str:
    """Print a job's log (the latest job of a study called ``target`` if no job has that
    id); with ``follow``, until the job ends. Returns the job's final state."""
    client, jobs = jobs_at(address)
    job = find_job(jobs, target)
    if job is None:
        raise no_job(target, address, jobs)
    if not follow:
        try:
            text = client.get_job_logs(job.submission_id)
        except (OSError, RuntimeError) as err:
            raise ClusterError(
                f"--address {address}: cannot read the log of {target}: {first_line(err)}"
            ) from None
        sys.stdout.write(text)
        sys.stdout.flush()
        return job.status
    import asyncio  # (~30 ms: not for every command's start)

    asyncio.run(tail_log(client, job.submission_id))
    return job_status(client, job.submission_id)


async def tail_log(client: Any, job_id: str) -> None:
    """Print a job's log as the job server receives it, until the job ends."""
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()
