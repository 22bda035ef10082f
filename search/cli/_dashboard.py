"""`paretotune dashboard [STUDY]`: optuna-dashboard over a study's Optuna storage, on
127.0.0.1. The objectives carry their names (Optuna's metric names) and every final
metric is its own trial attribute (``metric.<name>``), so its charts and tables read
as paretotune's. optuna-dashboard is an optional extra: ``pip install
'paretotune[dashboard]'``. It only reads the storage: a missing store is reported, not
made."""

from __future__ import annotations

import argparse
import sys

from paretotune.cli._options import Subparsers, add_storage, port
from paretotune.errors import ParetotuneError

HOST = "127.0.0.1"


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "dashboard", help="serve a browser dashboard of the studies on 127.0.0.1"
    )
    parser.add_argument(
        "study", nargs="?", help="the study to open (default: every study in the storage)"
    )
    add_storage(parser)
    parser.add_argument(
        "--port", type=port, default=8080, help="the port on 127.0.0.1 (default 8080)"
    )
    parser.set_defaults(host=HOST)  # loopback only: the dashboard has no login


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until Ctrl-C; its URL (the study's page with STUDY) first."""
    try:
        import optuna_dashboard
    except ImportError:
        raise ParetotuneError(
            "paretotune dashboard needs optuna-dashboard, an optional extra: "
            "pip install 'paretotune[dashboard]'"
        ) from None
    from paretotune.results.client import Client

    client = Client(storage=args.storage)  # a missing store: one line, nothing created
    page = "dashboard"
    if args.study:
        study = client.load_study(args.study)
        page += f"/studies/{study._study_id}"  # (Optuna keeps the id private)
    _require_free(args.port)
    print(
        f"optuna-dashboard over {client.storage_url}: http://{HOST}:{args.port}/{page} "
        "(Ctrl-C stops it)",
        flush=True,
    )
    try:
        optuna_dashboard.run_server(client.optuna_storage, host=HOST, port=args.port)
    except KeyboardInterrupt:  # how it is stopped: nothing to resume
        print("optuna-dashboard stopped", file=sys.stderr)
    return 0


def _require_free(port: int) -> None:
    """Refuse a port something already listens on, in one line."""
    from paretotune.cli._services import port_free

    if not port_free(port):
        raise ParetotuneError(
            f"--port {port}: {HOST}:{port} is in use; pick another port with --port"
        )
