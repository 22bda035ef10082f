"""`IndexedJournalStorage` answers `get_all_trials` exactly as Optuna's `JournalStorage`,
through trials asked, told, failed, pruned, queued and annotated by it and by a second
writer of the same journal; on the Optuna version it was checked on, the index stays in
use (`INDEX_CHECKED_ON`: on another version, re-check the replay's internals and add it)."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from paretotune.study._indexed_journal import INDEX_CHECKED_ON, IndexedJournalStorage

QUERIES = (
    None,
    (TrialState.WAITING,),
    (TrialState.COMPLETE,),
    (TrialState.RUNNING, TrialState.WAITING),
    (TrialState.FAIL, TrialState.PRUNED),
    {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL},
)


def _journal(path: Path, cls: type[JournalStorage] = JournalStorage) -> JournalStorage:
    return cls(JournalFileBackend(str(path)))


def _step(rng: random.Random, study: optuna.Study) -> None:
    """One random change to ``study`` through Optuna's public API."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    choice = rng.random()
    if choice < 0.1:
        study.enqueue_trial({"x": rng.random()})
    elif choice < 0.45 or not running:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("asked", True)
    else:
        trial_id = rng.choice(running)._trial_id
        trial = optuna.Trial(study, trial_id)
        outcome = rng.choice(("complete", "complete", "fail", "prune", "attr"))
        if outcome == "attr":
            study._storage.set_trial_system_attr(trial_id, "note", rng.random())
        elif outcome == "complete":
            study.tell(trial, [rng.random(), rng.random()])
        else:
            study.tell(trial, state=TrialState.FAIL if outcome == "fail" else TrialState.PRUNED)


def _same_answers(indexed: JournalStorage, reference: JournalStorage, study_id: int) -> None:
    for states in QUERIES:
        got = indexed.get_all_trials(study_id, deepcopy=False, states=states)
        want = reference.get_all_trials(study_id, deepcopy=False, states=states)
        assert got == want, f"states={states}"


def test_answers_match_optuna_through_random_changes_from_two_writers(tmp_path: Path):
    journal = tmp_path / "study.journal"
    indexed = _journal(journal, IndexedJournalStorage)
    directions = ["maximize", "minimize"]
    ours = optuna.create_study(storage=indexed, study_name="s", directions=directions)
    other = optuna.create_study(storage=indexed, study_name="other", directions=directions)
    theirs = optuna.load_study(storage=_journal(journal), study_name="s")
    rng = random.Random(7)
    for step in range(300):
        _step(rng, rng.choice((ours, ours, theirs, other)))
        if step % 7 == 0:
            reference = _journal(journal)  # a fresh replay of the whole file
            _same_answers(indexed, reference, ours._study_id)
            _same_answers(indexed, reference, other._study_id)
    assert indexed._indexing, "the index fell back to Optuna's walk on a checked version"
    assert len(ours.trials) > 60 and len(ours.get_trials(states=(TrialState.WAITING,))) > 0


def test_a_deleted_or_unknown_study_raises_as_optuna_does(tmp_path: Path):
    indexed = _journal(tmp_path / "j", IndexedJournalStorage)
    study = optuna.create_study(storage=indexed, study_name="gone")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    optuna.delete_study(study_name="gone", storage=indexed)
    with pytest.raises(KeyError):
        indexed.get_all_trials(study._study_id)
    with pytest.raises(KeyError):
        indexed.get_all_trials(99)


def test_deep_copies_are_copies_and_a_pickled_storage_reads_the_same(tmp_path: Path):
    indexed = _journal(tmp_path / "j", IndexedJournalStorage)
    study = optuna.create_study(storage=indexed, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    copied = indexed.get_all_trials(study._study_id)
    copied[0].user_attrs["changed"] = 1
    assert "changed" not in indexed.get_all_trials(study._study_id, deepcopy=False)[0].user_attrs
    revived = pickle.loads(pickle.dumps(indexed))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert revived.get_all_trials(study._study_id) == indexed.get_all_trials(study._study_id)
    assert len(revived.get_all_trials(study._study_id)) == 7


def test_another_optuna_version_gets_optunas_own_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert optuna.__version__.startswith(INDEX_CHECKED_ON), (
        f"Optuna {optuna.__version__} is not in INDEX_CHECKED_ON ({INDEX_CHECKED_ON}); "
        "see paretotune/study/_indexed_journal.py"
    )
    monkeypatch.setattr(optuna, "__version__", "99.0")
    indexed = _journal(tmp_path / "j", IndexedJournalStorage)
    study = optuna.create_study(storage=indexed)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    assert not indexed._indexing and len(study.trials) == 4
