"""MO-ASHA: asynchronous successive halving ranked by non-dominated sorting.

Rungs sit at ``min_epochs * reduction_factor**k`` epochs, below the study's epochs. When a
trial reaches a rung, its objective values there are recorded, and it goes on only if it
is among the best ``ceil(n / reduction_factor)`` of the ``n`` trials recorded at that
rung so far (itself included). A rung still empty when a trial reaches it lets the trial
on, and so does a rung with fewer than ``reduction_factor`` records; a straggler is
compared with everything recorded before it. The decision is made once, on arrival
(the asynchronous variant of ASHA that Ray Tune and Syne Tune use for stopping).

The order at a rung: non-dominated rank first (the Pareto front of the rung is rank 0);
within a rank, the better *balance* first, the mean over objectives of each value min-max
normalised over the rung's records (1 = the rung's best); then the lower trial number.

Why not NSGA-II's crowding distance within a rank: measured on digits (see
``benchmarks/early_stopping.py``), crowding spent the budget on the cheap, inaccurate ends
of each young rung's front (with three objectives nearly every early record is
non-dominated, and an end is "least crowded"); its median hypervolume was 0.81 of no
stopping, and one seed finished with no trial inside the reference box.

What the objectives are at a rung is the caller's choice (see `paretotune.stopping`):
this class only ranks the vectors it is given, in the study's directions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from paretotune.results.ordering import goodness
from paretotune.results.pareto import nondominated_ranks


@dataclass(frozen=True)
class RungRecord:
    """A trial's objective values when it reached rung ``rung`` (0 = the first rung), and
    whether it was let on."""

    number: int
    rung: int
    values: Mapping[str, float]
    promoted: bool


def rung_epochs(min_epochs: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs at which rungs sit: ``min_epochs * reduction_factor**k`` below ``epochs``."""
    rungs, at = [], min_epochs
    while at < epochs:
        rungs.append(at)
        at *= reduction_factor
    return tuple(rungs)


class MoAsha:
    """The rung records of one study and the promotion decision.

    Args:
        directions: objective name -> ``"maximize"``/``"minimize"``.
        rungs: the rung epochs (see `rung_epochs`).
        reduction_factor: η; the top ``1/η`` of a rung goes on.
    """

    def __init__(self, directions: Mapping[str, str], rungs: Sequence[int], reduction_factor: int):
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor must be at least 2, got {reduction_factor}")
        self.directions = dict(directions)
        self.rungs = tuple(rungs)
        self.reduction_factor = reduction_factor
        self._records: list[dict[int, RungRecord]] = [{} for _ in self.rungs]
        self._unsaved: list[RungRecord] = []
        # each rung's records as rows of every objective, in `_records` order (None once
        # a record lacks an objective: then `_order` ranks on the objectives all have)
        self._rows: list[list[list[float]] | None] = [[] for _ in self.rungs]

    def decide(self, number: int, rung: int, values: Mapping[str, float]) -> bool:
        """Record trial ``number`` at ``rung`` and say whether it goes on.

        A trial that reports the same rung again (a retried or resumed trial) gets the
        decision it got the first time.
        """
        known = self._records[rung].get(number)
        if known is not None:
            return known.promoted
        candidate = RungRecord(number, rung, dict(values), promoted=False)
        keep = math.ceil((len(self._records[rung]) + 1) / self.reduction_factor)
        promoted = self._place(rung, candidate) < keep
        record = RungRecord(number, rung, dict(values), promoted)
        self._add(record)
        self._unsaved.append(record)
        return promoted

    def _add(self, record: RungRecord) -> None:
        self._records[record.rung][record.number] = record
        rows = self._rows[record.rung]
        if rows is not None and all(n in record.values for n in self.directions):
            rows.append([float(record.values[n]) for n in self.directions])
        else:
            self._rows[record.rung] = None

    def _place(self, rung: int, candidate: RungRecord) -> int:
        """The candidate's place (0: best) among the rung's records in `_order`'s order:
        one vectorised pass over the rung (numpy and moocore), no sort in Python."""
        rows = self._rows[rung]
        complete = all(n in candidate.values for n in self.directions)
        if rows is None or not complete or not rows:
            return self._order([*self._records[rung].values(), candidate]).index(candidate.number)
        directions = list(self.directions.values())
        points = np.array([*rows, [float(candidate.values[n]) for n in self.directions]])
        ranks = nondominated_ranks(points, directions)
        score = balance(points, directions)
        numbers = np.array([*self._records[rung], candidate.number])
        rank, own, mine = ranks[-1], score[-1], candidate.number
        before = (ranks < rank) | (
            (ranks == rank) & ((score > own) | ((score == own) & (numbers < mine)))
        )
        return int(before[:-1].sum())

    def _order(self, records: Sequence[RungRecord]) -> list[int]:
        """Trial numbers, best first: rank, then balance, then number."""
        names = [n for n in self.directions if all(n in r.values for r in records)]
        if not names or len(records) == 1:
            return sorted(r.number for r in records)
        points = np.array([[r.values[n] for n in names] for r in records], dtype=float)
        directions = [self.directions[n] for n in names]
        ranks = nondominated_ranks(points, directions)
        score = balance(points, directions)
        keyed = sorted(range(len(records)), key=lambda i: (ranks[i], -score[i], records[i].number))
        return [records[i].number for i in keyed]

    def records(self, rung: int) -> list[RungRecord]:
        return list(self._records[rung].values())

    def take_unsaved(self) -> list[RungRecord]:
        """The records made since the last call (for the driver to persist)."""
        unsaved, self._unsaved = self._unsaved, []
        return unsaved

    def restore(self, records: Iterable[RungRecord]) -> None:
        """Records kept from an earlier run of the study (they are not unsaved)."""
        for record in records:
            if record.rung < len(self._records) and record.number not in self._records[record.rung]:
                self._add(record)


def balance(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Each row's mean over objectives of its `ordering.goodness` among the rows (1: the
    best value among them in every objective; a constant column counts 1)."""
    return goodness(points, directions).mean(axis=1)
