"""MLflow trouble never stops a study: each failing call becomes one error line, and once
the tracking store is out of reach the later calls are skipped instead of each waiting
out MLflow's retries (a circuit breaker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Guard:
    """Runs MLflow calls, keeping their failures as ``errors`` lines."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.unavailable_because = ""  # set: no use trying MLflow again, and why
        self._skipped = 0

    def call(self, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)``, or None when it raised (one line in ``errors``) or was skipped."""
        if self.unavailable_because:
            self._skipped += 1
            return None
        try:
            return fn(*args)
        except Exception as err:  # tracking trouble must not kill the study
            self.errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
            if lost_contact(err):  # each later call would wait out the retries too
                self.unavailable_because = "the tracking server did not answer"
            return None

    def give_up(self, because: str) -> None:
        """Skip every later call (say why once, at `close`)."""
        self.unavailable_because = self.unavailable_because or because

    def close(self) -> None:
        if self._skipped:
            self.errors.append(
                f"MLflow: {self._skipped} calls skipped (trials, fronts) because "
                f"{self.unavailable_because}; run the study again once MLflow answers to "
                "record its finished trials"
            )


def lost_contact(err: Exception) -> bool:
    """Whether MLflow's REST client gave up reaching the server (after its own retries),
    as opposed to the server answering with an error."""
    text = str(err)
    return text.startswith("API request to ") and (
        " failed with exception " in text or " failed with timeout exception " in text
    )
