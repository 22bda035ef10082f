"""`paretotune submit SPEC --address URL`: submitting a study to a Ray cluster as a Ray
job whose driver is `paretotune run`; with ``--wait``, its log as it is written (progress
lines, then the front) and exit 1 unless it SUCCEEDED."""

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
_SETTLE_S = 15.0
# How long Ray waits, once `paretotune stop` (or `ray job stop`) sent the job's driver
# SIGTERM, before it kills it (Ray's own default, 3 s, cuts the driver's orderly end:
# its running trials were left RUNNING). Longer than `stop`'s own wait.
STOP_GRACE_S = 120
# The largest dataset file `submit` ships with the job (Ray uploads the job's working
# directory through its GCS, which refuses packages over 500 MiB).
SHIP_LIMIT_MIB = 100


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
    parser.add_argument(
        "--data-on-cluster",
        action="store_true",
        help="read the spec's dataset.path on the cluster as written (an absolute path every "
        f"node reads) instead of shipping the file with the job (up to {SHIP_LIMIT_MIB} MiB)",
    )
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
        ship_data=not args.data_on_cluster,
    )
    print(
        f"submitted job {job_id}; follow it with: ray job logs --address {args.address} "
        f"--follow {job_id}"
    )
    if not args.wait:
        return 0
    status = follow_job(args.address, job_id, timeout_s=args.wait_timeout)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def submit_study(
    spec_path: str | Path,
    address: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    overrides: Overrides | None = None,
    ship_data: bool = True,
) -> str:
    """Validate the spec here, then submit it to the cluster's job server; return the job id.

    The job's working directory holds the spec and, with ``ship_data``, the dataset file
    it names (`pack_job`); the cluster's image must have paretotune installed (see
    deploy/README.md). Storage and tracking URIs are passed to the job as-is: they must be
    reachable from the cluster.

    Raises:
        SpecError: the spec or an override is invalid, or its dataset cannot be shipped
            (nothing is submitted).
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
        "--storage",
        storage_url,
        "--tracking-uri",
        tracking,
    ]
    arguments += overrides.as_arguments()
    with tempfile.TemporaryDirectory(prefix="paretotune-job-") as folder:
        pack_job(Path(spec_path), spec.dataset.path, Path(folder), ship_data=ship_data)
        deadline = time.monotonic() + _AGENT_WAIT_S
        while True:
            try:
                client = JobSubmissionClient(address)
                return client.submit_job(
                    entrypoint=shlex.join(arguments),
                    runtime_env={
                        "working_dir": folder,
                        # read by the job's supervisor actor, which runs in this env
                        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S)},
                    },
                    metadata={"paretotune.study": overrides.name or spec.name},
                )
            except (ConnectionError, RuntimeError) as err:
                # A freshly started head answers "No available agent" for a few seconds.
                if "No available agent" in str(err) and time.monotonic() < deadline:
                    time.sleep(2.0)
                    continue
                raise ClusterError(f"--address {address}: cannot submit the job: {err}") from None


def pack_job(spec_path: Path, dataset_path: str | None, folder: Path, *, ship_data: bool) -> None:
    """Fill the job's working directory: ``spec.yaml`` and, with ``ship_data``, the file
    at ``dataset_path`` (as `load_spec` resolved it) under ``data/``, the spec's
    ``dataset.path`` rewritten to it (it resolves against the spec's folder there too).

    Raises:
        SpecError: the file is missing or over `SHIP_LIMIT_MIB`, or (without
            ``ship_data``) the spec's path is relative: nothing is written.
    """
    import yaml
    from paretotune.errors import SpecError

    if dataset_path is None:
        shutil.copy(spec_path, folder / "spec.yaml")
        return
    raw = yaml.safe_load(spec_path.read_text())
    written = raw["dataset"]["path"]
    if not ship_data:
        if not Path(written).is_absolute():
            raise SpecError(
                [f"dataset.path: {written!r} is relative; with --data-on-cluster give the "
                 "absolute path every node of the cluster reads"]
            )  # fmt: skip
        shutil.copy(spec_path, folder / "spec.yaml")
        return
    source = Path(dataset_path)
    if not source.is_file():
        raise SpecError([f"dataset.path: file {str(source)!r} does not exist"])
    size_mib = source.stat().st_size / 2**20
    if size_mib > SHIP_LIMIT_MIB:
        raise SpecError(
            [f"dataset.path: {source} is {size_mib:.0f} MiB, more than submit ships with a "
             f"job ({SHIP_LIMIT_MIB} MiB); put it where every node reads it and submit "
             "with --data-on-cluster"]
        )  # fmt: skip
    (folder / "data").mkdir()
    shutil.copy(source, folder / "data" / source.name)
    raw["dataset"]["path"] = f"data/{source.name}"
    (folder / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def follow_job(address: str, job_id: str, *, timeout_s: float | None = None) -> str:
    """Print the job's log as it is written (the study's progress lines, then its front)
    until the job ends or ``timeout_s`` passes; return the job's status then."""
    import asyncio

    from paretotune.cli._jobs import job_status
    from paretotune.cli._logs import tail_log
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    try:
        asyncio.run(asyncio.wait_for(tail_log(client, job_id), timeout_s))
    except TimeoutError:
        print(f"(stopped waiting after {timeout_s:g} s; the job goes on)", file=sys.stderr)
        return job_status(client, job_id)
    settled = time.monotonic() + _SETTLE_S  # the log ends a moment before the status
    status = job_status(client, job_id)
    while status not in _TERMINAL and time.monotonic() < settled:
        time.sleep(0.5)
        status = job_status(client, job_id)
    return status


def is_local_only(url: str) -> bool:
    """True for storage/tracking URLs a remote cluster cannot reach (files on this machine)."""
    return url.startswith(_LOCAL_SCHEMES) or "://" not in url
