"""A corrupt record in the middle of a journal file (issue 26, item 9): every command says
which file and line, readers read the study up to it, a driver is refused before it
writes, and `paretotune repair` keeps every intact record."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from paretotune.errors import CorruptJournalError
from paretotune.execution import TrialTask
from paretotune.study import open_storage
from paretotune.study._journal_records import first_corrupt_line
from paretotune.study._lock import driver_lock
from paretotune.testing import Outcome, simulate_study

CREATE_TRIAL, SET_TRIAL_STATE_VALUES = 4, 6
SPEC = {
    "name": "flips",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {"architecture": "mlp", "mlp": {"width": {"low": 8, "high": 512}}},
    "budget": {"trials": 6},
    "sampler": {"name": "random"},
    "seed": 3,
}


def _trial(task: TrialTask) -> Outcome:
    width = task.params["mlp.width"]
    return Outcome(metrics={"accuracy": width / 512, "train_time_s": width / 64})


def _study(tmp_path: Path) -> tuple[Path, dict[int, tuple]]:
    journal = tmp_path / "s.journal"
    simulate_study(SPEC, _trial, storage=str(journal))
    return journal, _trials(journal)


def _trials(journal: Path) -> dict[int, tuple]:
    study = optuna.load_study(study_name="flips", storage=open_storage(str(journal), create=False))
    return {t.number: (t.state.name, t.params, t.values) for t in study.trials}


def _nth_line(journal: Path, op_code: int, nth: int) -> int:
    """The 1-based line of the ``nth`` record (0-based) with ``op_code``."""
    lines = journal.read_bytes().splitlines()
    found = [i for i, line in enumerate(lines, 1) if json.loads(line)["op_code"] == op_code]
    return found[nth]


def _corrupt(journal: Path, line: int, keep_through: bytes = b"") -> None:
    """Garble a line as a disk would: its head kept (through ``keep_through``), the rest
    bit-flipped."""
    lines = journal.read_bytes().splitlines(keepends=True)
    head = lines[line - 1].partition(keep_through)[0] + keep_through if keep_through else b""
    lines[line - 1] = head + b"\xff\x00#garbled#" + b"\n"
    journal.write_bytes(b"".join(lines))


def test_a_corrupt_update_names_its_line_readers_read_up_to_it_and_repair_keeps_the_rest(
    tmp_path: Path, paretotune
):
    journal, before = _study(tmp_path)
    line = _nth_line(journal, SET_TRIAL_STATE_VALUES, 2)  # the third trial's end
    _corrupt(journal, line, keep_through=b'{"op_code":6,')

    status = paretotune("status", "flips", "--storage", str(journal), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    warning = [text for text in status.stderr.splitlines() if "line" in text]
    assert len(warning) == 1 and f"{journal}: line {line} is not a journal record" in warning[0]
    assert "paretotune repair --storage" in warning[0] and "Traceback" not in status.stderr
    with pytest.raises(CorruptJournalError, match=f"line {line} is not a journal record"):
        open_storage(str(journal))  # a driver, which would append after it
    size = journal.stat().st_size
    resumed = paretotune("studies", "--storage", str(journal), cwd=tmp_path)
    assert resumed.returncode == 0 and journal.stat().st_size == size  # a reader wrote nothing

    repaired = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert f"dropped 1 corrupt update(s) (line {line})" in repaired.stdout
    backups = list(tmp_path.glob("s.journal.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes()[:100] == journal.read_bytes()[:100]
    after = _trials(journal)
    assert set(after) == set(before)
    lost = [n for n in before if after[n] != before[n]]
    assert len(lost) == 1 and after[lost[0]][0] == "RUNNING", (before, after)  # its end only
    again = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert "every record is intact; nothing to repair" in again.stdout

    resumed_study = simulate_study(SPEC | {"budget": {"trials": 7}}, _trial, storage=str(journal))
    assert resumed_study.result.n_complete == 7  # the interrupted one ran again, then one more


def test_a_corrupt_creation_gets_a_placeholder_so_later_records_keep_their_trials(
    tmp_path: Path, paretotune
):
    journal, before = _study(tmp_path)
    line = _nth_line(journal, CREATE_TRIAL, 1)  # trial 1's creation
    _corrupt(journal, line, keep_through=b'"study_id":0,')
    assert b'"study_id":0' in journal.read_bytes().splitlines()[line - 1]
    repaired = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert repaired.returncode == 0 and f"(line {line})" in repaired.stdout, repaired
    after = _trials(journal)
    assert set(after) == set(before)
    for number in before:  # every later trial keeps its own params and values
        if number != 1:
            assert after[number] == before[number], number
    assert after[1][2] == before[1][2]  # trial 1's later records filled its values in


def test_a_line_of_unreadable_kind_cuts_there_and_keeps_the_rest_aside(tmp_path: Path, paretotune):
    journal, before = _study(tmp_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    _corrupt(journal, middle)
    repaired = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert f"cut at line {middle}" in repaired.stdout, repaired
    side = tmp_path / f"s.journal.after-line-{middle}"
    assert side.read_bytes().splitlines(keepends=True)[1:] == lines[middle:]
    assert len(journal.read_bytes().splitlines()) == middle - 1
    assert set(_trials(journal)) <= set(before)


def test_repair_is_refused_while_a_driver_runs_a_study_of_the_journal(tmp_path: Path, paretotune):
    journal, _ = _study(tmp_path)
    _corrupt(journal, _nth_line(journal, SET_TRIAL_STATE_VALUES, 0))
    original = journal.read_bytes()
    with driver_lock(str(journal), "flips"):
        refused = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert refused.returncode == 2 and "being run by another driver" in refused.stderr
    assert journal.read_bytes() == original
    not_a_journal = paretotune("repair", "--storage", "sqlite:///x.db", cwd=tmp_path)
    assert not_a_journal.returncode == 2 and "is not a journal file" in not_a_journal.stderr


def test_what_else_a_flipped_bit_does_is_caught_too(tmp_path: Path, paretotune):
    """A flip that makes a carriage return (lines end at ``\\n`` only, as Optuna reads
    them), one that leaves valid JSON with a key misspelt, one in the last complete line
    (Optuna skips that one silently, so a driver would append after it), and one in the
    study's own creation (its name and directions are read back from the line)."""
    journal, before = _study(tmp_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    end = _nth_line(journal, SET_TRIAL_STATE_VALUES, 1)
    lines[end - 1] = lines[end - 1].replace(b"-", b"\r", 1)  # in the worker id
    renamed = _nth_line(journal, SET_TRIAL_STATE_VALUES, 3)
    lines[renamed - 1] = lines[renamed - 1].replace(b'"trial_id"', b'"trial_ie"')
    journal.write_bytes(b"".join(lines))
    assert first_corrupt_line(journal)[0] == end  # (split at \\n only: one bad line)
    status = paretotune("status", "flips", "--storage", str(journal), cwd=tmp_path)
    assert status.returncode == 0 and f"line {end} is not a journal record" in status.stderr
    repaired = paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    assert f"dropped 2 corrupt update(s) (line {end}, {renamed})" in repaired.stdout, repaired
    after = _trials(journal)
    assert set(after) == set(before) and sum(after[n] != before[n] for n in before) <= 2

    journal.write_bytes(journal.read_bytes()[:-3] + b"#}\n")  # the last complete line
    with pytest.raises(CorruptJournalError, match="is not a journal record"):
        open_storage(str(journal))
    synced = paretotune("sync", "flips", "--storage", str(journal), cwd=tmp_path)
    assert synced.returncode == 2 and "is not a journal record" in synced.stderr, synced
    assert "Traceback" not in synced.stderr

    lines = journal.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"worker_id"', b'"w\xffrker_id"')  # the study's creation
    journal.write_bytes(b"".join(lines[:-1]))
    paretotune("repair", "--storage", str(journal), cwd=tmp_path)
    study = optuna.load_study(study_name="flips", storage=open_storage(str(journal)))
    assert len(study.directions) == 2 and len(study.trials) == len(before)
