"""`paretotune dashboard [STUDY]`: optuna-dashboard over a study's Optuna storage, on
127.0.0.1. The objectives carry their names (Optuna's metric names) and every final
metric is its own trial attribute (``metric.<name>``), so its charts and tables read
as paretotune's. optuna-dashboard is an optional extra: ``pip install
'paretotune[dashboard]'``. It only reads the storage: a missing store is reported, not
made, and its server refuses every request that would write (and any addressed to
another host name: DNS rebinding)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

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
    app = ReadOnlyLoopback(optuna_dashboard.wsgi(client.optuna_storage), args.port)
    try:
        _serve(app, args.port)
    except KeyboardInterrupt:  # how it is stopped: nothing to resume
        print("optuna-dashboard stopped", file=sys.stderr)
    return 0


class ReadOnlyLoopback:
    """WSGI middleware in front of optuna-dashboard, which has no login and can delete a
    study or rewrite a trial: only reads (GET, HEAD), and only for a request addressed to
    this server by its loopback name (the Host header), so a web page the user opens
    cannot reach it through a name of its own that resolves to 127.0.0.1 (DNS
    rebinding)."""

    READS = frozenset({"GET", "HEAD"})

    def __init__(self, app: Any, port: int):
        self.app = app
        self.hosts = {f"{name}:{port}" for name in (HOST, "localhost")}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_HOST", "") not in self.hosts:
            return _refuse(
                start_response,
                "403 Forbidden",
                f"unknown Host: this dashboard answers {' or '.join(sorted(self.hosts))} only",
            )
        if environ.get("REQUEST_METHOD", "GET") not in self.READS:
            return _refuse(
                start_response,
                "405 Method Not Allowed",
                "paretotune dashboard only reads the storage",
            )
        return self.app(environ, start_response)


def _refuse(start_response: Any, status: str, why: str) -> list[bytes]:
    body = why.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _serve(app: Any, port: int) -> None:
    """``app`` on 127.0.0.1:``port`` until interrupted, a thread a request, no access log."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    with make_server(HOST, port, app, server_class=Server, handler_class=QuietHandler) as server:
        server.serve_forever()


def _require_free(port: int) -> None:
    """Refuse a port something already listens on, in one line."""
    from paretotune.cli._services import port_free

    if not port_free(port):
        raise ParetotuneError(
            f"--port {port}: {HOST}:{port} is in use; pick another port with --port"
        )
