"""`.paretotune/services.json` is trusted only as this user's `up` wrote it: a crafted
one makes `down` kill and delete nothing and `run` join nothing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paretotune.cli._services import STATE_FILE, running_services, stop_services
from paretotune.errors import UnsafeFileError


@pytest.fixture()
def bystander() -> Iterator[int]:
    """A live process group of this user's that is not `up`'s (a `sleep`, leading it)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield process.pid
        assert process.poll() is None, "a planted record had it killed"
    finally:
        process.kill()
        process.wait(timeout=10)


def _plant(folder: Path, group: int = 999_999_999, **changes: object) -> Path:
    """A record as `up` writes it, naming process group ``group`` (not `up`'s), with
    ``changes``."""
    record = {
        "ray_address": "127.0.0.1:6390",
        "tracking_uri": "http://127.0.0.1:5000",
        "ray_group": group,
        "mlflow_group": group,
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
    tmp_path: Path, bystander: int, changes: dict, why: str
):
    victim = tmp_path / "victim"
    victim.mkdir()
    if changes.get("ray_temp_dir") == "VICTIM":
        changes = {"ray_temp_dir": str(victim)}
    state = _plant(tmp_path, bystander, **changes)
    with pytest.raises(UnsafeFileError, match=why):  # (the bystander outlives it)
        stop_services(tmp_path)
    assert running_services(tmp_path) is None, "`run` joins nothing it names"
    assert victim.exists() and state.exists()


@pytest.mark.parametrize("how", ["writable by others", "a symbolic link"])
def test_a_record_others_could_have_written_is_refused(tmp_path: Path, how: str):
    state = _plant(tmp_path)
    if how == "a symbolic link":
        real = tmp_path / "elsewhere.json"
        state.rename(real)
        state.symlink_to(real)
    else:
        state.chmod(0o666)
    with pytest.raises(UnsafeFileError, match="not written by this user's `paretotune up`"):
        stop_services(tmp_path)
    assert running_services(tmp_path) is None


def test_down_says_so_in_one_line(tmp_path: Path, paretotune, bystander: int):
    _plant(tmp_path, bystander)
    done = paretotune("down", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nothing it names is joined, stopped or deleted" in line


def test_a_group_whose_leader_is_gone_is_not_up_s_server(tmp_path: Path):
    """A crafted record naming a live process group whose leader has exited (as a shell
    that backgrounds its work leaves): its start time cannot be checked, so it is not
    the MLflow server `up` started, and nothing in it is killed. (Once, such a record
    made `down` stop a whole test run's process group.)"""
    shell = subprocess.Popen(["bash", "-c", "sleep 60 & exit 0"], start_new_session=True)
    shell.wait(timeout=10)
    group = shell.pid
    try:
        deadline = time.monotonic() + 10
        while not _alive_in(group):
            assert time.monotonic() < deadline, "the background sleep never started"
            time.sleep(0.05)
        _plant(tmp_path, mlflow_group=group)
        with pytest.raises(UnsafeFileError, match="its MLflow process group"):
            stop_services(tmp_path)
        assert _alive_in(group), "nothing was killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, 9)


def _alive_in(group: int) -> bool:
    from paretotune.cli._services import _group_alive

    return _group_alive(group)
