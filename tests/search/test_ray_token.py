"""A local Ray's token: only its owner can read it, and Ray does not announce it."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from paretotune.execution import _ray_connection as connection


@pytest.fixture()
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / ".ray" / "auth_token"
    monkeypatch.setattr(connection, "RAY_TOKEN_FILE", path)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    return path


def test_the_token_ray_would_write_for_everyone_is_made_for_its_owner(token_file: Path):
    connection._private_token_auth()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert len(token_file.read_text()) == 64  # 256 bits, hex, as Ray's own
    first = token_file.read_text()
    connection._private_token_auth()  # a later run keeps it
    assert token_file.read_text() == first
    assert logging.getLogger(connection.RAY_TOKEN_LOGGER).level == logging.ERROR


def test_a_token_ray_left_readable_by_all_is_closed(token_file: Path):
    token_file.parent.mkdir(parents=True)
    token_file.write_text("a" * 64)
    token_file.chmod(0o644)
    connection._private_token_auth()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() == "a" * 64


def test_a_mode_the_user_chose_is_left_alone(token_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    connection._private_token_auth()
    assert not token_file.exists()
