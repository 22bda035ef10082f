"""`.paretotune/services.json` is trusted only as this user's `up` wrote it: a crafted
one makes `down` kill and delete nothing and `run` join nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from paretotune.cli._services import STATE_FILE, running_services, stop_services
from paretotune.errors import UnsafeFileError


def _plant(folder: Path, **changes: object) -> Path:
    """A record as `up` writes it, for processes that are not `up`'s, with ``changes``."""
    record = {
        "ray_address": "127.0.0.1:6390",
        "tracking_uri": "http://127.0.0.1:5000",
        "ray_group": os.getpgrp(),  # this test's own group: alive, ours, not Ray
        "mlflow_group": os.getpgrp(),
        "ray_temp_dir": "/tmp/ptup.planted",
        "mlflow_started": 1,
    } | changes
    state = folder / STATE_FILE
    state.parent.mkdir(mode=0o700, exist_ok=True)
    state.write_text(json.dumps(record))
    state.chmod(0o600)
    return state


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, "its Ray process group"),
        ({"ray_group": 999_999_999}, "its MLflow process group"),
        ({"ray_temp_dir": "VICTIM"}, "its Ray folder '.*victim' is not one `up` makes"),
        ({"ray_address": "10.1.2.3:6379"}, "its Ray address '10.1.2.3:6379' is not on 127"),
        ({"mlflow_group": 1}, "it names no process group `up` starts"),
    ],
)
def test_a_crafted_record_is_refused_and_nothing_it_names_is_touched(
    tmp_path: Path, changes: dict, why: str
):
    victim = tmp_path / "victim"
    victim.mkdir()
    if changes.get("ray_temp_dir") == "VICTIM":
        changes = {"ray_temp_dir": str(victim)}
    state = _plant(tmp_path, **changes)
    with pytest.raises(UnsafeFileError, match=why):  # (it would kill this test's own group)
        stop_services(tmp_path)
    assert running_services(tmp_path) is None, "`run` joins nothing it names"
    assert victim.exists() and state.exists()


@pytest.mark.parametrize("how", ["writable by others", "a symbolic link"])
def test_a_record_others_could_have_written_is_refused(tmp_path: Path, how: str):
    state = _plant(tmp_path, ray_group=999_999_998, mlflow_group=999_999_999)
    if how == "a symbolic link":
        real = tmp_path / "elsewhere.json"
        state.rename(real)
        state.symlink_to(real)
    else:
        state.chmod(0o666)
    with pytest.raises(UnsafeFileError, match="not written by this user's `paretotune up`"):
        stop_services(tmp_path)
    assert running_services(tmp_path) is None


def test_down_says_so_in_one_line(tmp_path: Path, paretotune):
    _plant(tmp_path)
    done = paretotune("down", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nothing it names is joined, stopped or deleted" in line
