"""The batched journal append (`study._attrs.set_trial_attrs`) goes through Optuna's
journal internals: it is pinned to the Optuna versions it was checked on
(`JOURNAL_BATCH_CHECKED_ON`), and falls back to Optuna's public calls where the version
or the internals are not the ones checked. What it writes is what Optuna's own
``set_user_attr`` writes (tests/search/test_progress_lines.py reads both back)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from paretotune import open_storage
from paretotune.study import _attrs
from paretotune.study._attrs import JOURNAL_BATCH_CHECKED_ON, set_trial_attrs

ATTRS = {"metric.accuracy": 0.9, "metric.latency_ms": 0.25, "placement": {"node": "n1"}}


def _appends(study: optuna.Study, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of records in each append to the study's journal file."""
    backend: Any = study._storage._backend  # type: ignore[attr-defined]
    appends: list[int] = []
    original = backend.append_logs

    def append_logs(logs: list[dict[str, Any]]) -> None:
        appends.append(len(logs))
        original(logs)

    monkeypatch.setattr(backend, "append_logs", append_logs)
    return appends


def _read_back(path: Path, study: optuna.Study) -> dict[str, Any]:
    again = optuna.load_study(study_name=study.study_name, storage=open_storage(str(path)))
    return again.trials[0].user_attrs


def test_the_installed_optuna_is_one_the_batch_was_checked_on():
    """Fails on an Optuna upgrade: check its journal records (op code, fields) still read
    back as ``set_user_attr``'s, then add its version to `JOURNAL_BATCH_CHECKED_ON`."""
    assert optuna.__version__.startswith(JOURNAL_BATCH_CHECKED_ON), (
        f"Optuna {optuna.__version__} is not among those the journal batch was checked on "
        f"({JOURNAL_BATCH_CHECKED_ON}); see paretotune/study/_attrs.py"
    )
    from optuna.storages.journal._storage import JournalOperation

    assert int(JournalOperation.SET_TRIAL_USER_ATTR) == 8  # the op code of the records


def test_on_a_checked_optuna_the_attrs_go_in_one_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "study.journal"
    study = optuna.create_study(storage=open_storage(str(path)))
    trial = study.ask()
    appends = _appends(study, monkeypatch)
    set_trial_attrs(trial, ATTRS)
    assert appends == [len(ATTRS)]
    assert trial.user_attrs == ATTRS
    assert _read_back(path, study) == ATTRS


@pytest.mark.parametrize("moved", ["version", "module"])
def test_elsewhere_the_attrs_go_through_optunas_public_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: str
):
    """Another Optuna version, or its journal module gone (ImportError): one
    ``set_user_attr`` per attribute, the same attrs read back."""
    path = tmp_path / "study.journal"
    study = optuna.create_study(storage=open_storage(str(path)))
    trial = study.ask()
    if moved == "version":
        monkeypatch.setattr(optuna, "__version__", "9.0.0")
    else:  # Optuna's own module is loaded already; only the import of it fails
        monkeypatch.setitem(sys.modules, "optuna.storages.journal._storage", None)
    appends = _appends(study, monkeypatch)
    set_trial_attrs(trial, ATTRS)
    assert appends == [1] * len(ATTRS)
    assert trial.user_attrs == ATTRS
    assert _read_back(path, study) == ATTRS


@pytest.mark.parametrize("moved", ["operation", "attribute"])
def test_internals_not_as_checked_write_nothing_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: str
):
    """The operation renamed (ImportError) or an internal attribute gone
    (AttributeError): the batch writes nothing and tells its caller to go one by one."""
    study = optuna.create_study(storage=open_storage(str(tmp_path / "study.journal")))
    trial = study.ask()
    if moved == "operation":
        journal = sys.modules["optuna.storages.journal._storage"]
        monkeypatch.delattr(journal, "JournalOperation")
    else:
        monkeypatch.delattr(trial, "_cached_frozen_trial")
    appends = _appends(study, monkeypatch)
    assert _attrs._append_to_journal(trial, ATTRS) is False
    assert appends == []
