"""A record in the middle of a journal file that is no record (a bit flipped by the disk, a
line another tool overwrote): name it, read what comes before it, and repair the file
keeping every intact record.

Optuna's journal replay gives each study and trial its id by the order of their creation
records, so dropping a creation record would hand every later record to the wrong trial.
The repair therefore drops a corrupt *update* (a param, a value, an attribute: the trial
loses that one update, and a trial left RUNNING is retried on resume like any interrupted
one) but puts a placeholder in place of a corrupt *creation*: a RUNNING trial that its
later records (params, values, its end) still fill in, or a study named after the line,
so the ids after it stay those the records meant. Where a corrupt
line's kind cannot be read, the journal is cut there and the records after it are kept in
a side file, not guessed at. The original file is always kept as a copy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState
from paretotune.errors import CorruptJournalError
from paretotune.study._journal import after_last_newline

logger = logging.getLogger("paretotune")

CREATE_STUDY, CREATE_TRIAL = 0, 4  # Optuna's JournalOperation codes
REPAIR_WORKER = "paretotune-repair"
# The keys Optuna's replay reads of each operation (JournalOperation 0-10): a record
# that parses but lacks one is as corrupt as one that does not parse.
REQUIRED_KEYS: dict[int, tuple[str, ...]] = {
    0: ("study_name", "directions"),
    1: ("study_id",),
    2: ("study_id", "user_attr"),
    3: ("study_id", "system_attr"),
    4: ("study_id", "datetime_start"),
    5: ("trial_id", "param_name", "param_value_internal", "distribution"),
    6: ("trial_id", "state", "values"),
    7: ("trial_id", "step", "intermediate_value"),
    8: ("trial_id", "user_attr"),
    9: ("trial_id", "system_attr"),
    10: (),
}
_REQUIRED = {op: frozenset(("worker_id", *keys)) for op, keys in REQUIRED_KEYS.items()}
_OP_CODE = re.compile(rb'"op_code"\s*:\s*(\d+)')
_STUDY_ID = re.compile(rb'"study_id"\s*:\s*(\d+)')
_STUDY_NAME = re.compile(rb'"study_name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_DIRECTIONS = re.compile(rb'"directions"\s*:\s*\[\s*([12](?:\s*,\s*[12])*)\s*\]')


class CheckedJournalFileBackend(JournalFileBackend):
    """Optuna's journal file whose corrupt record is named (file and line) instead of
    surfacing as a bare ``JSONDecodeError``.

    ``strict`` (a driver, which appends): the read raises `CorruptJournalError`. Not
    strict (a reader): the records before the corrupt line are read, one warning says
    where the study stops being readable, and nothing is written.
    """

    def __init__(self, file_path: str, *, strict: bool) -> None:
        super().__init__(file_path)
        self._strict = strict
        self._stopped_at: CorruptJournalError | None = None  # a reader's, said once
        if strict:  # Optuna skips an unparsable *last* line; a driver would append after it
            found = _corrupt_last_line(Path(file_path))
            if found is not None:
                raise corrupt_journal(Path(file_path), *found)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        if self._stopped_at is not None:
            return  # a reader stays at the corrupt line (no rescan per read)
        try:
            for log in super().read_logs(log_number_from):
                if _missing_keys(log) is not None:
                    raise ValueError("a record without the keys of its operation")
                yield log
        except ValueError:  # (json.JSONDecodeError is one) a line before the last is no record
            found = first_corrupt_line(Path(self._file_path))
            if found is None:  # appended to since: the line is whole now
                raise
            error = corrupt_journal(Path(self._file_path), *found)
            if self._strict:
                raise error from None
            self._stopped_at = error
            logger.warning("%s; reading the records before it", error)


def corrupt_journal(path: Path, line: int, why: str) -> CorruptJournalError:
    return CorruptJournalError(
        f"{path}: line {line} is not a journal record ({why}); `paretotune repair "
        f"--storage {path}` keeps every intact record (and a copy of the file)"
    )


def first_corrupt_line(path: Path) -> tuple[int, str] | None:
    """The first complete line (1-based) that is no journal record, and why; None if all
    are. Lines end at ``\\n`` only, as Optuna reads them. A last line without its newline
    is a torn tail, not corruption (see `_journal`)."""
    with path.open("rb") as journal:
        for number, line in enumerate(journal, start=1):
            if not line.endswith(b"\n"):
                return None
            why = _not_a_record(line)
            if why is not None:
                return number, why
    return None


def _corrupt_last_line(path: Path) -> tuple[int, str] | None:
    """`first_corrupt_line` for the last complete line alone (Optuna names the others),
    read from the file's end."""
    try:
        with path.open("rb") as journal:
            end = after_last_newline(journal, journal.seek(0, os.SEEK_END))
            start = after_last_newline(journal, end - 1) if end else 0
            journal.seek(start)
            line = journal.read(end - start)
    except FileNotFoundError:
        return None
    why = _not_a_record(line) if line else None
    if why is None:
        return None
    return first_corrupt_line(path) or (0, why)  # (the scan names its line)


