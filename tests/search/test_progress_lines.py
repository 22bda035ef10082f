"""What a running study tells its user on the terminal: the resume line, the findings
under the progress bar (the best of each objective on the front, the hypervolume) and
what a Ctrl-C kept. Real studies on a simulated clock; the lines are read as printed."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from paretotune.execution import TrialTask
from paretotune.study import open_storage
from paretotune.study._attrs import interrupted_numbers
from paretotune.testing import Outcome, simulate_study

SPEC = {
    "name": "shown",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": [1, 2, 3], "width": [16, 32, 64, 128]},
        "optimizer": ["adam", "sgd"],
        "compression": ["none"],
    },
    "budget": {"trials": 12},
    "sampler": {"name": "random"},
}


def _trial(task: TrialTask) -> Outcome:
    width, depth = task.params["mlp.width"], task.params["mlp.depth"]
    return Outcome(
        seconds=10.0, metrics={"accuracy": width / 128 - depth / 100, "train_time_s": width / 8}
    )


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="shown", storage=open_storage(_storage(tmp_path)))


def _storage(tmp_path: Path) -> str:
    return str(tmp_path / "study.journal")


def test_the_progress_shows_each_objectives_best_and_the_hypervolume(tmp_path, capsys):
    run = simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, progress=True)
    shown = capsys.readouterr().err
    complete = _study(tmp_path).get_trials(states=(TrialState.COMPLETE,))
    best_accuracy = max(t.values[0] for t in complete)
    best_time = min(t.values[1] for t in complete)
    findings = [line for line in shown.splitlines() if "Pareto" in line and "best" in line][-1]
    assert f"Pareto {len(run.result.pareto)}" in findings
    assert f"accuracy {best_accuracy:.3g}" in findings, findings
    assert f"train_time_s {best_time:.3g}" in findings, findings
    assert f"HV {run.result.hypervolume:.3g}" in findings, (findings, run.result.hypervolume)
    assert "12/12 trials" in shown
    assert "resuming" not in shown  # a new study


def test_a_resumed_study_says_how_far_it_got(tmp_path, capsys):
    simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, trials=5)
    capsys.readouterr()
    simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, progress=True)
    assert "resuming shown: 5 finished, 7 to go\n" in capsys.readouterr().err


def test_ctrl_c_says_what_was_kept_and_the_resume_runs_the_interrupted_first(tmp_path, capsys):
    submitted: list[int] = []

    def interrupted_at_the_sixth(task: TrialTask) -> Outcome:
        submitted.append(task.number)
        if len(submitted) == 6:
            raise KeyboardInterrupt
        return _trial(task)

    with pytest.raises(KeyboardInterrupt):
        simulate_study(
            SPEC, interrupted_at_the_sixth, storage=_storage(tmp_path), capacity=2, progress=True
        )
    printed = capsys.readouterr()
    study = _study(tmp_path)
    kept = len(study.get_trials(states=(TrialState.COMPLETE,)))
    closed = len(interrupted_numbers(study))
    assert kept >= 2 and closed >= 1, (kept, closed)
    assert (
        f"shown: stopped; {kept} finished trials are kept ({kept} from this run), {closed} "
        "running trials were closed as interrupted and run first when the study resumes"
    ) in printed.err
    assert "Pareto-optimal trials" in printed.out  # the front so far

    resumed = simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, progress=True)
    assert (
        f"resuming shown: {kept} finished, {12 - kept} to go ({closed} interrupted trials run "
        "again first)"
    ) in capsys.readouterr().err
    assert resumed.result.n_complete == 12
    assert resumed.result.n_interrupted == closed
    assert resumed.result.n_failed == 0  # interrupted trials are not failures


def test_the_hypervolume_is_charted_once_per_finished_trial(tmp_path):
    run = simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2)
    steps = [step for step, _ in run.tracker.charted]
    # from the trial that fixes the normalisation (the 10th complete) on, each step once
    assert steps == list(range(10, 13)), steps
    assert run.tracker.charted[-1][1]["hypervolume"] == pytest.approx(run.result.hypervolume)
