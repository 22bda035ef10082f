"""`paretotune repair`: a journal file with a corrupt record in its middle, rewritten so
that every intact record is kept (see `paretotune.study._journal_records`)."""

from __future__ import annotations

import argparse

from paretotune.cli._options import Subparsers, add_storage

HELP = "rewrite a journal file around a corrupt record, keeping every intact record"


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("repair", help=HELP)
    add_storage(parser)


def run(args: argparse.Namespace) -> int:
    from paretotune.errors import SpecError
    from paretotune.study._journal_records import first_corrupt_line, repair_journal
    from paretotune.study._storage import journal_path, missing_storage, resolve_storage_url

    url = resolve_storage_url(args.storage)
    path = journal_path(url)
    if path is None:
        raise SpecError([f"--storage: {url} is not a journal file; only a journal is repaired"])
    if not path.is_file():
        raise missing_storage(url)
    _refuse_while_driven(path)
    found = first_corrupt_line(path)
    if found is None:
        print(f"{path}: every record is intact; nothing to repair")
        return 0
    done = repair_journal(path)
    parts = []
    if done.dropped:
        parts.append(f"dropped {len(done.dropped)} corrupt update(s) (line {_lines(done.dropped)})")
    if done.placeholders:
        parts.append(
            f"put placeholders for {len(done.placeholders)} corrupt creation record(s) "
            f"(line {_lines(done.placeholders)}), so the records after them keep their trials"
        )
    if done.cut_at is not None:
        parts.append(
            f"cut at line {done.cut_at}, whose kind cannot be read: the records from it on "
            f"are kept in {done.side_file}"
        )
    print(f"repaired {path}: {'; '.join(parts)}; the original is kept as {done.backup}")
    return 0


def _lines(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _refuse_while_driven(path) -> None:
    """A live driver of any study in the journal would go on appending to the file the
    repair replaces: refused, naming it."""
    from paretotune.study._lock import busy, lock_holder

    prefix, suffix = f"{path.name}.", ".lock"
    for lock in path.parent.glob(f"{path.name}.*.lock"):
        study = lock.name[len(prefix) : -len(suffix)]
        holder = lock_holder(str(path), study)
        if holder is not None:
            raise busy(study, str(path), holder, hint=" before repairing the journal")
