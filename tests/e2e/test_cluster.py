"""The cluster path for real: PostgreSQL + `mlflow server` + `ray start --head`, a job."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from paretotune import Client, open_storage
from paretotune.cli._services import free_port_block
from paretotune.study._attrs import PLACEMENT_ATTR

from tests.conftest import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SCRIPT = Path(__file__).parents[2] / "deploy" / "local-cluster.sh"
SPEC = """\
name: cluster-digits
dataset: {source: csv, path: data/digits.csv, target: label}
space:
  architecture: [mlp]
  mlp: {depth: 1, width: [16, 32]}
  optimizer: [adam]
budget: {trials: 3, epochs: 2}
resources: {workers: 2}
"""


def _submit(spec: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", "submit", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=480,
        env=os.environ | {"RAY_AUTH_MODE": "disabled"},
        cwd=cwd,
    )


def _user_study(folder: Path) -> Path:
    """A spec and the user's own CSV beside it (digits' rows, a ``label`` column)."""
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    (folder / "data").mkdir(parents=True)
    header = ",".join([f"p{i}" for i in range(X.shape[1])] + ["label"])
    rows = np.column_stack([X, y])
    np.savetxt(
        folder / "data" / "digits.csv", rows, fmt="%g", delimiter=",", header=header, comments=""
    )
    (folder / "cluster.yaml").write_text(SPEC)
    return folder / "cluster.yaml"


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
    """A user's own CSV beside the spec, submitted from another folder: the job carries
    the file, and the study lands in the cluster's PostgreSQL and MLflow server. (A stop
    through Ray leaving nothing RUNNING, on two nodes: test_multinode.py.)"""
    spec = _user_study(tmp_path / "study")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
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
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout
    # the job's log, as a local run shows it: progress lines, the front, its MLflow URL
    assert "cluster-digits: 3/3 trials" in done.stdout, done.stdout[-3000:]
    assert "Pareto-optimal trials:" in done.stdout
    assert "The Pareto front in MLflow:  http" in done.stdout
    followed = subprocess.run(
        [sys.executable, "-m", "paretotune.cli", "logs", "cluster-digits", "--follow"]
        + ["--address", local_cluster["RAY_DASHBOARD"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"RAY_AUTH_MODE": "disabled"},
    )
    assert followed.returncode == 0, followed.stderr[-2000:]
    assert "cluster-digits: 3/3 trials" in followed.stdout
    assert "Pareto-optimal trials:" in followed.stdout

    client = Client(storage=storage, tracking_uri=tracking)
    summary = client.summary("cluster-digits")
    assert summary.trials_by_state == {"COMPLETE": 3}
    study = optuna.load_study(study_name="cluster-digits", storage=open_storage(storage))
    assert all(t.user_attrs[PLACEMENT_ATTR]["node"] for t in study.trials)
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
