"""One search dimension: a fixed value, a list of choices, or an inclusive numeric range.

In YAML a dimension is written as

- a scalar (``epochs: 10``) — fixed, not searched;
- a list (``batch_size: [32, 64]``) — a categorical choice;
- a mapping ``{low, high, log?, step?}`` — a numeric range, bounds inclusive.

This module is the one adapter from our convention to Optuna's: ``suggest`` samples a
dimension through an Optuna trial. Optuna's ``suggest_int``/``suggest_float`` take
inclusive bounds too, so the adapter's job is the kind dispatch and the checks.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from paretotune.spaces._knobs import Knob


class DimensionError(ValueError):
    """A dimension's value is malformed; the message names the value, the caller the field."""


def normalize(value: Any, knob: Knob) -> Any:
    """Check ``value`` against ``knob`` and return it in canonical form.

    Canonical forms: a list of choices, a dict ``{low, high, log, step}`` with numbers of
    the knob's kind, or a scalar (a fixed value).

    Raises:
        DimensionError: on a wrong type, an empty list, ``low > high``, values outside the
            knob's hard limits, ``log`` with ``low <= 0`` or with ``step``, or a choice a
            categorical knob does not know.
    """
    if isinstance(value, list):
        if not value:
            raise DimensionError("an empty list of choices; give at least one value")
        return [_check_scalar(v, knob) for v in value]
    if isinstance(value, dict):
        return _normalize_range(value, knob)
    return _check_scalar(value, knob)


def _normalize_range(value: dict[str, Any], knob: Knob) -> dict[str, Any]:
    if knob.kind == "categorical":
        raise DimensionError(f"a range {value!r} for a categorical knob; give a list of choices")
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown:
        raise DimensionError(
            f"unknown range key(s) {sorted(unknown)}; allowed: low, high, log, step"
        )
    if "low" not in value or "high" not in value:
        raise DimensionError(f"a range needs both `low` and `high`, got {value!r}")
    low = _check_scalar(value["low"], knob)
    high = _check_scalar(value["high"], knob)
    log = value.get("log", False)
    step = value.get("step")
    if not isinstance(log, bool):
        raise DimensionError(f"`log` must be true or false, got {log!r}")
    if low > high:
        raise DimensionError(f"`low <= high` must hold, but got (low={low}, high={high})")
    if log and low <= 0:
        raise DimensionError(f"a log range needs `low > 0`, but got low={low}")
    if step is not None:
        if log:
            raise DimensionError("`step` and `log: true` cannot be combined")
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise DimensionError(f"`step` must be a positive number, got {step!r}")
        if knob.kind == "int" and not isinstance(step, int):
            raise DimensionError(f"`step` of an integer knob must be an integer, got {step!r}")
    return {"low": low, "high": high, "log": log, "step": step}


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _with_dot(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text


def _check_scalar(value: Any, knob: Knob) -> Any:
    if knob.kind == "categorical":
        if knob.choices is not None and value not in knob.choices:
            allowed = ", ".join(str(c) for c in knob.choices)
            raise DimensionError(f"{value!r} is not one of: {allowed}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str) and _looks_numeric(value):
            raise DimensionError(
                f"{value!r} is not a number (YAML reads an exponent without a dot as text: "
                f"write {_with_dot(value)})"
            )
        raise DimensionError(f"{value!r} is not a number")
    if not math.isfinite(value):
        raise DimensionError(f"{value!r} is not a finite number")
    if knob.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise DimensionError(f"{value!r} is not an integer")
        value = int(value)
    else:
        value = float(value)
    if knob.minimum is not None and value < knob.minimum:
        raise DimensionError(f"{value!r} is below the minimum {knob.minimum}")
    if knob.maximum is not None and value > knob.maximum:
        raise DimensionError(f"{value!r} is above the maximum {knob.maximum}")
    return value


def suggest(trial: optuna.trial.BaseTrial, name: str, dimension: Any, knob: Knob) -> Any:
    """Sample one canonical dimension through ``trial`` under the parameter ``name``.

    A fixed scalar is not a search dimension: it is returned as is and not recorded as
    an Optuna parameter, so it does not dilute the sampler's model.
    """
    if isinstance(dimension, list):
        if len(dimension) == 1:
            return dimension[0]
        return trial.suggest_categorical(name, dimension)
    if isinstance(dimension, dict):
        low, high, log, step = (dimension[k] for k in ("low", "high", "log", "step"))
        if low == high:
            return low
        if knob.kind == "int":
            return trial.suggest_int(name, low, high, step=step or 1, log=log)
        return trial.suggest_float(name, low, high, step=step, log=log)
    return dimension
