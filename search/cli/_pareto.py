"""`paretotune pareto STUDY`: the front's trials that satisfy ``--where``, best first by
``--sort`` (default: the first objective, in its direction), at most ``--limit``; a
table, or JSON. It reads only."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from paretotune.cli._options import Subparsers, add_json, add_storage, at_least_one
from paretotune.cli._read import checked_flags, client_of


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pareto", help="print a study's Pareto-optimal trials, best first; reads only"
    )
    parser.add_argument("study", help="the study's name")
    parser.add_argument(
        "--where",
        help="only the trials meeting this condition, e.g. 'latency_ms <= 0.2 and "
        'optimizer == "adam"\' (the language of `best --where`)',
    )
    parser.add_argument(
        "--sort",
        metavar="METRIC",
        help="best first by this metric, in its direction (default: the first objective)",
    )
    parser.add_argument("--limit", type=at_least_one, metavar="N", help="show at most N trials")
    add_storage(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from paretotune.results.selection import best_first, namespace

    front = client_of(args).front(args.study)
    rows = front.pareto
    condition = checked_flags(front.records, args.study, args.where, ("--sort", args.sort))
    if condition is not None:
        rows = [r for r in rows if condition.holds(namespace(r))]
    rows = best_first(rows, front.objectives, args.sort)[: args.limit]
    if args.json:
        print(json_rows([r.as_dict() for r in rows]))
        return 0
    from paretotune._progress import print_front  # (rich: only for the table)

    print_front(front, tracking_uri=None, experiment_id=None, rows=rows, study=args.study)
    return 0


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON list with one row a line: readable, and encoded by json's C encoder (an
    indented dump of 10,000 rows takes its pure-Python one, ~0.4 s)."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(row, default=str) for row in rows) + "\n]"
