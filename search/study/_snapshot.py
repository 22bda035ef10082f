"""A finished run's study, kept beside its journal as JSON, so that reading it back costs
a JSON parse instead of Optuna's replay of the whole journal (the replay is most of a
read command's time on a large study: ~2 s at 10,000 trials on the development machine).

The driver writes it as its run ends (`write_snapshot`), holding the study's lock, after
its last write to the journal. It records the journal's size and modification time then;
a reader takes it only while the journal still has both (`read_snapshot`), so a study
changed since (a new run, a `sync`, a driver running now) is read from the journal as
before. JSON only: a snapshot holds data, never code. Journals only (a database answers
queries itself).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState
from paretotune._files import write_atomically
from paretotune.study._attrs import study_objectives
from paretotune.study._storage import journal_path, resolve_storage_url

FORMAT = 1


@dataclass(frozen=True)
class StudySnapshot:
    """What a reader needs of a study: its objectives, attributes and trials."""

    name: str
    objectives: dict[str, str]
    attrs: dict[str, Any]
    trials: list[FrozenTrial]


def snapshot_path(storage_url: str, study_name: str) -> Path | None:
    """``<journal>.<study>.snapshot.json`` for a journal storage, else None."""
    journal = journal_path(resolve_storage_url(storage_url))
    if journal is None:
        return None
    return journal.with_name(f"{journal.name}.{study_name.replace('/', '_')}.snapshot.json")


def write_snapshot(storage_url: str, study: optuna.Study) -> Path | None:
    """Keep ``study`` as it is now beside its journal (atomically: a reader sees the old
    snapshot or the new one). Nothing for other storages; a file that cannot be written
    is skipped (readers then replay the journal)."""
    path = snapshot_path(storage_url, study.study_name)
    journal = journal_path(resolve_storage_url(storage_url))
    if path is None or journal is None:
        return None
    try:
        stat = journal.stat()
    except OSError:
        return None
    body = {
        "format": FORMAT,
        "journal_bytes": stat.st_size,
        "journal_mtime_ns": stat.st_mtime_ns,
        "study": study.study_name,
        "objectives": study_objectives(study),
        "attrs": study.user_attrs,
        "trials": [_trial_json(t) for t in study.get_trials(deepcopy=False)],
    }
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    return path if write_atomically(path, data) else None


def read_snapshot(storage_url: str, study_name: str) -> StudySnapshot | None:
    """The study's snapshot while its journal is as the snapshot found it; else None
    (no snapshot, a changed journal, a file that does not parse). Parsed once per
    version of the files in a process."""
    path = snapshot_path(storage_url, study_name)
    journal = journal_path(resolve_storage_url(storage_url))
    if path is None or journal is None:
        return None
    try:
        stat, own = journal.stat(), path.stat()
    except OSError:
        return None
    snapshot = _parsed(str(path), own.st_mtime_ns, own.st_size, stat.st_size, stat.st_mtime_ns)
    return snapshot if snapshot is not None and snapshot.name == study_name else None


@functools.lru_cache(maxsize=8)
def _parsed(
    path: str, mtime_ns: int, size: int, journal_bytes: int, journal_mtime_ns: int
) -> StudySnapshot | None:
    """The snapshot at ``path`` if it names the journal as it is (the key: both files'
    sizes and times, so a changed file is parsed again)."""
    try:
        body = json.loads(Path(path).read_text())
        fresh = (
            body.get("format") == FORMAT
            and body.get("journal_bytes") == journal_bytes
            and body.get("journal_mtime_ns") == journal_mtime_ns
        )
        if not fresh:
            return None
        trials = [_trial_of(t) for t in body["trials"]]
        return StudySnapshot(body["study"], dict(body["objectives"]), dict(body["attrs"]), trials)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable: the journal is the truth


def _trial_json(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": trial.values,
        "datetime_start": _iso(trial.datetime_start),
        "datetime_complete": _iso(trial.datetime_complete),
        "params": trial.params,
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        "user_attrs": trial.user_attrs,
        "intermediate_values": {str(k): v for k, v in trial.intermediate_values.items()},
    }


def _trial_of(data: dict[str, Any]) -> FrozenTrial:
    return FrozenTrial(
        number=int(data["number"]),
        state=TrialState[data["state"]],
        value=None,
        values=data["values"],
        datetime_start=_datetime(data["datetime_start"]),
        datetime_complete=_datetime(data["datetime_complete"]),
        params=dict(data["params"]),
        distributions={k: _distribution(v) for k, v in data["distributions"].items()},
        user_attrs=dict(data["user_attrs"]),
        system_attrs={},
        intermediate_values={int(k): v for k, v in data["intermediate_values"].items()},
        trial_id=int(data["number"]),  # (Optuna's storage id; no reader of ours uses it)
    )


@functools.lru_cache(maxsize=1024)
def _distribution(text: str) -> BaseDistribution:
    """A distribution from its JSON, parsed once per text (trials share a few)."""
    return json_to_distribution(text)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
