"""`paretotune up`: start a local Ray and an MLflow server (`paretotune.cli._services`)
that later `paretotune run`s in this folder join; print the ``RAY_ADDRESS`` export."""

from __future__ import annotations

import argparse
import sys

from paretotune.cli._options import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "up", help="start a local Ray and an MLflow server that later runs here reuse"
    )
    parser.add_argument("--cpus", type=int, help="Ray's logical CPUs (default: the core count)")


def run(args: argparse.Namespace) -> int:
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
