"""Shared fixtures for the objectives tests: real training on real (bundled or tmp) data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from paretotune.objectives import TrialContext, TrialOutcome, evaluate

Run = Callable[..., TrialOutcome]


def _run(
    params: Mapping[str, Any],
    dataset: Mapping[str, Any] | None = None,
    *,
    on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
    keep_model: bool = False,
    **context: Any,
) -> TrialOutcome:
    settings: dict[str, Any] = {"epochs": 3, "latency_repeats": 5, **context}
    context_ = TrialContext(dataset or {"source": "digits"}, **settings)
    return evaluate(params, context_, on_epoch=on_epoch, keep_model=keep_model)


@pytest.fixture(scope="session")
def run() -> Run:
    """``run(params, dataset=digits, **context)``: evaluate with a short, cheap context."""
    return _run


@pytest.fixture(scope="session")
def fast_mlp() -> dict[str, Any]:
    """A small, quick MLP config, yet well above chance on digits (chance is 0.1)."""
    return {"architecture": "mlp", "mlp.width": 32, "optimizer": "adam", "learning_rate": 1e-2}


@pytest.fixture(scope="session")
def digits_mlp(fast_mlp: dict[str, Any]) -> TrialOutcome:
    """One well-trained digits MLP (width 64, 10 epochs), shared by tests that only read it."""
    return _run({**fast_mlp, "mlp.width": 64}, epochs=10, latency_repeats=10)
