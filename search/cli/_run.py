"""`paretotune run SPEC`: run a study in this process (its trials on Ray), or resume it,
and say how it ended. In a folder where `paretotune up` started a Ray, it joins that one."""

from __future__ import annotations

import argparse
import os
import sys

from paretotune.cli._options import Subparsers, add_overrides, add_storage, overrides_of
from paretotune.cli._read import compute_words


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a study from a YAML spec, or resume it")
    parser.add_argument("spec", help="path to the study's YAML spec")
    add_overrides(parser)
    add_storage(parser)
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress bar")


def run(args: argparse.Namespace) -> int:
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
        + (f"; {result.n_variants} compressed variants" if result.n_variants else "")
        + f"); storage {result.storage}"
    )
    print(
        f"stopped: {_why(result.stop_reason, result.goal_met_by)}; {compute_words(result.compute)}"
    )
    warn_tracking(result.tracking_errors)
    return 0


def warn_tracking(errors: list[str], shown: int = 4) -> None:
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


def _why(reason: str, goal_met_by: int | None) -> str:
    if reason == "goal":
        return f"goal met by trial {goal_met_by}"
    return {"budget": "trial budget spent", "timeout": "timeout"}.get(reason, reason)
