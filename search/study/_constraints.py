"""A spec's ``constraints``: feasibility, and the violations Optuna's samplers (TPE and
NSGA-II) steer away from, set on each trial before it is told (`Trial.set_constraint`,
one value per constraint, keyed by its position)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial
from paretotune.spaces import Comparison, Expression, parse_expression
from paretotune.study._attrs import PARAMS_ATTR, trial_metrics


def parse_constraints(texts: Sequence[str] | None) -> list[Expression]:
    return [parse_expression(text) for text in texts or ()]


def violations(constraints: Sequence[Expression], namespace: Mapping[str, Any]) -> list[float]:
    """One value per constraint, Optuna's convention: 0 when it holds, above 0 when not.

    A violated single comparison over numbers gives its relative miss (``latency_ms <= 0.5``
    at 0.75 gives 0.5); any other violated condition, or one naming a value the trial does
    not have (a pruned trial's final metrics), gives 1.
    """
    return [0.0 if _holds(c, namespace) else _miss(c, namespace) for c in constraints]


def _holds(constraint: Expression, namespace: Mapping[str, Any]) -> bool:
    """Whether the trial has every value the constraint names, and meets it."""
    return all(name in namespace for name in constraint.names) and constraint.holds(namespace)


def _miss(constraint: Expression, namespace: Mapping[str, Any]) -> float:
    comparison = constraint.root
    if not isinstance(comparison, Comparison) or comparison.op in ("==", "!="):
        return 1.0
    actual = namespace.get(comparison.name)
    if not (isinstance(actual, int | float) and isinstance(comparison.value, int | float)):
        return 1.0
    gap = abs(float(actual) - float(comparison.value)) / max(abs(float(comparison.value)), 1e-12)
    return gap if math.isfinite(gap) and gap > 0 else 1e-9


def is_feasible(constraints: Sequence[Expression], namespace: Mapping[str, Any]) -> bool:
    """Whether ``namespace`` (a trial's params and final metrics) meets every constraint:
    the one feasibility test of the driver, the sampler and the `Client`."""
    return all(_holds(c, namespace) for c in constraints)


def trial_namespace(trial: FrozenTrial) -> dict[str, Any]:
    """A told trial's params (the full flat ones where kept) and final metrics, by name."""
    params = trial.user_attrs.get(PARAMS_ATTR) or trial.params
    return {**params, **trial_metrics(trial)}
