"""`paretotune dashboard`: the real optuna-dashboard over a study's journal, on
127.0.0.1, showing named objectives and one attribute per metric; and what it refuses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from paretotune.cli._services import free_port
from paretotune.execution import TrialTask
from paretotune.testing import Outcome, simulate_study

from tests.e2e.test_loopback import _in_groups, _is_loopback, _listeners

CLI = [sys.executable, "-m", "paretotune.cli"]
SPEC = {
    "name": "seen",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": [1, 2], "width": [16, 32, 64]},
        "optimizer": ["adam"],
        "compression": ["none"],
    },
    "budget": {"trials": 4},
    "sampler": {"name": "random"},
}


def _trial(task: TrialTask) -> Outcome:
    width = task.params["mlp.width"]
    return Outcome(
        seconds=1.0,
        metrics={"accuracy": width / 64, "train_time_s": width / 8, "size_bytes": width * 40.0},
    )


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "study.journal"
    simulate_study(SPEC, _trial, storage=str(path))
    return path


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@contextlib.contextmanager
def _dashboard(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "dashboard", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                _get(f"http://127.0.0.1:{port}/api/meta")
                break
            except OSError:
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.3)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_dashboard_shows_the_study_with_named_objectives_and_metrics(journal: Path):
    with _dashboard("seen", "--storage", str(journal)) as (process, url):
        studies = _get(f"{url}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["seen"]
        study_id = studies[0]["study_id"]
        detail = _get(f"{url}/api/studies/{study_id}")
        assert detail["objective_names"] == ["accuracy", "train_time_s"]
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert {"metric.accuracy", "metric.train_time_s", "metric.size_bytes"} <= set(attrs)
        assert "metrics" not in attrs  # no single dict attribute, one wide cell
        with urllib.request.urlopen(f"{url}/dashboard/studies/{study_id}", timeout=5) as page:
            assert page.status == 200
        listeners = _listeners(_in_groups({process.pid}))  # it has no login: loopback only
        assert int(url.rsplit(":", 1)[1]) in {port for _, _, port in listeners}, listeners
        exposed = sorted(listener for listener in listeners if not _is_loopback(listener[1]))
        assert not exposed, f"the dashboard listens beyond loopback: {exposed}"
    line = process.stdout.read() if process.stdout else ""
    assert f"/dashboard/studies/{study_id} (Ctrl-C stops it)" in line
    assert "http://127.0.0.1:" in line


def _ask(url: str, method: str = "GET", host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace")


def test_the_dashboard_writes_nothing_and_answers_only_its_loopback_name(
    journal: Path, tmp_path: Path
):
    """Once, through it, a study was deleted and a trial rewritten; and a web page could
    reach it by DNS rebinding (a name of the page's own resolving to 127.0.0.1)."""
    import shutil

    copy = tmp_path / "study.journal"
    shutil.copy(journal, copy)
    before = copy.read_bytes()
    with _dashboard("--storage", str(copy)) as (_, url):
        study_id = _get(f"{url}/api/studies")["study_summaries"][0]["study_id"]
        trial_id = _get(f"{url}/api/studies/{study_id}")["trials"][0]["trial_id"]
        for method, path in (
            ("DELETE", f"/api/studies/{study_id}"),
            ("POST", f"/api/trials/{trial_id}/tell"),
            ("PUT", f"/api/studies/{study_id}/note"),
            ("POST", "/api/studies"),
        ):
            status, body = _ask(url + path, method)
            assert (status, body) == (405, "paretotune dashboard only reads the storage")
        port = url.rsplit(":", 1)[1]
        status, body = _ask(f"{url}/api/studies", host=f"rebound.example:{port}")
        assert status == 403 and body.startswith("unknown Host"), body
        assert _ask(f"{url}/api/studies", host=f"localhost:{port}")[0] == 200
        assert [s["study_name"] for s in _get(f"{url}/api/studies")["study_summaries"]] == ["seen"]
    assert copy.read_bytes() == before, "the storage is as it was"


def test_a_missing_store_is_one_line_and_nothing_is_created(tmp_path: Path, paretotune):
    done = paretotune("dashboard", "--storage", str(tmp_path / "none.journal"), cwd=tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert os.listdir(tmp_path) == []


def test_a_port_in_use_is_one_line(journal: Path, paretotune):
    with _dashboard("--storage", str(journal)) as (_, url):
        port = url.rsplit(":", 1)[1]
        done = paretotune(
            "dashboard", "--storage", str(journal), "--port", port, cwd=journal.parent
        )
        assert done.returncode == 2, done
        assert (
            done.stderr
            == f"error: --port {port}: 127.0.0.1:{port} is in use; pick another port with --port\n"
        )


def test_without_the_extra_it_says_how_to_install_it(journal: Path, monkeypatch, capsys):
    from paretotune.cli import main

    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    assert main(["dashboard", "--storage", str(journal)]) == 2
    assert capsys.readouterr().err == (
        "error: paretotune dashboard needs optuna-dashboard, an optional extra: "
        "pip install 'paretotune[dashboard]'\n"
    )
