"""A new local MLflow store comes from a copy of an empty store MLflow made once (per
MLflow version): the same tables, schema version and Default experiment as MLflow's own,
and it works as one."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from paretotune.tracking.mlflow import sqlite as store


def _schema(path: Path) -> tuple[list, list]:
    with contextlib.closing(sqlite3.connect(path)) as database:
        tables = database.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        version = database.execute("SELECT version_num FROM alembic_version")
        return tables.fetchall(), version.fetchall()


def _default_experiment(path: Path) -> tuple:
    with contextlib.closing(sqlite3.connect(path)) as database:
        return database.execute(
            "SELECT name, artifact_location, lifecycle_stage FROM experiments"
        ).fetchall()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "paretotune"


def test_a_store_from_the_template_is_the_store_mlflow_makes(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    store.create_whole(f"sqlite:///{first}")  # makes the template
    assert [p.name for p in cache.iterdir()] == [
        f"mlflow-{__import__('mlflow').__version__}-empty.db"
    ]
    monkeypatch.chdir(tmp_path / "a")  # (where MLflow would resolve ./mlruns from)
    store.create_whole(f"sqlite:///{second}")  # copies it
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"  # (SqlAlchemyStore made it)
    assert _schema(second) == _schema(first) == _schema(template)
    assert _default_experiment(second) == [
        ("Default", str(tmp_path / "a" / "mlruns" / "0"), "active")
    ]
    client = MlflowClient(f"sqlite:///{second}")
    run = client.create_run(client.create_experiment("works")).info.run_id
    client.log_metric(run, "accuracy", 0.9)
    assert client.get_run(run).data.metrics == {"accuracy": 0.9}
    assert sorted(p.name for p in second.parent.iterdir()) == ["mlflow.db"]  # no temporary


def test_a_template_that_is_not_a_plain_file_of_ours_is_not_used(tmp_path: Path, cache: Path):
    cache.mkdir(parents=True)
    planted = tmp_path / "planted.db"
    planted.write_bytes(b"not a database")
    link = cache / f"mlflow-{mlflow.__version__}-empty.db"
    link.symlink_to(planted)
    made = tmp_path / "mlflow.db"
    store.create_whole(f"sqlite:///{made}")
    assert _schema(made)[1], "made by MLflow, not copied through the link"
    assert planted.read_bytes() == b"not a database"  # the link replaced, its target untouched
    assert not os.path.islink(link) and _schema(link) == _schema(made)
