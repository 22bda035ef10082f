"""Keep a Ray that paretotune starts itself on loopback (127.0.0.1).

Ray 2.60 binds every server of a node (GCS, raylet, object manager, the gRPC server of
each worker and driver, the dashboard and runtime-env agents, the autoscaler's and the
dashboard's metrics) to 127.0.0.1 when the node's IP is a loopback address, and to every
interface otherwise. But it replaces a loopback node IP (``ray start --node-ip-address
127.0.0.1``, ``ray.init(_node_ip_address=...)``) and a loopback cluster address
(``127.0.0.1:PORT``) with the host's routable IP (`ray._private.services.
resolve_ip_for_localhost`), so such a node serves every interface, and a loopback-only
one cannot be reached at the address it reports. `keep_loopback` turns that replacement
off for loopback hosts only; any other address is untouched.

Ray's own processes also join with a plain ``ray.init`` (the dashboard agent does, for a
job), as may a job's driver: with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in a process's
environment Ray keeps a loopback address there too (it reads it at import). So
`keep_loopback` sets it for the processes started inside it. This process's Ray read
its environment before, so its ``ray start --address`` (joining a node), which the
variable would refuse, still runs.

``python -m paretotune.execution._loopback ARGS`` runs Ray's CLI (``ray ARGS``) so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps loopback in that process


@contextlib.contextmanager
def keep_loopback() -> Iterator[None]:
    """While inside, Ray keeps a loopback host as a loopback IP instead of swapping in
    the host's routable one (for the node IP of a Ray started here, and for the cluster
    address joined), in this process and in the processes started meanwhile (a local
    Ray's daemons and workers). Restored on exit."""
    from ray._common.network_utils import get_localhost_ip, is_localhost
    from ray._private import services  # reads LOOPBACK_ENV (at import) before it is set

    original = services.resolve_ip_for_localhost
    before = os.environ.get(LOOPBACK_ENV)

    def resolve(host: str) -> str:
        return get_localhost_ip() if host and is_localhost(host) else original(host)

    services.resolve_ip_for_localhost = resolve
    os.environ[LOOPBACK_ENV] = "0"
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original
        if before is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before


def ray_cli() -> None:
    """Ray's command line (``sys.argv[1:]``, e.g. ``start --head``) under `keep_loopback`;
    exits with its status."""
    from ray.scripts.scripts import cli

    with keep_loopback():
        cli.main(args=sys.argv[1:], prog_name="ray")


if __name__ == "__main__":
    ray_cli()
