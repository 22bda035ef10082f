"""Phase marks of one run, for `benchmarks/startup.py`'s timeline.

With ``$PARETOTUNE_TIMELINE`` naming a file, each `mark` appends one JSON line,
``{"phase": ..., "t": <seconds since the epoch>, "pid": ...}``; without it, `mark` does
nothing (one environment lookup). Wall-clock epoch seconds so the marks of the driver,
its threads and the benchmark that launched it share one time line.
"""

from __future__ import annotations

import json
import os
import time

TIMELINE_ENV = "PARETOTUNE_TIMELINE"


def mark(phase: str) -> None:
    """Record that ``phase`` was reached now (when a timeline file is asked for)."""
    path = os.environ.get(TIMELINE_ENV)
    if not path:
        return
    line = json.dumps({"phase": phase, "t": time.time(), "pid": os.getpid()})
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def read(path: str | os.PathLike[str]) -> list[tuple[str, float]]:
    """The marks in a timeline file, in the order they were written."""
    with open(path, encoding="utf-8") as lines:
        return [(entry["phase"], entry["t"]) for entry in map(json.loads, lines)]
