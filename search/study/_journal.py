"""A journal file's torn tail: the last record of a write the disk could not finish.

Optuna's journal appends one JSON record per line and syncs it. A write cut short (a full
disk, a killed process mid-write) leaves a last line without its newline: a record never
acknowledged to anyone. Optuna reads such a journal, but its next append lands right after
the fragment, which makes a line no JSON parser accepts, and every later read of the
study fails. So before a journal is opened its torn tail is cut off, and said so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from optuna.storages.journal import JournalFileSymlinkLock

logger = logging.getLogger("paretotune")
TAIL_CHUNK = 64 * 1024


def repair_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last complete line; return the bytes cut (0: none).

    The cut is made holding the journal's write lock (Optuna's own), so an append still
    under way in another process (a live driver, seen by a read-only command) is never
    mistaken for a torn one. The cut bytes are logged as one warning.
    """
    if _ends_complete(path):
        return 0
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        if _ends_complete(path):  # it was an append under way, now finished
            return 0
        size = path.stat().st_size
        with path.open("rb+") as journal:
            end = after_last_newline(journal, size)
            journal.truncate(end)
            journal.flush()
            os.fsync(journal.fileno())
    finally:
        lock.release()
    cut = size - end
    logger.warning(
        "%s: cut a torn last record (%d bytes of a write that never finished, such as on "
        "a full disk); the study resumes from the records before it",
        path,
        cut,
    )
    return cut


def _ends_complete(path: Path) -> bool:
    """Whether the file is missing, empty, or ends with a newline."""
    try:
        with path.open("rb") as journal:
            journal.seek(0, os.SEEK_END)
            if journal.tell() == 0:
                return True
            journal.seek(-1, os.SEEK_END)
            return journal.read(1) == b"\n"
    except FileNotFoundError:
        return True


def after_last_newline(journal: BinaryIO, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        journal.seek(start)
        chunk = journal.read(end - start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0
