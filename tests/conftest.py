"""Shared fixtures: one real local Ray per test session, real MLflow/Optuna in tmp dirs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# No per-example deadline: on a shared 2-core machine a slow example is load, not a bug.
settings.register_profile("paretotune", deadline=None)
settings.load_profile("paretotune")

os.environ.setdefault("RAY_ACCEPT_CLUSTER_RESOURCES_WARNING", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs, shared by every test that needs one."""
    import ray
    from paretotune.execution._ray import ensure_ray

    ensure_ray("local", num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


JOIN_RAY_ENV = "PARETOTUNE_TEST_RAY_ADDRESS"


@pytest.fixture()
def joins_session_ray(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `paretotune` commands this test runs (through `cli_env`) join the session's
    Ray instead of each starting and stopping a Ray of its own (seconds per command on 2
    cores). Tests of a command's own Ray (its start, its ports, its end) do not use it."""
    address = str(ray_cluster.get_runtime_context().gcs_address)
    monkeypatch.setenv(JOIN_RAY_ENV, address)
    return address


def cli_env(*also_drop: str) -> dict[str, str]:
    """The environment of a `paretotune` command a test runs: none of the user's
    defaults (Ray address, MLflow URI, storage), Ray's auth off, and the session's Ray to
    join when the test asked for it (`joins_session_ray`)."""
    drop = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PARETOTUNE_STORAGE", JOIN_RAY_ENV, *also_drop)
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"RAY_AUTH_MODE": "disabled"}
    if os.environ.get(JOIN_RAY_ENV):
        env["RAY_ADDRESS"] = os.environ[JOIN_RAY_ENV]
    return env


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


def free_port() -> int:
    from paretotune.cli._services import free_port as free

    return free()


@contextlib.contextmanager
def mlflow_server(store: Path, log: Path, port: int | None = None) -> Iterator[Any]:
    """A real ``mlflow server`` on 127.0.0.1 over the SQLite database ``store``, answering
    ``/health``; yields the process (its URL is ``process.url``) and kills its whole
    process group at the end."""
    port = port or free_port()
    with log.open("a") as output:
        server: Any = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server"),
                *("--backend-store-uri", f"sqlite:///{store}"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server.url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(server, log)
            yield server
        finally:
            stop_server(server)


def _wait_healthy(server: subprocess.Popen, log: Path, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:  # type: ignore[attr-defined]
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer /health within {within_s:.0f} s")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """Kill a server started in its own session, whole process group, if still running."""
    if server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)
