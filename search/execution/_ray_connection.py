"""The connection to Ray: an address, ``$RAY_ADDRESS``, or a local Ray started on demand
(in the background while the driver prepares), and its orderly stop."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from paretotune._timeline import mark
from paretotune.errors import Terminated
from paretotune.execution._loopback import LOOPBACK, LoopbackNotKept, keep_loopback

# No screen of C++ stack addresses on the user's terminal when the driver is stopped with
# SIGTERM (Ray's failure-signal handler, read when ray is imported: so before that, here,
# where paretotune first imports it); Python's own tracebacks stay.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
_background_start: Future[None] | None = None  # a `start_ray_in_background` not yet joined
_started_here = False  # the connected Ray is a local one this process started
_stop_after_study = False  # set by `stop_ray_after_study`: this process ends with its study
_stopping: threading.Thread | None = None  # a `study_done_with_ray` stop not yet joined


def start_ray_in_background(address: str | None = None, *, min_cpus: float = 1.0) -> bool:
    """Begin `ensure_ray` on a helper thread and return at once; the next `ensure_ray`
    waits for it (and raises what it raised). Ray's start-up takes seconds, and so does
    the driver's own (checking the dataset imports torch and scikit-learn): this lets
    them overlap. True when a start was begun (Ray was not already up or starting)."""
    global _background_start
    import ray

    if _background_start is not None or ray.is_initialized():
        return False
    _stop_in_order_on_sigterm()  # (a helper thread cannot set a handler)
    logging.getLogger("ray._private.worker").addFilter(_NoSigtermWarning())
    started: Future[None] = Future()

    def start() -> None:
        try:
            _connect(address, min_cpus=min_cpus)
        except BaseException as err:
            started.set_exception(err)
            return
        started.set_result(None)
        # A local Ray's processes are bound to the thread that started them (Linux's
        # parent-death signal fires when that *thread* ends): keep it alive with the
        # process, which is also when those processes should go.
        threading.Event().wait()

    threading.Thread(target=start, name="ray-start", daemon=True).start()
    _background_start = started
    return True


def stop_ray_after_study() -> None:
    """This process ends when its study does (the ``paretotune`` command): a local Ray it
    starts is stopped as soon as the study's workers are (`study_done_with_ray`), beside
    the study's closing, instead of after it."""
    global _stop_after_study
    _stop_after_study = True


def study_done_with_ray() -> None:
    """A run's workers are stopped and it asks nothing more of Ray. After
    `stop_ray_after_study`, a local Ray this process started begins stopping on a helper
    thread (~1.4 s, mostly waiting on its processes) while the study closes its records;
    `stop_ray` waits for it. Otherwise nothing: a program's later studies reuse its Ray."""
    global _stopping
    if not (_stop_after_study and _started_here) or _stopping is not None:
        return
    import ray

    if ray.is_initialized():
        _stopping = threading.Thread(target=ray.shutdown, name="ray-stop", daemon=True)
        _stopping.start()
        mark("ray_stop_begun")


def stop_ray() -> None:
    """Stop the Ray this process started or joined, in order (its agents outlive a
    raylet that is simply killed). A start still under way on the helper thread is
    waited for first, so none of its processes is left behind; so is a stop begun by
    `study_done_with_ray`."""
    with contextlib.suppress(Exception):
        _join_background_start()
    if _stopping is not None:
        _stopping.join()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def started_here() -> bool:
    """Whether the connected Ray is a local one this process started (a cluster that will
    not grow: nothing adds nodes to it)."""
    return _started_here


def _stop_in_order_on_sigterm() -> None:
    """SIGTERM raises `Terminated` in the main thread, so the study closes in order
    (running trials interrupted, records closed) and the command exits 143. It replaces
    Ray's own handler (``sys.exit(15)``, which skips the interrupted study's closing)."""
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGTERM)
        if handler is signal.SIG_DFL or getattr(handler, "__module__", "").startswith("ray"):
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    Terminated.received = True  # (Ray's blocking calls turn it into a KeyboardInterrupt)
    raise Terminated()


