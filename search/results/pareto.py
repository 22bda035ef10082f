"""Pareto utilities on plain arrays: dominance, non-dominated ranks, hypervolume.

All functions take ``values`` of shape ``(n, m)`` and ``directions``, a sequence of
``"maximize"``/``"minimize"`` of length ``m``. Internally every objective is turned into
one to minimise by negating the maximised ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_minimization(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]):
    points = np.asarray(values, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(directions):
        raise ValueError(f"values must have shape (n, {len(directions)}), but got {points.shape}")
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return points * signs


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    signs = _signs(directions)
    return _dominates_minimized(_signed(a, signs), _signed(b, signs))


def _signs(directions: Sequence[str]) -> list[float]:
    return [-1.0 if d == "maximize" else 1.0 for d in directions]


def _signed(values: Sequence[float], signs: list[float]) -> tuple[float, ...]:
    return tuple(v * s for v, s in zip(values, signs, strict=True))


def _dominates_minimized(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


class RunningFront:
    """The current non-dominated set, updated point by point (cheap enough to run after
    every trial; the driver's progress bar shows its size: the trials on the front, equal
    points each counted, as `pareto_mask` keeps them)."""

    def __init__(self, directions: Sequence[str]):
        self._signs = _signs(directions)
        self._points: list[tuple[float, ...]] = []

    def __len__(self) -> int:
        return len(self._points)

    def add(self, values: Sequence[float] | None) -> bool:
        """Count a trial's values; True when they are on the front (none dominates them)."""
        if values is None:
            return False
        point = _signed(values, self._signs)
        if any(_dominates_minimized(p, point) for p in self._points):
            return False
        # (a copy of a kept point is kept too: the front counts trials, as `pareto_mask`)
        kept = [p for p in self._points if not _dominates_minimized(point, p)]
        self._points = kept + [point]
        return True

    def values(self) -> list[list[float]]:
        """The front's points, in the objectives' own signs."""
        return [list(_signed(p, self._signs)) for p in self._points]

    def best(self) -> list[float] | None:
        """Each objective's best value on the front (None while it is empty): the ends
        of the trade-off, each reached by a different trial in general."""
        if not self._points:
            return None
        columns = zip(*self._points, strict=True)
        return [s * min(c) for s, c in zip(self._signs, columns, strict=True)]


def pareto_mask(values, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows. Duplicated optimal points are all kept."""
    points = _as_minimization(values, directions)
    n = len(points)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        no_worse = np.all(points <= points[i], axis=1)
        better = np.any(points < points[i], axis=1)
        if np.any(no_worse & better):
            mask[i] = False
    return mask


def nondominated_ranks(values, directions: Sequence[str]) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front once rank 0 is removed, and so on."""
    points = _as_minimization(values, directions)
    ranks = np.full(len(points), -1, dtype=int)
    remaining = np.arange(len(points))
    rank = 0
    while remaining.size:
        front = pareto_mask(points[remaining], ["minimize"] * points.shape[1])
        ranks[remaining[front]] = rank
        remaining = remaining[~front]
        rank += 1
    return ranks


def hypervolume(values, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Volume dominated by ``values`` and bounded by ``reference`` (in the original units).

    Points that do not strictly dominate the reference add nothing. Exact; computed by
    slicing along the first objective, which is fine for the front sizes of a study
    (hundreds of points, 2–4 objectives).
    """
    points = _as_minimization(values, directions)
    ref = _as_minimization([reference], directions)[0]
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_mask(points, ["minimize"] * points.shape[1])]
    return float(_hv_minimize(points, ref))


def normalized_losses(
    values: np.ndarray, directions: Sequence[str], bounds: np.ndarray | None = None
) -> np.ndarray:
    """Objectives min-max scaled over ``bounds`` (default: ``values``) into losses:
    0 at the bounds' best value and 1 at their worst, whatever the direction.

    A constant column has span 1: it scales to 0 when minimised and 1 when maximised.
    """
    bounds = values if bounds is None else bounds
    low, high = bounds.min(axis=0), bounds.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (values - low) / span
    flips = np.array([d == "maximize" for d in directions])
    scaled[:, flips] = 1.0 - scaled[:, flips]
    return scaled


def _hv_minimize(points: np.ndarray, ref: np.ndarray) -> float:
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    order = np.argsort(points[:, 0])
    points = points[order]
    volume = 0.0
    for i, point in enumerate(points):
        upper = points[i + 1, 0] if i + 1 < len(points) else ref[0]
        width = upper - point[0]
        if width <= 0:
            continue
        slab = points[: i + 1, 1:]
        slab = slab[pareto_mask(slab, ["minimize"] * slab.shape[1])]
        volume += width * _hv_minimize(slab, ref[1:])
    return volume
