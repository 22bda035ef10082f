"""Stopping a study's driver on this machine, for `paretotune stop`: the holder of its
driver lock (`paretotune.study._lock.lock_holder`) gets SIGINT (SIGTERM where it ignores
SIGINT, as a driver started with ``&`` from a script does), which it turns into an orderly
end, and is waited for until it lets go of the lock and exits; the line returned says
what was kept. `wait_until`, the waiting with a progress line every `PROGRESS_EVERY_S`, is
also what a stopped Ray job is waited for with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from paretotune.cli._status import open_reader, study_status
from paretotune.errors import NotRunningError, ParetotuneError, StopTimeoutError
from paretotune.study import resolve_storage_url
from paretotune.study._lock import lock_holder
from paretotune.study._storage import missing_storage

PROGRESS_EVERY_S = 10.0
_POLL_S = 0.5


def stop_driver(
    name: str, storage: str | None, timeout_s: float, say: Callable[[str], None]
) -> str:
    from paretotune.study._attrs import interrupted_numbers

    url = resolve_storage_url(storage)
    client = open_reader(url)
    if client is None:
        raise missing_storage(url)
    before = interrupted_numbers(client.load_study(name))  # StudyNotFoundError: one line
    holder = lock_holder(url, name)
    if holder is None:
        raise NotRunningError(f"study {name!r} in {url} is not running: no driver holds it")
    here = socket.gethostname()
    if holder.pid is None or holder.host is None:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, which cannot be signalled from here: "
            "stop it where it runs"
        )
    if holder.host != here:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, not on this machine ({here}): run "
            "`paretotune stop` there, or give --address for a study submitted as a Ray job"
        )
    sig = _stop_signal(holder.pid)
    try:
        os.kill(holder.pid, sig)
    except ProcessLookupError:
        pass  # it ended meanwhile
    except PermissionError:
        raise ParetotuneError(
            f"study {name!r} is run by {holder.text}, which this user may not signal"
        ) from None
    say(
        f"stopping {name}: sent {sig.name} to pid {holder.pid}; waiting up to "
        f"{timeout_s:.0f} s for it to close its running trials …"
    )
    started = time.monotonic()
    wait_until(
        lambda: lock_holder(url, name) is None,
        timeout_s,
        late=f"pid {holder.pid} still runs study {name!r} after {timeout_s:.0f} s (it may "
        f"still be closing; `paretotune status {name}` shows when it is done)",
        progress=f"… pid {holder.pid} is still closing",
        say=say,
    )
    while _alive(holder.pid) and time.monotonic() - started < timeout_s:
        time.sleep(_POLL_S)  # the lock is let go before the driver stops its Ray
    after = open_reader(url)
    assert after is not None
    status = study_status(after, url, name, None)
    new = sorted(set(status.interrupted) - before)
    which = f" ({', '.join(map(str, new))}: queued to run again)" if new else ""
    return (
        f"stopped {name}: {status.trials['COMPLETE']} complete, {len(new)} interrupted{which}; "
        "run it again to resume"
    )


def wait_until(
    done: Callable[[], bool],
    timeout_s: float,
    *,
    late: str,
    progress: str,
    say: Callable[[str], None],
) -> None:
    """Poll ``done`` until it holds, saying ``progress`` (with the seconds waited) every
    `PROGRESS_EVERY_S`.

    Raises:
        StopTimeoutError: ``late``, once ``timeout_s`` have passed.
    """
    started = time.monotonic()
    noted = started
    while not done():
        if time.monotonic() - started > timeout_s:
            raise StopTimeoutError(late)
        if time.monotonic() - noted >= PROGRESS_EVERY_S:
            noted = time.monotonic()
            say(f"{progress} ({noted - started:.0f} s)")
        time.sleep(_POLL_S)


def _stop_signal(pid: int) -> signal.Signals:
    """SIGINT, unless the process ignores it (a job started with ``&`` from a script
    inherits SIGINT ignored): then SIGTERM, which the driver also ends in order on."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # no /proc (macOS): SIGINT
        return signal.SIGINT
    for line in lines:
        if line.startswith("SigIgn:"):
            if int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)):
                return signal.SIGTERM
    return signal.SIGINT


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True
