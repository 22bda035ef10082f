"""The Python API for finished and running studies: list them, read their fronts, choose
a trial, and get its model back. Selection logic lives in `results.selection`, model
handling in `tracking.mlflow.models`; this class only finds the study and wires them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from paretotune.errors import NoModelError, TrialNotFoundError
from paretotune.results import export as _export
from paretotune.results import selection as _selection
from paretotune.results.records import FrontSummary, TrialRecord, TrialSet
from paretotune.results.study_view import StudySummary, StudyView
from paretotune.study import open_storage, resolve_storage_url, resolve_tracking_uri
from paretotune.study._attrs import (
    EXPERIMENT_ATTR,
    HAS_MODEL_ATTR,
    PARENT_RUN_ATTR,
    SPEC_ATTR,
    TRACKING_URI_ATTR,
)
from paretotune.study._snapshot import read_snapshot
from paretotune.study._storage import load_existing_study, missing_storage, storage_exists
from paretotune.study._unlogged import unlogged_dir
from paretotune.tracking.mlflow import models as _models
from paretotune.tracking.mlflow.schema import (
    MODEL_URI_TAG,
    PARENT_RUN_TAG,
    RECOVERED_TAG,
    STUDY_RUN_TAG,
    TRIAL_TAG,
    trial_model_uri,
)
from paretotune.tracking.mlflow.sqlite import local_store_path
from paretotune.tracking.mlflow.unlogged import UnloggedTrials

# A choice of up to this many trials asks MLflow for their runs by id; more, for the
# study's child runs (one query either way).
RUNS_BY_ID_LIMIT = 100

if TYPE_CHECKING:
    import torch
    from mlflow.entities.model_registry import ModelVersion
    from optuna.storages import BaseStorage


class Client:
    """Reads studies from an Optuna storage; MLflow ids come from the stored mapping.

    Reading creates nothing: no storage (no journal or SQLite file, no Optuna tables),
    no MLflow store (a local one that does not exist is skipped, with a warning).

    Args:
        storage: Optuna storage URL (default ``$PARETOTUNE_STORAGE`` or the journal file).
        tracking_uri: MLflow URI (default ``$MLFLOW_TRACKING_URI``, else the URI the study
            was tracked at, else ``sqlite:///mlflow.db``).

    Raises:
        StudyNotFoundError: the storage holds no study store yet (its file does not
            exist, or its database has no Optuna tables).
    """

    def __init__(self, storage: str | None = None, tracking_uri: str | None = None):
        self.storage_url = resolve_storage_url(storage)
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self._given_tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not storage_exists(self.storage_url):  # (a study's snapshot alone is no store)
            raise missing_storage(self.storage_url)

    @cached_property
    def _storage(self) -> BaseStorage:
        """Opened on first use: a study read from its snapshot needs no replay of the
        journal (`paretotune.study._snapshot`)."""
        return open_storage(self.storage_url, create=False)

    @property
    def optuna_storage(self) -> BaseStorage:
        """The Optuna storage it reads (opened read-only), for tools that take one."""
        return self._storage

    def study_names(self) -> list[str]:
        return sorted(optuna.get_all_study_names(self._storage))

    def has_study(self, name: str) -> bool:
        """Whether the storage holds study ``name`` (a snapshot its last run left beside the
        journal says so without reading the journal)."""
        return read_snapshot(self.storage_url, name) is not None or name in self.study_names()

    def load_study(self, name: str) -> optuna.Study:
        """The Optuna study called ``name``.

        Raises:
            StudyNotFoundError: the storage holds no such study (the message lists those
                it holds).
        """
        return self._study(name)

    def _study(self, name: str) -> optuna.Study:
        return load_existing_study(self._storage, name, self.storage_url)

    def view(self, name: str | StudyView) -> StudyView:
        """The study ``name`` read once (`StudyView`): ask it as many questions as needed.
        Every method that takes a study's name also takes its view, so a command that asks
        several questions reads the study once.

        Raises:
            StudyNotFoundError: the storage holds no such study.
        """
        if isinstance(name, StudyView):
            return name
        snapshot = read_snapshot(self.storage_url, name)  # the study as its last run left it
        if snapshot is not None:
            return StudyView.from_snapshot(snapshot)
        return StudyView(self._study(name))

    def studies(self) -> list[StudySummary]:
        """A summary of every study in the storage, by name."""
        return [self.summary(name) for name in self.study_names()]

    def summary(self, name: str | StudyView) -> StudySummary:
        return self.view(name).summary

    def front(self, name: str | StudyView) -> FrontSummary:
        """Every complete trial of the study, ranked, with the front's hypervolume (and
        the trials' model URIs)."""
        view = self.view(name)
        front = view.front()
        return replace(front, records=list(self._with_models(view, front.records)))

    def pareto_front(self, name: str | StudyView, feasible_only: bool = True) -> TrialSet:
        """The Pareto-optimal trials of the study, by trial number, with their model URIs.

        With ``feasible_only`` (the default) this is the front of the trials meeting the
        spec's ``constraints``; without constraints every complete trial is feasible.
        """
        view = self.view(name)
        pool = view.candidates(feasible_only)
        return self._with_models(view, [r for r in pool if r.pareto_rank == 0])

    def best_config(
        self,
        name: str | StudyView,
        where: str | None = None,
        prefer: str | None = None,
        *,
        feasible_only: bool = True,
    ) -> TrialRecord:
        """The complete trial that satisfies ``where`` and is best by ``prefer``.

        Args:
            where: a condition over final metrics and params, e.g.
                ``"latency_ms <= 0.2 and size_bytes < 1e6"`` (``<, <=, >, >=, ==, !=``,
                ``and``, ``or``, ``not``, parentheses; never evaluated as Python).
            prefer: the metric to optimise (default: the first objective), in its
                objective direction, or by name for other metrics (scores up, costs down).

        Raises:
            NoTrialMatchesError: nothing satisfies ``where``; says how close trials came.
            UnknownMetricError: a name no trial has; lists the real ones.
            ExpressionError: ``where`` is malformed.
        """
        view = self.view(name)
        pool = view.candidates(feasible_only)
        chosen = _selection.best(pool, view.objectives, view.name, where=where, prefer=prefer)
        return self._with_models(view, [chosen])[0]

    def knee_point(self, name: str | StudyView, *, feasible_only: bool = True) -> TrialRecord:
        """The Pareto trial nearest the utopia point in min-max normalised objectives.

        Each objective is scaled to [0, 1] over the front, 0 being the front's best value
        in that objective's direction; the trial with the smallest Euclidean distance to
        the all-best corner wins (ties: lower trial number).
        """
        view = self.view(name)
        chosen = _selection.knee(view.candidates(feasible_only), view.objectives, view.name)
        return self._with_models(view, [chosen])[0]

    def weighted(
        self, name: str | StudyView, weights: Mapping[str, float], *, feasible_only: bool = True
    ) -> TrialRecord:
        """The trial with the best weighted sum of min-max normalised metrics.

        Each weighted metric (objective or not) is scaled to [0, 1] over the complete
        trials, 1 being its best value, so ``{"accuracy": 1, "latency_ms": 0.5}`` reads
        "accuracy matters twice as much as latency", whatever their units.
        """
        view = self.view(name)
        pool = view.candidates(feasible_only)
        chosen = _selection.weighted(pool, view.objectives, weights, view.name)
        return self._with_models(view, [chosen])[0]

    def load_model(self, record: TrialRecord) -> torch.nn.Module:
        """The trial's trained (and compressed) predictor from MLflow, in eval mode.

        It takes raw feature rows as the dataset gives them (float32, ``(n, features)``;
        the preprocessing is inside) and returns logits or target-unit predictions.
        """
        from mlflow.exceptions import MlflowException

        uri = self._model_uri(record)
        try:
            return _models.load_model(self.tracking_uri_of(record), uri)
        except (MlflowException, OSError) as err:  # its run holds no model (yet)
            raise self._no_model(record) from err

    def register(
        self, record: TrialRecord, name: str, alias: str | None = "champion"
    ) -> ModelVersion:
        """A new version of registered model ``name`` in the MLflow Model Registry from the
        trial's model, with ``alias`` set on it."""
        from mlflow import MlflowClient

        model_uri = self._model_uri(record)
        uri = self.tracking_uri_of(record)
        client = MlflowClient(uri, registry_uri=uri)
        return _models.register_model(client, record.mlflow_run_id or "", model_uri, name, alias)

    def export(self, record: TrialRecord, path: str | Path) -> Path:
        """Write a YAML spec that re-trains exactly this trial (``paretotune retrain``).

        Raises:
            SpecError: the trial's params do not form a spec (a custom-objective study).
        """
        view = self.view(self._study_of(record))
        spec = _export.export_spec(dict(view.attrs[SPEC_ATTR]), record, view.name)
        comment = (
            f"re-trains trial {record.number} of study {view.name!r}: "
            f"paretotune retrain {Path(path).name}"
        )
        return _export.write_spec(spec, path, comment)

    # -- plumbing ----------------------------------------------------------------------
    def tracking_uri_of(self, of: TrialRecord | StudyView | optuna.Study) -> str:
        """The MLflow URI a study (or a trial's study) is read from: the one this client
        was given, else the one the study was tracked at, else the default."""
        if self._given_tracking_uri:
            return self._given_tracking_uri
        if isinstance(of, TrialRecord):
            of = self.view(self._study_of(of))
        attrs = of.attrs if isinstance(of, StudyView) else of.user_attrs
        return attrs.get(TRACKING_URI_ATTR) or self.tracking_uri

    def _with_models(self, study: StudyView, records: list[TrialRecord]) -> TrialSet:
        """The records with ``model_uri`` set (and run ids linked, see `_linked`).

        A trial that says whether it sent a model (``has_model``) gets the URI its run id
        makes (`trial_model_uri`), asking MLflow nothing, whatever the front's size; only
        older trials, which do not say, are looked up by their runs' model tag.
        """
        sent = {r.number: _attrs_of(study.trial(r.number)).get(HAS_MODEL_ATTR) for r in records}
        unsaid = [r for r in records if sent[r.number] is None]
        runs = self._runs_of(study, unsaid) if unsaid else None
        tagged = {run.info.run_id: run.data.tags.get(MODEL_URI_TAG) for run in runs or []}
        linked = self._linked(study, records, runs)

        def uri(record: TrialRecord) -> str | None:
            if sent[record.number] is None:
                return tagged.get(record.mlflow_run_id or "")
            if sent[record.number] and record.mlflow_run_id:
                return trial_model_uri(record.mlflow_run_id)
            return None

        return TrialSet(replace(r, model_uri=uri(r)) for r in linked)

    def _runs_of(self, study: StudyView, records: list[TrialRecord]) -> list[Any]:
        """The records' runs: by id where each has one and they are few, else every
        child run of the study."""
        ids = [r.mlflow_run_id for r in records if r.mlflow_run_id]
        if len(ids) == len(records) and len(ids) <= RUNS_BY_ID_LIMIT:
            return self._child_runs(study, run_ids=ids)
        return self._child_runs(study)

    def _linked(
        self, study: StudyView, records: list[TrialRecord], runs: list[Any] | None = None
    ) -> list[TrialRecord]:
        """The records with ``mlflow_run_id`` filled from the runs' trial-number tag where
        Optuna lacks it (a trial told before MLflow made its run); MLflow is asked only
        then."""
        if all(r.mlflow_run_id for r in records):
            return list(records)
        if runs is None:
            runs = self._child_runs(study)
        run_of_trial = {run.data.tags.get(TRIAL_TAG): run.info.run_id for run in runs}
        return [
            r if r.mlflow_run_id else replace(r, mlflow_run_id=run_of_trial.get(str(r.number)))
            for r in records
        ]

    def _child_runs(self, study: StudyView, run_ids: list[str] | None = None) -> list[Any]:
        """The study's child runs in MLflow (only those of ``run_ids`` where given); none
        when it has no MLflow record or MLflow cannot be reached (with a warning)."""
        experiment = study.attrs.get(EXPERIMENT_ATTR)
        parent = study.attrs.get(PARENT_RUN_ATTR)
        uri = self.tracking_uri_of(study)
        if experiment is None or parent is None:
            return []
        if _missing_tracking_store(uri):  # MLflow would create it, empty
            warnings.warn(f"no MLflow store at {uri}: no run links or model URIs", stacklevel=4)
            return []
        from mlflow import MlflowClient

        only = ""
        if run_ids is not None:
            quoted = ", ".join(f"'{run_id}'" for run_id in run_ids if run_id.isalnum())
            only = f" and attributes.run_id IN ({quoted})"
        client = MlflowClient(uri)
        try:  # its trials' runs, and its variants' (nested under their trials' runs)
            return [
                run
                for tag in (PARENT_RUN_TAG, STUDY_RUN_TAG)
                for run in client.search_runs(
                    [experiment],
                    filter_string=f"tags.`{tag}` = '{parent}'{only}",
                    max_results=50_000,
                )
            ]
        except Exception as err:  # the front is still worth having without MLflow
            warnings.warn(f"MLflow unreachable, no run links or model URIs: {err}", stacklevel=4)
            return []

    @staticmethod
    def _study_of(record: TrialRecord) -> str:
        if not record.study:
            raise TrialNotFoundError(
                f"trial {record.number} has no study name; take records from this Client"
            )
        return record.study

    def _model_uri(self, record: TrialRecord) -> str:
        if record.model_uri and record.mlflow_run_id:
            return record.model_uri
        raise self._no_model(record)

    def _no_model(self, record: TrialRecord) -> NoModelError:
        """Why MLflow has no model for the trial, and what gets one."""
        where = f"trial {record.number} of study {record.study!r}"
        if not record.mlflow_run_id:
            return NoModelError(
                f"{where} has no MLflow run: the study ran untracked, or MLflow missed the "
                f"trial (`paretotune sync {record.study}` records the trials held meanwhile)"
            )
        held = UnloggedTrials(unlogged_dir(self.storage_url, self._study_of(record)))
        if record.number in held.numbers():
            return NoModelError(
                f"{where} has no model in MLflow yet: MLflow did not take it, and it is held "
                f"in {held.folder}; `paretotune sync {record.study}` logs it"
            )
        again = (
            f"`paretotune export {record.study} {record.number} -o trial.yaml` and "
            "`paretotune retrain trial.yaml` train it again from its params"
        )
        if self._run_tag(record, RECOVERED_TAG) == "true":
            return NoModelError(
                f"{where} has no model: its MLflow run {record.mlflow_run_id} was recorded "
                f"again from Optuna after MLflow missed it, and the model was lost; {again}"
            )
        return NoModelError(
            f"{where} has no model in its MLflow run {record.mlflow_run_id} (a custom "
            f"objective logs none); for the built-in objective, {again}"
        )

    def _run_tag(self, record: TrialRecord, tag: str) -> str | None:
        from mlflow import MlflowClient

        try:
            run = MlflowClient(self.tracking_uri_of(record)).get_run(record.mlflow_run_id or "")
        except Exception:  # only to word an error better
            return None
        return run.data.tags.get(tag)

    def trials(self, name: str | StudyView) -> TrialSet:
        """Every trial of the study, whatever its state, by trial number (no model URIs)."""
        view = self.view(name)
        return TrialSet(self._linked(view, view.records))

    def trial(self, name: str | StudyView, number: int) -> TrialRecord:
        """One trial, with its Pareto rank, feasibility and model URI.

        Raises:
            TrialNotFoundError: the study has no such trial.
        """
        view = self.view(name)
        if view.trial(number) is None:
            raise TrialNotFoundError(f"study {view.name!r} has no trial {number}")
        ranked = {r.number: r for r in view.candidates(feasible_only=False)}
        record = ranked.get(number) or next(r for r in view.records if r.number == number)
        return self._with_models(view, [record])[0]


def _attrs_of(trial: optuna.trial.FrozenTrial | None) -> dict[str, Any]:
    return trial.user_attrs if trial is not None else {}


def _missing_tracking_store(uri: str) -> bool:
    """Whether ``uri`` names a local MLflow store that does not exist: a SQLite file or a
    file-store folder (opening it would create it)."""
    path = local_store_path(uri)
    return path is not None and not path.exists()


__all__ = ["Client", "StudySummary"]
