"""MO-ASHA: the promotion logic on hand-made tables, then whole studies on a simulated
clock with scripted learning curves (no training): stopped trials are PRUNED, never on a
front, kept resumable, and stragglers and empty rungs are handled."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st
from optuna.trial import TrialState
from paretotune import Client
from paretotune.execution import TrialTask
from paretotune.objectives import StopTraining
from paretotune.stopping import (
    MoAsha,
    RungGate,
    RungRecord,
    balance,
    rung_epochs,
    rung_values,
)
from paretotune.study import open_storage
from paretotune.testing import (
    MLP_SPACE,
    Outcome,
    ScriptedExecutor,
    SimulatedClock,
    simulate_study,
)

MAX_ACC = {"accuracy": "maximize"}
TWO = {"accuracy": "maximize", "train_time_s": "minimize"}


def test_rungs_sit_at_min_epochs_times_powers_of_eta_below_the_budget():
    assert rung_epochs(1, 3, 15) == (1, 3, 9)
    assert rung_epochs(2, 2, 16) == (2, 4, 8)
    assert rung_epochs(1, 3, 1) == ()


def test_an_empty_rung_lets_the_first_trial_on():
    asha = MoAsha(MAX_ACC, (1, 3), reduction_factor=3)
    assert asha.decide(0, 0, {"accuracy": 0.1})


def test_a_trial_goes_on_only_in_the_top_third_of_its_rung():
    asha = MoAsha(MAX_ACC, (1, 3), reduction_factor=3)
    assert asha.decide(0, 0, {"accuracy": 0.5})  # 1 record: keep 1
    assert asha.decide(1, 0, {"accuracy": 0.9})  # 2 records: keep 1, it is the best
    assert not asha.decide(2, 0, {"accuracy": 0.1})  # 3 records: keep 1
    assert asha.decide(3, 0, {"accuracy": 0.95})  # 4: keep 2, it is the best
    assert not asha.decide(4, 0, {"accuracy": 0.7})  # 5: keep 2 (0.95, 0.9)
    assert asha.decide(5, 0, {"accuracy": 0.92})  # 6: keep 2 (0.95, 0.92)


def test_a_straggler_is_judged_against_everything_recorded_before_it():
    asha = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    for number in range(9):
        asha.decide(number, 0, {"accuracy": number / 10})  # 0.0 .. 0.8
    assert asha.decide(9, 0, {"accuracy": 0.99})  # 10 records: keep 4, it is first
    assert not asha.decide(10, 0, {"accuracy": 0.5})  # 11: keep 4 (0.99, .8, .7, .6)


def test_ranking_is_by_nondominated_rank_then_balance():
    asha = MoAsha(TWO, (1,), reduction_factor=2)
    # three trade-offs (rank 0) and two dominated points (rank 1)
    records = [(0, 0.9, 9.0), (1, 0.5, 1.0), (2, 0.85, 6.0), (3, 0.4, 9.5), (4, 0.88, 9.2)]
    for number, acc, seconds in records:
        asha.decide(number, 0, {"accuracy": acc, "train_time_s": seconds})
    order = asha._order(asha.records(0))
    # balance over the rung: 2 (0.66) > 1 (0.60) > 0 (0.53); rank 1: 4 (0.50) before 3 (0)
    assert order[:3] == [2, 1, 0] and order[3:] == [4, 3]


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=30
    )
)
def test_each_decision_places_the_trial_where_the_full_order_does(points):
    """The decision's one vectorised pass (`_place`) agrees with sorting the whole rung
    (`_order`), ties included."""
    objectives = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}
    asha = MoAsha(objectives, (1,), reduction_factor=3)
    for number, (acc, seconds, latency) in enumerate(points):
        values = {"accuracy": acc / 5, "train_time_s": float(seconds), "latency_ms": latency}
        records = asha.records(0)
        order = asha._order([*records, RungRecord(number, 0, values, promoted=False)])
        expected = order.index(number) < math.ceil((len(records) + 1) / 3)
        assert asha.decide(number, 0, values) == expected


def test_the_same_trial_at_the_same_rung_gets_the_same_answer():
    asha = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    asha.decide(0, 0, {"accuracy": 0.9})
    asha.decide(1, 0, {"accuracy": 0.8})
    assert not asha.decide(2, 0, {"accuracy": 0.1})
    assert not asha.decide(2, 0, {"accuracy": 0.99})  # a retry does not change its fate


def test_restored_records_give_the_same_promotions():
    sequence = [(n, {"accuracy": v}) for n, v in enumerate([0.3, 0.8, 0.5, 0.9, 0.2, 0.6, 0.7])]
    whole = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    answers = [whole.decide(n, 0, v) for n, v in sequence]
    first = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    for n, v in sequence[:4]:
        first.decide(n, 0, v)
    resumed = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    resumed.restore(first.take_unsaved())
    assert [resumed.decide(n, 0, v) for n, v in sequence[4:]] == answers[4:]
    fresh = MoAsha(MAX_ACC, (1,), reduction_factor=3)  # what forgetting them would do
    assert [fresh.decide(n, 0, v) for n, v in sequence[4:]] != answers[4:]
    unsaved = resumed.take_unsaved()  # restored records are not handed back to be kept
    assert sorted(r.number for r in unsaved) == [4, 5, 6]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.integers(2, 5))
def test_a_trial_goes_on_exactly_when_it_is_in_the_top_share_on_arrival(accuracies, eta):
    asha = MoAsha(MAX_ACC, (1,), reduction_factor=eta)
    for n, accuracy in enumerate(accuracies):
        before = [r.values["accuracy"] for r in asha.records(0)]
        better = sum(1 for b in before if b > accuracy)  # ties go to the earlier trial
        ties = sum(1 for b in before if b == accuracy)
        keep = math.ceil((len(before) + 1) / eta)
        assert asha.decide(n, 0, {"accuracy": accuracy}) == (better + ties < keep)


def test_balance_is_the_mean_normalised_goodness():
    points = np.array([[0.9, 9.0], [0.5, 1.0], [0.85, 8.0]])
    score = balance(points, ["maximize", "minimize"])
    assert score.tolist() == pytest.approx([(1.0 + 0.0) / 2, (0.0 + 1.0) / 2, (0.875 + 0.125) / 2])
    assert balance(np.array([[1.0, 2.0], [1.0, 3.0]]), ["maximize", "minimize"]).tolist() == [
        1.0,
        0.5,
    ]


def test_rung_values_take_validation_quality_and_costs_so_far():
    entry = {"val_accuracy": 0.8, "train_time_s": 2.5, "latency_ms": 0.1, "val_loss": 0.4}
    objectives = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}
    assert rung_values(objectives, entry) == {
        "accuracy": 0.8,
        "train_time_s": 2.5,
        "latency_ms": 0.1,
    }


# -- whole studies on a simulated clock ------------------------------------------------

SPEC = {
    "name": "asha",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": MLP_SPACE,
    "budget": {"trials": 24, "epochs": 9},
    "resources": {"workers": 3},
    "sampler": {"name": "random"},
    "early_stopping": {"method": "mo_asha", "min_epochs": 1, "reduction_factor": 3},
}


def _curve(task: TrialTask) -> Outcome:
    """A learning curve set by the params: wider nets learn to a higher plateau and cost
    more per epoch; sgd plateaus lower. SGD trials are slower (stragglers)."""
    width, sgd = task.params["mlp.width"], task.params["optimizer"] == "sgd"
    plateau = 0.6 + 0.3 * math.log2(width / 16) / 3 - (0.2 if sgd else 0.0)
    per_epoch = width / 32 * (2.0 if sgd else 1.0)
    history = [
        {
            "epoch": float(e),
            "val_accuracy": plateau * (1 - math.exp(-e / 2)),
            "train_time_s": per_epoch * e,
        }
        for e in range(1, 10)
    ]
    final = {"accuracy": history[-1]["val_accuracy"], "train_time_s": per_epoch * 9}
    return Outcome(seconds=per_epoch * 9, metrics=final, history=history)


def _run(tmp_path: Path, spec=SPEC, **kw):
    run = simulate_study(spec, _curve, storage=str(tmp_path / "study.journal"), capacity=3, **kw)
    result, tracker, executor = run.result, run.tracker, run.executor
    study = optuna.load_study(
        study_name=spec["name"], storage=open_storage(str(tmp_path / "study.journal"))
    )
    return result, study, tracker, executor


def test_stopped_trials_are_pruned_never_complete_and_never_on_a_front(tmp_path: Path):
    result, study, tracker, _ = _run(tmp_path)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and result.n_pruned == len(pruned)
    assert all(t.values is None for t in pruned)
    assert all(t.user_attrs["stopped_at_epoch"] in (1, 3) for t in pruned)
    assert all(
        len(t.user_attrs["curve.val_accuracy"]) == t.user_attrs["stopped_at_epoch"] for t in pruned
    )
    assert all(tracker.finished[t.number] == "PRUNED" for t in pruned)
    pruned_numbers = {t.number for t in pruned}
    assert not pruned_numbers & {r.number for r in result.pareto}
    assert all(not pruned_numbers & {row.number for row in f.rows} for f in tracker.fronts)
    front = Client(storage=str(tmp_path / "study.journal")).front("asha")
    assert not pruned_numbers & {r.number for r in front.records}


def test_rung_records_are_kept_in_optuna_and_compute_is_accounted(tmp_path: Path):
    result, study, _, _ = _run(tmp_path)
    for trial in study.trials:
        kept = [k for k in trial.user_attrs if k.startswith("rung.")]
        stopped = trial.user_attrs.get("stopped_at_epoch")
        assert len(kept) == (2 if stopped is None else (1 if stopped == 1 else 2))
    epochs = sum(t.user_attrs["epochs_trained"] for t in study.trials)
    assert result.compute.epochs == epochs < 24 * 9
    assert result.compute.epochs_saved == 24 * 9 - epochs
    assert result.compute.seconds_saved > 0
    assert result.stop_reason == "budget"


class _LoggingExecutor(ScriptedExecutor):
    """Records every rung question the driver's gate answered, in the order asked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[int, int, dict, bool]] = []

    def use_epoch_gate(self, gate):
        def logged(number, epoch, entry):
            try:
                gate(number, epoch, entry)
            except StopTraining:
                self.asked.append((number, epoch, dict(entry), False))
                raise
            if epoch in (1, 3):
                self.asked.append((number, epoch, dict(entry), True))

        super().use_epoch_gate(logged if gate else None)


