"""The `paretotune` command line. A user's mistake (a `ParetotuneError`) gets one line per
problem and exit code 2 (a cluster that cannot be reached: 1); a bug exits 1 with its
traceback."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from paretotune.errors import ClusterError, ParetotuneError, Terminated

if TYPE_CHECKING:
    from paretotune.results.client import Client
    from paretotune.results.records import Compute, TrialRecord

EXIT_BUG = 1

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
# The machine refused a write or a read: a full or read-only disk, a quota, permissions.
# The user's to fix, so one line, not a traceback.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretotune",
        description="Multi-objective search of accuracy vs. training time vs. latency.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study from a YAML spec, or resume it")
    run.add_argument("spec", help="path to the study's YAML spec")
    run.add_argument("--trials", type=int, help="total trial budget (finished trials count)")
    run.add_argument("--workers", type=int, help="trials run at once")
    run.add_argument("--epochs", type=int, help="epochs per trial")
    run.add_argument("--timeout", dest="timeout_s", type=float, help="stop asking after S s")
    run.add_argument("--name", help="study name (default: the spec's name)")
    run.add_argument("--sampler", choices=["auto", "tpe", "nsga2", "random"])
    run.add_argument(
        "--early-stopping", choices=["none", "mo_asha"], help="stop unpromising trials early"
    )
    run.add_argument(
        "--constraint",
        dest="constraints",
        action="append",
        help="a condition a feasible trial meets, e.g. 'latency_ms <= 0.2' (repeatable; "
        "replaces the spec's constraints)",
    )
    run.add_argument(
        "--stop-when",
        help="end the study once a feasible trial meets this, e.g. 'accuracy >= 0.98'",
    )
    _add_storage(run)
    run.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress bar")

    submit = sub.add_parser("submit", help="submit a study to a Ray cluster as a Ray job")
    submit.add_argument("spec", help="path to the study's YAML spec")
    submit.add_argument(
        "--address", required=True, help="the cluster's job server, e.g. http://head:8265"
    )
    submit.add_argument("--trials", type=int)
    submit.add_argument("--workers", type=int)
    submit.add_argument("--epochs", type=int)
    submit.add_argument("--name")
    _add_storage(submit)
    submit.add_argument("--tracking-uri", help="MLflow URI reachable from the cluster")
    submit.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    submit.add_argument(
        "--wait-timeout", type=float, default=None, help="give up waiting after S s"
    )

    pareto = sub.add_parser("pareto", help="print a study's Pareto front")
    pareto.add_argument("study")
    _add_storage(pareto)
    pareto.add_argument("--json", action="store_true", help="machine-readable output")

    studies = sub.add_parser("studies", help="list the studies in a storage")
    _add_storage(studies)
    studies.add_argument("--json", action="store_true")

    status = sub.add_parser(
        "status",
        help="a study's trials by state, front, driver and Ray jobs (every study's without "
        "STUDY); reads only",
    )
    status.add_argument("study", nargs="?", help="the study (default: every study)")
    _add_storage(status)
    status.add_argument(
        "--address",
        help="also show the Ray jobs of the study at this job server, e.g. http://head:8265 "
        "(default $RAY_API_SERVER_ADDRESS)",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")

    logs = sub.add_parser("logs", help="print a submitted study's Ray job log")
    logs.add_argument("job", help="the job's id (raysubmit_…), or a study: its latest job")
    logs.add_argument(
        "--address", help="the cluster's job server (default $RAY_API_SERVER_ADDRESS)"
    )
    logs.add_argument("--follow", action="store_true", help="keep printing until the job ends")

    stop = sub.add_parser(
        "stop",
        help="stop a study's driver (on this machine) or a submitted study's Ray job cleanly: "
        "running trials are closed as interrupted, the next run resumes",
    )
    stop.add_argument("target", metavar="STUDY|JOB", help="a study, or a Ray job id")
    _add_storage(stop)
    stop.add_argument("--address", help="the cluster's job server, to stop a submitted study's job")
    stop.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="wait at most S s for the driver to close its trials (default 60)",
    )

    best = sub.add_parser("best", help="the best trial under constraints, by one metric")
    best.add_argument("study")
    best.add_argument("--where", help="condition, e.g. 'latency_ms <= 0.2 and size_bytes < 1e6'")
    best.add_argument("--prefer", help="metric to optimise (default: the first objective)")
    _add_query_options(best)

    knee = sub.add_parser("knee", help="the Pareto trial nearest the utopia point")
    knee.add_argument("study")
    _add_query_options(knee)

    sync = sub.add_parser(
        "sync",
        help="make a study's MLflow record agree with Optuna (after an MLflow outage or an "
        "unwritable artifact store), without running a trial",
    )
    sync.add_argument("study", help="the study's name")
    _add_storage(sync)
    _add_tracking(sync)

    export = sub.add_parser("export", help="write a spec that re-trains one trial")
    export.add_argument("study")
    export.add_argument("number", type=int, help="the trial number")
    export.add_argument("-o", "--output", required=True, help="the YAML file to write")
    _add_storage(export)

    up = sub.add_parser(
        "up", help="start a local Ray and an MLflow server that later runs here reuse"
    )
    up.add_argument("--cpus", type=int, help="Ray's logical CPUs (default: the core count)")
    sub.add_parser("down", help="stop what `paretotune up` started here")

    retrain = sub.add_parser("retrain", help="train an exported one-trial spec, print metrics")
    retrain.add_argument("spec", help="a YAML written by `paretotune export`")
    _add_storage(retrain)
    _add_tracking(retrain)
    retrain.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _add_query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="include trials violating the spec's constraints"
    )
    _add_storage(parser)
    _add_tracking(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _add_tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or the study's own)"
    )


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="Optuna storage: a journal file path (default paretotune.journal), "
        "sqlite:///…, postgresql://…",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ParetotuneError as err:
        for line in err.lines():
            print(f"error: {line}", file=sys.stderr)
        return 1 if isinstance(err, ClusterError) else EXIT_USAGE
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {_os_error_line(err, args.command)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        print("interrupted: run the same command again to resume the study", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except Exception as err:
        if not _storage_unreachable(err):
            raise
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        print(f"error: the storage cannot be reached: {first}", file=sys.stderr)
        return 1


def _storage_unreachable(err: Exception) -> bool:
    """A database or Redis storage that refused or dropped the connection (SQLAlchemy's
    OperationalError, redis' ConnectionError): the cluster's to fix, so one line."""
    kind = type(err)
    return (kind.__module__, kind.__name__) in {
        ("sqlalchemy.exc", "OperationalError"),
        ("redis.exceptions", "ConnectionError"),
    }


def _os_error_line(err: OSError, command: str) -> str:
    where = f"{err.filename}: " if err.filename else ""
    line = f"{where}{err.strerror or err} ({errno.errorcode.get(err.errno or 0, 'OSError')})"
    if command == "run":
        line += (
            "; the study keeps every trial recorded before it: fix that, then run the same "
            "command again to resume"
        )
    return line


def _run(args: argparse.Namespace) -> int:
    from paretotune._run import run_study

    _use_services()
    result = run_study(
        args.spec,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        progress=not args.no_progress,
        trials=args.trials,
        workers=args.workers,
        epochs=args.epochs,
        timeout_s=args.timeout_s,
        name=args.name,
        sampler=args.sampler,
        early_stopping=args.early_stopping,
        stop_when=args.stop_when,
        constraints=args.constraints,
    )
    print(
        f"{result.name}: {result.trials_run} trials run in {result.wall_time_s:.1f} s "
        f"({result.n_complete} complete, {result.n_failed} failed, {result.n_pruned} stopped "
        f"early in total); storage {result.storage}"
    )
    print(
        f"stopped: {_why(result.stop_reason, result.goal_met_by)}; {_compute_words(result.compute)}"
    )
    _warn_tracking(result.tracking_errors)
    return 0


def _warn_tracking(errors: list[str], shown: int = 4) -> None:
    """MLflow's trouble on stderr: the first few lines, and always the last (the summary
    of what was skipped or held, and what to do about it)."""
    lines = errors if len(errors) <= shown + 1 else [*errors[:shown], errors[-1]]
    for i, line in enumerate(lines):
        if i == shown and len(errors) > shown + 1:
            print(f"warning: MLflow: … {len(errors) - shown - 1} more", file=sys.stderr)
        print(f"warning: MLflow: {line.removeprefix('MLflow: ')}", file=sys.stderr)


def _use_services() -> None:
    """Join the Ray that `paretotune up` started here, when the user named neither a Ray
    nor an MLflow. Runs still write this folder's MLflow store directly (the default
    ``sqlite:///mlflow.db``, the store `up`'s server shows): cheaper than through the
    server, which would add an HTTP hop and a second process's work to every call."""
    if os.environ.get("RAY_ADDRESS") or os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from paretotune.cli._services import running_services

    services = running_services()
    if services is None:
        return
    os.environ["RAY_ADDRESS"] = services.ray_address
    print(
        f"using `paretotune up`'s Ray {services.ray_address}; "
        f"the MLflow UI is at {services.tracking_uri}",
        file=sys.stderr,
    )


