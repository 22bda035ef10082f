"""Choosing trials, on hand-computed tables: the condition language, feasibility, the
constrained best, the knee point and the weighted sum. No Ray, no MLflow."""

from __future__ import annotations

import re
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paretotune.results.noise import beaten_within_noise
from paretotune.results.records import TrialRecord, TrialSet
from paretotune.results.selection import (
    NoTrialMatchesError,
    UnknownMetricError,
    best,
    candidates,
    knee,
    metric_direction,
    parse_constraints,
    weighted,
)
from paretotune.spaces import ExpressionError, SpecError, parse_expression, validate_spec

OBJECTIVES = {"accuracy": "maximize", "latency_ms": "minimize"}


def _record(number: int, accuracy: float, latency: float, **extra: float) -> TrialRecord:
    values = {"accuracy": accuracy, "latency_ms": latency}
    return TrialRecord(
        number=number,
        state="COMPLETE",
        params=MappingProxyType({"mlp.width": 2**number * 16, "optimizer": "adam"}),
        values=MappingProxyType(values),
        metrics=MappingProxyType({**values, **extra}),
        mlflow_run_id=f"run-{number}",
        study="hand",
    )


# number: accuracy, latency_ms, size_bytes. Front: 0, 1, 2 (3 is dominated by 1).
TABLE = [
    _record(0, 0.80, 0.10, size_bytes=1e3),
    _record(1, 0.90, 0.30, size_bytes=5e3),
    _record(2, 0.95, 0.90, size_bytes=2e4),
    _record(3, 0.85, 0.50, size_bytes=9e3),
]


def _pool(constraints: list[str] = (), feasible_only: bool = True) -> TrialSet:
    parsed = [parse_expression(c) for c in constraints]
    return candidates(TABLE, OBJECTIVES, parsed, "hand", feasible_only=feasible_only)


# -- the condition language ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("latency_ms <= 0.2 and size_bytes < 1e6", {"latency_ms": 0.2, "size_bytes": 5}, True),
        ("latency_ms < 0.2 or size_bytes < 1e6", {"latency_ms": 0.3, "size_bytes": 2e6}, False),
        ("a < 1 or b < 1 and c < 1", {"a": 0, "b": 5, "c": 5}, True),  # and binds tighter
        ("(a < 1 or b < 1) and c < 1", {"a": 0, "b": 5, "c": 5}, False),
        ("not a >= 1", {"a": 0}, True),
        ("0.5 > a", {"a": 0.4}, True),  # the literal may come first
        ("mlp.width == 64 and optimizer != 'sgd'", {"mlp.width": 64, "optimizer": "adam"}, True),
        ("augment == false", {"augment": False}, True),
        ("a < 1", {}, False),  # a trial without the value does not satisfy it
        ("a < 1", {"a": "text"}, False),  # nor does a value of another kind
        ("a >= -1.5e-3", {"a": 0.0}, True),
    ],
)
def test_conditions_evaluate_as_written(text: str, values: dict, expected: bool):
    assert parse_expression(text).holds(values) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "an empty condition"),
        ("latency_ms <", "expected a metric name or a value, got the end"),
        ("a < b", "a comparison needs one metric name and one value, got a < b"),
        ("(a < 1", "expected ')', got the end"),
        ("a < 1 b", "expected 'and', 'or' or the end, got 'b' at position 6"),
        ("a ~ 1", "unexpected character '~' at position 2"),
        ("__import__('os').system('true') < 1", "unexpected character '.' at position 16"),
        ("open('x') < 1", "expected one of < <= > >= == !=, got '(' at position 4"),
    ],
)
def test_malformed_conditions_are_errors_that_say_where(text: str, message: str):
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(text)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "m.x"]),
            st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
            st.floats(-10, 10, allow_nan=False),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.sampled_from(["and", "or"]), min_size=3, max_size=3),
    st.fixed_dictionaries({"a": st.floats(-10, 10), "b": st.floats(-10, 10)}),
)
def test_printing_a_condition_and_parsing_it_again_keeps_its_meaning(parts, joins, values):
    text = parts[0][0] + f" {parts[0][1]} {parts[0][2]!r}"
    for join, (name, op, number) in zip(joins, parts[1:], strict=False):
        text += f" {join} {name} {op} {number!r}"
    parsed = parse_expression(text)
    again = parse_expression(str(parsed.root))
    assert again.holds(values) == parsed.holds(values)


