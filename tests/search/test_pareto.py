"""Pareto logic against hand-computed tables, plus hypothesis invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paretotune import dominates, hypervolume, nondominated_ranks, pareto_mask
from paretotune.results.pareto import HypervolumeBox, RunningFront

MAX_MIN_MIN = ["maximize", "minimize", "minimize"]

# accuracy (max), train_time_s (min), latency_ms (min)  -> on the front?  rank
TABLE = [
    ((0.95, 10.0, 0.50), True, 0),  # most accurate
    ((0.90, 2.0, 0.10), True, 0),  # fast and cheap
    ((0.90, 3.0, 0.20), False, 1),  # dominated by row 1
    ((0.80, 1.0, 0.30), True, 0),  # fastest to train
    ((0.70, 1.0, 0.30), False, 1),  # dominated by row 3
    ((0.60, 5.0, 0.90), False, 2),  # dominated by rows 2 and 4
    ((0.90, 2.0, 0.10), True, 0),  # a duplicate of a front point stays on the front
]


def test_pareto_mask_matches_hand_table():
    values = [row[0] for row in TABLE]
    assert pareto_mask(values, MAX_MIN_MIN).tolist() == [row[1] for row in TABLE]


def test_ranks_match_hand_table():
    values = [row[0] for row in TABLE]
    assert nondominated_ranks(values, MAX_MIN_MIN).tolist() == [row[2] for row in TABLE]


def test_dominates_respects_directions():
    assert dominates((0.9, 1.0), (0.8, 1.0), ["maximize", "minimize"])
    assert not dominates((0.9, 1.0), (0.9, 1.0), ["maximize", "minimize"])
    assert not dominates((0.9, 2.0), (0.8, 1.0), ["maximize", "minimize"])
    assert dominates((0.8, 1.0), (0.9, 1.0), ["minimize", "minimize"])


def test_hypervolume_hand_computed_2d():
    # minimise both, reference (4, 4), staircase (1,3), (2,2), (3,1). By x-slices:
    # x in [1,2]: y in [3,4] -> 1;  x in [2,3]: y in [2,4] -> 2;  x in [3,4]: y in [1,4] -> 3
    points = [(1, 3), (2, 2), (3, 1)]
    assert hypervolume(points, ["minimize", "minimize"], [4, 4]) == pytest.approx(6.0)


def test_hypervolume_hand_computed_3d_and_maximize():
    # one point (acc 0.5 max, 1, 1) against reference (0, 2, 2): box 0.5 * 1 * 1
    assert hypervolume([(0.5, 1, 1)], MAX_MIN_MIN, [0.0, 2, 2]) == pytest.approx(0.5)
    # two boxes 1x1x2 and 2x1x1 overlapping in 1x1x1 -> 2 + 2 - 1 = 3
    pts = [(0, 0, 1), (0, 1, 0)]
    mins = ["minimize"] * 3
    assert hypervolume(pts, mins, [1, 2, 2]) == pytest.approx(1 * 2 * 1 + 1 * 1 * 2 - 1)


def test_points_beyond_the_reference_add_nothing():
    assert hypervolume([(5, 5)], ["minimize", "minimize"], [4, 4]) == 0.0


points_strategy = st.lists(
    st.tuples(*(st.integers(0, 6) for _ in range(3))), min_size=1, max_size=25
)


@settings(max_examples=150, deadline=None)
@given(points_strategy)
def test_front_is_exactly_the_undominated_points(points):
    values = np.array(points, dtype=float)
    mask = pareto_mask(values, MAX_MIN_MIN)
    for i, on_front in enumerate(mask):
        dominated = any(dominates(values[j], values[i], MAX_MIN_MIN) for j in range(len(values)))
        assert on_front == (not dominated)


@settings(max_examples=80, deadline=None)
@given(points_strategy)
def test_ranks_peel_fronts(points):
    values = np.array(points, dtype=float)
    ranks = nondominated_ranks(values, MAX_MIN_MIN)
    for i in range(len(values)):
        for j in range(len(values)):
            if dominates(values[j], values[i], MAX_MIN_MIN):
                assert ranks[j] < ranks[i]


@settings(max_examples=60, deadline=None)
@given(points_strategy)
def test_hypervolume_is_monotone_and_front_only(points):
    mins = ["minimize"] * 3
    ref = [7, 7, 7]
    values = np.array(points, dtype=float)
    full = hypervolume(values, mins, ref)
    front_only = hypervolume(values[pareto_mask(values, mins)], mins, ref)
    assert full == pytest.approx(front_only)
    assert hypervolume(values[:-1], mins, ref) <= full + 1e-9 if len(values) > 1 else True


@settings(max_examples=80, deadline=None)
@given(points_strategy)
def test_running_front_counts_the_front_points_as_pareto_mask_does(points):
    front = RunningFront(MAX_MIN_MIN)
    for point in points:
        front.add(point)
    values = np.array(points, dtype=float)
    assert len(front) == int(pareto_mask(values, MAX_MIN_MIN).sum())


def _grid_hypervolume(points: np.ndarray, ref: int) -> int:
    """Brute force: the unit cells of ``[0, ref)^m`` whose lower corner some point is no
    worse than (integer points, minimised): exact for integer points."""
    cells = np.stack(np.meshgrid(*[np.arange(ref)] * points.shape[1], indexing="ij"), -1)
    cells = cells.reshape(-1, points.shape[1])
    covered = np.zeros(len(cells), dtype=bool)
    for point in points:
        covered |= np.all(cells >= point, axis=1)
    return int(covered.sum())


@settings(max_examples=80, deadline=None)
@given(points_strategy)
def test_hypervolume_equals_a_brute_force_count_of_cells(points):
    values = np.array(points, dtype=float)
    assert hypervolume(values, ["minimize"] * 3, [7, 7, 7]) == pytest.approx(
        _grid_hypervolume(values, 7)
    )
    # the same points with the first objective maximised (negated) give the same volume
    flipped = values * [-1, 1, 1]
    assert hypervolume(flipped, MAX_MIN_MIN, [-7, 7, 7]) == pytest.approx(
        _grid_hypervolume(values, 7)
    )


@settings(max_examples=80, deadline=None)
@given(points_strategy)
def test_running_front_keeps_exactly_the_front_trials_and_their_best(points):
    front = RunningFront(MAX_MIN_MIN)
    for number, point in enumerate(points):
        front.add(point, number)
    values = np.array(points, dtype=float)
    mask = pareto_mask(values, MAX_MIN_MIN)
    assert sorted(front.numbers()) == [i for i, on in enumerate(mask) if on]
    assert front.values().tolist() == [list(points[n]) for n in front.numbers()]
    best = [values[:, 0].max(), values[:, 1].min(), values[:, 2].min()]
    assert front.best() == best


def test_the_hypervolume_box_has_natural_ends_and_a_share_in_0_1():
    # accuracy (max, in [0, 1]) -> ideal 1; times (min, >= 0) -> ideal 0; reference:
    # the worst first value, a tenth of the span beyond
    first = [(0.80, 2.0, 0.5), (0.90, 4.0, 0.3), (0.60, 1.0, 0.7)]
    box = HypervolumeBox.from_values(first, MAX_MIN_MIN)
    assert box.ideal == (1.0, 0.0, 0.0)
    assert box.reference == pytest.approx((0.57, 4.3, 0.74))
    assert box.words(["accuracy", "t", "l"]) == "accuracy 1..0.57, t 0..4.3, l 0..0.74"
    assert box.share([box.ideal]) == pytest.approx(1.0)
    assert box.share([box.reference]) == 0.0
    # one point halfway on each axis dominates an eighth of the box
    middle = [(i + r) / 2 for i, r in zip(box.ideal, box.reference, strict=True)]
    assert box.share([middle]) == pytest.approx(1 / 8)
    # better than the ideal counts as the ideal; the share never passes 1
    assert box.share([(1.5, -1.0, -1.0)]) == pytest.approx(1.0)
    # no natural bound (a minimised metric seen negative): one span beyond the best
    other = HypervolumeBox.from_values([(-1.0,), (1.0,)], ["minimize"])
    assert other.ideal == (-3.0,) and other.reference == pytest.approx((1.2,))


@settings(max_examples=60, deadline=None)
@given(points_strategy)
def test_the_share_of_the_box_is_the_hypervolume_over_the_box_volume(points):
    values = np.array(points, dtype=float) + 1  # all >= 1: the ideal is 0
    box = HypervolumeBox.from_values(values[:3], ["minimize"] * 3)
    share = box.share(values)
    assert 0.0 <= share <= 1.0
    volume = float(np.prod(np.array(box.reference) - np.array(box.ideal)))
    expected = hypervolume(values, ["minimize"] * 3, box.reference) / volume
    assert share == pytest.approx(expected)
