"""A journal's torn tail is cut under Optuna's own write lock; a complete one is untouched."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from paretotune.study._journal import repair_torn_tail


def test_only_the_unfinished_last_record_is_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    journal = tmp_path / "study.journal"
    journal.write_bytes(b'{"op_code": 0}\n{"op_code": 1}\n{"op_co')
    with caplog.at_level(logging.WARNING, logger="paretotune"):
        assert repair_torn_tail(journal) == len(b'{"op_co')
    assert journal.read_bytes() == b'{"op_code": 0}\n{"op_code": 1}\n'
    assert "cut a torn last record (7 bytes" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.journal"], "lock released"
    assert repair_torn_tail(journal) == 0  # complete now: untouched
    assert repair_torn_tail(tmp_path / "absent.journal") == 0
