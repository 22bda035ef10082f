"""What MLflow did not take, kept on disk until it does.

When a trial's outcome cannot be recorded (the tracking server is down, the artifact
store refuses a write), the logging process keeps the trial's whole report here: its
state, params, metrics, per-epoch curves, artifacts and model. The next run of the study,
or ``paretotune sync STUDY``, records it from here, so an outage never costs a model or a
curve. One pickle per trial, written atomically (a crash leaves the old file or none).
"""

from __future__ import annotations

import contextlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paretotune._files import write_atomically
from paretotune.execution import TrialReport


@dataclass(frozen=True)
class HeldTrial:
    """A trial's outcome that MLflow has not recorded (whole, or only its artifacts)."""

    number: int
    state: str
    report: TrialReport
    params: dict[str, Any] = field(default_factory=dict)
    artifacts_only: bool = False  # the run holds everything else already


class UnloggedTrials:
    """The held trials of one study, in ``folder`` (created on the first one)."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def keep(self, held: HeldTrial) -> bool:
        """Hold ``held`` on disk; False when there is no folder or it cannot be written."""
        if self.folder is None:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return write_atomically(self._path(held.number), pickle.dumps(held))

    def get(self, number: int) -> HeldTrial | None:
        try:
            held = pickle.loads(self._path(number).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            return None
        return held if isinstance(held, HeldTrial) else None

    def numbers(self) -> list[int]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(
            int(p.stem.removeprefix("trial-"))
            for p in self.folder.glob("trial-*.pkl")
            if p.stem.removeprefix("trial-").isdigit()
        )

    def drop(self, number: int) -> None:
        """Forget a trial MLflow has now recorded (the folder goes with the last one)."""
        if self.folder is None:
            return
        with contextlib.suppress(OSError):
            self._path(number).unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty

    def __len__(self) -> int:
        return len(self.numbers())

    def _path(self, number: int) -> Path:
        assert self.folder is not None
        return self.folder / f"trial-{number}.pkl"
