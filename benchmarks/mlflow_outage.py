"""What a long MLflow outage costs a study: the same study with the tracking server up
throughout, and with it stopped for good once 3 trials are recorded.

The work: ``paretotune run`` of a 12-trial, 2-epoch digits study (``SPEC`` below), 2
workers, tracked on a real ``mlflow server`` (SQLite behind it) on 127.0.0.1, in a fresh
folder each time. In the *outage* case the server is stopped once MLflow holds 3 child
runs and stays down; afterwards `paretotune sync` is timed against a restarted server.
MLflow's retry settings are left as paretotune sets them (no ``MLFLOW_HTTP_REQUEST_*`` in
the environment). Cases run interleaved; medians over ``--repeats``.

    .venv/bin/python benchmarks/mlflow_outage.py --repeats 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import machine, quiet, save, table

SPEC = """\
name: outage
dataset: {source: digits}
space: {architecture: [mlp], mlp: {depth: [1, 2], width: [32, 64]}, optimizer: [adam]}
budget: {trials: 12, epochs: 2}
resources: {workers: 2}
"""
PARETOTUNE = [sys.executable, "-m", "paretotune.cli"]


@contextlib.contextmanager
def mlflow_server(folder: Path, port: int) -> Iterator[subprocess.Popen]:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        yield server
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def child_runs(url: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("outage")
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id])
    return sum("paretotune.trial_number" in run.data.tags for run in runs)


def run_once(case: str, env: dict[str, str]) -> dict[str, float]:
    from paretotune.cli._services import free_port

    folder = Path(tempfile.mkdtemp(prefix="pt-outage-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        (folder / "spec.yaml").write_text(SPEC)
        with mlflow_server(folder, port) as server:
            launched = time.monotonic()
            study = subprocess.Popen(
                [*PARETOTUNE, "run", "spec.yaml", "--no-progress", "--tracking-uri", url],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if case == "outage":
                while child_runs(url) < 3 and study.poll() is None:
                    time.sleep(0.3)
                stop(server)
            _, err = study.communicate(timeout=900)
            wall = time.monotonic() - launched
            assert study.returncode == 0, err[-2000:]
        figures = {"wall_s": wall}
        if case == "outage":
            with mlflow_server(folder, port):
                started = time.monotonic()
                subprocess.run(
                    [*PARETOTUNE, "sync", "outage", "--tracking-uri", url],
                    cwd=folder,
                    env=env,
                    check=True,
                    capture_output=True,
                )
                figures["sync_s"] = time.monotonic() - started
                figures["runs_after_sync"] = float(child_runs(url))
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    quiet()
    facts = machine()
    drop = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI") + tuple(
        k for k in os.environ if k.startswith("MLFLOW_HTTP_REQUEST_")
    )
    env = {k: v for k, v in os.environ.items() if k not in drop}
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for case in ("server up", "outage"):
            figures = run_once(case, env)
            runs.append({"case": case, "repeat": repeat, **figures})
            print(f"{case} #{repeat}: {figures}", flush=True)
    rows = []
    for case in ("server up", "outage"):
        mine = [r for r in runs if r["case"] == case]
        wall = statistics.median(r["wall_s"] for r in mine)
        sync = statistics.median(r["sync_s"] for r in mine) if case == "outage" else None
        rows.append([case, f"{wall:.1f}", "-" if sync is None else f"{sync:.1f}"])
    print(table(["case", "study wall s (median)", "sync s"], rows))
    path = save("mlflow_outage", {"runs": runs, "spec": SPEC}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
