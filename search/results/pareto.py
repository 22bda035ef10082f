"""Pareto maths on plain arrays: dominance, non-dominated ranks, hypervolume, the running
front, and the box a study's hypervolume is measured in.

The heavy lifting is `moocore`'s (the C implementations of non-dominated sorting and
hypervolume by the authors of those algorithms: 3-D hypervolume of 10,000 points in
~3 ms). This module is the one place that does Pareto maths and hands moocore its
points; which way each direction is better comes from `paretotune.results.ordering`.

All functions take ``values`` of shape ``(n, m)`` and ``directions``, a sequence of
``"maximize"``/``"minimize"`` of length ``m``. Internally every objective is turned into
one to minimise by multiplying it by its `ordering.sign`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import moocore
import numpy as np
from paretotune.results import ordering

ArrayLike = np.ndarray | Sequence[Sequence[float]]


def _as_minimization(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    points = np.asarray(values, dtype=float)
    if points.ndim == 1 and points.size == 0:
        points = points.reshape(0, len(directions))
    if points.ndim != 2 or points.shape[1] != len(directions):
        raise ValueError(f"values must have shape (n, {len(directions)}), but got {points.shape}")
    return points * ordering.signs(directions)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    signs = ordering.signs(directions)
    x, y = np.asarray(a, dtype=float) * signs, np.asarray(b, dtype=float) * signs
    return bool(np.all(x <= y) and np.any(x < y))


def pareto_mask(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows. Duplicated optimal points are all kept."""
    points = _as_minimization(values, directions)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(points, keep_weakly=True), dtype=bool)


def nondominated_ranks(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front once rank 0 is removed, and so on
    (equal points share a rank)."""
    points = _as_minimization(values, directions)
    if len(points) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(moocore.pareto_rank(points), dtype=int)


def hypervolume(values: ArrayLike, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Volume dominated by ``values`` and bounded by ``reference`` (in the original units).
    Points that do not strictly dominate the reference add nothing."""
    points = _as_minimization(values, directions)
    ref = _as_minimization([reference], directions)[0]
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=ref))


# -- the hypervolume's box ------------------------------------------------------------
REFERENCE_MARGIN = 0.1  # the reference sits this share of the first trials' span beyond them


@dataclass(frozen=True)
class HypervolumeBox:
    """The box a study's hypervolume is measured in, in the objectives' own units: per
    objective an ``ideal`` end and a ``reference`` (worst) end. The study's hypervolume is
    the share of the box its front dominates: 0 (nothing) to 1 (the ideal point itself).

    Made once from the first complete trials (`from_values`), so the share of a study
    only grows as it goes on; comparable within one study, not across studies.
    """

    directions: tuple[str, ...]
    ideal: tuple[float, ...]
    reference: tuple[float, ...]

    @classmethod
    def from_values(cls, values: ArrayLike, directions: Sequence[str]) -> HypervolumeBox:
        """The box of a study whose first complete trials have ``values``. Per objective:

        - the reference: their worst value, ``REFERENCE_MARGIN`` of their span beyond it
          (a trial exactly as bad as the worst of them still counts);
        - the ideal: the natural bound where their values show one (0 for a minimised
          metric that was never negative, such as a time or an error; 1 for a maximised
          one that stayed in [0, 1], such as an accuracy), else their best value one span
          beyond it. Later points better than the ideal count as the ideal.
        """
        points = _as_minimization(values, directions)
        if len(points) == 0:
            raise ValueError("a hypervolume box needs at least one point")
        ideal, reference = [], []
        for column, direction in zip(points.T, directions, strict=True):
            raw = column * ordering.sign(direction)
            best, worst = float(column.min()), float(column.max())
            span = worst - best or abs(worst) or 1.0
            reference.append(worst + REFERENCE_MARGIN * span)
            if not ordering.maximized(direction) and raw.min() >= 0:
                ideal.append(0.0)
            elif ordering.maximized(direction) and raw.min() >= 0 and raw.max() <= 1:
                ideal.append(-1.0)
            else:
                ideal.append(best - span)
        signs = ordering.signs(directions)
        return cls(
            tuple(directions),
            tuple(float(v) for v in np.array(ideal) * signs),
            tuple(float(v) for v in np.array(reference) * signs),
        )

    def share(self, values: ArrayLike) -> float:
        """The share of the box that ``values`` dominate, in [0, 1]."""
        points = _as_minimization(values, self.directions)
        low = _as_minimization([self.ideal], self.directions)[0]
        high = _as_minimization([self.reference], self.directions)[0]
        points = np.maximum(points, low)  # better than the ideal: counts as the ideal
        points = points[np.all(points < high, axis=1)]
        volume = float(np.prod(high - low))
        if len(points) == 0 or not volume > 0:
            return 0.0
        scaled = (points - low) / (high - low)  # the unit box: volumes at the same scale
        return min(1.0, float(moocore.hypervolume(scaled, ref=np.ones(len(low)))))

    def words(self, names: Sequence[str]) -> str:
        """``accuracy 1..0.83, train_time_s 0..2.4``: each objective from ideal to
        reference."""
        return ", ".join(
            f"{name} {_g(lo)}..{_g(hi)}"
            for name, lo, hi in zip(names, self.ideal, self.reference, strict=True)
        )

    def as_dict(self, names: Sequence[str]) -> dict[str, list[float]]:
        return {
            name: [lo, hi] for name, lo, hi in zip(names, self.ideal, self.reference, strict=True)
        }


