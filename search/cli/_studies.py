"""`paretotune studies`: every study in a storage, a line each (or JSON); reads only."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from paretotune.cli._options import Subparsers, add_json, add_storage
from paretotune.cli._read import client_of, compute_words, states_words


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "studies", help="list the studies in a storage, their trials by state; reads only"
    )
    add_storage(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    client = client_of(args)
    summaries = client.studies()
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=2, default=str))
        return 0
    if not summaries:
        print(f"no studies in {client.storage_url}")
    for s in summaries:
        print(
            f"{s.name}: {states_words(s.trials_by_state)}; feasible {s.n_feasible}; "
            f"Pareto {s.pareto_size}; hypervolume {s.hypervolume:.4g}; "
            f"{compute_words(s.compute)}; "
            + (f"retried {s.n_retried}; " if s.n_retried else "")
            + f"stopped: {s.stop_reason or '-'}"
        )
    return 0
