"""`paretotune up` / `paretotune down`: a local Ray head and an MLflow server that outlive
the command, on 127.0.0.1, so that every `paretotune run` in this folder skips their
start-up (Ray's alone is ~9 s on 2 cores).

`up` records what it started in ``.paretotune/services.json``; `run` finds it there (when
neither ``$RAY_ADDRESS`` nor an MLflow URI is given) and says so in one line. The MLflow
server keeps this folder's store (``mlflow.db``, ``mlartifacts/``), the one a run without
`up` writes directly, so a study's runs stay in one place either way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from paretotune.errors import ClusterError, UnsafeFileError
from paretotune.execution._loopback import LOOPBACK

STATE_FILE = Path(".paretotune") / "services.json"
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
SEARCH_EXPERIMENTS = "api/2.0/mlflow/experiments/search?max_results=1"


@dataclass(frozen=True)
class Services:
    """What `up` started: where to reach it, the process groups to stop, Ray's temporary
    folder (its daemons' command lines name it), and when the MLflow server, the leader
    of its group, started (clock ticks since boot: a recycled process id is not it)."""

    ray_address: str
    tracking_uri: str
    ray_group: int
    mlflow_group: int
    ray_temp_dir: str
    mlflow_started: int = -1

    def alive(self) -> bool:
        return all(_group_alive(g) for g in (self.ray_group, self.mlflow_group))

    def distrust(self) -> str | None:
        """Why this record is not what this user's `up` wrote (None: it is): addresses
        off loopback, process groups that are not the processes `up` started (another
        user's, or a recycled id), a temporary folder outside `up`'s own."""
        if not re.fullmatch(r"127\.0\.0\.1:\d{1,5}", self.ray_address):
            return f"its Ray address {self.ray_address!r} is not on 127.0.0.1"
        if not re.fullmatch(r"http://127\.0\.0\.1:\d{1,5}", self.tracking_uri):
            return f"its MLflow URI {self.tracking_uri!r} is not on 127.0.0.1"
        temp = Path(self.ray_temp_dir)
        if temp.parent != Path("/tmp") or not temp.name.startswith("ptup."):
            return f"its Ray folder {self.ray_temp_dir!r} is not one `up` makes"
        if min(self.ray_group, self.mlflow_group) <= 1:
            return "it names no process group `up` starts"
        members = _group_members(self.ray_group)  # `ray start` itself has exited
        ours = all(owner == os.getuid() for owner, _ in members.values())
        if members and not (ours and any(self.ray_temp_dir in c for _, c in members.values())):
            return f"its Ray process group {self.ray_group} is not the one `up` started"
        leader = _process_start(self.mlflow_group)  # the server itself leads its group:
        alive = leader is not None or _group_alive(self.mlflow_group)  # (a group whose
        if alive and leader != (os.getuid(), self.mlflow_started):  # leader is gone is not)
            return f"its MLflow process group {self.mlflow_group} is not the one `up` started"
        return None


def running_services(folder: Path | None = None) -> Services | None:
    """The services `up` started for ``folder`` (default: here), if they still run; a
    record this user's `up` did not write is ignored (`read_services`)."""
    try:
        services = read_services(folder or Path.cwd())
    except UnsafeFileError:
        return None
    return services if services is not None and services.alive() else None


def read_services(folder: Path) -> Services | None:
    """The record `up` wrote in ``folder`` (None: there is none, or it is unreadable).

    Raises:
        UnsafeFileError: the record is not one this user's `up` wrote: the file or its
            folder is a link, another user's, or writable by others, or what it names
            fails `Services.distrust`. Nothing it names is joined, stopped or deleted.
    """
    state = folder / STATE_FILE
    for path in (state.parent, state):
        try:
            found = path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o022:
            raise UnsafeFileError(
                f"{path}: not written by this user's `paretotune up` (a link, another "
                "user's, or writable by others): nothing it names is joined, stopped or "
                "deleted; remove it"
            )
    try:
        services = Services(**json.loads(state.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    why = services.distrust()
    if why is not None:
        raise UnsafeFileError(
            f"{state}: {why}: nothing it names is joined, stopped or deleted; remove it"
        )
    return services


# Ray's settings for `up`'s node: a worker per CPU started with the raylet (and as each
# run's driver registers), importing the built-in objective before it takes work, so a
# run's actors land on warm processes: the first trial after `up` starts ~3 s sooner on
# 2 cores (benchmarks/README.md, session 12). A cold `paretotune run` gains nothing from
# it (its workers start beside the Ray start, on the same cores), so it is `up`'s only.
WARM_WORKERS = {
    "RAY_preload_python_modules": "paretotune.objectives._preload",
    "RAY_enable_worker_prestart": "1",
}


def start_services(folder: Path, cpus: int | None = None) -> Services:
    """Start a Ray head and an MLflow server for ``folder``, wait until both answer, and
    record them. Returns the running ones instead when `up` already started them.

    Raises:
        ClusterError: one of them did not come up within `START_TIMEOUT_S` (both are
            stopped again, nothing is recorded).
    """
    folder = folder.resolve()
    running = running_services(folder)
    if running is not None:
        return running
    logs = folder / STATE_FILE.parent
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    temp = tempfile.mkdtemp(prefix="ptup.", dir="/tmp")  # short: Ray's socket paths
    ray_port, mlflow_port, agents = free_port(), free_port(), free_port_block(4)
    groups: list[int] = []
    try:
        head = ["--head", "--port", str(ray_port), "--temp-dir", temp]
        head += ["--include-dashboard=false", "--num-cpus", str(cpus or os.cpu_count() or 1)]
        groups.append(start_ray_node(head, agents, logs / "ray.log", warm=True))
        groups.append(_start_mlflow(bin_dir, folder, mlflow_port, logs / "mlflow.log"))
        tracking = f"http://127.0.0.1:{mlflow_port}"
        _wait_for(f"{tracking}/health", "the MLflow server", logs / "mlflow.log")
        # the first request that reads the store creates it (SQLite schema migrations,
        # seconds of CPU): make it now, not beside the first study's trials
        _wait_for(f"{tracking}/{SEARCH_EXPERIMENTS}", "the MLflow store", logs / "mlflow.log")
    except BaseException:
        for group in groups:
            stop_group(group)
        shutil.rmtree(temp, ignore_errors=True)
        raise
    started = (_process_start(groups[1]) or (0, -1))[1]
    services = Services(f"127.0.0.1:{ray_port}", tracking, groups[0], groups[1], temp, started)
    _write_private(folder / STATE_FILE, json.dumps(asdict(services), indent=1))
    return services


def _write_private(path: Path, text: str) -> None:
    """``text`` in ``path``, readable and writable by this user only, swapped in whole."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:  # (mkstemp: mode 0600)
        handle.write(text)
    os.replace(temporary, path)


def stop_services(folder: Path) -> Services | None:
    """Stop what `up` started for ``folder`` and forget it; None when nothing was.

    Raises:
        UnsafeFileError: the record is not one this user's `up` wrote (`read_services`).
    """
    services = read_services(folder)
    if services is None:
        return None
    for group in (services.ray_group, services.mlflow_group):
        stop_group(group)
    shutil.rmtree(services.ray_temp_dir, ignore_errors=True)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return services


def start_ray_node(args: list[str], agents: int, log: Path, *, warm: bool = False) -> int:
    """`ray start ARGS` on 127.0.0.1 in its own session, with the agents on ``agents`` and
    the next three ports (Ray's defaults clash with any other Ray here); returns the
    process group its daemons stay in (see `stop_group`). Every server of the node binds
    127.0.0.1 only (`paretotune.execution._loopback`); a node for other hosts is a plain
    ``ray start`` (deploy/README.md). ``warm``: its raylet keeps worker processes started
    ahead, each with the built-in objective imported (`WARM_WORKERS`).

    Raises:
        ClusterError: ``ray start`` failed or did not finish in `START_TIMEOUT_S`.
    """
    bin_dir = Path(sys.executable).parent
    command = [sys.executable, "-m", "paretotune.execution._loopback", "start"]
    command += ["--node-ip-address", LOOPBACK, *args]
    command += ["--disable-usage-stats", "--dashboard-agent-listen-port", str(agents)]
    command += ["--dashboard-agent-grpc-port", str(agents + 1)]
    command += ["--runtime-env-agent-port", str(agents + 2)]
    command += ["--metrics-export-port", str(agents + 3)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"
    if warm:
        env |= WARM_WORKERS
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_group(process.pid)
            raise ClusterError(
                f"ray start did not finish in {START_TIMEOUT_S:.0f} s; see {log}"
            ) from None
    if code != 0:
        stop_group(process.pid)
        raise ClusterError(f"ray start failed (exit {code}); see {log}")
    return process.pid


def _start_mlflow(bin_dir: Path, folder: Path, port: int, log: Path) -> int:
    """`mlflow server` over this folder's store, at the logging process's low priority
    (see `paretotune.tracking.mlflow.process`): it works for that process."""
    command = ["nice", "-n", "10", str(bin_dir / "mlflow"), "server"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "mlartifacts"), "--workers", "1"]
    # no GenAI job runners (six more processes on the same cores): runs need none
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process.pid


def _wait_for(url: str, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise ClusterError(f"{what} did not answer at {url} in {START_TIMEOUT_S:.0f} s; see {log}")


def stop_group(group: int) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `STOP_GRACE_S`."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _group_alive(group):
        time.sleep(0.2)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _process_start(pid: int) -> tuple[int, int] | None:
    """The owner and start time (clock ticks since boot) of process ``pid``; None when
    there is no such process."""
    try:
        owner = Path(f"/proc/{pid}").stat().st_uid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return owner, int(fields[19])  # the 22nd field of stat: starttime


def _group_members(group: int) -> dict[int, tuple[int, str]]:
    """The live processes of a process group: pid -> (owner, command line)."""
    found = {}
    for pid in _group_pids(group):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            found[pid] = (Path(f"/proc/{pid}").stat().st_uid, command.decode(errors="replace"))
        except OSError:
            continue  # (ended meanwhile)
    return found


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies do not count)."""
    return bool(_group_pids(group))


def _group_pids(group: int) -> list[int]:
    """The processes of a process group that still run (zombies do not count)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports on 127.0.0.1."""
    for _ in range(50):
        first = free_port()
        if first + size < 65536 and all(port_free(first + i) for i in range(1, size)):
            return first
    raise ClusterError("no block of free ports on 127.0.0.1")


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (a bind succeeds)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