def _not_a_record(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError as err:  # (UnicodeDecodeError, JSONDecodeError)
        return f"{type(err).__name__} at column {getattr(err, 'colno', '?')}"
    return _missing_keys(record)


def _missing_keys(record: Any) -> str | None:
    """Why a parsed record is none Optuna's replay can apply (None: it is one)."""
    if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
        return "no op_code"
    required = _REQUIRED.get(record["op_code"])
    if required is None:
        return f"unknown op_code {record['op_code']}"
    if required <= record.keys():  # (every replayed record passes here: one set test)
        return None
    missing = [key for key in ("worker_id", *REQUIRED_KEYS[record["op_code"]]) if key not in record]
    return f"no {', '.join(missing)}"


@dataclass
class JournalRepair:
    """What `repair_journal` did. ``backup``: the untouched original; ``side_file``: the
    records after an unreadable line, kept aside (None: none were)."""

    path: Path
    backup: Path | None = None
    dropped: list[int] = field(default_factory=list)  # corrupt updates, by line
    placeholders: list[int] = field(default_factory=list)  # corrupt creations, by line
    cut_at: int | None = None
    side_file: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.placeholders or self.cut_at)


def repair_journal(path: Path) -> JournalRepair:
    """Rewrite ``path`` without its corrupt records (see the module's docstring), under
    Optuna's write lock, atomically, after copying the original beside it."""
    repair = JournalRepair(path)
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        lines = list(io.BytesIO(path.read_bytes()))  # split at b"\n" only, as Optuna does
        kept: list[bytes] = []
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n") or _not_a_record(line) is None:
                kept.append(line)  # (a torn tail is cut when a driver opens the journal)
                continue
            placeholder = _placeholder(line, number)
            if placeholder is not None:
                kept.append(placeholder)
                repair.placeholders.append(number)
            elif _op_code(line) is not None:
                repair.dropped.append(number)
            else:
                repair.cut_at = number
                repair.side_file = path.with_name(f"{path.name}.after-line-{number}")
                repair.side_file.write_bytes(b"".join(lines[number - 1 :]))
                break
        if repair.changed:
            repair.backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copy2(path, repair.backup)
            _replace(path, b"".join(kept))
    finally:
        lock.release()
    return repair


def _op_code(line: bytes) -> int | None:
    found = _OP_CODE.search(line)
    return int(found.group(1)) if found else None


def _placeholder(line: bytes, number: int) -> bytes | None:
    """The record standing in for a corrupt creation record (None: not one, or its study
    cannot be read)."""
    op_code = _op_code(line)
    if op_code == CREATE_STUDY:  # its name and directions where they are still legible
        name, directions = _STUDY_NAME.search(line), _DIRECTIONS.search(line)
        record = {
            "op_code": CREATE_STUDY,
            "worker_id": REPAIR_WORKER,
            "study_name": _legible_name(name.group(1)) if name else None,
            "directions": [int(d) for d in directions.group(1).split(b",")] if directions else [1],
        }
        record["study_name"] = record["study_name"] or f"corrupt-journal-line-{number}"
    elif op_code == CREATE_TRIAL:
        study = _STUDY_ID.search(line)
        if study is None:
            return None
        record = {
            "op_code": CREATE_TRIAL,
            "worker_id": REPAIR_WORKER,
            "study_id": int(study.group(1)),
            "datetime_start": None,
            "state": TrialState.RUNNING.value,
            "user_attrs": {"paretotune.repaired": f"its creation record, journal line {number}"},
        }
    else:
        return None
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _legible_name(raw: bytes) -> str | None:
    try:
        name = json.loads(b'"' + raw + b'"')
    except ValueError:
        return None
    return name if isinstance(name, str) and name.isprintable() else None


def _replace(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.repair")
    with temporary.open("wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    shutil.copymode(path, temporary)
    os.replace(temporary, path)
