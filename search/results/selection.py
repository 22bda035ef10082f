"""Choosing trials from a study: feasibility, constrained best, knee point, weighted sum.

Everything here works on `TrialRecord`s of COMPLETE trials. A record's *namespace* is its
final metrics (every metric the trial reported, objectives included) plus its params by
flat name (``batch_size``, ``mlp.width``); conditions (``where``, spec ``constraints``)
are written over it in the language of `spaces.parse_expression`.

Directions: an objective of the study keeps its direction; any other metric is maximised
when it is a score (``accuracy``, ``f1_macro``, ``precision_macro``, ``recall_macro``,
``roc_auc``, ``r2``, ``throughput_sps``, also with a ``test_`` prefix or a
``_before_compression`` suffix) and minimised otherwise (losses, times, sizes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from paretotune.errors import NoTrialMatchesError, UnknownMetricError
from paretotune.objectives._metric_names import metric_direction as _catalogue_direction
from paretotune.results import ordering
from paretotune.results.noise import rank_within_noise
from paretotune.results.pareto import nondominated_ranks
from paretotune.results.records import TrialRecord, TrialSet
from paretotune.spaces import Expression, parse_expression
from paretotune.study._constraints import is_feasible
from paretotune.study._constraints import parse_constraints as parse_texts


def metric_direction(name: str, objectives: Mapping[str, str]) -> str:
    """``"maximize"`` or ``"minimize"`` for a metric (see the module docstring)."""
    if name in objectives:
        return objectives[name]
    return _catalogue_direction(name)


def namespace(record: TrialRecord) -> dict[str, Any]:
    """What a condition may name for this trial: its params, then its metrics."""
    return {**record.params, **record.metrics}


def check_names(
    names: Iterable[str], records: Sequence[TrialRecord], study: str, *, metrics_only=False
) -> None:
    """Raise `UnknownMetricError` for the first name no record knows.

    Raises:
        UnknownMetricError: naming it and listing the study's metrics (and params).
    """
    if not records:
        return
    metrics = sorted({m for r in records for m in r.metrics})
    params = sorted({p for r in records for p in r.params})
    known = set(metrics) if metrics_only else set(metrics) | set(params)
    for name in names:
        if name not in known:
            message = f"unknown metric {name!r} in study {study!r}; "
            message += f"its metrics: {', '.join(metrics)}"
            if not metrics_only:
                message += f"; its params: {', '.join(params)}"
            raise UnknownMetricError(message)


def parse_constraints(spec: Mapping[str, Any] | None) -> list[Expression]:
    """The spec's ``constraints`` (stored with the study), parsed."""
    return parse_texts((spec or {}).get("constraints"))


def candidates(
    records: Sequence[TrialRecord],
    objectives: Mapping[str, str],
    constraints: Sequence[Expression],
    study: str,
    *,
    feasible_only: bool,
) -> TrialSet:
    """Complete records marked feasible or not, ranked by non-domination among the kept ones
    (differences within measurement noise as ties, `noise.rank_within_noise`).

    With ``feasible_only`` the infeasible trials are dropped before ranking, so rank 0 is
    the front of the feasible trials (Optuna's convention for constrained studies). A
    constraint naming a metric no trial has (a study stored before such specs were
    refused) holds for none: every trial is infeasible, as the samplers saw it, and
    reading the study (or any other in its storage) never fails for it.
    """
    complete = [r for r in records if r.state == "COMPLETE" and r.values]
    marked = [replace(r, feasible=is_feasible(constraints, namespace(r))) for r in complete]
    kept = [r for r in marked if r.feasible or not feasible_only]
    if not kept:
        return TrialSet()
    values = np.array([[r.values[m] for m in objectives] for r in kept], dtype=float)
    ranks = nondominated_ranks(values, list(objectives.values()))
    ranked = [
        replace(r, pareto_rank=int(k), within_noise_of=None)
        for r, k in zip(kept, ranks, strict=True)
    ]
    return TrialSet(sorted(rank_within_noise(ranked, objectives), key=lambda r: r.number))


def best(
    pool: Sequence[TrialRecord],
    objectives: Mapping[str, str],
    study: str,
    *,
    where: str | Expression | None = None,
    prefer: str | None = None,
) -> TrialRecord:
    """The trial of ``pool`` satisfying ``where`` with the best ``prefer`` metric.

    ``prefer`` defaults to the first objective. Ties go to the lower Pareto rank, then the
    lower trial number.

    Raises:
        ExpressionError: ``where`` is malformed.
        UnknownMetricError: ``where`` or ``prefer`` names a metric no trial has.
        NoTrialMatchesError: no trial of ``pool`` satisfies ``where``.
    """
    condition = parse_expression(where) if isinstance(where, str) else where
    prefer = prefer or next(iter(objectives))
    check_names(condition.names if condition else (), pool, study)
    check_names([prefer], pool, study, metrics_only=True)
    matching = [r for r in pool if condition is None or condition.holds(namespace(r))]
    scored = [r for r in matching if _finite(r.metrics.get(prefer))]
    if not scored:
        raise NoTrialMatchesError(_no_match_message(pool, condition, prefer, study))
    sign = ordering.sign(metric_direction(prefer, objectives))
    return min(scored, key=lambda r: (sign * r.metrics[prefer], _rank(r), r.number))


