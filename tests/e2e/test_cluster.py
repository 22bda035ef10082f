"""The cluster path for real: PostgreSQL + `mlflow server` + `ray start --head`, a job."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient
from paretotune import Client
from paretotune.cli._services import free_port_block

from tests.conftest import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SCRIPT = Path(__file__).parents[2] / "deploy" / "local-cluster.sh"
SPEC = """\
name: cluster-digits
dataset: {source: digits}
space:
  architecture: [mlp]
  mlp: {depth: 1, width: [16, 32]}
  optimizer: [adam]
budget: {trials: 3, epochs: 2}
resources: {workers: 2}
"""


def _submit(spec: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", "submit", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=480,
        env=os.environ | {"RAY_AUTH_MODE": "disabled"},
    )


@pytest.fixture()
def local_cluster():
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not shutil.which("runuser"):
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    folder = tempfile.mkdtemp(prefix="ptc.", dir="/tmp")  # short: Ray socket paths
    env = os.environ | {
        "PG_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "RAY_PORT": str(free_port()),
        "DASHBOARD_PORT": str(free_port()),
        "AGENT_PORT": str(free_port_block(4)),
        "VENV_BIN": str(Path(sys.executable).parent),
    }
    try:
        started = subprocess.run(
            [str(SCRIPT), "up", folder], env=env, capture_output=True, text=True, timeout=240
        )
        assert started.returncode == 0, started.stderr + started.stdout
        urls = dict(line.split("=", 1) for line in started.stdout.split() if "=" in line)
        yield urls
    finally:
        subprocess.run([str(SCRIPT), "down", folder], env=env, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def test_study_submitted_to_a_cluster_lands_in_postgres_and_mlflow_server(
    local_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    spec = tmp_path / "cluster.yaml"
    spec.write_text(SPEC)
    storage, tracking = local_cluster["PARETOTUNE_STORAGE"], local_cluster["MLFLOW_TRACKING_URI"]
    done = _submit(
        spec,
        "--address",
        local_cluster["RAY_DASHBOARD"],
        "--storage",
        storage,
        "--tracking-uri",
        tracking,
        "--wait",
        "--wait-timeout",
        "400",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout

    client = Client(storage=storage, tracking_uri=tracking)
    summary = client.summary("cluster-digits")
    assert summary.trials_by_state == {"COMPLETE": 3}
    front = client.pareto_front("cluster-digits")
    assert front and all(r.mlflow_run_id for r in front)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)  # MLflow resolves logged models by it
    mlflow = MlflowClient(tracking)
    runs = mlflow.search_runs(
        [summary.mlflow_experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{summary.mlflow_parent_run_id}'",
    )
    assert len(runs) == 3
    stored = [a.path for a in mlflow.list_artifacts(front[0].mlflow_run_id)]
    assert "model" in stored, "the model went through the server's artifact store"


def test_bad_spec_is_refused_before_submission(tmp_path: Path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nbudget: {trials: 0}\n")
    done = _submit(spec, "--address", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: budget.trials: Input should be greater than or equal to 1 (got 0)"
    )
