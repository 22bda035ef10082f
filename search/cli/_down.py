"""`paretotune down`: stop what `paretotune up` started in this folder."""

from __future__ import annotations

import argparse

from paretotune.cli._options import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    subparsers.add_parser("down", help="stop what `paretotune up` started here")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from paretotune.cli._services import stop_services

    stopped = stop_services(Path.cwd())
    if stopped is None:
        print("nothing to stop: `paretotune up` started nothing in this folder")
    else:
        print(f"stopped Ray {stopped.ray_address} and MLflow {stopped.tracking_uri}")
    return 0
