"""`paretotune best STUDY`: the best trial by one metric (``--prefer``, default the first
objective) among those meeting ``--where`` and, unless ``--all``, the spec's
constraints."""

from __future__ import annotations

import argparse

from paretotune.cli._options import Subparsers, add_query_options
from paretotune.cli._read import checked_flags, client_of, show


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("best", help="the best trial under constraints, by one metric")
    parser.add_argument("study", help="the study's name")
    parser.add_argument("--where", help="condition, e.g. 'latency_ms <= 0.2 and size_bytes < 1e6'")
    parser.add_argument("--prefer", help="metric to optimise (default: the first objective)")
    add_query_options(parser)


def run(args: argparse.Namespace) -> int:
    client = client_of(args)
    view = client.view(args.study)
    checked_flags(view.records, args.study, args.where, ("--prefer", args.prefer))
    record = client.best_config(
        view, where=args.where, prefer=args.prefer, feasible_only=not args.all
    )
    return show(record, args.json)