def _g(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


# -- the running front ----------------------------------------------------------------
class RunningFront:
    """The current non-dominated set, updated point by point: each `add` costs one pass of
    numpy over the front (not the study), so the driver can run it after every trial.
    Its size counts the trials on the front, equal points each counted, as `pareto_mask`
    keeps them. Each point remembers the trial number it came from."""

    def __init__(self, directions: Sequence[str]):
        self._signs = ordering.signs(directions)
        self._points = np.empty((16, len(self._signs)))
        self._numbers = np.empty(16, dtype=np.int64)
        self._size = 0
        self._best: np.ndarray | None = None  # per objective, minimised form
        self.dropped: list[int] = []  # the numbers of the points the last `add` removed

    def __len__(self) -> int:
        return self._size

    def add(self, values: Sequence[float] | None, number: int = -1) -> bool:
        """Count a trial's values; True when they are on the front (none dominates them)."""
        self.dropped = []
        if values is None:
            return False
        point = np.asarray(values, dtype=float) * self._signs
        front = self._points[: self._size]
        no_worse = front <= point
        if np.any(no_worse.all(axis=1) & (front < point).any(axis=1)):
            return False
        # (a copy of a kept point is kept too: the front counts trials, as `pareto_mask`)
        dominated = (point <= front).all(axis=1) & (point < front).any(axis=1)
        if dominated.any():
            keep = ~dominated
            self.dropped = [int(n) for n in self._numbers[: self._size][dominated]]
            kept = int(keep.sum())
            self._points[:kept] = front[keep]
            self._numbers[:kept] = self._numbers[: self._size][keep]
            self._size = kept
        if self._size == len(self._points):
            self._points = np.concatenate([self._points, np.empty_like(self._points)])
            self._numbers = np.concatenate([self._numbers, np.empty_like(self._numbers)])
        self._points[self._size] = point
        self._numbers[self._size] = number
        self._size += 1
        self._best = point.copy() if self._best is None else np.minimum(self._best, point)
        return True

    def values(self) -> np.ndarray:
        """The front's points, in the objectives' own signs, shape ``(size, m)``."""
        return self._points[: self._size] * self._signs

    def numbers(self) -> list[int]:
        """The trial numbers of the front's points, in the order of `values`."""
        return [int(n) for n in self._numbers[: self._size]]

    def best(self) -> list[float] | None:
        """Each objective's best value on the front (None while it is empty): the ends
        of the trade-off, each reached by a different trial in general."""
        if self._best is None:
            return None
        return [float(v) for v in self._best * self._signs]
