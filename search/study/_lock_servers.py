"""Driver locks for the storages on a server (see `paretotune.study._lock`). Each is one that
a dead driver cannot keep:

- PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(key)`` with a 64-bit
  key hashed from the study's name, on a connection of its own held open for the run. The
  server drops it when that connection closes, as it does when the driver's process dies,
  however it dies (a machine that vanishes without closing its connections: once the
  server's TCP keepalive notices). The holder is named in that connection's
  ``application_name`` (``paretotune PID SINCE HOST``), which a refusal reads from
  ``pg_locks`` joined with ``pg_stat_activity``: no table of ours in the database.
- MySQL/MariaDB: ``GET_LOCK(name, 0)`` likewise, with the session's ``wait_timeout``
  raised so that the idle lock connection is not closed under a long run. MySQL shows no
  label of one session to another, so a refusal names the holder by its connection and
  client address (``information_schema.PROCESSLIST``), not by pid.
- Redis: a lease, ``SET key holder NX PX ttl`` (redis-py's `Lock`) whose value is the
  holder, renewed every third of `LEASE_TTL_S` by a daemon thread only while the value is
  still ours, deleted at the end. A killed driver's lease runs out within `LEASE_TTL_S`.
  A driver that only paused (a stopped process, a long GC) may find its lease taken when
  it wakes: every write it makes to the storage is fenced (`Fence`), so it stops instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from paretotune.study._lock import Holder, busy, holder_of_json, holder_text
from paretotune.study._storage import _require, with_installed_driver

logger = logging.getLogger("paretotune")

LEASE_TTL_S = 15.0  # a Redis lease's life without renewal; renewed every third of it
MYSQL_WAIT_TIMEOUT_S = 31_536_000  # the most MySQL allows: a year


def server_lock(url: str, study_name: str) -> contextlib.AbstractContextManager[Fence | None]:
    """The driver lock for a ``postgresql…``, ``mysql…`` or ``redis://`` storage URL; it
    yields the `Fence` a Redis lease gives its writes (None for the others: their lock
    lives as long as the driver's connection does)."""
    if url.startswith("redis://"):
        return _redis_lease(url, study_name)
    return _sql_lock(url, study_name)


def _shown(url: str) -> str:
    """The URL for a message, its password hidden."""
    parsed = sa.engine.make_url(url)
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def _digest(study_name: str) -> bytes:
    return hashlib.sha256(f"paretotune driver {study_name}".encode()).digest()


@contextlib.contextmanager
def _sql_lock(url: str, study_name: str) -> Iterator[Fence | None]:
    postgres = url.startswith("postgresql")
    me = f"paretotune {os.getpid()} {int(time.time())} {socket.gethostname()}"
    engine = sa.create_engine(
        with_installed_driver(url),
        poolclass=sa.pool.NullPool,  # the connection closes, and the lock goes, with the block
        isolation_level="AUTOCOMMIT",  # no transaction left open for the whole run
        connect_args={"application_name": me[:63]} if postgres else {},
    )
    try:
        with engine.connect() as conn:
            if postgres:
                key = int.from_bytes(_digest(study_name)[:8], "big", signed=True)
                taken = conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
                holder = _postgres_holder(conn, key) if not taken else None
            else:
                name = "paretotune:" + _digest(study_name).hex()[:40]  # at most 64 characters
                conn.execute(sa.text(f"SET SESSION wait_timeout = {MYSQL_WAIT_TIMEOUT_S}"))
                taken = conn.scalar(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": name})
                holder = _mysql_holder(conn, name) if not taken else None
            if not taken:
                raise busy(study_name, _shown(url), holder)
            yield None
    finally:
        engine.dispose()


def _postgres_holder(conn: sa.Connection, key: int) -> Holder | None:
    label = conn.scalar(
        sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = :high AND l.objid::bigint = :low"
        ),
        {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
    )
    parts = (label or "").split(" ", 3)
    if len(parts) < 4 or parts[0] != "paretotune" or not parts[2].isdigit():
        return None
    pid, since, host = parts[1], float(parts[2]), parts[3]
    return Holder(holder_text(pid, host, since), int(pid) if pid.isdigit() else None, host, since)


def _mysql_holder(conn: sa.Connection, name: str) -> Holder | None:
    row = conn.execute(
        sa.text(
            "SELECT ID, HOST, TIME FROM information_schema.PROCESSLIST"
            " WHERE ID = IS_USED_LOCK(:name)"
        ),
        {"name": name},
    ).first()
    if row is None:
        return None
    since = time.strftime("%H:%M:%S", time.localtime(time.time() - row.TIME))  # idle since
    return Holder(f"connection {row.ID} from {row.HOST}, since {since}")  # no pid to signal


@dataclass(frozen=True)
class Fence:
    """What a write to a Redis storage checks first, atomically with the write: the lease
    ``key`` still holds this driver's ``token`` (see `FencedRedisBackend`)."""

    key: str
    token: str


@contextlib.contextmanager
def _redis_lease(url: str, study_name: str) -> Iterator[Fence]:
    _require("redis", "redis", url)
    import redis

    ttl = LEASE_TTL_S
    key = f"paretotune:driver-lock:{study_name}"
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        lease = client.lock(key, timeout=ttl, thread_local=False)  # renewed from a thread
        if not lease.acquire(blocking=False, token=json.dumps(holder)):
            hint = f" (or wait up to {ttl:g} s if it was killed)"
            raise busy(study_name, _shown(url), holder_of_json(client.get(key)), hint)
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=_renew, args=(lease, ttl, stop), name="paretotune-lease", daemon=True
        )
        heartbeat.start()
        try:
            yield Fence(key, json.dumps(holder))
        finally:
            stop.set()
            heartbeat.join()
            with contextlib.suppress(redis.RedisError):
                lease.release()
    finally:
        client.close()


def _renew(lease: Any, ttl: float, stop: threading.Event) -> None:
    """Renew ``lease`` every third of ``ttl`` until ``stop``, while it is still ours."""
    import redis

    while not stop.wait(ttl / 3):
        try:
            lease.reacquire()
        except redis.exceptions.LockNotOwnedError:
            logger.warning(
                "the driver lease on %s ran out before it was renewed: another driver may "
                "now take the study",
                lease.name,
            )
            return
        except redis.RedisError as err:  # a blip: the next beat tries again
            logger.warning("could not renew the driver lease on %s: %s", lease.name, err)