def test_spec_constraints_are_validated_by_the_same_parser():
    assert validate_spec({"name": "c", "constraints": ["latency_ms <= 0.5"]}).constraints == [
        "latency_ms <= 0.5"
    ]
    with pytest.raises(SpecError) as err:
        validate_spec({"name": "c", "constraints": ["latency_ms <="]})
    assert err.value.problems == [
        "constraints: in 'latency_ms <=': expected a metric name or a value, got the end"
    ]
    assert [str(c) for c in parse_constraints({"constraints": ["a < 1"]})] == ["a < 1"]
    assert parse_constraints({"constraints": None}) == []


# -- feasibility and ranks ----------------------------------------------------------------
def test_without_constraints_every_trial_is_feasible_and_ranked_among_all():
    pool = _pool()
    assert [(r.number, r.feasible, r.pareto_rank) for r in pool] == [
        (0, True, 0),
        (1, True, 0),
        (2, True, 0),
        (3, True, 1),
    ]


def test_the_feasible_front_is_ranked_among_feasible_trials_only():
    # Trial 1 (width 32) breaks the constraint: trial 3 is then no longer dominated.
    constraint = ["mlp.width != 32"]
    assert [(r.number, r.pareto_rank) for r in _pool(constraint)] == [(0, 0), (2, 0), (3, 0)]
    everything = _pool(constraint, feasible_only=False)
    assert [(r.number, r.feasible, r.pareto_rank) for r in everything] == [
        (0, True, 0),
        (1, False, 0),
        (2, True, 0),
        (3, True, 1),
    ]


def test_a_stored_constraint_on_a_metric_no_trial_has_holds_for_none():
    """New specs naming one are refused; a study stored before still reads (so `studies`
    and `status` of its whole storage do), every trial infeasible as the sampler saw it."""
    assert all(not r.feasible for r in _pool(["latency < 1"], feasible_only=False))
    assert len(_pool(["latency < 1"])) == 0


def test_to_pandas_has_one_row_per_trial_and_flat_columns():
    frame = _pool().to_pandas()
    assert list(frame["number"]) == [0, 1, 2, 3]
    assert {"accuracy", "latency_ms", "metrics.size_bytes", "params.mlp.width"} <= set(frame)
    assert {"feasible", "pareto_rank", "mlflow_run_id", "model_uri"} <= set(frame)


# -- best under constraints -----------------------------------------------------------------
def test_best_prefers_by_the_objective_direction_under_the_condition():
    pool = _pool()
    assert best(pool, OBJECTIVES, "hand", where="latency_ms <= 0.5").number == 1
    assert (
        best(pool, OBJECTIVES, "hand", where="latency_ms <= 0.5", prefer="latency_ms").number == 0
    )
    assert best(pool, OBJECTIVES, "hand").number == 2  # default: the first objective
    # size_bytes is no objective: a cost, so minimised.
    assert best(pool, OBJECTIVES, "hand", where="accuracy > 0.82", prefer="size_bytes").number == 1


def test_best_says_plainly_when_nothing_matches():
    with pytest.raises(NoTrialMatchesError) as err:
        best(_pool(), OBJECTIVES, "hand", where="latency_ms <= 0.01 and accuracy >= 0.99")
    assert str(err.value) == (
        "no complete trial of 'hand' satisfies latency_ms <= 0.01 and accuracy >= 0.99 "
        "(best latency_ms is 0.1; best accuracy is 0.95; 4 trials considered)"
    )


def test_best_names_an_unknown_metric_and_lists_the_real_ones():
    with pytest.raises(UnknownMetricError) as err:
        best(_pool(), OBJECTIVES, "hand", where="latncy_ms < 1")
    assert str(err.value) == (
        "unknown metric 'latncy_ms' in study 'hand'; its metrics: accuracy, latency_ms, "
        "size_bytes; its params: mlp.width, optimizer"
    )
    with pytest.raises(UnknownMetricError, match="unknown metric 'mlp.width'"):
        best(_pool(), OBJECTIVES, "hand", prefer="mlp.width")  # a param is not a metric


def test_directions_of_metrics_that_are_not_objectives():
    assert metric_direction("test_f1_macro", OBJECTIVES) == "maximize"
    assert metric_direction("throughput_sps", OBJECTIVES) == "maximize"
    assert metric_direction("accuracy_before_compression", {}) == "maximize"
    assert metric_direction("peak_mem_mb", OBJECTIVES) == "minimize"
    assert metric_direction("accuracy", {"accuracy": "minimize"}) == "minimize"


