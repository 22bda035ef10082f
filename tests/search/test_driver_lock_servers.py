"""One driver per study on every storage, for real: a SQLite file, and PostgreSQL, MariaDB
and Redis servers started once for the module on 127.0.0.1 in temp dirs. The holder is
another process; a killed one never blocks the resume."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paretotune import SpecError, StudyBusyError, open_storage
from paretotune.study import _lock_servers, _storage
from paretotune.study._lock import driver_lock
from paretotune.study._storage import find_study
from paretotune.testing import Outcome, simulate_study

from tests.conftest import free_port

pytestmark = pytest.mark.timeout(180)

ROOT = os.getuid() == 0
HOLDER = """\
import sys
from paretotune.study import _lock_servers
from paretotune.study._lock import driver_lock
_lock_servers.LEASE_TTL_S = float(sys.argv[3])
with driver_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""
SPEC = {
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {"architecture": "mlp", "mlp": {"depth": [1, 2], "width": [16, 32]}},
    "budget": {"trials": 2},
    "sampler": {"name": "random"},
}


def _wait_for(check: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found or (ROOT and not shutil.which("runuser")):
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bin_dir = Path(max(found, key=lambda p: [int(v) for v in Path(p).parts[-3].split(".")])).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if ROOT else []
    folder = Path(tempfile.mkdtemp(prefix="ptlock-pg.", dir="/tmp"))
    if ROOT:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "paretotune", "--auth=trust"]
        subprocess.run([*as_postgres, *initdb], check=True, timeout=120, **quiet)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options]
        subprocess.run([*as_postgres, *start, "-w", "start"], check=True, timeout=90, **quiet)
        yield f"postgresql://paretotune@127.0.0.1:{port}/postgres"
    finally:
        stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run([*as_postgres, *stop], timeout=60, **quiet)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    server, install = Path("/usr/sbin/mariadbd"), shutil.which("mariadb-install-db")
    if not server.exists() or install is None:
        pytest.skip("MariaDB server is not installed (apt-get install mariadb-server)")
    pymysql = pytest.importorskip("pymysql", reason="pip install 'paretotune[mysql]'")
    folder = Path(tempfile.mkdtemp(prefix="ptlock-my.", dir="/tmp"))
    sock, port = folder / "sock", free_port()
    common = ["--no-defaults", f"--datadir={folder / 'data'}", "--innodb-log-file-size=8M"]
    common += ["--user=root"] if ROOT else []
    log = (folder / "log").open("w")
    process = None
    try:
        subprocess.run(
            [install, *common, "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True,
            timeout=120,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process = subprocess.Popen(
            [str(server), *common, f"--port={port}", "--bind-address=127.0.0.1"]
            + [f"--socket={sock}", "--skip-log-bin"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_for(lambda: pymysql.connect(unix_socket=str(sock), user="root"), 60, "mariadbd")
        with contextlib.closing(pymysql.connect(unix_socket=str(sock), user="root")) as conn:
            with conn.cursor() as cursor:
                for host in ("%", "localhost"):
                    cursor.execute(f"CREATE USER 'paretotune'@'{host}'")
                    cursor.execute(f"GRANT ALL ON *.* TO 'paretotune'@'{host}'")
                cursor.execute("CREATE DATABASE optuna")
        yield f"mysql://paretotune@127.0.0.1:{port}/optuna"
    finally:
        if process is not None:
            _stop(process)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    redis = pytest.importorskip("redis", reason="pip install 'paretotune[redis]'")
    folder = Path(tempfile.mkdtemp(prefix="ptlock-redis.", dir="/tmp"))
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: redis.Redis(port=port).ping(), 30, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["journal", "sqlite", "postgresql", "mysql", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":
        return str(tmp_path / "study.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture()
def study() -> str:
    return f"lock-{uuid.uuid4().hex[:8]}"  # the servers are shared by the module's tests


@contextlib.contextmanager
def _holder(storage: str, study: str, ttl: float = 15.0) -> Iterator[subprocess.Popen]:
    """Another process holding the study's driver lock (a Redis lease of ``ttl``), until
    the block ends: then it lets go and exits."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, storage, study, str(ttl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline() != "held\n":
            pytest.fail(f"the holder did not take the lock: {process.communicate()[1]}")
        yield process
    finally:
        try:
            process.communicate(timeout=30)  # closes its stdin: it lets go
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _killed(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _holder_named(storage: str, pid: int) -> str:
    if storage.startswith("mysql"):  # MySQL names the holder's connection, not its pid
        return r"\(connection \d+ from (127\.0\.0\.1|localhost):\d+, since \d\d:\d\d:\d\d\)"
    return re.escape(f"(pid {pid} on {socket.gethostname()}, since ") + r"\d\d:\d\d:\d\d\)"


def _lock_once_free(storage: str, study: str, seconds: float) -> float:
    """Take and drop the lock as soon as it is free; the seconds that took."""
    start = time.monotonic()
    while True:
        try:
            with driver_lock(storage, study):
                return time.monotonic() - start
        except StudyBusyError:
            assert time.monotonic() - start < seconds, f"the lock still held after {seconds} s"
            time.sleep(0.05)


def test_a_second_driver_is_refused_naming_the_holder(storage: str, study: str):
    with _holder(storage, study) as holder:
        with pytest.raises(StudyBusyError) as refused, driver_lock(storage, study):
            pass
        message = str(refused.value)
        assert message.startswith(f"study {study!r} in {storage} is being run by another driver")
        assert re.search(_holder_named(storage, holder.pid), message), message
        assert message.endswith("then run again to resume")
        with driver_lock(storage, f"{study}-other"):  # another study is not blocked
            pass
    assert _lock_once_free(storage, study, 5) < 5  # released when its holder ends


def test_a_killed_driver_does_not_block_the_resume(
    storage: str, study: str, monkeypatch: pytest.MonkeyPatch
):
    # (a 3-s lease: renewed every second, so a loaded machine's pause cannot end it early)
    monkeypatch.setattr(_lock_servers, "LEASE_TTL_S", 3.0)
    with _holder(storage, study, ttl=3.0) as holder:
        _killed(holder)
    if storage.startswith("redis://"):  # its lease outlives it, at most by its ttl
        with pytest.raises(StudyBusyError, match=r"or wait up to 3 s if it was killed\)"):
            with driver_lock(storage, study):
                pass
    assert _lock_once_free(storage, study, 10) < (4.5 if storage.startswith("redis") else 10)


def test_run_study_is_refused_before_it_creates_anything(storage: str, study: str):
    spec = SPEC | {"name": study}

    def script(task: Any) -> Outcome:
        return Outcome(seconds=1.0, metrics={"accuracy": 0.5, "train_time_s": 1.0})

    with _holder(storage, study, ttl=3.0) as holder:
        with pytest.raises(StudyBusyError, match=f"study {study!r} in "):
            simulate_study(spec, script, storage=storage)
        assert find_study(open_storage(storage), study) is None
        _killed(holder)
    _lock_once_free(storage, study, 10)
    assert simulate_study(spec, script, storage=storage).result.n_complete == 2


def test_a_postgresql_refusal_hides_the_password(postgresql_url: str, study: str):
    with _holder(postgresql_url, study):
        with_password = postgresql_url.replace("paretotune@", "paretotune:s3cret@")
        with pytest.raises(StudyBusyError) as refused, driver_lock(with_password, study):
            pass
    assert "s3cret" not in str(refused.value) and "paretotune:***@" in str(refused.value)


def test_a_redis_lease_is_renewed_while_held_and_deleted_after(
    redis_url: str, study: str, monkeypatch: pytest.MonkeyPatch
):
    import redis

    monkeypatch.setattr(_lock_servers, "LEASE_TTL_S", 1.5)
    with driver_lock(redis_url, study):
        time.sleep(3.5)  # more than twice the ttl: only renewals keep it
        with pytest.raises(StudyBusyError), driver_lock(redis_url, study):
            pass
    assert redis.Redis.from_url(redis_url).keys(f"*{study}*") == []


def test_a_missing_redis_client_is_the_storages_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_storage, "_installed", lambda module: module != "redis")
    with pytest.raises(SpecError) as caught, driver_lock("redis://127.0.0.1:1/0", "s"):
        pass
    assert caught.value.problems == [
        "storage: redis:// needs the redis driver, which is not installed: "
        "pip install 'paretotune[redis]'"
    ]


PAUSED_DRIVER = """\
import sys, time
from paretotune import run_study
from paretotune.errors import ParetotuneError
from paretotune.execution import InProcessExecutor
from paretotune.study import _lock_servers

_lock_servers.LEASE_TTL_S = 1.5
storage, name, tracking = sys.argv[1:4]


def objective(params):
    time.sleep(0.25)
    return {"accuracy": params["mlp.width"] / 64, "train_time_s": params["mlp.width"] / 8}


spec = {**SPEC, "name": name, "budget": {"trials": 24}}
try:
    run_study(spec, objective, storage=storage, tracking_uri=tracking,
              executor=InProcessExecutor(None, objective), progress=False)
except ParetotuneError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
"""


def _sleepy(params: dict) -> dict:
    time.sleep(0.25)
    return {"accuracy": params["mlp.width"] / 64, "train_time_s": params["mlp.width"] / 8}


def test_a_driver_paused_past_its_redis_lease_stops_without_writing(
    redis_url: str, study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Issue 26 item 8. The first driver is stopped (SIGSTOP) past its lease; a second
    takes the study and runs it on; the first, let go again, writes not one record more
    (its appends are fenced by the lease, atomically in Redis): it stops with one line,
    no traceback, and leaves no MLflow run RUNNING; the second finishes the budget."""
    import optuna
    import redis
    from mlflow import MlflowClient
    from paretotune import run_study
    from paretotune.execution import InProcessExecutor

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = PAUSED_DRIVER.replace("**SPEC", f"**{SPEC!r}")
    first = subprocess.Popen(
        [sys.executable, "-c", script, redis_url, study, tracking],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lease_key = f"paretotune:driver-lock:{study}"
    server = redis.Redis.from_url(redis_url)

    def complete() -> int:
        loaded = optuna.load_study(study_name=study, storage=open_storage(redis_url, create=False))
        return len(loaded.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))

    try:
        _wait_for(lambda: complete() >= 3, 60, "the first driver's trials")
        first.send_signal(signal.SIGSTOP)
        _wait_for(lambda: server.get(lease_key) is None, 30, "the paused driver's lease to run out")
        monkeypatch.setattr(_lock_servers, "LEASE_TTL_S", 1.5)
        spec = {**SPEC, "name": study, "budget": {"trials": 24}}
        second: dict = {}

        def run_second() -> None:
            second["result"] = run_study(
                spec,
                _sleepy,
                storage=redis_url,
                tracking_uri=tracking,
                executor=InProcessExecutor(None, _sleepy),
                progress=False,
            )

        thread = threading.Thread(target=run_second)
        thread.start()
        _wait_for(
            lambda: str(os.getpid()).encode() in (server.get(lease_key) or b""), 30, "a new lease"
        )
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=60)
        thread.join(timeout=120)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    assert first.returncode == 2, first_err[-3000:]
    assert "Traceback" not in first_err, first_err[-3000:]
    errors = [line for line in first_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"the driver lease {lease_key} ran out" in errors[0], first_err
    assert second["result"].n_complete == 24
    loaded = optuna.load_study(study_name=study, storage=open_storage(redis_url, create=False))
    assert loaded.get_trials(states=[optuna.trial.TrialState.RUNNING]) == []
    mlflow = MlflowClient(tracking)
    experiment = mlflow.get_experiment_by_name(study)
    runs = mlflow.search_runs([experiment.experiment_id], max_results=1000)
    assert [r.data.tags.get("paretotune.trial") for r in runs if r.info.status == "RUNNING"] == []
