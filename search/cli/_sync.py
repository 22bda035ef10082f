"""`paretotune sync STUDY`: make a study's MLflow record agree with Optuna (after an
MLflow outage, or an artifact store that refused writes) without running a trial; exit 1
while some trial records are still held back."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from paretotune.cli._options import Subparsers, add_storage, add_tracking
from paretotune.cli._run import warn_tracking

HELP = (
    "make a study's MLflow record agree with Optuna (after an MLflow outage or an "
    "unwritable artifact store), without running a trial"
)


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("sync", help=HELP)
    parser.add_argument("study", help="the study's name")
    add_storage(parser)
    add_tracking(parser)


def run(args: argparse.Namespace) -> int:
    from paretotune._run import sync_study

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = sync_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    warn_tracking(result.tracking_errors)
    if result.unread:
        folder = Path(result.unread[0]).parent
        print(
            f"note: {len(result.unread)} held trial file(s) in {folder} (trial-N.pkl) are "
            "pickles from an older paretotune and are never read (a pickle can run code): "
            "those trials' runs get what the study keeps, not their models; delete the "
            "files once nothing there is needed",
            file=sys.stderr,
        )
    print(
        f"synced {result.name} with MLflow at {result.tracking_uri}: "
        f"{result.repaired} trial records written again"
        + (f", {result.still_held} still held" if result.still_held else "")
    )
    return 1 if result.still_held else 0
