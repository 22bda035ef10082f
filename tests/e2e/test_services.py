"""`paretotune up` / `down` for real: a Ray head and an MLflow server that outlive the
command, reused by `paretotune run` in the same folder, and stopped without leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from paretotune import open_storage
from paretotune.cli._services import STATE_FILE, _group_alive

from tests.e2e.test_loopback import _in_groups, _is_loopback, _listeners

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPEC = """\
name: served
dataset: {source: digits}
space: {architecture: [mlp], mlp: {depth: 1, width: 16}, optimizer: [adam]}
budget: {trials: 2, epochs: 1}
resources: {workers: 2}
"""


def _cli(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", *args],
        cwd=folder,
        env=env | {"RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_up_serves_later_runs_and_down_stops_everything(tmp_path: Path, paretotune):
    """`up` and `down` run in process (what they start runs in sessions of its own);
    `run` is a process of its own, so that it joins `up`'s Ray, not this process's."""
    up = paretotune("up", "--cpus", "2", cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / STATE_FILE).read_text())
        assert up.stdout.strip() == f"export RAY_ADDRESS={state['ray_address']}"
        assert f"MLflow UI over this folder's store: {state['tracking_uri']}" in up.stderr
        assert state["tracking_uri"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{state['tracking_uri']}/health", timeout=10) as answer:
            assert answer.status == 200
        _assert_loopback_only(state)
        _assert_warm_workers(state["ray_group"])
        again = paretotune("up", cwd=tmp_path)  # a second `up` finds them running
        assert again.returncode == 0 and json.loads((tmp_path / STATE_FILE).read_text()) == state

        (tmp_path / "spec.yaml").write_text(SPEC)
        ran = _cli(tmp_path, "run", "spec.yaml")
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert f"using `paretotune up`'s Ray {state['ray_address']}" in ran.stderr
        # the front's address is on `up`'s server; no command to serve another UI
        assert f"The Pareto front in MLflow:  {state['tracking_uri']}/#/experiments/" in ran.stdout
        assert "Serve the MLflow UI" not in ran.stdout
        study = optuna.load_study(
            study_name="served", storage=open_storage(str(tmp_path / "paretotune.journal"))
        )
        assert len(study.trials) == 2
        client = MlflowClient(state["tracking_uri"])  # the server shows the runs written
        experiment = client.get_experiment_by_name("served")
        assert len(client.search_runs([experiment.experiment_id])) == 3  # parent + 2
        assert (tmp_path / "mlflow.db").exists(), "the server keeps this folder's store"
    finally:
        down = paretotune("down", cwd=tmp_path)
    assert down.returncode == 0 and "stopped Ray" in down.stdout, down.stderr
    assert not (tmp_path / STATE_FILE).exists()
    assert not _group_alive(state["ray_group"]) and not _group_alive(state["mlflow_group"])
    assert not Path(state["ray_temp_dir"]).exists()
    nothing = paretotune("down", cwd=tmp_path)
    assert nothing.returncode == 0 and "nothing to stop" in nothing.stdout


def _assert_warm_workers(group: int) -> None:
    """`up`'s node keeps worker processes started ahead with torch and the built-in
    objective imported (`WARM_WORKERS`): a run's actors land on them."""
    deadline = time.monotonic() + 90
    while True:
        node = _in_groups({group})  # the raylet's workers each have a process group
        if any(_is_warm_worker(pid, node) for pid in _pids()):
            return
        assert time.monotonic() < deadline, "no warm Ray worker 90 s after `up`"
        time.sleep(0.5)


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _is_warm_worker(pid: int, node: set[int]) -> bool:
    """An idle Ray worker (``ray::IDLE``) of the node, with torch loaded."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        mapped = Path(f"/proc/{pid}/maps").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    return parent in node and command.startswith(b"ray::") and b"libtorch" in mapped


def _assert_loopback_only(state: dict) -> None:
    """`up`'s Ray head (via `start_ray_node`) and MLflow server listen on loopback only."""
    listeners = _listeners(_in_groups({state["ray_group"], state["mlflow_group"]}))
    ports = {(title, port) for title, _, port in listeners}
    assert ("gcs_server", int(state["ray_address"].rsplit(":", 1)[1])) in ports, listeners
    assert "raylet" in {title for title, _ in ports}, listeners
    assert int(state["tracking_uri"].rsplit(":", 1)[1]) in {port for _, port in ports}
    exposed = sorted(listener for listener in listeners if not _is_loopback(listener[1]))
    assert not exposed, f"`up` listens beyond loopback: {exposed}"
