"""Sampling a spec's search space into one concrete trial config (define-by-run)."""

from __future__ import annotations

from typing import Any

import optuna
from paretotune.spaces._dimensions import suggest
from paretotune.spaces._knobs import OWNING_DIMENSIONS, TOP_KNOBS
from paretotune.spaces._spec import SearchSpace


def sample_params(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, Any]:
    """Draw a flat trial config from ``space`` through ``trial``.

    An owning choice (``architecture``, ``optimizer``, ``compression``) is drawn first and
    only its option's knobs are then drawn, as ``option.knob`` (conditional space); with
    compression variants, the knobs of every variant too (its forks are compressed with
    them). Fixed values are part of the result but not Optuna parameters.
    """
    params: dict[str, Any] = {}
    for dimension in OWNING_DIMENSIONS:
        choices = space.choices(dimension)
        option = choices[0] if len(choices) == 1 else trial.suggest_categorical(dimension, choices)
        params[dimension] = option
        params |= _knobs_of(trial, space, dimension, option)
    for variant in space.variants:  # the knobs its forks are compressed with
        params |= _knobs_of(trial, space, "compression", variant)
    for name, knob in TOP_KNOBS.items():
        params[name] = suggest(trial, name, getattr(space, name), knob)
    return params


def _knobs_of(
    trial: optuna.trial.BaseTrial, space: SearchSpace, dimension: str, option: str
) -> dict[str, Any]:
    """The knobs of one option, drawn as ``option.knob``."""
    knobs = OWNING_DIMENSIONS[dimension][1][option]
    return {
        f"{option}.{name}": suggest(trial, f"{option}.{name}", canonical, knobs[name])
        for name, canonical in space.option_dimensions(option).items()
    }


def covering_choices(space: SearchSpace) -> list[dict[str, Any]]:
    """Partial configs that together try every option of every owning dimension once.

    Trial ``i`` takes option ``i mod n`` of each dimension, so ``max(n)`` trials cover all
    families, optimizers and compressions; the sampler fills in everything else. Only
    dimensions with more than one choice appear.
    """
    dimensions = {
        name: space.choices(name) for name in OWNING_DIMENSIONS if len(space.choices(name)) > 1
    }
    if not dimensions:
        return []
    rounds = max(len(choices) for choices in dimensions.values())
    return [
        {name: choices[i % len(choices)] for name, choices in dimensions.items()}
        for i in range(rounds)
    ]
