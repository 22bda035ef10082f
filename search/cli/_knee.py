"""`paretotune knee STUDY`: the Pareto trial nearest the utopia point (unless ``--all``,
among those meeting the spec's constraints)."""

from __future__ import annotations

import argparse

from paretotune.cli._options import Subparsers, add_query_options
from paretotune.cli._read import client_of, show


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("knee", help="the Pareto trial nearest the utopia point")
    parser.add_argument("study", help="the study's name")
    add_query_options(parser)


def run(args: argparse.Namespace) -> int:
    record = client_of(args).knee_point(args.study, feasible_only=not args.all)
    return show(record, args.json)
