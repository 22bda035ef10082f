"""What MLflow did not take, kept on disk until it does.

When a trial's outcome cannot be recorded (the tracking server is down, the artifact
store refuses a write), the logging process keeps the trial's whole report here: its
state, params, metrics, per-epoch curves, artifacts and model. The next run of the study,
or ``paretotune sync STUDY``, records it from here, so an outage never costs a model or a
curve.

Nothing here is unpickled: a trial is held as ``trial-N.json`` (its state, params,
metrics, curves and artifacts), its model's bytes beside it as ``trial-N.model`` (only
ever uploaded as the run's ``model/model.pt``, never loaded here) and its input example as
``trial-N.example.npy`` (read without pickle). Each file is written atomically, the JSON
last: a crash leaves the old trial or none, and a file planted in the folder can at worst
be recorded, never run.
"""

from __future__ import annotations

import contextlib
import io
import json
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
        report = held.report
        if report.model_bytes is not None and not write_atomically(
            self._path(held.number, MODEL_SUFFIX), report.model_bytes
        ):
            return False
        if report.input_example is not None and not write_atomically(
            self._path(held.number, EXAMPLE_SUFFIX), _npy(report.input_example)
        ):
            return False
        record = {
            "format": FORMAT,
            "number": held.number,
            "state": held.state,
            "params": held.params,
            "artifacts_only": held.artifacts_only,
            "report": {name: getattr(report, name) for name in REPORT_FIELDS},
            "model": report.model_bytes is not None,
            "example": report.input_example is not None,
        }
        text = json.dumps(record, default=_plain)
        return write_atomically(self._path(held.number, ".json"), text.encode())

    def get(self, number: int) -> HeldTrial | None:
        """The held trial ``number``; None when it is not held or not readable as one."""
        try:
            record = json.loads(self._path(number, ".json").read_text())
            report = TrialReport(number=number, **_known(record["report"]))
            if record.get("model"):
                report.model_bytes = self._path(number, MODEL_SUFFIX).read_bytes()
            if record.get("example"):
                report.input_example = _from_npy(self._path(number, EXAMPLE_SUFFIX).read_bytes())
            return HeldTrial(
                number,
                str(record["state"]),
                report,
                dict(record.get("params") or {}),
                bool(record.get("artifacts_only")),
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def numbers(self) -> list[int]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(
            int(p.stem.removeprefix("trial-"))
            for p in self.folder.glob("trial-*.json")
            if p.stem.removeprefix("trial-").isdigit()
        )

    def legacy(self) -> list[Path]:
        """Held trials of format 1 (``trial-N.pkl``, one pickle each): never read, since
        a pickle can run code; `paretotune sync` names them."""
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"trial-*{LEGACY_SUFFIX}"))

    def drop(self, number: int) -> None:
        """Forget a trial MLflow has now recorded (the folder goes with the last one)."""
        if self.folder is None:
            return
        for suffix in (".json", MODEL_SUFFIX, EXAMPLE_SUFFIX):
            with contextlib.suppress(OSError):
                self._path(number, suffix).unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty

    def __len__(self) -> int:
        return len(self.numbers())

    def _path(self, number: int, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / f"trial-{number}{suffix}"


FORMAT = 2  # (1: one pickle per trial, no longer read: a planted one would run code)
MODEL_SUFFIX = ".model"
LEGACY_SUFFIX = ".pkl"
EXAMPLE_SUFFIX = ".example.npy"
# What a held report keeps in its JSON (the model and the example go beside it)
REPORT_FIELDS = (
    "metrics",
    "history",
    "artifacts",
    "error",
    "worker_time_s",
    "started_at",
    "stopped_at",
    "placement",
    "transient",
    "pareto_rank",
    "told",
)


def _known(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: fields[name] for name in REPORT_FIELDS if name in fields}


def _plain(value: Any) -> Any:
    """JSON for what artifacts hold beside plain values: numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not kept with a held trial")


def _npy(array: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _from_npy(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)
