"""`paretotune export STUDY NUMBER -o FILE`: write a one-trial spec that `paretotune
retrain` trains again."""

from __future__ import annotations

import argparse

from paretotune.cli._options import Subparsers, add_storage
from paretotune.cli._read import client_of


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a spec that re-trains one trial")
    parser.add_argument("study", help="the study's name")
    parser.add_argument("number", type=int, help="the trial number")
    parser.add_argument("-o", "--output", required=True, help="the YAML file to write")
    add_storage(parser)


def run(args: argparse.Namespace) -> int:
    client = client_of(args)
    path = client.export(client.trial(args.study, args.number), args.output)
    print(f"wrote {path}: re-train it with `paretotune retrain {path}`")
    return 0
