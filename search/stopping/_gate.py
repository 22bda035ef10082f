"""The worker's side of early stopping: at each rung epoch, ask whether to go on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class Decider(Protocol):
    """Records a trial's values at a rung and says whether it goes on (see `MoAsha`)."""

    def decide(self, number: int, rung: int, values: Mapping[str, float]) -> bool: ...


def rung_values(objectives: Mapping[str, str], entry: Mapping[str, float]) -> dict[str, float]:
    """The objectives at a rung, from an epoch's history entry: a quality metric is its
    validation value at that epoch (``val_accuracy`` for ``accuracy``), ``train_time_s``
    the training time so far, and latency and size those measured once on the model as it
    trains. An objective the entry lacks is left out (the rung ranks by the others)."""
    values = {}
    for name in objectives:
        for key in (f"val_{name}", name):
            if key in entry:
                values[name] = float(entry[key])
                break
    return values


@dataclass(frozen=True)
class RungGate:
    """Called by the worker after every epoch; raises `StopTraining` when the trial is
    not let on at a rung. Pickled to Ray workers with its decider."""

    objectives: Mapping[str, str]
    rungs: tuple[int, ...]  # epochs
    decider: Decider

    def __call__(self, number: int, epoch: int, entry: Mapping[str, float]) -> None:
        if epoch not in self.rungs:
            return
        go_on = self.decider.decide(
            number, self.rungs.index(epoch), rung_values(self.objectives, entry)
        )
        if not go_on:
            from paretotune.objectives import StopTraining

            raise StopTraining(epoch)
