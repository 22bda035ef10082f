"""`paretotune retrain SPEC`: train a one-trial spec that `paretotune export` wrote, in
this process, and print the trial as `best` does."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from paretotune.cli._options import Subparsers, add_json, add_storage, add_tracking
from paretotune.cli._read import client_of, show

if TYPE_CHECKING:
    from paretotune._run import StudyResult


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "retrain", help="train an exported one-trial spec, print metrics"
    )
    parser.add_argument("spec", help="a YAML written by `paretotune export`")
    add_storage(parser)
    add_tracking(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
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


def retrain(
    spec_path: str | Path,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
) -> StudyResult:
    """Train an exported one-trial spec in this process (no Ray needed for one trial).

    It is an ordinary study named after the trial, so it is tracked and resumed like any
    other: running it again when its trial is done trains nothing.

    Raises:
        SpecError: the spec is invalid.
    """
    from paretotune._run import run_study
    from paretotune.execution import InProcessExecutor
    from paretotune.spaces import load_spec
    from paretotune.study._prepare import prepare

    spec = load_spec(spec_path)
    _, context = prepare(spec, custom_objective=False)
    return run_study(
        spec,
        storage=storage,
        tracking_uri=tracking_uri,
        executor=InProcessExecutor(context),
        progress=progress,
    )
