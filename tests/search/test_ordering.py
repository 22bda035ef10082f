"""The ordering rules (`paretotune.results.ordering`) on hand-computed cases, and the
places that order trials agreeing with them. No Ray, no MLflow."""

from __future__ import annotations

import json
import math
import re
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paretotune.results.ordering import (
    best_first,
    direction_word,
    goodness,
    maximized,
    sign,
    signs,
    varying_params,
)
from paretotune.results.pareto import dominates
from paretotune.results.records import TrialRecord
from paretotune.results.selection import best_first as best_records
from paretotune.tracking._base import FrontRow, FrontSnapshot
from paretotune.tracking.mlflow.plots import _front_table_html
from paretotune.tracking.mlflow.view import front_view


def test_signs_turn_every_direction_into_a_loss():
    assert (sign("maximize"), sign("minimize")) == (-1.0, 1.0)
    assert signs(["minimize", "maximize", "minimize"]).tolist() == [1.0, -1.0, 1.0]
    assert maximized("maximize") and not maximized("minimize")
    assert (direction_word("maximize"), direction_word("minimize")) == ("max", "min")


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.sampled_from(["maximize", "minimize"]))
def test_the_better_value_has_the_lower_loss(a, b, direction):
    better = a > b if direction == "maximize" else a < b
    assert (sign(direction) * a < sign(direction) * b) == better


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("maximize", [4, 1, 3, 0, 2, 5, 6, 7]), ("minimize", [0, 2, 1, 3, 4, 5, 6, 7])],
)
def test_best_first_breaks_ties_by_number_and_puts_unknown_values_last(direction, expected):
    items: list[tuple[int, object]] = [
        (7, "fast"),  # not a number
        (3, 0.5),
        (6, None),  # missing
        (1, 0.5),
        (5, math.nan),
        (4, 0.9),
        (0, 0.1),
        (2, 0.1),
    ]
    ordered = best_first(items, lambda p: p[1], lambda p: p[0], direction)
    assert [number for number, _ in ordered] == expected


def test_goodness_is_one_at_the_best_value_of_each_direction():
    values = np.array([[0.9, 9.0, 2.0, 3.0], [0.5, 1.0, 2.0, 3.0], [0.8, 5.0, 2.0, 3.0]])
    scaled = goodness(values, ["maximize", "minimize", "minimize", "maximize"])
    # a constant column is 1, whichever its direction
    expected = [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], [0.75, 0.5, 1.0, 1.0]]
    assert scaled == pytest.approx(np.array(expected))


@given(
    st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=1, max_size=20).map(
        np.array
    ),
    st.lists(st.sampled_from(["maximize", "minimize"]), min_size=2, max_size=2),
)
def test_a_dominating_row_is_at_least_as_good_everywhere(values, directions):
    """Goodness orders each objective as the Pareto maths does: a row that dominates
    another is no worse than it in any column."""
    scaled = goodness(values.copy(), directions)
    assert np.all((scaled >= 0.0) & (scaled <= 1.0))
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if dominates(a, b, directions):
                assert np.all(scaled[i] >= scaled[j])


def test_varying_params_in_the_order_they_first_appear():
    configs = [
        {"optimizer": "adam", "lr": 0.1, "width": 64, "seed": 1},
        {"optimizer": "adam", "lr": 0.01, "width": 64, "seed": 1.0, "dropout": 0.2},
        {"optimizer": "adam", "lr": 0.1, "width": 64, "seed": 1},
    ]
    # seed: 1 and 1.0 are told apart (as the table prints them); dropout: missing in two
    assert varying_params(configs) == ["lr", "seed", "dropout"]
    assert varying_params([{"lr": 0.1}]) == [] and varying_params([]) == []
    assert varying_params([{"x": None}, {}]) == []  # a missing value reads as None


OBJECTIVES = {"accuracy": "maximize", "latency_ms": "minimize"}
# (number, accuracy, latency_ms, width): joined the front in this order, 5 and 2 tie
FRONT = [(5, 0.9, 3.0, 64), (2, 0.9, 2.0, 32), (7, 0.95, 9.0, 64), (1, 0.7, 1.0, 64)]


def test_the_terminal_the_mlflow_page_and_its_saved_view_agree_on_best_first():
    records = [
        TrialRecord(
            number=n,
            state="COMPLETE",
            params=MappingProxyType({"width": w, "optimizer": "adam"}),
            values=MappingProxyType({"accuracy": a, "latency_ms": t}),
            metrics=MappingProxyType({"accuracy": a, "latency_ms": t}),
            mlflow_run_id=None,
            pareto_rank=0,
        )
        for n, a, t, w in FRONT
    ]
    terminal = [r.number for r in best_records(records, OBJECTIVES)]
    rows = [
        FrontRow(n, None, {"width": w, "optimizer": "adam"}, {"accuracy": a, "latency_ms": t}, 0)
        for n, a, t, w in FRONT
    ]
    page = _front_table_html(FrontSnapshot(OBJECTIVES, rows, None, 4))
    assert terminal == [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)] == [7, 2, 5, 1]
    assert "width=32" in page and "optimizer" not in page  # only the params that vary
    state = json.loads(json.loads(front_view(OBJECTIVES, 0))["state"])
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`accuracy`", False)
