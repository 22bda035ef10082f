"""Measuring effort where it matters: every model is measured quickly, and precisely only
when it could join the front the driver sent with its task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from paretotune.objectives import FrontHint, TrialContext, could_join, evaluate
from paretotune.objectives._candidates import CANDIDATE_MARGIN
from paretotune.objectives._measure import QUICK_ROUNDS
from paretotune.objectives._slot import MeasuringSlot

OBJECTIVES = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}
FRONT = FrontHint(OBJECTIVES, [[0.95, 1.0, 0.10], [0.90, 0.5, 0.05]])


def _metrics(accuracy: float, train: float, latency: float, cv: float = 0.0) -> dict:
    return {"accuracy": accuracy, "train_time_s": train, "latency_ms": latency, "latency_cv": cv}


def test_an_empty_front_or_a_missing_objective_earns_the_precise_measurement():
    assert could_join(FrontHint(OBJECTIVES, []), _metrics(0.1, 9.0, 9.0))
    assert could_join(FRONT, {"accuracy": 0.1, "train_time_s": 9.0})


def test_a_clearly_dominated_model_keeps_its_quick_figures():
    assert not could_join(FRONT, _metrics(0.80, 2.0, 0.5))


def test_a_model_within_the_quick_figures_margin_of_the_front_is_measured_precisely():
    # 10% slower than a member it otherwise ties: within the margin, it may be as fast
    assert could_join(FRONT, _metrics(0.90, 0.5, 0.055))
    beyond = 0.05 / (1 - CANDIDATE_MARGIN) * 1.05
    assert not could_join(FRONT, _metrics(0.90, 0.5, beyond))
    # a quick measurement whose rounds disagreed widely widens the margin
    assert could_join(FRONT, _metrics(0.90, 0.5, beyond, cv=0.3))
    # exact figures get no margin: less accurate and slower to train is dominated
    assert not could_join(FRONT, _metrics(0.899, 0.5001, 0.11))


def test_a_maximised_serving_figure_is_taken_at_its_most_favourable():
    hint = FrontHint({"accuracy": "maximize", "throughput_sps": "maximize"}, [[0.9, 1000.0]])
    assert could_join(hint, {"accuracy": 0.9, "throughput_sps": 900.0})
    assert not could_join(hint, {"accuracy": 0.9, "throughput_sps": 500.0})


@pytest.mark.parametrize("precise", [False, True])
def test_evaluate_measures_precisely_only_when_asked(fast_mlp, precise: bool):
    seen: list[Mapping[str, float]] = []

    def precise_if(metrics: Mapping[str, float]) -> bool:
        seen.append(dict(metrics))
        return precise

    context = TrialContext({"source": "digits"}, epochs=2, latency_repeats=20)
    m = evaluate(fast_mlp, context, precise_if=precise_if).metrics
    assert len(seen) == 1 and {"accuracy", "train_time_s", "latency_ms"} <= set(seen[0])
    assert seen[0]["latency_precise"] == 0.0 and seen[0]["latency_rounds"] == QUICK_ROUNDS
    assert m["latency_precise"] == float(precise) and m["latency_ms"] > 0
    assert m["throughput_sps"] > 0 and m["size_bytes"] > 0
    if precise:
        assert m["latency_rounds"] >= 5, "the precise measurement replaced the quick one"
    else:
        assert m["latency_ms"] == seen[0]["latency_ms"]


def test_the_precise_measurement_follows_the_quick_one_in_one_hold_of_the_slot(
    fast_mlp, monkeypatch: pytest.MonkeyPatch
):
    """Quick, decide, precise: one exclusive hold (no trainer runs between them, the quick
    rounds warmed the model); throughput is re-taken only when the study optimises it."""
    holds: list[str] = []
    real_timing = MeasuringSlot.timing

    def counted(slot: MeasuringSlot):
        holds.append("timing")
        return real_timing(slot)

    monkeypatch.setattr(MeasuringSlot, "timing", counted)
    context = TrialContext({"source": "digits"}, epochs=1, latency_repeats=20)
    context = replace(context, exclusive_timing=True)
    seen: list[Mapping[str, float]] = []

    def precise_if(metrics: Mapping[str, float]) -> bool:
        seen.append(dict(metrics))
        return True

    kept = evaluate(fast_mlp, context, precise_if=precise_if, precise_throughput=False).metrics
    assert holds == ["timing"] and kept["latency_precise"] == 1.0
    assert kept["latency_rounds"] >= 5 and kept["throughput_sps"] == seen[0]["throughput_sps"]
    retaken = evaluate(fast_mlp, context, precise_if=precise_if).metrics
    assert retaken["throughput_sps"] != seen[1]["throughput_sps"]


def test_precise_if_is_refused_beside_a_serving_meter(fast_mlp):
    context = TrialContext({"source": "digits"}, epochs=1)
    with pytest.raises(ValueError, match="precise_if"):
        evaluate(fast_mlp, context, precise_if=bool, serving_meter=lambda m, rows, n: {})


def test_without_a_front_every_model_is_measured_precisely(run, fast_mlp):
    assert run(fast_mlp, epochs=1).metrics["latency_precise"] == 1.0


@pytest.mark.parametrize(
    ("extra", "custom", "hints"),
    [
        ({}, False, True),
        ({"measure": {"precise": "all"}}, False, False),
        ({"constraints": ["latency_ms <= 1"]}, False, False),
        ({"budget": {"stop_when": "latency_ms <= 0.05"}}, False, False),
        ({"budget": {"stop_when": "throughput_sps >= 1e5 and accuracy > 0.9"}}, False, False),
        ({"budget": {"stop_when": "accuracy >= 0.99"}}, False, True),
        ({}, True, False),
    ],
)
def test_tasks_carry_the_front_only_where_quick_figures_are_safe(extra, custom, hints):
    from paretotune._run import _front_hints
    from paretotune.spaces import validate_spec

    spec = validate_spec({"name": "x", **extra})
    assert _front_hints(spec, custom_objective=custom) is hints
