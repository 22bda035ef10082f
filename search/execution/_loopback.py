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
CHECKED_ON_RAY = "2.60"  # the Ray whose calls of `resolve_ip_for_localhost` this relies on


class LoopbackNotKept(RuntimeError):
    """Ray was handed a loopback host but never asked `keep_loopback`'s function about it:
    it no longer replaces loopback through ``ray._private.services.
    resolve_ip_for_localhost`` (or no longer has it), so its servers may be serving every
    interface. Raised instead of going on silently exposed."""


@contextlib.contextmanager
def keep_loopback(*given: str | None) -> Iterator[None]:
    """While inside, Ray keeps a loopback host as a loopback IP instead of swapping in
    the host's routable one (for the node IP of a Ray started here, and for the cluster
    address joined), in this process and in the processes started meanwhile (a local
    Ray's daemons and workers). Restored on exit.

    ``given``: the node IPs and cluster addresses (``HOST:PORT``) handed to Ray inside.
    Ray must ask the patched function about each loopback one (Ray up to
    `CHECKED_ON_RAY` does, once each, as it starts or joins); a Ray that asks about fewer
    is refused.

    Raises:
        LoopbackNotKept: Ray has no ``resolve_ip_for_localhost`` to patch, or, on the way
            out of a body that raised nothing, was asked about fewer loopback hosts
            than ``given`` holds (the caller stops what Ray started).
    """
    try:
        from ray._common.network_utils import get_localhost_ip, is_localhost
        from ray._private import services  # reads LOOPBACK_ENV (at import) before it is set

        original = services.resolve_ip_for_localhost
    except (ImportError, AttributeError) as err:
        raise LoopbackNotKept(
            _moved(f"Ray's loopback replacement cannot be patched ({err})")
        ) from err
    before = os.environ.get(LOOPBACK_ENV)
    asked: list[str] = []  # the loopback hosts Ray asked about, and kept

    def resolve(host: str) -> str:
        if host and is_localhost(host):
            asked.append(host)
            return get_localhost_ip()
        return original(host)

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
    loopback = [host for host in map(_host_of, given) if host and is_localhost(host)]
    if len(asked) < len(loopback):  # Ray 2.60 asks once for each (the node IP, the address)
        raise LoopbackNotKept(
            _moved(
                f"Ray was handed {len(loopback)} loopback hosts ({', '.join(loopback)}) but "
                f"called ray._private.services.resolve_ip_for_localhost, which paretotune "
                f"patches to keep them loopback-only, about {len(asked)}"
            )
        )


def _host_of(address: str | None) -> str:
    """The host of a node IP or of a ``HOST:PORT`` address (``[::1]:PORT`` too); "" for
    what Ray does not resolve so (``local``, ``auto``, a ``ray://`` client address)."""
    if not address or address in ("local", "auto") or "://" in address:
        return ""
    if address.startswith("["):
        return address[1 : address.find("]")]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def _moved(what: str) -> str:
    import ray

    return (
        f"{what}: Ray {ray.__version__} changed how it binds a loopback node (checked on "
        f"{CHECKED_ON_RAY}); its servers might listen on every interface, so paretotune "
        "stops here. See paretotune/execution/_loopback.py."
    )


def ray_cli() -> None:
    """Ray's command line (``sys.argv[1:]``, e.g. ``start --head``) under `keep_loopback`,
    which checks that Ray kept the ``--node-ip-address`` and ``--address`` it was given
    on loopback; exits with its status (1 with `LoopbackNotKept`'s traceback when not)."""
    from ray.scripts.scripts import cli

    args = sys.argv[1:]
    with keep_loopback(*_option_values(args, "--node-ip-address", "--address")):
        try:
            cli.main(args=args, prog_name="ray")
        except SystemExit as done:
            if done.code not in (0, None):
                raise


def _option_values(args: list[str], *names: str) -> list[str]:
    """The values of the options ``names`` in ``args`` (``--name value`` or ``--name=value``)."""
    found = []
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in names:
            found.append(value if equals else (args[i + 1] if i + 1 < len(args) else ""))
    return found


if __name__ == "__main__":
    ray_cli()
