"""The `paretotune` command line. A user's mistake (a `ParetotuneError`) gets one line per
problem and exit code 2 (a cluster that cannot be reached: 1); a bug exits 1 with its
traceback."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import traceback
from collections.abc import Sequence

from paretotune.cli._options import (
    SubcommandParser,
    add_json,
    add_overrides,
    add_query_options,
    add_storage,
    add_tracking,
    at_least_one,
    overrides_of,
    port,
)
from paretotune.cli._read import (
    checked_flags,
    client_of,
    compute_words,
    pareto_command,
    show,
    show_command,
    studies_command,
)
from paretotune.errors import ClusterError, ParetotuneError, Terminated

EXIT_BUG = 1

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `cmd | head`
# The machine refused a write or a read: a full or read-only disk, a quota, permissions.
# The user's to fix, so one line, not a traceback.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


SUBMIT_OVERRIDES = ("trials", "workers", "epochs", "name")  # what `submit` passes on


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretotune",
        description="Multi-objective search of accuracy vs. training time vs. latency.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)

    run = sub.add_parser("run", help="run a study from a YAML spec, or resume it")
    run.add_argument("spec", help="path to the study's YAML spec")
    add_overrides(run)
    add_storage(run)
    run.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress bar")

    submit = sub.add_parser("submit", help="submit a study to a Ray cluster as a Ray job")
    submit.add_argument("spec", help="path to the study's YAML spec")
    submit.add_argument(
        "--address", required=True, help="the cluster's job server, e.g. http://head:8265"
    )
    add_overrides(submit, SUBMIT_OVERRIDES)
    add_storage(submit)
    submit.add_argument("--tracking-uri", help="MLflow URI reachable from the cluster")
    submit.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    submit.add_argument(
        "--wait-timeout", type=float, default=None, help="give up waiting after S s"
    )

    pareto = sub.add_parser(
        "pareto", help="print a study's Pareto-optimal trials, best first; reads only"
    )
    pareto.add_argument("study", help="the study's name")
    pareto.add_argument(
        "--where",
        help="only the trials meeting this condition, e.g. 'latency_ms <= 0.2 and "
        'optimizer == "adam"\' (the language of `best --where`)',
    )
    pareto.add_argument(
        "--sort",
        metavar="METRIC",
        help="best first by this metric, in its direction (default: the first objective)",
    )
    pareto.add_argument("--limit", type=at_least_one, metavar="N", help="show at most N trials")
    add_storage(pareto)
    add_json(pareto)

    show = sub.add_parser(
        "show",
        help="one trial whole: its state, every param and metric, its MLflow run and "
        "model; reads only",
    )
    show.add_argument("study", help="the study's name")
    show.add_argument("number", type=int, help="the trial number")
    add_storage(show)
    add_tracking(show)
    add_json(show)

    studies = sub.add_parser(
        "studies", help="list the studies in a storage, their trials by state; reads only"
    )
    add_storage(studies)
    add_json(studies)

    dashboard = sub.add_parser(
        "dashboard", help="serve a browser dashboard of the studies on 127.0.0.1"
    )
    dashboard.add_argument(
        "study", nargs="?", help="the study to open (default: every study in the storage)"
    )
    add_storage(dashboard)
    dashboard.add_argument(
        "--port", type=port, default=8080, help="the port on 127.0.0.1 (default 8080)"
    )
    dashboard.set_defaults(host="127.0.0.1")  # loopback only: the dashboard has no login

    status = sub.add_parser(
        "status",
        help="a study's trials by state, front, driver and Ray jobs (every study's without "
        "STUDY); reads only",
    )
    status.add_argument("study", nargs="?", help="the study (default: every study)")
    add_storage(status)
    status.add_argument(
        "--address",
        help="also show the Ray jobs of the study at this job server, e.g. http://head:8265 "
        "(default $RAY_API_SERVER_ADDRESS)",
    )
    add_json(status)

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
    add_storage(stop)
    stop.add_argument("--address", help="the cluster's job server, to stop a submitted study's job")
    stop.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="wait at most S s for the driver to close its trials (default 60)",
    )

    best = sub.add_parser("best", help="the best trial under constraints, by one metric")
    best.add_argument("study", help="the study's name")
    best.add_argument("--where", help="condition, e.g. 'latency_ms <= 0.2 and size_bytes < 1e6'")
    best.add_argument("--prefer", help="metric to optimise (default: the first objective)")
    add_query_options(best)

    knee = sub.add_parser("knee", help="the Pareto trial nearest the utopia point")
    knee.add_argument("study", help="the study's name")
    add_query_options(knee)

    sync = sub.add_parser(
        "sync",
        help="make a study's MLflow record agree with Optuna (after an MLflow outage or an "
        "unwritable artifact store), without running a trial",
    )
    sync.add_argument("study", help="the study's name")
    add_storage(sync)
    add_tracking(sync)

    export = sub.add_parser("export", help="write a spec that re-trains one trial")
    export.add_argument("study", help="the study's name")
    export.add_argument("number", type=int, help="the trial number")
    export.add_argument("-o", "--output", required=True, help="the YAML file to write")
    add_storage(export)

    up = sub.add_parser(
        "up", help="start a local Ray and an MLflow server that later runs here reuse"
    )
    up.add_argument("--cpus", type=int, help="Ray's logical CPUs (default: the core count)")
    sub.add_parser("down", help="stop what `paretotune up` started here")

    retrain = sub.add_parser("retrain", help="train an exported one-trial spec, print metrics")
    retrain.add_argument("spec", help="a YAML written by `paretotune export`")
    add_storage(retrain)
    add_tracking(retrain)
    add_json(retrain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ParetotuneError as err:
        for line in err.lines():
            print(f"error: {line}", file=sys.stderr)
        return 1 if isinstance(err, ClusterError) else EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to write
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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
        overrides=overrides_of(args),
    )
    print(
        f"{result.name}: {result.trials_run} trials run in {result.wall_time_s:.1f} s "
        f"({result.n_complete} complete, {result.n_failed} failed, {result.n_pruned} stopped "
        f"early in total"
        + (f"; {result.n_interrupted} interrupted and run again" if result.n_interrupted else "")
        + f"); storage {result.storage}"
    )
    print(
        f"stopped: {_why(result.stop_reason, result.goal_met_by)}; {compute_words(result.compute)}"
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
    from paretotune.tracking.mlflow.view import UI_ENV

    os.environ.setdefault(UI_ENV, services.tracking_uri)  # the front's links: to that server
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


def _dashboard(args: argparse.Namespace) -> int:
    from paretotune.cli._dashboard import dashboard_command

    return dashboard_command(args)


def _why(reason: str, goal_met_by: int | None) -> str:
    if reason == "goal":
        return f"goal met by trial {goal_met_by}"
    return {"budget": "trial budget spent", "timeout": "timeout"}.get(reason, reason)


def _best(args: argparse.Namespace) -> int:
    client = client_of(args)
    view = client.view(args.study)
    checked_flags(view.records, args.study, args.where, ("--prefer", args.prefer))
    record = client.best_config(
        view, where=args.where, prefer=args.prefer, feasible_only=not args.all
    )
    return show(record, args.json)


def _knee(args: argparse.Namespace) -> int:
    record = client_of(args).knee_point(args.study, feasible_only=not args.all)
    return show(record, args.json)


def _export(args: argparse.Namespace) -> int:
    client = client_of(args)
    path = client.export(client.trial(args.study, args.number), args.output)
    print(f"wrote {path}: re-train it with `paretotune retrain {path}`")
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from paretotune.cli._retrain import retrain

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = retrain(args.spec, storage=args.storage, tracking_uri=args.tracking_uri)
    if result.trials_run == 0:
        print(f"note: {result.name} was trained before; showing that trial", file=sys.stderr)
    client = client_of(args)
    view = client.view(result.name)
    complete = [r for r in view.records if r.state == "COMPLETE"]
    if not complete:
        print(f"error: the trial of {result.name} did not complete", file=sys.stderr)
        return 1
    return show(client.trial(view, complete[-1].number), args.json)


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
    "pareto": pareto_command,
    "studies": studies_command,
    "show": show_command,
    "dashboard": _dashboard,
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
