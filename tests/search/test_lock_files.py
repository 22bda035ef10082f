"""A study's lock file is written through no link another local user could plant."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paretotune.errors import UnsafeFileError
from paretotune.study._lock import driver_lock, lock_holder


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.txt"
    victim.write_text("a file of yours the planted link points at\n")
    return victim


def test_a_symlinked_lock_file_is_refused_and_its_target_left_whole(tmp_path: Path):
    victim = _victim(tmp_path)
    journal = tmp_path / "study.journal"
    (tmp_path / "study.journal.s.lock").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"study\.journal\.s\.lock: .*symbolic link"):
        with driver_lock(str(journal), "s"):
            pass
    assert victim.read_text() == "a file of yours the planted link points at\n"
    assert lock_holder(str(journal), "s") is None  # a link holds no lock


def test_a_hard_linked_lock_file_is_refused_and_its_target_left_whole(tmp_path: Path):
    victim = _victim(tmp_path)
    journal = tmp_path / "study.journal"
    os.link(victim, tmp_path / "study.journal.s.lock")
    with pytest.raises(UnsafeFileError, match="not a plain file of this user's with one name"):
        with driver_lock(str(journal), "s"):
            pass
    assert victim.read_text() == "a file of yours the planted link points at\n"


def test_a_plain_lock_file_is_taken_and_emptied_on_release(tmp_path: Path):
    journal = tmp_path / "study.journal"
    with driver_lock(str(journal), "s"):
        held = lock_holder(str(journal), "s")
    assert held is not None and held.pid == os.getpid()
    assert (tmp_path / "study.journal.s.lock").read_text() == ""
