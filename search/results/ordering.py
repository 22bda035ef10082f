"""The ordering rules of a study's metrics, in one place: which way a direction is better
(its sign), best-first order, *goodness* (values scaled to [0, 1], 1 the best), and the
params that tell trials apart.

Every table, plot and choice orders by these: the terminal table (`_progress`), the
front's page and saved view in MLflow, `best` / `knee` / `weighted` and ``--sort``
(`selection`), MO-ASHA's rungs; `pareto` takes its signs from here for the Pareto maths.

A direction is ``"maximize"`` or ``"minimize"``; anything else counts as minimised. This
module imports nothing of the package, so every layer may use it (`tests/test_layout.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def maximized(direction: str) -> bool:
    """Whether higher is better."""
    return direction == "maximize"


def sign(direction: str) -> float:
    """-1 for a maximised metric, 1 for a minimised one: a value times its sign is a loss
    (lower is better, whatever the direction)."""
    return -1.0 if maximized(direction) else 1.0


def signs(directions: Sequence[str]) -> np.ndarray:
    """`sign` of each direction, as an array to multiply rows of values by."""
    return np.array([sign(d) for d in directions])


def direction_word(direction: str) -> str:
    """``max`` or ``min``: the direction as a table header or axis label says it."""
    return "max" if maximized(direction) else "min"


def best_first(
    items: Iterable[T],
    value: Callable[[T], Any],
    number: Callable[[T], int],
    direction: str,
) -> list[T]:
    """``items`` best first by ``value`` in ``direction``, ties to the lower ``number``;
    items whose value is missing or not a finite number last, by number."""
    factor = sign(direction)

    def key(item: T) -> tuple[bool, float, int]:
        found = value(item)
        known = isinstance(found, int | float) and math.isfinite(found)
        return (not known, factor * found if known else 0.0, number(item))

    return sorted(items, key=key)


def goodness(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``values`` (shape ``(n, m)``) min-max scaled per column over the rows, oriented so
    that 1 is the rows' best value and 0 their worst in every direction; a constant
    column is 1 throughout."""
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (values - low) / span
    for column, direction in enumerate(directions):
        if not maximized(direction):
            scaled[:, column] = 1.0 - scaled[:, column]
    scaled[:, high == low] = 1.0
    return scaled


def varying_params(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The params whose values differ between ``configs`` (a missing one reads as None), in
    the order they first appear: fixed ones say nothing about a trade-off."""
    configs = list(configs)
    names = dict.fromkeys(name for config in configs for name in config)
    return [name for name in names if len({repr(c.get(name)) for c in configs}) > 1]


__all__ = [
    "best_first",
    "direction_word",
    "goodness",
    "maximized",
    "sign",
    "signs",
    "varying_params",
]
