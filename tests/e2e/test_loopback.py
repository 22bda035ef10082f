"""A Ray that paretotune starts itself listens on loopback only (issue 14, point 10).

The listening TCP sockets of Ray's processes are read from /proc while a study runs on
the session's shared local Ray (started by paretotune's own `ensure_ray`), and while
`paretotune up`'s services run (checked in `test_services.py`, which starts them anyway).
Every one must be bound to a loopback address: with
``RAY_AUTH_MODE=disabled`` any other would let other hosts drive the cluster.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from paretotune import NullTracker, run_study

LISTEN = "0A"  # TCP state in /proc/net/tcp*

SPEC = {
    "name": "loopback",
    "dataset": {"source": "digits"},
    "space": {"architecture": ["mlp"], "mlp": {"depth": 1, "width": 16}, "optimizer": ["adam"]},
    "budget": {"trials": 2, "epochs": 1},
    "resources": {"workers": 2},
}

Listener = tuple[str, str, int]  # process title, address, port


def _listening_sockets() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket on this host."""
    found: dict[str, tuple[str, int]] = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with open(f"/proc/net/{table}") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] != LISTEN:
                    continue
                address, port = fields[1].split(":")
                # the kernel writes the address as native-endian 32-bit words
                words = [int(address[i : i + 8], 16) for i in range(0, len(address), 8)]
                packed = struct.pack(f"<{len(words)}I", *words)
                found[fields[9]] = (socket.inet_ntop(family, packed), int(port, 16))
    return found


def _argv(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return [arg.decode(errors="replace") for arg in raw]


def _title(argv: list[str]) -> str:
    """``ray::RayTrialRunner``, ``gcs_server``, ``raylet``, ``python monitor.py``, ..."""
    name = os.path.basename(argv[0]) if argv else "?"
    script = next((a for a in argv[1:] if not a.startswith("-")), "")
    return f"{name} {os.path.basename(script)}" if name.startswith("python") else name


def _is_ray(argv: list[str]) -> bool:
    """Whether the process is one of Ray's (its daemons run from the ray package)."""
    return bool(argv) and (argv[0].startswith("ray::") or any("/ray/" in a for a in argv[:3]))


def _listeners(pids: Iterable[int], *, only_ray: bool = False) -> set[Listener]:
    """The listening sockets the processes ``pids`` (or only Ray's among them) hold."""
    sockets = _listening_sockets()
    held: set[Listener] = set()
    for pid in pids:
        try:
            argv = _argv(pid)
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # ended meanwhile
            continue
        if only_ray and not _is_ray(argv):
            continue
        title = _title(argv)
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = target.removeprefix("socket:[").removesuffix("]")
            if target.startswith("socket:[") and inode in sockets:
                held.add((title, *sockets[inode]))
    return held


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                found[int(entry)] = (int(fields[1]), int(fields[2]))
    return found


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (a local Ray's daemons and workers)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _processes().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _in_groups(groups: set[int]) -> set[int]:
    return {pid for pid, (_, group) in _processes().items() if group in groups}


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


@pytest.mark.slow
def test_a_local_study_listens_on_loopback_only(ray_cluster, workdir: Path):
    """Driver, GCS, raylet, agents, metrics servers and every TrialRunner: all loopback."""
    seen: set[Listener] = set()
    done = threading.Event()

    def sample() -> None:  # every half second while the study runs, so workers are seen
        while not done.wait(0.5):
            seen.update(_listeners({os.getpid()}))  # the driver's own gRPC server
            seen.update(_listeners(_descendants(os.getpid()), only_ray=True))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_study(
            SPEC, storage=str(workdir / "study.journal"), tracker=NullTracker(), progress=False
        )
    finally:
        done.set()
        sampler.join(timeout=10)
    assert result.n_complete == 2

    titles = {title for title, _, _ in seen}
    assert {"gcs_server", "raylet"} <= titles, seen
    assert any("TrialRunner" in t for t in titles), f"no trial worker was listening: {seen}"
    exposed = sorted(listener for listener in seen if not _is_loopback(listener[1]))
    assert not exposed, f"Ray listens beyond loopback: {exposed}"
    assert ray_cluster.util.get_node_ip_address() == "127.0.0.1"