def knee(front: Sequence[TrialRecord], objectives: Mapping[str, str], study: str) -> TrialRecord:
    """The Pareto trial nearest the utopia point in min-max normalised objectives (rank 0:
    the front with differences within measurement noise as ties, `noise`).

    Each objective is scaled to [0, 1] over those members (0 = the best value, whatever
    the direction; a constant objective scales to 0), so the utopia point is the origin;
    the trial with the smallest Euclidean distance to it wins, ties to the lower trial
    number.

    Raises:
        NoTrialMatchesError: the front is empty.
    """
    front = [r for r in front if r.pareto_rank == 0]
    if not front:
        raise NoTrialMatchesError(f"study {study!r} has no complete trial to choose from")
    scaled = _goodness(front, objectives, list(objectives))
    distance = np.linalg.norm(1.0 - scaled, axis=1)
    return front[int(np.argmin(distance))]


def weighted(
    pool: Sequence[TrialRecord],
    objectives: Mapping[str, str],
    weights: Mapping[str, float],
    study: str,
) -> TrialRecord:
    """The trial with the best weighted sum of min-max normalised metrics.

    Each weighted metric is scaled to [0, 1] over ``pool`` with 1 its best value (by its
    direction), so weights are importances, free of units. Trials lacking a weighted
    metric are skipped. Ties go to the lower Pareto rank, then the lower trial number.

    Raises:
        ValueError: no weights, or a weight that is negative, not finite, or all zero.
        UnknownMetricError: a weight names a metric no trial has.
        NoTrialMatchesError: no trial has every weighted metric.
    """
    if not weights:
        raise ValueError("weights: give at least one metric and its weight")
    for name, weight in weights.items():
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weights.{name}: must be a finite number >= 0, got {weight!r}")
    if not any(weights.values()):
        raise ValueError("weights: at least one weight must be above 0")
    check_names(weights, pool, study, metrics_only=True)
    usable = [r for r in pool if all(_finite(r.metrics.get(m)) for m in weights)]
    if not usable:
        raise NoTrialMatchesError(
            f"no complete trial of {study!r} has every weighted metric ({', '.join(weights)})"
        )
    goodness = _goodness(usable, objectives, list(weights))
    scores = goodness @ np.array([float(w) for w in weights.values()])
    best_index = min(
        range(len(usable)), key=lambda i: (-scores[i], _rank(usable[i]), usable[i].number)
    )
    return usable[best_index]


def _goodness(
    records: Sequence[TrialRecord], objectives: Mapping[str, str], names: list[str]
) -> np.ndarray:
    """The metrics ``names`` as `ordering.goodness` over ``records``: in [0, 1], 1 the best
    in its `metric_direction` (a constant metric: 1)."""
    values = np.array([[r.metrics.get(n, r.values.get(n)) for n in names] for r in records], float)
    return ordering.goodness(values, [metric_direction(name, objectives) for name in names])


def best_first(
    records: Iterable[TrialRecord], objectives: Mapping[str, str], by: str | None = None
) -> list[TrialRecord]:
    """The records best first by the metric ``by`` (default: the first objective), in its
    direction (`metric_direction`), ties to the lower number; those without it last, by
    number (`ordering.best_first`)."""
    by = by or next(iter(objectives))
    return ordering.best_first(
        records,
        lambda record: record.values.get(by, record.metrics.get(by)),
        lambda record: record.number,
        metric_direction(by, objectives),
    )


def _no_match_message(
    pool: Sequence[TrialRecord], condition: Expression | None, prefer: str, study: str
) -> str:
    if not pool:
        return f"study {study!r} has no complete trial to choose from"
    if condition is None:
        return f"no complete trial of {study!r} reported {prefer!r}"
    hints = []
    for comparison in condition.comparisons:
        seen: list[Any] = [namespace(r).get(comparison.name) for r in pool]
        numbers = [float(v) for v in seen if _finite(v)]
        if not numbers:
            found = sorted({repr(v) for v in seen if v is not None})
            hints.append(f"{comparison.name} takes {', '.join(found) or 'no value'}")
        elif comparison.op in ("<", "<="):
            hints.append(f"best {comparison.name} is {min(numbers):.4g}")
        elif comparison.op in (">", ">="):
            hints.append(f"best {comparison.name} is {max(numbers):.4g}")
        else:
            hints.append(f"{comparison.name} ranges {min(numbers):.4g}..{max(numbers):.4g}")
    hint = "; ".join(dict.fromkeys(hints))
    return (
        f"no complete trial of {study!r} satisfies {condition} "
        f"({hint}; {len(pool)} trials considered)"
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rank(record: TrialRecord) -> int:
    return record.pareto_rank if record.pareto_rank is not None else 1 << 30


__all__ = [
    "NoTrialMatchesError",
    "UnknownMetricError",
    "best",
    "best_first",
    "candidates",
    "check_names",
    "knee",
    "metric_direction",
    "namespace",
    "parse_constraints",
    "weighted",
]