# -- knee point and weighted sum --------------------------------------------------------------
def test_knee_is_nearest_the_utopia_point_in_normalised_objectives():
    # Front 0, 1, 2 normalised (0 = best): accuracy 1.0, 0.33, 0.0; latency 0.0, 0.25, 1.0.
    # Distances: 1.0, 0.417, 1.0 -> trial 1.
    assert knee(_pool(), OBJECTIVES, "hand").number == 1
    with pytest.raises(NoTrialMatchesError, match="no complete trial"):
        knee(TrialSet(), OBJECTIVES, "hand")


def test_weighted_sum_of_normalised_metrics():
    pool = _pool()
    # goodness accuracy: 0, .667, 1, .333; latency: 1, .75, 0, .5
    assert weighted(pool, OBJECTIVES, {"accuracy": 1}, "hand").number == 2
    assert weighted(pool, OBJECTIVES, {"latency_ms": 1}, "hand").number == 0
    assert weighted(pool, OBJECTIVES, {"accuracy": 1, "latency_ms": 1}, "hand").number == 1
    assert weighted(pool, OBJECTIVES, {"accuracy": 1, "size_bytes": 10}, "hand").number == 0


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        ({}, ValueError, "give at least one metric"),
        ({"accuracy": -1}, ValueError, "weights.accuracy: must be a finite number >= 0"),
        ({"accuracy": 0}, ValueError, "at least one weight must be above 0"),
        ({"acc": 1}, UnknownMetricError, "unknown metric 'acc'"),
    ],
)
def test_bad_weights_are_errors(weights: dict, error: type, message: str):
    with pytest.raises(error, match=message):
        weighted(_pool(), OBJECTIVES, weights, "hand")


def test_a_latency_difference_within_its_noise_is_a_tie_for_the_front_and_the_knee():
    """Two models whose latencies differ by 2%, less than their 3.5% swing: the far more
    accurate one beats the faster one, which leaves the front (rank 1, beaten within
    noise by the accurate one) and so cannot be the knee. With exact latencies both are
    on the front and the faster one wins the knee's tie (equal distances, lower number)."""
    fast_but_poor = _record(0, 0.847, 0.0098, latency_cv=0.035)
    accurate = _record(1, 0.976, 0.0100, latency_cv=0.035)
    ranked = candidates([fast_but_poor, accurate], OBJECTIVES, [], "hand", feasible_only=False)
    assert [(r.pareto_rank, r.within_noise_of) for r in ranked] == [(1, 1), (0, None)]
    assert knee(ranked, OBJECTIVES, "hand").number == 1
    exact = [_record(0, 0.847, 0.0098), _record(1, 0.976, 0.0100)]
    ranked = candidates(exact, OBJECTIVES, [], "hand", feasible_only=False)
    assert [(r.pareto_rank, r.within_noise_of) for r in ranked] == [(0, None), (0, None)]
    assert knee(ranked, OBJECTIVES, "hand").number == 0
    # a latency difference beyond the noise keeps both on the front
    faster = _record(0, 0.847, 0.0080, latency_cv=0.035)
    ranked = candidates([faster, accurate], OBJECTIVES, [], "hand", feasible_only=False)
    assert [r.pareto_rank for r in ranked] == [0, 0]
    assert beaten_within_noise([faster, accurate], OBJECTIVES) == {}


def test_a_dense_front_keeps_members_spaced_beyond_the_noise_not_only_its_ends():
    """200 members trading accuracy and train time against latency, neighbours 0.2%
    apart in latency with 3% noise: the kept members' latencies step by more than the
    noise all along the front (dropping every member any other beats would keep one)."""
    objectives = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}
    front = []
    for number in range(200):
        x = number / 199
        values = {"accuracy": 1 - x, "train_time_s": x, "latency_ms": 1 / (1 + x)}
        metrics = MappingProxyType({**values, "latency_cv": 0.03})
        front.append(
            TrialRecord(
                number=number,
                state="COMPLETE",
                params=MappingProxyType({}),
                values=MappingProxyType(values),
                metrics=metrics,
                mlflow_run_id=None,
                pareto_rank=0,
            )
        )
    beaten = beaten_within_noise(front, objectives)
    kept = [r.values["latency_ms"] for r in front if r.number not in beaten]
    assert kept[0] == 1.0 and len(kept) >= 15
    assert all(slower > faster * 1.03 for slower, faster in zip(kept, kept[1:], strict=False))