def test_a_resumed_study_carries_on_with_the_rung_records_it_kept(tmp_path: Path):
    _run(tmp_path, trials=10)
    kept = optuna.load_study(
        study_name="asha", storage=open_storage(str(tmp_path / "study.journal"))
    )
    earlier = [
        RungRecord(t.number, int(k.removeprefix("rung.")), v["values"], v["promoted"])
        for t in kept.trials
        for k, v in t.user_attrs.items()
        if k.startswith("rung.")
    ]
    assert earlier
    executor = _LoggingExecutor(_curve, SimulatedClock(), capacity=3)
    resumed = simulate_study(
        SPEC, _curve, storage=str(tmp_path / "study.journal"), executor=executor
    )
    assert resumed.result.trials_run == 14 and executor.asked
    replay = MoAsha(SPEC["objectives"], (1, 3), reduction_factor=3)
    replay.restore(earlier)
    answers = []
    for number, epoch, entry, answer in executor.asked:
        values = rung_values(SPEC["objectives"], entry)
        answers.append(replay.decide(number, (1, 3).index(epoch), values) == answer)
    assert all(answers), "the resume decided against the records the study kept"


def test_a_goal_ends_the_study_and_says_why(tmp_path: Path):
    result, study, _, executor = _run(tmp_path, stop_when="accuracy >= 0.75")
    assert result.stop_reason == "goal" and result.goal_met_by is not None
    assert study.trials[result.goal_met_by].values[0] >= 0.75
    assert len(executor.submitted) < 24
    assert study.user_attrs["stop_reason"] == "goal"
    assert study.user_attrs["goal_met_by"] == result.goal_met_by


