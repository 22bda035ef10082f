"""`paretotune status`, `logs` and `stop` for real: a finished study's status, a running
driver stopped in order and resumed, reads that create nothing, and a Ray job's log,
state and stop on a local `ray start --head` with its job server."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from paretotune import InProcessExecutor, open_storage, run_study
from paretotune.cli._services import free_port_block, start_ray_node
from paretotune.study._attrs import finished_trials, interrupted_numbers
from paretotune.study._lock import driver_lock

from tests.conftest import Gate, Ran, cli_env, free_port, kill_group
from tests.e2e.test_faults import SPEC  # the same small digits study

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "paretotune.cli"]
HELLO = "import time; print('hello from the job', flush=True); time.sleep(120)"
SPACE = {
    "architecture": "mlp",
    "mlp": {"depth": [1, 2], "width": [16, 32]},
    "optimizer": ["adam", "sgd"],
    "compression": ["none"],
}


def _cli(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=folder,
        env=cli_env("RAY_API_SERVER_ADDRESS"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_error(done: subprocess.CompletedProcess[str] | Ran, *words: str) -> str:
    """The command failed with exit 2 and one line, `error: …`, holding ``words``."""
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def _noop(params: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": params["learning_rate"], "train_time_s": 1.0, "latency_ms": 1.0}


def _trials(journal: Path, state: TrialState) -> list[int]:
    study = optuna.load_study(study_name="faults", storage=open_storage(str(journal)))
    return [t.number for t in study.get_trials(deepcopy=False, states=[state])]


def _started(journal: Path, state: TrialState) -> list[int]:
    """The trials in ``state``, once the study exists (none before)."""
    try:
        return _trials(journal, state) if journal.exists() else []
    except KeyError:  # the journal is there, the study not yet
        return []


@pytest.mark.needs("the MLflow logging process")
def test_status_of_a_finished_study_and_reads_that_create_nothing(tmp_path: Path, paretotune):
    """The reads run in process (`paretotune`): only their answers matter here."""
    journal = tmp_path / "study.journal"
    spec = {"name": "quick", "space": SPACE, "budget": {"trials": 6}, "sampler": {"name": "random"}}
    result = run_study(
        spec,
        _noop,
        storage=str(journal),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        executor=InProcessExecutor(None, _noop),
        progress=False,
    )
    folder = tmp_path / "elsewhere"  # the commands run here: nothing may appear in it
    folder.mkdir()
    shown = paretotune("status", "quick", "--storage", str(journal), cwd=folder)
    assert shown.returncode == 0, shown.stderr[-3000:]
    lines = shown.stdout.splitlines()
    assert lines[0] == f"quick ({journal})"
    assert (
        lines[1] == "  trials: 6 complete, 0 failed, 0 interrupted, 0 pruned, 0 running, 0 waiting"
    )
    assert re.fullmatch(r"  Pareto front: (\d+) trials, hypervolume 0\.\d{3}", lines[2]), lines
    assert int(lines[2].split()[2]) == len(result.pareto)
    box = r"accuracy 1\.\.[\d.e+-]+, train_time_s 0\.\.[\d.e+-]+, latency_ms 0\.\.[\d.e+-]+"
    assert re.fullmatch(rf"  \(the share of the box {box}\)", lines[3]), lines
    assert lines[4] == "  driver: not running; last run ended: budget"

    as_json = paretotune("status", "quick", "--storage", str(journal), "--json", cwd=folder)
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    status = json.loads(as_json.stdout)
    assert status["trials"] == {
        "COMPLETE": 6,
        "FAIL": 0,
        "INTERRUPTED": 0,
        "PRUNED": 0,
        "RUNNING": 0,
        "WAITING": 0,
    }
    assert status["pareto_size"] == len(result.pareto) and 0 < status["hypervolume"] <= 1
    assert status["running"] is False and status["driver"] is None and status["jobs"] is None
    assert status["stop_reason"] == "budget" and status["interrupted_trials"] == []

    with driver_lock(str(journal), "quick"):  # as a live driver holds it
        held = paretotune("status", "--storage", str(journal), "--json", cwd=folder)
    assert held.returncode == 0, held.stderr[-3000:]
    [every] = json.loads(held.stdout)  # no STUDY: every study, as a list
    assert every["running"] is True and every["driver"]["pid"] == os.getpid()
    assert every["driver"]["holder"].startswith(f"pid {os.getpid()} on ")

    lock = os.open(f"{journal}.quick.lock", os.O_RDWR)  # a driver on another machine
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(lock, json.dumps({"pid": 4242, "host": "far-away", "since": 0}).encode(), 0)
        elsewhere = paretotune("stop", "quick", "--storage", str(journal), cwd=folder)
        os.ftruncate(lock, 0)
    finally:
        os.close(lock)
    _one_error(elsewhere, "study 'quick' is run by pid 4242 on far-away", "not on this machine")

    missing = paretotune("status", "nosuch", "--storage", str(journal), cwd=folder)
    _one_error(missing, "'nosuch' not found", "quick")
    idle = paretotune("stop", "quick", "--storage", str(journal), cwd=folder)
    _one_error(idle, "study 'quick'", "is not running")
    assert list(folder.iterdir()) == [], "a read created something"


def test_status_of_a_missing_storage_is_one_line_and_creates_nothing(tmp_path: Path, paretotune):
    for args in (("status",), ("status", "faults", "--json"), ("stop", "faults")):
        done = paretotune(*args, cwd=tmp_path)
        _one_error(done, "--storage paretotune.journal", "does not exist")
    no_address = paretotune("logs", "raysubmit_x", cwd=tmp_path)
    _one_error(no_address, "logs raysubmit_x needs", "--address")
    assert list(tmp_path.iterdir()) == [], "a read created something"


def _interrupted_mid_study(
    folder: Path, trials: int, interrupt: Callable[[int], Any]
) -> tuple[Any, str, int, Gate]:
    """`paretotune run` of ``trials`` in ``folder`` as a process of its own, interrupted by
    ``interrupt(pid)`` once one trial finished and two are in flight (they wait on a
    `Gate` instead of training for a while). Returns what ``interrupt`` returned, the
    driver's stderr, its exit code and the gate."""
    (folder / "spec.yaml").write_text(SPEC.format(trials=trials, epochs=1))
    journal = folder / "paretotune.journal"
    gate = Gate(folder / "gate", free=1)
    driver = subprocess.Popen(
        gate.command("run", "spec.yaml", "--no-progress"),
        cwd=folder,
        env=cli_env("RAY_API_SERVER_ADDRESS"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (_started(journal, TrialState.COMPLETE) and gate.calls() == 3):
            assert time.monotonic() < deadline and driver.poll() is None, "it never ran"
            time.sleep(0.2)
        answer = interrupt(driver.pid)
        _, driver_err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return answer, driver_err, driver.returncode, gate


@pytest.mark.usefixtures("joins_session_ray")
def test_stop_closes_a_running_study_in_order_and_a_rerun_resumes(tmp_path: Path, paretotune):
    """`stop` reaches the driver once a trial finished and the next ones are in flight
    (they wait on a `Gate` instead of training for a while). The driver is a process of
    its own (it gets the signal); `stop` and `status` run in process."""
    journal = tmp_path / "paretotune.journal"
    pids: list[int] = []

    def stop(pid: int) -> Any:
        pids.append(pid)
        return paretotune("stop", "faults", cwd=tmp_path)

    # one complete, two in flight: then 3 trials are left to run
    stopped, driver_err, code, gate = _interrupted_mid_study(tmp_path, 4, stop)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr[-3000:]
    assert f"stopping faults: sent SIGINT to pid {pids[0]}" in stopped.stderr
    assert code == 130, driver_err[-3000:]
    assert "interrupted: run the same command again to resume" in driver_err

    study = optuna.load_study(study_name="faults", storage=open_storage(str(journal)))
    assert _trials(journal, TrialState.RUNNING) == [], "a trial was left RUNNING"
    interrupted = sorted(interrupted_numbers(study))
    complete = _trials(journal, TrialState.COMPLETE)
    assert (len(complete), len(interrupted)) == (1, 2), "the two held trials, interrupted"
    listed = ", ".join(map(str, interrupted))
    assert stopped.stdout.strip() == (
        f"stopped faults: {len(complete)} complete, {len(interrupted)} interrupted "
        f"({listed}: queued to run again); run it again to resume"
    )
    assert len(_trials(journal, TrialState.WAITING)) == len(interrupted), "queued again"

    shown = paretotune("status", "faults", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert f"{len(interrupted)} interrupted ({listed})" in shown.stdout
    assert "driver: not running; last run ended: interrupted" in shown.stdout

    gate.open()
    resumed = subprocess.run(
        gate.command("run", "spec.yaml", "--no-progress"),
        cwd=tmp_path,
        env=cli_env("RAY_API_SERVER_ADDRESS"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert " 0 failed, " in resumed.stdout, resumed.stdout  # interrupted is no failure
    assert f"; {len(interrupted)} interrupted and run again)" in resumed.stdout, resumed.stdout
    study = optuna.load_study(study_name="faults", storage=open_storage(str(journal)))
    assert len(finished_trials(study)) == 4, "the budget, met"
    assert set(complete) <= set(_trials(journal, TrialState.COMPLETE)), "kept work was lost"
    assert _trials(journal, TrialState.RUNNING) == []


@pytest.mark.usefixtures("joins_session_ray")
def test_sigterm_closes_the_study_in_order_and_exits_143(tmp_path: Path):
    """SIGTERM (a pod evicted, a job stopped) mid-trial: the study closes as on Ctrl-C,
    the command exits 143 (128 + SIGTERM) as documented, and the terminal shows only
    paretotune's own line: no screen of C++ stack addresses from Ray's signal handler."""
    journal = tmp_path / "paretotune.journal"
    _, driver_err, code, _ = _interrupted_mid_study(
        tmp_path, 3, lambda pid: os.kill(pid, signal.SIGTERM)
    )
    assert code == 143, driver_err[-3000:]
    assert "SIGTERM received" not in driver_err and "logging.cc" not in driver_err, driver_err
    assert "interrupted: run the same command again to resume" in driver_err
    assert _trials(journal, TrialState.RUNNING) == [], "a trial was left RUNNING"


@pytest.mark.cluster
def test_a_jobs_log_state_and_stop_on_a_local_job_server(tmp_path: Path, paretotune):
    """The commands run in process (`paretotune`): they talk to the job server over HTTP."""
    temp = tempfile.mkdtemp(prefix="ptw.", dir="/tmp")  # short: Ray's socket paths
    dashboard = free_port()
    head = ["--head", "--port", str(free_port()), "--temp-dir", temp, "--num-cpus", "1"]
    head += ["--include-dashboard=true", "--dashboard-host", "127.0.0.1"]
    head += ["--dashboard-port", str(dashboard)]
    group = start_ray_node(head, free_port_block(4), tmp_path / "ray.log")
    address = f"http://127.0.0.1:{dashboard}"
    try:
        client = _job_client(address)
        job = _submit(
            client, "import time; print('hello from the job', flush=True); time.sleep(120)"
        )
        deadline = time.monotonic() + 60
        while "hello from the job" not in client.get_job_logs(job):
            assert time.monotonic() < deadline, client.get_job_info(job)
            time.sleep(0.5)

        logs = paretotune("logs", job, "--address", address, cwd=tmp_path)
        assert logs.returncode == 0 and "hello from the job" in logs.stdout, logs.stderr[-3000:]
        shown = paretotune("status", "watched", "--address", address, "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr[-3000:]
        status = json.loads(shown.stdout)
        assert status["stored"] is False  # submitted; no study in this storage (yet)
        assert [(j["submission_id"], j["status"]) for j in status["jobs"]] == [(job, "RUNNING")]

        stopped = paretotune("stop", "watched", "--address", address, cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr[-3000:]
        assert stopped.stdout.startswith(f"stopped watched (job {job} STOPPED)")
        assert client.get_job_status(job) == "STOPPED"
        again = paretotune("stop", job, "--address", address, cwd=tmp_path)
        _one_error(again, f"job {job} is not running", "STOPPED")
        ended = paretotune("stop", "watched", "--address", address, cwd=tmp_path)
        _one_error(ended, "study 'watched' is not running", f"{job}, ended STOPPED")
        follow = paretotune("logs", "watched", "--address", address, "--follow", cwd=tmp_path)
        assert follow.returncode == 0 and "hello from the job" in follow.stdout
        assert follow.stderr.strip().endswith("job watched: STOPPED"), follow.stderr[-3000:]
        unknown = paretotune("logs", "raysubmit_nosuch", "--address", address, cwd=tmp_path)
        _one_error(unknown, "no job 'raysubmit_nosuch'", job)
    finally:
        kill_group(group)
        shutil.rmtree(temp, ignore_errors=True)


def _job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + 60
    while True:
        try:
            return JobSubmissionClient(address)
        except (ConnectionError, RuntimeError, OSError):
            assert time.monotonic() < deadline, "the job server never answered"
            time.sleep(1.0)


def _submit(client: Any, code: str) -> str:
    """A job running ``code`` under this Python, named as `paretotune submit` names a
    study's job."""
    deadline = time.monotonic() + 90
    while True:
        try:
            return client.submit_job(
                entrypoint=f"{sys.executable} -c {code!r}",
                metadata={"paretotune.study": "watched"},
            )
        except (ConnectionError, RuntimeError) as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
