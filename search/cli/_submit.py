"""`paretotune submit SPEC --address URL`: submitting a study to a Ray cluster as a Ray
job whose driver is `paretotune run`; with ``--wait``, its log and exit 1 unless it
SUCCEEDED."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from paretotune.cli._options import Subparsers, add_overrides, add_storage, overrides_of
from paretotune.errors import ClusterError

if TYPE_CHECKING:
    from paretotune.spaces import Overrides

SUBMIT_OVERRIDES = ("trials", "workers", "epochs", "name")  # what `submit` passes on
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
_AGENT_WAIT_S = 90.0


_LOCAL_SCHEMES = ("sqlite:", "file:")


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("submit", help="submit a study to a Ray cluster as a Ray job")
    parser.add_argument("spec", help="path to the study's YAML spec")
    parser.add_argument(
        "--address", required=True, help="the cluster's job server, e.g. http://head:8265"
    )
    add_overrides(parser, SUBMIT_OVERRIDES)
    add_storage(parser)
    parser.add_argument("--tracking-uri", help="MLflow URI reachable from the cluster")
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    parser.add_argument(
        "--wait-timeout", type=float, default=None, help="give up waiting after S s"
    )


def run(args: argparse.Namespace) -> int:
    from paretotune.study import resolve_storage_url, resolve_tracking_uri

    for what, url in (
        ("--storage", resolve_storage_url(args.storage)),
        ("--tracking-uri", resolve_tracking_uri(args.tracking_uri)),
    ):
        if is_local_only(url):
            print(
                f"warning: {what} {url} is a local file: the cluster's driver writes its own "
                "copy there, not yours; use a database or server URL",
                file=sys.stderr,
            )
    job_id = submit_study(
        args.spec,
        args.address,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        overrides=overrides_of(args),
    )
    print(
        f"submitted job {job_id}; follow it with: ray job logs --address {args.address} "
        f"--follow {job_id}"
    )
    if not args.wait:
        return 0
    status, logs = wait_for_job(args.address, job_id, timeout_s=args.wait_timeout)
    print(logs, end="")
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def submit_study(
    spec_path: str | Path,
    address: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    overrides: Overrides | None = None,
) -> str:
    """Validate the spec here, then submit it to the cluster's job server; return the job id.

    The job's working directory holds only the spec, so nothing else is uploaded; the
    cluster's image must have paretotune installed (see deploy/README.md). Storage and
    tracking URIs are passed to the job as-is: they must be reachable from the cluster.

    Raises:
        SpecError: the spec or an override is invalid (nothing is submitted).
    """
    from paretotune.spaces import Overrides, load_spec
    from paretotune.study import resolve_storage_url, resolve_tracking_uri
    from paretotune.study._prepare import apply_overrides
    from ray.job_submission import JobSubmissionClient

    overrides = overrides or Overrides()
    spec = load_spec(spec_path)
    apply_overrides(spec, overrides)
    storage_url = resolve_storage_url(storage)
    tracking = resolve_tracking_uri(tracking_uri)
    arguments = [
        "paretotune",
        "run",
        "spec.yaml",
        "--no-progress",
        "--storage",
        storage_url,
        "--tracking-uri",
        tracking,
    ]
    arguments += overrides.as_arguments()
    with tempfile.TemporaryDirectory(prefix="paretotune-job-") as folder:
        shutil.copy(spec_path, Path(folder) / "spec.yaml")
        deadline = time.monotonic() + _AGENT_WAIT_S
        while True:
            try:
                client = JobSubmissionClient(address)
                return client.submit_job(
                    entrypoint=shlex.join(arguments),
                    runtime_env={"working_dir": folder},
                    metadata={"paretotune.study": overrides.name or spec.name},
                )
            except (ConnectionError, RuntimeError) as err:
                # A freshly started head answers "No available agent" for a few seconds.
                if "No available agent" in str(err) and time.monotonic() < deadline:
                    time.sleep(2.0)
                    continue
                raise ClusterError(f"--address {address}: cannot submit the job: {err}") from None


def wait_for_job(address: str, job_id: str, *, timeout_s: float | None = None) -> tuple[str, str]:
    """Poll the job until it ends; return its final status and its logs."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
    status = str(client.get_job_status(job_id))
    while status.split(".")[-1] not in _TERMINAL and time.monotonic() < deadline:
        time.sleep(1.0)
        status = str(client.get_job_status(job_id))
    return status.split(".")[-1], client.get_job_logs(job_id)


def is_local_only(url: str) -> bool:
    """True for storage/tracking URLs a remote cluster cannot reach (files on this machine)."""
    return url.startswith(_LOCAL_SCHEMES) or "://" not in url
