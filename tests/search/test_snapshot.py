"""A finished run's snapshot beside its journal: read back, it gives exactly what the
journal gives; a journal changed since, or a snapshot that does not parse, is never
taken."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from paretotune import Client
from paretotune.results.study_view import StudyView
from paretotune.study import open_storage
from paretotune.study._snapshot import read_snapshot, snapshot_path
from paretotune.testing import Outcome, simulate_study

SPEC = {
    "name": "snap",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": [1, 2, 3], "width": {"low": 16, "high": 256, "log": True}},
        "optimizer": ["adam", "sgd"],
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "compression": ["none"],
    },
    "budget": {"trials": 14},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
    "constraints": ["accuracy >= 0.3"],
}


def _trial(task) -> Outcome:
    if task.number == 4:
        return Outcome(seconds=1.0, error="TrainingDiverged: loss nan")
    width = task.params["mlp.width"]
    return Outcome(
        seconds=1.0, metrics={"accuracy": width / 256, "train_time_s": width / 10 + task.number}
    )


def _journal(tmp_path: Path) -> str:
    return str(tmp_path / "study.journal")


def _from_journal(tmp_path: Path) -> StudyView:
    study = optuna.load_study(study_name="snap", storage=open_storage(_journal(tmp_path)))
    return StudyView(study)


def test_the_snapshot_reads_back_what_the_journal_holds(tmp_path: Path):
    simulate_study(SPEC, _trial, storage=_journal(tmp_path), capacity=2)
    snapshot = read_snapshot(_journal(tmp_path), "snap")
    assert snapshot is not None and len(snapshot.trials) == 14
    kept, replayed = StudyView.from_snapshot(snapshot), _from_journal(tmp_path)
    assert [r.as_dict() for r in kept.records] == [r.as_dict() for r in replayed.records]
    assert kept.summary == replayed.summary
    assert kept.front() == replayed.front()
    assert kept.counts == replayed.counts == {"COMPLETE": 13, "FAIL": 1}
    assert kept.detail(4) == replayed.detail(4)
    assert [t.params for t in kept.trials] == [t.params for t in replayed.trials]
    assert [t.distributions for t in kept.trials] == [t.distributions for t in replayed.trials]


def test_a_journal_changed_since_is_read_instead(tmp_path: Path):
    simulate_study(SPEC, _trial, storage=_journal(tmp_path), capacity=2)
    study = optuna.load_study(study_name="snap", storage=open_storage(_journal(tmp_path)))
    study.set_user_attr("note", "written after the run")  # the journal grows
    assert read_snapshot(_journal(tmp_path), "snap") is None
    view = Client(storage=_journal(tmp_path)).view("snap")
    assert view.study is not None and view.attrs["note"] == "written after the run"
    # a resumed run with a larger budget leaves a new snapshot that has its trials
    simulate_study(SPEC, _trial, storage=_journal(tmp_path), capacity=2, trials=16)
    snapshot = read_snapshot(_journal(tmp_path), "snap")
    assert snapshot is not None and len(snapshot.trials) == 16


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1}', ""])
def test_a_snapshot_that_does_not_parse_is_ignored(tmp_path: Path, content: str):
    simulate_study(SPEC, _trial, storage=_journal(tmp_path), capacity=2)
    path = snapshot_path(_journal(tmp_path), "snap")
    assert path is not None
    path.write_text(content)
    assert read_snapshot(_journal(tmp_path), "snap") is None
    assert len(Client(storage=_journal(tmp_path)).trials("snap")) == 14
