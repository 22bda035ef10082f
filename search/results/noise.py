"""Measurement noise as ties: the front users see holds no member that is on it only by a
difference smaller than its figures' own noise.

A latency is measured, and swings between measurement rounds (the trial's
``latency_cv``: the CV of its rounds' medians). Two models whose latencies differ by 2%
while each swings 3-4% are equally fast as far as anyone can tell, so a far less
accurate model that sits on the exact front only by being "faster" is not a trade-off.
Here member A *beats* member B when A is no worse than B in every objective, where a
difference within the larger of the two figures' relative noise (`NOISE_OF`) is a tie,
and better beyond that noise in one. Exact figures (accuracy, train time, size) compare
as they are.

`rank_within_noise` applies that to a study's ranking: a member of the exact front that
another member beats moves to rank 1, with ``within_noise_of`` naming that member. The
Client, ``paretotune pareto``/``show``/``knee``, the closing table and the front MLflow
tags and draws at the end of a run all read these ranks; the hypervolume stays that of
the exact front (a member beaten within noise adds next to nothing to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from paretotune.results import ordering

if TYPE_CHECKING:
    from paretotune.results.records import TrialRecord

# The objectives measured with noise, and the metric holding each trial's relative noise
# (the CV of its latency rounds' medians: how much the figure swung while measured).
NOISE_OF = {
    "latency_ms": "latency_cv",
    "latency_ms_p90": "latency_cv",
    "latency_wall_ms": "latency_cv",
}


def beaten_within_noise(
    front: Sequence[TrialRecord], objectives: Mapping[str, str]
) -> dict[int, int]:
    """Which members of ``front`` another member beats (see the module docstring): trial
    number -> the number of the member that beats it. The rest is an epsilon-Pareto subset.

    The members are taken best first by their exact figures (then their noisy ones), and
    one is kept unless a member already kept beats it (a beater better in an exact figure
    comes first), so a dense front keeps members spaced by more than the noise, not only
    its ends (dropping every member any other beats would chain down to the ends).
    O(front x kept)."""
    names = list(objectives)
    noisy = [NOISE_OF.get(name) for name in names]
    if len(front) < 2 or not any(noisy):
        return {}
    noise = np.array([[float(r.metrics.get(m, 0.0)) if m else 0.0 for m in noisy] for r in front])
    if not noise.any():
        return {}
    directions = list(objectives.values())
    raw = np.array([[r.values.get(n, r.metrics.get(n)) for n in names] for r in front], float)
    values = raw * ordering.signs(directions)  # smaller is better everywhere
    good = ordering.goodness(raw, directions)
    is_noisy = np.array([m is not None for m in noisy])
    order = np.lexsort((-good[:, is_noisy].sum(axis=1), -good[:, ~is_noisy].sum(axis=1)))
    kept: list[int] = []
    beaten: dict[int, int] = {}
    for i in order:
        if kept:
            tolerance = np.maximum(noise[i], noise[kept]) * np.abs(values[i])
            no_worse = np.all(values[kept] <= values[i] + tolerance, axis=1)
            better = np.any(values[kept] < values[i] - tolerance, axis=1)
            beaters = np.flatnonzero(no_worse & better)
            if beaters.size:
                beaten[front[i].number] = front[kept[int(beaters[0])]].number
                continue
        kept.append(int(i))
    return beaten


def rank_within_noise(
    records: Sequence[TrialRecord], objectives: Mapping[str, str]
) -> list[TrialRecord]:
    """``records`` (ranked exactly) with every member of the exact front that another
    member beats within noise moved to rank 1, ``within_noise_of`` naming that member."""
    beaten = beaten_within_noise([r for r in records if r.pareto_rank == 0], objectives)
    if not beaten:
        return list(records)
    return [
        replace(r, pareto_rank=1, within_noise_of=beaten[r.number]) if r.number in beaten else r
        for r in records
    ]
