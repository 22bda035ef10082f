"""One driver per study: a second `run` of a study that a live driver is running is
refused, naming the holder, instead of closing the first one's trials as interrupted.

Every lock is one that a dead driver cannot keep, so a killed driver never blocks the
resume:

- a journal file or a SQLite database: an ``flock`` on a file beside it
  (``<file>.<study>.lock``), held for the whole run. The kernel drops it when its process
  ends however it ends. The file holds who took it (pid, host, time), for the message.
- PostgreSQL, MySQL/MariaDB and Redis, which drivers on machines sharing no file system
  share: an advisory lock on a connection of its own, or a lease kept alive by a
  heartbeat (`paretotune.study._lock_servers`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from paretotune.errors import StudyBusyError
from paretotune.study._storage import journal_path, resolve_storage_url


def driver_lock(storage_url: str, study_name: str) -> contextlib.AbstractContextManager[None]:
    """The study's driver lock, to hold for the whole run (``with driver_lock(…):``).

    Raises (on entering):
        StudyBusyError: another live driver holds it; the message names the holder.
        SpecError: the storage's client library is not installed.
    """
    url = resolve_storage_url(storage_url)
    journal = journal_path(url)
    if journal is not None:
        return _file_lock(journal, study_name, str(journal))
    database = _sqlite_file(url)
    if database is not None:
        return _file_lock(database, study_name, url)
    if not url.startswith("sqlite:"):
        from paretotune.study._lock_servers import server_lock

        return server_lock(url, study_name)
    return contextlib.nullcontext()  # an in-memory SQLite database: one process only


def holder_text(pid: object, host: object, since: float) -> str:
    """``pid N on HOST, since HH:MM:SS``: who holds a lock, for a refusal."""
    return f"pid {pid} on {host}, since {time.strftime('%H:%M:%S', time.localtime(since))}"


def busy(study_name: str, where: str, holder: str | None, hint: str = "") -> StudyBusyError:
    """The refusal: the study, its storage, the holder (None: unknown) and what to do."""
    return StudyBusyError(
        f"study {study_name!r} in {where} is being run by another driver "
        f"({holder or 'another process'}); wait for it to finish or stop it{hint}, "
        "then run again to resume"
    )


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///…`` URL (None for another URL or in memory)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        return None
    return Path(database.removeprefix("file:").split("?", 1)[0])


@contextlib.contextmanager
def _file_lock(beside: Path, study_name: str, where: str) -> Iterator[None]:
    path = beside.with_name(f"{beside.name}.{study_name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(study_name, where, _file_holder(fd)) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _file_holder(fd: int) -> str | None:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return holder_text(holder["pid"], holder["host"], holder["since"])
    except (ValueError, KeyError, TypeError):
        return None
