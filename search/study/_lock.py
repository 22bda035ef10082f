"""One driver per study: a second `run` of a study that a live driver is running is
refused, naming the holder, instead of closing the first one's trials as interrupted.

For a journal file the lock is an ``flock`` on a file beside it (``<journal>.<study>.lock``),
held for the whole run: the kernel drops it when its process ends however it ends, so a
killed driver never leaves a stale lock behind. The file holds who took it (pid, host,
time), for the refusal's message.

Database and Redis storages are shared by machines that share no file system; they get no
lock here yet (see the README): a second driver there still closes the first one's trials.
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
from paretotune.study._storage import journal_path


@contextlib.contextmanager
def driver_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Hold the study's driver lock for the block (a no-op for non-file storages).

    Raises:
        StudyBusyError: another live driver holds it; the message names the holder.
    """
    journal = journal_path(storage_url)
    if journal is None:
        yield
        return
    path = journal.with_name(f"{journal.name}.{study_name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusyError(_refusal(study_name, journal, fd)) from None
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


def _refusal(study_name: str, journal: Path, fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        holder = {}
    who = (
        f"pid {holder['pid']} on {holder['host']}, since "
        f"{time.strftime('%H:%M:%S', time.localtime(holder['since']))}"
        if {"pid", "host", "since"} <= set(holder)
        else "another process"
    )
    return (
        f"study {study_name!r} in {journal} is being run by another driver ({who}); "
        "wait for it to finish or stop it, then run again to resume"
    )
