"""The loopback patch (`paretotune.execution._loopback`) fails loudly when Ray stops
calling the function it patches, instead of letting a Ray it starts serve every
interface. Whether every server really binds 127.0.0.1 is checked on live processes in
tests/e2e/test_loopback.py (the session's Ray and a study on it), test_services.py
(`paretotune up`: Ray head and MLflow server) and test_multinode.py (a joined node)."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import pytest
from paretotune.execution import _loopback
from paretotune.execution._loopback import (
    LOOPBACK,
    LOOPBACK_ENV,
    LoopbackNotKept,
    _option_values,
    keep_loopback,
)


@pytest.fixture()
def services() -> ModuleType:
    """Ray's module whose ``resolve_ip_for_localhost`` the patch replaces (imported only:
    nothing starts)."""
    return importlib.import_module("ray._private.services")


def test_ray_asked_about_a_loopback_host_keeps_it(services: ModuleType):
    original = services.resolve_ip_for_localhost
    with keep_loopback(LOOPBACK, "127.0.0.1:6379"):
        assert services.resolve_ip_for_localhost("127.0.0.1") == LOOPBACK
        assert services.resolve_ip_for_localhost("localhost") == LOOPBACK
        assert services.resolve_ip_for_localhost("10.1.2.3") == "10.1.2.3"  # untouched
        assert os.environ[LOOPBACK_ENV] == "0"
    assert services.resolve_ip_for_localhost is original, "restored on the way out"


def test_ray_never_asking_about_a_loopback_host_it_was_handed_fails_loudly(
    services: ModuleType,
):
    """Ray 2.60 calls ``resolve_ip_for_localhost`` for ``_node_ip_address`` and for a
    cluster address; a Ray that no longer does would bind every interface silently."""
    with pytest.raises(LoopbackNotKept) as raised:
        with keep_loopback(LOOPBACK):
            pass  # what a Ray that stopped calling the patched function does
    message = str(raised.value)
    assert "called ray._private.services.resolve_ip_for_localhost" in message
    assert "about 0" in message
    assert LOOPBACK in message and _loopback.CHECKED_ON_RAY in message
    with pytest.raises(LoopbackNotKept):
        with keep_loopback(None, "localhost:6379"):
            pass
    with pytest.raises(LoopbackNotKept, match="handed 2 loopback hosts"):
        with keep_loopback(LOOPBACK, "127.0.0.1:6379"):  # `ray start` joining: node and head
            services.resolve_ip_for_localhost("127.0.0.1")  # a Ray that asks about one only
    assert services.resolve_ip_for_localhost.__module__ == services.__name__, "restored"


@pytest.mark.parametrize("given", [(), (None,), ("local",), ("auto",), ("10.1.2.3:6379",)])
def test_nothing_loopback_handed_to_ray_needs_no_call(given: tuple[str | None, ...]):
    with keep_loopback(*given):
        pass


def test_a_ray_client_address_is_not_resolved_so_and_needs_no_call():
    with keep_loopback("ray://127.0.0.1:10001"):
        pass


def test_a_body_that_raises_raises_its_own_error(services: ModuleType):
    with pytest.raises(KeyError):
        with keep_loopback(LOOPBACK):
            raise KeyError("the body's own")


def test_a_ray_without_the_patched_function_is_refused(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delattr(services, "resolve_ip_for_localhost")
    with pytest.raises(LoopbackNotKept, match="cannot be patched"):
        with keep_loopback(LOOPBACK):
            pass


def test_the_ray_cli_checks_the_addresses_it_was_given():
    args = ["start", "--node-ip-address", LOOPBACK, "--address=127.0.0.1:6379", "--head"]
    assert _option_values(args, "--node-ip-address", "--address") == [
        LOOPBACK,
        "127.0.0.1:6379",
    ]
    assert _option_values(["start", "--head"], "--node-ip-address") == []


def test_the_ray_cli_fails_when_ray_start_never_asks(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch
):
    """``python -m paretotune.execution._loopback start ...`` (how `start_ray_node` runs
    ``ray start``) exits non-zero, so the node is stopped and `ClusterError` raised."""
    scripts = importlib.import_module("ray.scripts.scripts")
    ran: list[list[str]] = []

    def main(args: list[str], prog_name: str) -> None:
        ran.append(args)
        raise SystemExit(0)  # a `ray start` that never resolved its node IP

    monkeypatch.setattr(scripts.cli, "main", main)
    monkeypatch.setattr(sys, "argv", ["_loopback", "start", "--node-ip-address", LOOPBACK])
    with pytest.raises(LoopbackNotKept):
        _loopback.ray_cli()
    assert ran == [["start", "--node-ip-address", LOOPBACK]]

    def fails(args: list[str], prog_name: str) -> None:
        raise SystemExit(2)  # a `ray start` that failed: its own exit status, unmasked

    monkeypatch.setattr(scripts.cli, "main", fails)
    with pytest.raises(SystemExit) as exited:
        _loopback.ray_cli()
    assert exited.value.code == 2
