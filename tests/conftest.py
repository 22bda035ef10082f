"""Shared fixtures: one real local Ray per test session, real MLflow/Optuna in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ACCEPT_CLUSTER_RESOURCES_WARNING", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs, shared by every test that needs one."""
    import ray

    from search._executors import ensure_ray

    ensure_ray("local", num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with its own journal storage and MLflow SQLite store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PARETOTUNE_STORAGE", raising=False)
    return tmp_path


def storage_url(folder: Path) -> str:
    return str(folder / "study.journal")


def tracking_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"