def _up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from paretotune.cli._services import start_services

    print("starting a local Ray and an MLflow server on 127.0.0.1 …", file=sys.stderr)
    services = start_services(Path.cwd(), args.cpus)
    print(f"export RAY_ADDRESS={services.ray_address}")
    print(f"MLflow UI over this folder's store: {services.tracking_uri}", file=sys.stderr)
    print(
        "`paretotune run` in this folder joins that Ray without the export; "
        "`paretotune down` stops both",
        file=sys.stderr,
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    from pathlib import Path

    from paretotune.cli._services import stop_services

    stopped = stop_services(Path.cwd())
    if stopped is None:
        print("nothing to stop: `paretotune up` started nothing in this folder")
    else:
        print(f"stopped Ray {stopped.ray_address} and MLflow {stopped.tracking_uri}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from paretotune.cli._submit import is_local_only, submit_study, wait_for_job
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
    overrides = {
        "trials": args.trials,
        "workers": args.workers,
        "epochs": args.epochs,
        "name": args.name,
    }
    job_id = submit_study(
        args.spec,
        args.address,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        overrides=overrides,
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


def _pareto(args: argparse.Namespace) -> int:
    from paretotune.results.client import Client

    client = Client(storage=args.storage)
    front = client.front(args.study)
    if args.json:
        print(json.dumps([r.as_dict() for r in front.pareto], indent=2, default=str))
        return 0
    from paretotune._progress import print_front

    print_front(front, tracking_uri=None, experiment_id=None)
    return 0


def _studies(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from paretotune.results.client import Client

    summaries = Client(storage=args.storage).studies()
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=2, default=str))
        return 0
    for s in summaries:
        states = ", ".join(f"{n} {state.lower()}" for state, n in s.trials_by_state.items())
        print(
            f"{s.name}: {states}; feasible {s.n_feasible}; Pareto {s.pareto_size}; "
            f"hypervolume {s.hypervolume:.4g}; {_compute_words(s.compute)}; "
            + (f"retried {s.n_retried}; " if s.n_retried else "")
            + f"stopped: {s.stop_reason or '-'}"
        )
    return 0


def _why(reason: str, goal_met_by: int | None) -> str:
    if reason == "goal":
        return f"goal met by trial {goal_met_by}"
    return {"budget": "trial budget spent", "timeout": "timeout"}.get(reason, reason)


def _compute_words(compute: Compute) -> str:
    words = f"{compute.epochs} epochs, {compute.trial_seconds:.1f} trial-s"
    if compute.epochs_saved:
        words += (
            f" ({compute.epochs_saved} epochs, {compute.seconds_saved:.1f} s saved by stopping)"
        )
    return words


def _best(args: argparse.Namespace) -> int:
    client = _client(args)
    record = client.best_config(
        args.study, where=args.where, prefer=args.prefer, feasible_only=not args.all
    )
    return _show(record, args.json)


def _knee(args: argparse.Namespace) -> int:
    record = _client(args).knee_point(args.study, feasible_only=not args.all)
    return _show(record, args.json)


def _export(args: argparse.Namespace) -> int:
    client = _client(args)
    path = client.export(client.trial(args.study, args.number), args.output)
    print(f"wrote {path}: re-train it with `paretotune retrain {path}`")
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from paretotune.cli._retrain import retrain

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = retrain(args.spec, storage=args.storage, tracking_uri=args.tracking_uri)
    if result.trials_run == 0:
        print(f"note: {result.name} was trained before; showing that trial", file=sys.stderr)
    client = _client(args)
    complete = [r for r in client.trials(result.name) if r.state == "COMPLETE"]
    if not complete:
        print(f"error: the trial of {result.name} did not complete", file=sys.stderr)
        return 1
    return _show(client.trial(result.name, complete[-1].number), args.json)


def _sync(args: argparse.Namespace) -> int:
    from paretotune._run import sync_study

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = sync_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    _warn_tracking(result.tracking_errors)
    print(
        f"synced {result.name} with MLflow at {result.tracking_uri}: "
        f"{result.repaired} trial records written again"
        + (f", {result.still_held} still held" if result.still_held else "")
    )
    return 1 if result.still_held else 0


def _client(args: argparse.Namespace) -> Client:
    from paretotune.results.client import Client

    return Client(storage=args.storage, tracking_uri=getattr(args, "tracking_uri", None))


def _show(record: TrialRecord, as_json: bool) -> int:
    """A chosen trial: JSON, or its objectives, params, run and model in a few lines."""
    if as_json:
        print(json.dumps(record.as_dict(), indent=2, default=str))
        return 0
    rank = "-" if record.pareto_rank is None else record.pareto_rank
    feasible = "feasible" if record.feasible else "violates the constraints"
    print(f"trial {record.number} of {record.study} (Pareto rank {rank}, {feasible})")
    shown = dict(record.values) or dict(record.metrics)
    print("  " + "  ".join(f"{k} {v:.5g}" for k, v in shown.items()))
    print("  " + ", ".join(f"{k}={v}" for k, v in record.params.items()))
    print(f"  MLflow run {record.mlflow_run_id or '-'}; model {record.model_uri or '-'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from paretotune.cli._status import status_command

    return status_command(args)


def _logs(args: argparse.Namespace) -> int:
    from paretotune.cli._logs import logs_command

    return logs_command(args)


def _stop(args: argparse.Namespace) -> int:
    from paretotune.cli._stop import stop_command

    return stop_command(args)


_COMMANDS = {
    "run": _run,
    "submit": _submit,
    "pareto": _pareto,
    "studies": _studies,
    "best": _best,
    "knee": _knee,
    "sync": _sync,
    "export": _export,
    "retrain": _retrain,
    "up": _up,
    "down": _down,
    "status": _status,
    "logs": _logs,
    "stop": _stop,
}


def entry() -> None:
    """The ``paretotune`` command: `main`, then a quick exit.

    When `main` returns, everything is on disk: the journal syncs each write and the
    MLflow logging process has exited. Ray is stopped in order, a start still under way
    included (a local Ray's agents outlive a raylet that is simply killed, and macOS has
    no parent-death signal), then the rest of the interpreter's teardown is skipped.
    """
    try:
        code = main()
    except Exception:  # a bug: its traceback, exit 1, and Ray still stopped in order
        traceback.print_exc()
        code = EXIT_BUG
    from paretotune.execution import stop_ray

    stop_ray()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
