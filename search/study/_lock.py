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

`lock_holder` tells who holds a study's lock now, creating nothing: a lock file is tested
with a non-blocking shared ``flock`` on a descriptor of its own, released at once (one
that does not exist is not created); a server's lock is taken and let go at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretotune.errors import StudyBusyError, UnsafeFileError
from paretotune.study._storage import (
    journal_path,
    resolve_storage_url,
    sqlite_file,
    stored_file,
)

ANOTHER_PROCESS = "another process"  # a holder that cannot be named


@dataclass(frozen=True)
class Holder:
    """The driver holding a study's lock: its pid and host where known, and in words."""

    text: str
    pid: int | None = None
    host: str | None = None
    since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "since": self.since, "holder": self.text}


def driver_lock(storage_url: str, study_name: str) -> contextlib.AbstractContextManager[Any]:
    """The study's driver lock, to hold for the whole run (``with driver_lock(…) as
    fence:``). It yields the `Fence` the driver's writes must pass (a Redis lease's,
    handed to `open_storage`), or None where the lock needs none.

    Raises (on entering):
        StudyBusyError: another live driver holds it; the message names the holder.
        SpecError: the storage's client library is not installed.
    """
    url = resolve_storage_url(storage_url)
    journal = journal_path(url)
    if journal is not None:
        return _file_lock(journal, study_name, str(journal))
    database = sqlite_file(url)
    if database is not None:
        return _file_lock(database, study_name, url)
    if not url.startswith("sqlite:"):
        from paretotune.study._lock_servers import server_lock

        return server_lock(url, study_name)
    return contextlib.nullcontext(None)  # an in-memory SQLite database: one process only


def lock_holder(storage_url: str | None, study_name: str) -> Holder | None:
    """The live driver holding the study's lock now, or None. Creates nothing.

    Raises:
        SpecError: a server storage's client library is not installed.
    """
    url = resolve_storage_url(storage_url)
    beside = stored_file(url)
    if beside is not None:
        return _probe_file(_lock_file(beside, study_name))
    if url.startswith("sqlite:"):  # an in-memory database: no other process can run it
        return None
    try:
        with driver_lock(url, study_name):
            return None
    except StudyBusyError as err:
        return err.holder if isinstance(err.holder, Holder) else Holder(ANOTHER_PROCESS)


def refuse_if_held(storage_url: str, study_name: str) -> None:
    """Refuse at once a study whose file lock a live driver holds, creating nothing:
    before a second driver pays for starting Ray. (`driver_lock` still decides: a
    driver may start between the two.) Server storages are asked by `driver_lock` only.

    Raises:
        StudyBusyError: the study's lock file is held, as `driver_lock` would say.
    """
    url = resolve_storage_url(storage_url)
    beside = stored_file(url)
    if beside is None:
        return
    holder = _probe_file(_lock_file(beside, study_name))
    if holder is not None:
        journal = journal_path(url)  # named as `driver_lock` names it
        raise busy(study_name, str(journal) if journal is not None else url, holder)


def holder_text(pid: object, host: object, since: float) -> str:
    """``pid N on HOST, since HH:MM:SS``: who holds a lock, for a refusal."""
    return f"pid {pid} on {host}, since {time.strftime('%H:%M:%S', time.localtime(since))}"


def holder_of_json(value: str | bytes | None) -> Holder | None:
    """The holder a lock's ``{pid, host, since}`` names (None: unreadable or not there)."""
    try:
        held = json.loads(value or b"{}")
        since = float(held["since"])
        text = holder_text(held["pid"], held["host"], since)
        return Holder(text, int(held["pid"]), str(held["host"]), since)
    except (ValueError, KeyError, TypeError):
        return None


def busy(study_name: str, where: str, holder: Holder | None, hint: str = "") -> StudyBusyError:
    """The refusal: the study, its storage, the holder (None: unknown) and what to do; the
    holder also rides on the error, as ``holder``."""
    err = StudyBusyError(
        f"study {study_name!r} in {where} is being run by another driver "
        f"({holder.text if holder else ANOTHER_PROCESS}); wait for it to finish or stop "
        f"it{hint}, then run again to resume"
    )
    err.holder = holder
    return err


def _lock_file(beside: Path, study_name: str) -> Path:
    """``<file>.<study>.lock``, beside the journal file or the SQLite database."""
    return beside.with_name(f"{beside.name}.{study_name}.lock")


@contextlib.contextmanager
def _file_lock(beside: Path, study_name: str, where: str) -> Iterator[None]:
    path = _lock_file(beside, study_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_own(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(study_name, where, holder_of_json(os.pread(fd, 4096, 0))) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield None  # (the kernel's lock lasts as long as the driver: no fence needed)
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_own(path: Path) -> int:
    """The lock file ``path`` opened for writing, made if absent, never through a link:
    it is emptied and written, so a link another local user planted there (to a file of
    yours) would have this run empty that file.

    Raises:
        UnsafeFileError: ``path`` is a symbolic link, or not a plain file of this user's
            with one name (a hard link).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise UnsafeFileError(
            f"{path}: the study's lock file is a symbolic link; paretotune writes through "
            "none (another local user may have planted it: remove it if it is not yours)"
        ) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid() or found.st_nlink != 1:
        os.close(fd)
        raise UnsafeFileError(
            f"{path}: the study's lock file is not a plain file of this user's with one "
            "name (a hard link, or another user's); paretotune writes to none such"
        )
    return fd


def _probe_file(path: Path) -> Holder | None:
    """Who holds the lock file ``path``: a non-blocking shared ``flock``, let go at once
    (a link there is no lock: nobody holds it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None
        raise
    try:
        for _ in range(10):  # a driver that just took the lock writes its name right after
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            holder = holder_of_json(os.pread(fd, 4096, 0))
            if holder is not None:
                return holder
            time.sleep(0.1)
        return Holder(ANOTHER_PROCESS)
    finally:
        os.close(fd)
