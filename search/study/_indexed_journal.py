"""A journal storage whose `get_all_trials` costs what it returns, not the study's size.

Optuna's `JournalStorage.get_all_trials` walks every trial of the study on each call, and
each `Study.ask` calls it four times (the waiting queue, NSGA-II's generation and parent
caches, the intersection search space): in a py-spy of a 10,000-trial study, a third of
the driver's time (benchmarks/README.md). `IndexedJournalStorage` keeps each study's
trials in number order, and the numbers of the trials in each state, updated only from
the trials the journal (re)set since the last call: a call for every trial is a list copy,
one for a rare state (WAITING, the queue ``ask`` checks) reads only those trials.

It reads Optuna's replay internals (`_replay_result._trials`, `_trial_id_to_study_id`),
checked on `INDEX_CHECKED_ON`; on another version, or where they are not as expected, it
answers as `JournalStorage` does. tests/search/test_indexed_journal.py pins it against
`JournalStorage` on random operations from two writers.
"""

from __future__ import annotations

import copy
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

# The Optuna versions whose journal replay `IndexedJournalStorage` was checked against.
INDEX_CHECKED_ON = ("5.",)

# A filtered call reads the matching trials by number when they are fewer than this share
# of the study, else it filters the ordered list in one pass.
_FEW = 0.25


class _ChangedTrials(dict[int, FrozenTrial]):
    """The replay's ``trial id -> FrozenTrial`` map, noting every id it (re)sets (the
    replay replaces a trial's FrozenTrial on every change, never edits it in place)."""

    def __init__(self, trials: dict[int, FrozenTrial]) -> None:
        super().__init__(trials)
        self.changed: list[int] = list(trials)

    def __setitem__(self, trial_id: int, trial: FrozenTrial) -> None:
        super().__setitem__(trial_id, trial)
        self.changed.append(trial_id)


class _OutOfOrder(Exception):
    """A trial number arrived before the ones below it: the index cannot be trusted."""


@dataclass
class _StudyIndex:
    ordered: list[FrozenTrial] = field(default_factory=list)
    numbers_by_state: dict[TrialState, set[int]] = field(default_factory=dict)

    def put(self, trial: FrozenTrial) -> None:
        number = trial.number
        if number == len(self.ordered):
            self.ordered.append(trial)
        elif number < len(self.ordered):
            self.numbers_by_state[self.ordered[number].state].discard(number)
            self.ordered[number] = trial
        else:
            raise _OutOfOrder(number)
        self.numbers_by_state.setdefault(trial.state, set()).add(number)

    def select(self, states: Container[TrialState] | None) -> list[FrozenTrial]:
        if states is None:
            return list(self.ordered)
        wanted = [numbers for state, numbers in self.numbers_by_state.items() if state in states]
        count = sum(len(numbers) for numbers in wanted)
        if count == len(self.ordered):
            return list(self.ordered)
        if count < _FEW * len(self.ordered):
            return [self.ordered[n] for n in sorted(n for numbers in wanted for n in numbers)]
        return [trial for trial in self.ordered if trial.state in states]


class IndexedJournalStorage(JournalStorage):
    """`JournalStorage` with an incremental `get_all_trials` (see the module's docstring)."""

    def __init__(self, log_storage: BaseJournalBackend) -> None:
        self._indexes: dict[int, _StudyIndex] = {}
        self._indexing = optuna.__version__.startswith(INDEX_CHECKED_ON)
        super().__init__(log_storage)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._indexes = {}

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if not self._indexing:
            return super().get_all_trials(study_id, deepcopy, states)
        with self._thread_lock:
            self._sync_with_backend()
            trials = self._indexed_trials(study_id, states)
        if trials is None:
            return super().get_all_trials(study_id, deepcopy, states)
        return copy.deepcopy(trials) if deepcopy else trials

    def _indexed_trials(
        self, study_id: int, states: Container[TrialState] | None
    ) -> list[FrozenTrial] | None:
        """The study's trials from the index, brought up to date; None (and no more
        indexing) where the replay is not as `INDEX_CHECKED_ON` expects."""
        replay = self._replay_result
        trials = getattr(replay, "_trials", None)
        owners = getattr(replay, "_trial_id_to_study_id", None)
        studies = getattr(replay, "_studies", None)
        if not (isinstance(trials, dict) and isinstance(owners, dict) and studies is not None):
            self._indexing = False
            return None
        if not isinstance(trials, _ChangedTrials):  # first call, or a replay restored anew
            trials = replay._trials = _ChangedTrials(trials)
            self._indexes = {}
        if study_id not in studies:
            return None  # Optuna's own call raises its KeyError
        try:
            self._catch_up(trials, owners)
        except _OutOfOrder:
            self._indexing = False
            return None
        index = self._indexes.get(study_id)
        return index.select(states) if index is not None else []

    def _catch_up(self, trials: _ChangedTrials, owners: dict[int, int]) -> None:
        if not trials.changed:
            return
        changed, trials.changed = trials.changed, []
        for trial_id in sorted(set(changed)):  # ids grow with creation, numbers too
            index = self._indexes.setdefault(owners[trial_id], _StudyIndex())
            index.put(trials[trial_id])
