"""Which trials earn a precise measurement: those that could be on the front.

Every trial's model gets a quick measurement (`quick_serving_costs`); the driver sends
each task the front as it stood at dispatch (`FrontHint`), and a trial whose figures,
with its quickly measured serving figures taken at their most favourable
(`CANDIDATE_MARGIN`, or three times the rounds' spread if larger), are still dominated by
that front keeps its quick figures: it cannot be on the front, now or later (the front
only moves forward). Every other trial is measured precisely before its values are told,
so the front is ranked on precise figures alone. Numpy only: no torch, no Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The figures a quick measurement gives (and a precise one replaces); the rest are exact.
SERVING_METRICS = frozenset({"latency_ms", "latency_ms_p90", "latency_wall_ms", "throughput_sps"})
# How much better than measured a quick figure is taken to be, at least: quick figures
# read 1.00-1.04x the precise ones on the median, but up to 1.8x in a slow episode of the
# machine (benchmarks/quick_measurement.py, 20 digits models of 4 families; the quick
# measurement has no slow-episode check), and interference only ever adds time.
CANDIDATE_MARGIN = 0.5


@dataclass(frozen=True)
class FrontHint:
    """The study's front at dispatch: objective names and directions, in value order, and
    the members' values (one row each, the objectives' own signs)."""

    objectives: Mapping[str, str]
    points: Sequence[Sequence[float]]


def could_join(hint: FrontHint, metrics: Mapping[str, float]) -> bool:
    """True unless the front dominates the trial even with its serving figures taken at
    their most favourable; True as well when an objective is missing from ``metrics``."""
    if not hint.points:
        return True
    spread = 3 * metrics.get("latency_cv", 0.0)
    margin = min(max(CANDIDATE_MARGIN, spread), 0.9)
    point, signs = [], []
    for name, direction in hint.objectives.items():
        if name not in metrics:
            return True
        sign = 1.0 if direction == "minimize" else -1.0
        value = metrics[name]
        if name in SERVING_METRICS:  # its most favourable reading
            value *= 1 - margin if sign > 0 else 1 + margin
        point.append(value * sign)
        signs.append(sign)
    front = np.asarray(hint.points, dtype=float) * np.asarray(signs)
    mine = np.asarray(point)
    dominated = np.all(front <= mine, axis=1) & np.any(front < mine, axis=1)
    return not bool(dominated.any())
