"""The run's phase marks (`$PARETOTUNE_TIMELINE`) that benchmarks/startup.py reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from paretotune import _timeline
from paretotune.execution import TrialTask
from paretotune.testing import Outcome, simulate_study

SPEC = {
    "name": "timeline",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {"architecture": "mlp", "mlp": {"width": [16, 32, 64]}, "compression": ["none"]},
    "budget": {"trials": 4},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
}


def _script(task: TrialTask) -> Outcome:
    width = task.params["mlp.width"]
    return Outcome(seconds=1.0, metrics={"accuracy": width / 64, "train_time_s": width / 8})


def test_a_run_marks_its_phases_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    timeline = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(_timeline.TIMELINE_ENV, str(timeline))
    simulate_study(SPEC, _script, storage=str(tmp_path / "study.journal"), capacity=2)
    marks = _timeline.read(timeline)
    phases = [phase for phase, _ in marks]
    # the given executor is the caller's: no Ray to wait for, no workers stopped by the run
    assert phases == [
        "run_study", "study_open", "tracker_open", "first_dispatch", "trials_done",
        "remeasured", "tracker_closed", "front_printed",
    ]  # fmt: skip
    moments = [t for _, t in marks]
    assert moments == sorted(moments)


def test_without_the_variable_nothing_is_written(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(_timeline.TIMELINE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    simulate_study(SPEC, _script, storage=str(tmp_path / "study.journal"), capacity=2)
    assert not list(tmp_path.rglob("*.jsonl"))
