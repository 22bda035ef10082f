"""Multi-objective early stopping: MO-ASHA on Ray, in the driver's process, or on a
simulated clock.

- `_moasha`: the rungs and the promotion decision (non-dominated rank, then balance).
- `_gate`: the worker's side, called after every epoch.
- `_remote`: the rung records in one Ray actor, shared by the workers.
- `EarlyStopping` (here): the driver's side: it makes the decider, restores the rung
  records a study kept in the Optuna storage, and hands new ones back to be kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import optuna
from paretotune.stopping._gate import Decider, RungGate, rung_values
from paretotune.stopping._moasha import MoAsha, RungRecord, balance, rung_epochs
from paretotune.study._attrs import RUNG_ATTR_PREFIX, finished_trials

if TYPE_CHECKING:
    from paretotune.stopping._remote import RemoteDecider


class EarlyStopping:
    """The driver's side of MO-ASHA for one study (``ranking``: a `MoAsha` subclass that
    orders a rung differently, e.g. a benchmark's weighted sum).

    Rung records are kept as the trial attributes ``rung.<k>`` (``{"values": …,
    "promoted": …}``), so a resumed study restores them and carries on with the same
    promotions; the records of trials closed as interrupted are left out (their re-run
    reports again).
    """

    def __init__(
        self,
        objectives: Mapping[str, str],
        *,
        epochs: int,
        min_epochs: int,
        reduction_factor: int,
        ranking: type[MoAsha] = MoAsha,
    ):
        self.objectives = dict(objectives)
        self.moasha = ranking(
            objectives, rung_epochs(min_epochs, reduction_factor, epochs), reduction_factor
        )
        self._decider: Decider = self.moasha
        self._remote: RemoteDecider | None = None

    @property
    def rungs(self) -> tuple[int, ...]:
        return self.moasha.rungs

    def restore(self, study: optuna.Study) -> None:
        """Take back the rung records the study's finished trials kept."""
        records = []
        for trial in finished_trials(study):
            for key, kept in trial.user_attrs.items():
                if key.startswith(RUNG_ATTR_PREFIX):
                    rung = int(key.removeprefix(RUNG_ATTR_PREFIX))
                    records.append(
                        RungRecord(trial.number, rung, kept["values"], bool(kept["promoted"]))
                    )
        self.moasha.restore(records)

    def share_with_ray(self) -> None:
        """Move the rung records into a Ray actor that the workers ask."""
        from paretotune.stopping._remote import remote_moasha

        remote = remote_moasha(self.moasha)
        remote.restore(r for rung in range(len(self.rungs)) for r in self.moasha.records(rung))
        self._remote = self._decider = remote

    def gate(self) -> RungGate:
        return RungGate(self.objectives, self.rungs, self._decider)

    def take_unsaved(self) -> list[RungRecord]:
        """The rung records made since the last call, to be kept with their trials."""
        if self._remote is not None:
            return self._remote.take_unsaved()
        return self.moasha.take_unsaved()

    def close(self) -> None:
        """Release the Ray actor, if the records were shared with Ray (they are kept)."""
        if self._remote is not None:
            self._remote.close()
            self._remote, self._decider = None, self.moasha

    @staticmethod
    def attr(record: RungRecord) -> tuple[str, dict]:
        """The trial attribute that keeps ``record``."""
        kept = {"values": dict(record.values), "promoted": record.promoted}
        return f"{RUNG_ATTR_PREFIX}{record.rung}", kept


__all__ = [
    "Decider",
    "EarlyStopping",
    "MoAsha",
    "RungGate",
    "RungRecord",
    "balance",
    "rung_epochs",
    "rung_values",
]
