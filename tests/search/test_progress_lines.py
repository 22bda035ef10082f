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
from paretotune.testing import MLP_SPACE, Outcome, simulate_study

SPEC = {
    "name": "shown",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": MLP_SPACE,
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


def _interrupted_at(nth: int):
    """A script that plays `_trial` until the ``nth`` submitted trial: Ctrl-C then."""
    submitted: list[int] = []

    def script(task: TrialTask) -> Outcome:
        submitted.append(task.number)
        if len(submitted) == nth:
            raise KeyboardInterrupt
        return _trial(task)

    return script


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
    assert f"HV {run.result.hypervolume:.1%}" in findings, (findings, run.result.hypervolume)
    assert 0 < run.result.hypervolume <= 1
    assert "12/12 trials" in shown
    assert "resuming" not in shown  # a new study


def test_a_resumed_study_says_how_far_it_got(tmp_path, capsys):
    simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, trials=5)
    capsys.readouterr()
    simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, progress=True)
    assert "resuming shown: 5 finished, 7 to go\n" in capsys.readouterr().err


def test_ctrl_c_says_what_was_kept_and_the_resume_runs_the_interrupted_first(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        simulate_study(
            SPEC, _interrupted_at(6), storage=_storage(tmp_path), capacity=2, progress=True
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
    shown = capsys.readouterr().err
    assert (
        f"resuming shown: {kept} finished, {12 - kept} to go ({closed} interrupted trials run "
        "again first)"
    ) in shown
    assert resumed.result.n_complete == 12
    assert resumed.result.n_interrupted == closed
    assert resumed.result.n_failed == 0  # interrupted trials are not failures
    findings = [line for line in shown.splitlines() if "Pareto" in line][-1]
    assert f"· {closed} interrupted" in findings and "failed" not in findings, findings


def test_the_resume_line_promises_no_more_reruns_than_the_budget_has_left(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        simulate_study(SPEC, _interrupted_at(4), storage=_storage(tmp_path), capacity=2)
    kept = len(_study(tmp_path).get_trials(states=(TrialState.COMPLETE,)))
    simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2, trials=kept, progress=True)
    assert f"resuming shown: {kept} finished, 0 to go\n" in capsys.readouterr().err


def test_metrics_a_study_kept_in_one_dict_are_still_read(tmp_path):
    """Studies written before one attribute per metric kept them in ``metrics``."""
    from paretotune.results.records import record_of
    from paretotune.study._constraints import trial_namespace

    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("metrics", {"accuracy": 0.9, "train_time_s": 2.0, "size_bytes": 10.0})
    study.tell(trial, [0.9, 2.0])
    frozen = study.trials[0]
    record = record_of(frozen, {"accuracy": "maximize", "train_time_s": "minimize"})
    assert dict(record.metrics) == {"accuracy": 0.9, "train_time_s": 2.0, "size_bytes": 10.0}
    assert trial_namespace(frozen)["size_bytes"] == 10.0


def test_the_hypervolume_is_charted_once_per_finished_trial(tmp_path):
    run = simulate_study(SPEC, _trial, storage=_storage(tmp_path), capacity=2)
    steps = [step for step, _ in run.tracker.charted]
    # from the trial that fixes the normalisation (the 10th complete) on, each step once
    assert steps == list(range(10, 13)), steps
    assert run.tracker.charted[-1][1]["hypervolume"] == pytest.approx(run.result.hypervolume)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_metrics_are_one_attribute_each_as_optuna_reads_them_back(tmp_path, kind):
    """On a journal, the metrics go in one append (one fsync); read back by a fresh
    storage (replaying the file) they are what Optuna's own `set_user_attr` calls give.
    Other storages take them one by one."""
    from paretotune.study._attrs import set_trial_metrics, trial_metrics

    url = str(tmp_path / "study.journal") if kind == "journal" else f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=open_storage(url), directions=["maximize"])
    metrics = {"accuracy": 0.9, "latency_ms": 0.25, "size_bytes": 1024.0}
    batched, by_optuna = study.ask(), study.ask()
    set_trial_metrics(batched, metrics)
    for name, value in metrics.items():
        by_optuna.set_user_attr(f"metric.{name}", value)
    assert batched.user_attrs == by_optuna.user_attrs  # the trial's own view, too
    study.tell(batched, [0.9])
    study.tell(by_optuna, [0.9])
    again = optuna.load_study(study_name=study.study_name, storage=open_storage(url))
    first, second = again.trials
    assert first.user_attrs == second.user_attrs == {f"metric.{k}": v for k, v in metrics.items()}
    assert trial_metrics(first) == metrics


def test_the_findings_fit_an_80_column_terminal_without_splitting_one():
    from paretotune._progress import fit_findings

    parts = [
        "Pareto 6",
        "best accuracy 0.974, train_time_s 0.0537, latency_ms 0.0213",
        "HV 41.2%",
        "2 failed",
    ]
    lines = fit_findings(parts, 80)
    assert lines == [
        "  Pareto 6 · best accuracy 0.974, train_time_s 0.0537, latency_ms 0.0213",
        "  HV 41.2% · 2 failed",
    ]
    assert fit_findings(parts, 200) == ["  " + " · ".join(parts)]
    assert fit_findings([], 80) == []


def test_the_front_table_says_how_much_its_measured_objectives_swing():
    from types import MappingProxyType

    from paretotune._progress import noise_note
    from paretotune.results.records import TrialRecord

    def record(number: int, cv: float) -> TrialRecord:
        values = {"accuracy": 0.9, "latency_ms": 0.02}
        return TrialRecord(
            number=number,
            state="COMPLETE",
            params=MappingProxyType({}),
            values=MappingProxyType(values),
            metrics=MappingProxyType(values | {"latency_cv": cv}),
            mlflow_run_id=None,
        )

    objectives = {"accuracy": "maximize", "latency_ms": "minimize"}
    assert noise_note(objectives, [record(0, 0.021), record(1, 0.038)]) == (
        "measured noise (between rounds): latency_ms ±2.1%–3.8%; differences within it are ties"
    )
    assert noise_note(objectives, [record(0, 0.021)], tied=2).endswith(
        "are ties (2 models ahead only within it ranked 1, off the front)"
    )
    assert noise_note({"accuracy": "maximize"}, [record(0, 0.02)]) == ""
