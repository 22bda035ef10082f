"""One study stored with a constraint no trial can meet (a typo, from before such specs
were refused) never breaks reading it or the other studies of its storage."""

from __future__ import annotations

from pathlib import Path

from paretotune import Client
from paretotune.execution import TrialTask
from paretotune.testing import Outcome, simulate_study

SPEC = {
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {"architecture": "mlp", "mlp": {"width": [16, 32, 64]}, "optimizer": "adam"},
    "budget": {"trials": 3},
    "sampler": {"name": "random"},
}


def _trial(task: TrialTask) -> Outcome:
    width = task.params["mlp.width"]
    return Outcome(metrics={"accuracy": width / 64, "train_time_s": width / 8})


def test_a_typo_in_a_stored_constraint_breaks_no_read(tmp_path: Path, paretotune):
    storage = str(tmp_path / "s.journal")
    simulate_study(
        SPEC | {"name": "typo", "constraints": ["acuracy >= 0.5"]}, _trial, storage=storage
    )
    simulate_study(SPEC | {"name": "fine"}, _trial, storage=storage)
    summaries = {s.name: s for s in Client(storage=storage).studies()}
    assert set(summaries) == {"typo", "fine"} and summaries["fine"].pareto_size > 0
    assert Client(storage=storage).pareto_front("typo") == ()  # nothing feasible
    for command in (["studies"], ["status", "typo"], ["pareto", "typo"], ["status", "fine"]):
        done = paretotune(*command, "--storage", storage, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