def test_a_goal_needs_a_feasible_trial(tmp_path: Path):
    spec = {**SPEC, "constraints": ["train_time_s <= 0.1"]}  # nothing is feasible
    result, _, _, executor = _run(tmp_path, spec=spec, stop_when="accuracy >= 0.5")
    assert result.stop_reason == "budget" and result.goal_met_by is None
    assert result.n_feasible == 0 and len(executor.submitted) == 24


def test_the_gate_stops_by_raising_stop_training():
    asha = MoAsha(MAX_ACC, (1,), reduction_factor=3)
    gate = RungGate(MAX_ACC, (1,), asha)
    gate(0, 1, {"val_accuracy": 0.9})
    gate(1, 1, {"val_accuracy": 0.95})
    gate(1, 2, {"val_accuracy": 0.1})  # not a rung: nothing asked
    with pytest.raises(StopTraining) as stopped:
        gate(2, 1, {"val_accuracy": 0.1})
    assert stopped.value.epoch == 1


def _latency_by_width(task: TrialTask) -> Outcome:
    width = task.params["mlp.width"]
    return Outcome(
        seconds=1.0,
        metrics={"accuracy": math.log2(width) / 8, "train_time_s": 1.0, "latency_ms": width / 100},
    )


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_constraints_steer_the_sampler_toward_feasible_trials(tmp_path: Path, sampler: str):
    """The same seeded study with and without constraints: with them, the sampler asks
    mostly feasible configs once it has learned where they are."""
    spec = {
        "name": "steered",
        "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
        "space": {
            "architecture": "mlp",
            "mlp": {"width": [16, 32, 64, 128, 256], "depth": [1, 2, 3, 4]},
            "optimizer": ["adam", "sgd", "adamw", "rmsprop"],
            "compression": ["none"],
        },
        "budget": {"trials": 60},
        "resources": {"workers": 1},
        "sampler": {"name": sampler, "startup_trials": 10, "population_size": 10},
    }
    feasible_share = {}
    for constrained in (False, True):
        simulate_study(
            {**spec, "constraints": ["latency_ms <= 0.3"] if constrained else None},
            _latency_by_width,
            storage=str(tmp_path / f"{constrained}.journal"),
        )
        study = optuna.load_study(
            study_name="steered", storage=open_storage(str(tmp_path / f"{constrained}.journal"))
        )
        late = study.trials[20:]
        feasible_share[constrained] = sum(t.params["mlp.width"] <= 30 for t in late) / len(late)
        if constrained:  # each trial holds its violation, where Optuna's samplers read it
            assert all(list(t.constraints) == ["0"] for t in study.trials)
    assert feasible_share[True] > feasible_share[False] + 0.15, feasible_share
