"""Trials run one at a time in the driver's own process: for debugging and baselines."""

from __future__ import annotations

from typing import Any

from paretotune.execution._base import Executor
from paretotune.execution._worker import (
    EpochGate,
    TrialReport,
    TrialRunner,
    TrialTask,
    UserObjective,
)


class InProcessExecutor(Executor):
    """Runs each trial synchronously in the driver's process: for debugging and baselines."""

    def __init__(self, context: Any = None, objective: UserObjective | None = None):
        self._runner = TrialRunner(context, objective)
        self._done: list[TrialReport] = []

    @property
    def capacity(self) -> int:
        return 1

    def remeasure(self, models: dict[int, bytes]) -> dict[int, dict[str, float]]:
        return self._runner.remeasure(models) if models else {}

    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        self._runner.use_epoch_gate(gate)

    def submit(self, task: TrialTask) -> None:
        if self._done:
            raise RuntimeError("InProcessExecutor: collect the previous report first")
        self._done.append(self._runner.run(task))

    def wait(self, timeout: float) -> list[TrialReport]:
        done, self._done = self._done, []
        return done
