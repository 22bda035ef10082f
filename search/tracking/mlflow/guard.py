"""MLflow trouble never stops a study: each failing call becomes one error line, and once
the tracking server is out of reach the later calls are skipped instead of each waiting
out MLflow's retries (a circuit breaker). While it is open, the server is asked again, at
most every ``PROBE_EVERY_S``, with one short request; when it answers, the breaker closes
and the recorder logs what it held meanwhile (`unlogged`)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 2.0


class Guard:
    """Runs MLflow calls, keeping their failures as ``errors`` lines."""

    def __init__(self, tracking_uri: str = "") -> None:
        self.errors: list[str] = []
        self.unavailable_because = ""  # set: no use trying MLflow again, and why
        self.lost_contact = False  # the breaker opened because the server did not answer
        self._tracking_uri = tracking_uri
        self._probed_at = -float("inf")
        self._skipped = 0

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, or None when it raised (one line in ``errors``) or was
        skipped."""
        if self.unavailable_because:
            self._skipped += 1
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # tracking trouble must not kill the study
            self.errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
            if lost_contact(err):  # each later call would wait out the retries too
                self.unavailable_because = "the tracking server did not answer"
                self.lost_contact = True
                self._probed_at = time.monotonic()
            return None

    def give_up(self, because: str) -> None:
        """Skip every later call (say why once, at `close`)."""
        self.unavailable_because = self.unavailable_because or because

    def server_is_back(self, *, now: bool = False) -> bool:
        """Whether a server that stopped answering answers again: asked once, at most every
        ``PROBE_EVERY_S`` (``now``: whatever the time), with one short request. The
        breaker closes when it does."""
        if not self.lost_contact:
            return False
        if not now and time.monotonic() - self._probed_at < PROBE_EVERY_S:
            return False
        self._probed_at = time.monotonic()
        if not answers(self._tracking_uri):
            return False
        self.lost_contact = False
        self.unavailable_because = ""
        self._skipped = 0
        return True

    def close(self, held: int = 0, where: str = "", study: str = "") -> None:
        """The closing line, when calls were skipped or trials are still ``held``."""
        if not (self._skipped or held):
            return
        parts = []
        if self._skipped:
            parts.append(f"{self._skipped} calls skipped because {self.unavailable_because}")
        if held:
            parts.append(
                f"{held} trials' records are kept in {where} (with their curves and models): "
                f"run `paretotune sync {study}` once MLflow answers"
            )
        else:
            parts.append("run the study again once MLflow answers to record its finished trials")
        self.errors.append("MLflow: " + "; ".join(parts))


def lost_contact(err: BaseException) -> bool:
    """Whether a call failed because the tracking server could not be reached (refused,
    reset, unknown host, timed out, or answering only retryable statuses until MLflow's
    own retries ran out), as opposed to the server answering with an error.

    Read from the exceptions' types, not their text: MLflow's REST client raises an
    ``MlflowException`` whose cause or context is the error of ``requests``
    (``ConnectionError``, ``Timeout``, ``RetryError``); other clients may raise those, or
    Python's ``ConnectionError``/``TimeoutError``, themselves. The whole chain is read."""
    import requests.exceptions  # MLflow's HTTP client, loaded only once a call failed

    lost = (
        requests.exceptions.ConnectionError,  # refused, reset, DNS, connect timeout
        requests.exceptions.Timeout,  # no answer in MLFLOW_HTTP_REQUEST_TIMEOUT
        requests.exceptions.RetryError,  # only 429/5xx answers until the retries ran out
        ConnectionError,
        TimeoutError,
    )
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        if isinstance(link, lost):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def answers(tracking_uri: str) -> bool:
    """Whether the tracking server at ``tracking_uri`` answers its health check now."""
    if not tracking_uri.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(
            tracking_uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S
        ) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False