class _NoSigtermWarning(logging.Filter):
    """Drops Ray's warning that a helper thread cannot set its SIGTERM handler (the
    caller of `start_ray_in_background` set one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def ensure_ray(
    address: str | None = None,
    *,
    min_cpus: float = 1.0,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
) -> None:
    """Connect to Ray: the given address, ``$RAY_ADDRESS``, or a local Ray started on demand.

    ``address="local"`` always starts a fresh private Ray, never a ``ray start`` cluster
    found on disk. A local Ray gets ``num_cpus`` logical CPUs, or the core count but at
    least ``min_cpus``, so the requested concurrency is honoured even beyond the core
    count (oversubscription is the user's explicit choice). A start begun by
    `start_ray_in_background` is waited for instead.
    """
    _join_background_start()
    _connect(address, min_cpus=min_cpus, num_cpus=num_cpus, log_to_driver=log_to_driver)


def start_words(address: str | None = None, *, min_cpus: float = 1.0) -> str:
    """What `ensure_ray` does for ``address`` (default ``$RAY_ADDRESS``), in words: for
    a line shown while it does."""
    joined = joined_address(address)
    if joined:
        return f"joining Ray at {joined}"
    return f"starting a local Ray ({_local_cpus(min_cpus)} CPUs)"


def joined_address(address: str | None) -> str | None:
    """The cluster to join, or None for a local Ray started here."""
    address = address or os.environ.get("RAY_ADDRESS")
    return address if address and address != "local" else None


def _local_cpus(min_cpus: float) -> int:
    """A local Ray's logical CPUs: the core count, or more when the workers ask more."""
    return max(os.cpu_count() or 1, int(min_cpus + 0.999))


RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where Ray looks for its token
# The logger of Ray's line saying that token authentication is on (it is, by default)
RAY_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def _private_token_auth() -> None:
    """Token authentication for a local Ray, Ray's default, minus its two surprises: it
    writes the token readable by every local user (mode 0644), and says on the terminal
    that it is on. Unless the user chose a mode (``RAY_AUTH_MODE``), the token file is
    made here first, only its owner can read it (Ray then uses it), and that line goes
    unsaid."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return  # the user's choice (tests and `make demo`: disabled)
    logging.getLogger(RAY_TOKEN_LOGGER).setLevel(logging.ERROR)
    RAY_TOKEN_FILE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        handle = os.open(RAY_TOKEN_FILE, flags, 0o600)
    except FileExistsError:
        if not RAY_TOKEN_FILE.is_symlink() and RAY_TOKEN_FILE.stat().st_mode & 0o077:
            RAY_TOKEN_FILE.chmod(0o600)  # Ray's own, made readable by all
        return
    with os.fdopen(handle, "w") as token:
        token.write(secrets.token_hex(32))  # as Ray's generator: 256 bits


def _join_background_start() -> None:
    """Wait for a start begun by `start_ray_in_background`, once; raise what it raised."""
    global _background_start
    pending, _background_start = _background_start, None
    if pending is not None:
        pending.result()


def _connect(
    address: str | None,
    *,
    min_cpus: float,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local Ray whose servers all
    bind 127.0.0.1 (see `paretotune.execution._loopback`): a loopback address stays
    loopback either way."""
    global _started_here
    import ray

    if ray.is_initialized():
        return
    address = joined_address(address)
    try:
        if address:
            with keep_loopback(address):
                # configure_logging=False: no "Connecting to existing Ray cluster" lines
                ray.init(address=address, log_to_driver=log_to_driver, configure_logging=False)
            return
        _started_here = True
        cpus = num_cpus or _local_cpus(min_cpus)
        _private_token_auth()
        with keep_loopback(LOOPBACK):
            ray.init(
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=log_to_driver,
                configure_logging=False,
                _node_ip_address=LOOPBACK,
            )
    except LoopbackNotKept:  # what started may be listening on every interface: stop it
        ray.shutdown()
        raise
    finally:
        _stop_in_order_on_sigterm()  # (ray.init on the main thread sets its own)
