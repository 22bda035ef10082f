"""`MlflowRecorder`: the MLflow calls of a study, made synchronously in the logging
process (`paretotune.tracking.mlflow.process`), so a slow tracking store never stalls
the dispatch of trials and MLflow's CPU work runs beside the driver's.

One parent run per study, one nested child run per trial. The trial -> run mapping:
every child run carries the tags ``paretotune.study`` and ``paretotune.trial_number``,
and the driver also stores the run id as the trial's ``mlflow_run_id`` user attribute
when it arrives before the trial ends.

Models: every child run gets its raw predictor (``model/model.pt``, plus a few raw input
rows) and the tag ``paretotune.model_uri``; when the final front is published, each
Pareto-optimal trial is also logged as an MLflow PyTorch model (see `models`).

The work is split by job: `runs` (trial runs), `front` (front publishing), `guard`
(failures and the circuit breaker), `sqlite` (a local store's files).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from paretotune.execution import TrialReport
from paretotune.tracking._base import FinishedTrial, FrontSnapshot, StudyRef
from paretotune.tracking.mlflow import sqlite
from paretotune.tracking.mlflow.front import FrontPublisher, ParetoTags
from paretotune.tracking.mlflow.guard import Guard
from paretotune.tracking.mlflow.runs import StudyRecord, TrialRuns, param_list
from paretotune.tracking.mlflow.schema import (
    ROLE_TAG,
    SPEC_ARTIFACT,
    STUDY_TAG,
    STUDY_UID_TAG,
    WRITTEN_TAG,
)
from paretotune.tracking.mlflow.unlogged import HeldTrial, UnloggedTrials
from paretotune.tracking.mlflow.view import experiment_tags, objective_params

# A run's params are logged with its trial's result when the trial ends within this
# long of its start (no-op and quick trials: one MLflow call fewer each), else alone then.
PARAMS_GRACE_S = 1.0


class MlflowRecorder:
    """Does the MLflow work of a study, synchronously, in the logging process.

    Trials are named by their Optuna number; the recorder keeps the number -> run id map.
    For a local ``sqlite:///path.db`` URI, artifacts go to ``mlartifacts/`` beside the
    database file, so the whole study lives in one folder. MLflow trouble never raises:
    each failure after set-up becomes one line in ``errors``.
    """

    def __init__(self, tracking_uri: str, unlogged_dir: Path | None = None):
        from mlflow import MlflowClient

        # "Creating initial MLflow database tables..." is not news on the user's terminal
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self.tracking_uri = tracking_uri
        with sqlite.schema_lock(tracking_uri):  # one process at a time creates the tables
            sqlite.create_whole(tracking_uri)
            sqlite.prefer_wal(tracking_uri)
            self._client = MlflowClient(tracking_uri=tracking_uri)
        self.study = StudyRecord()
        self.unlogged = UnloggedTrials(unlogged_dir)
        self._guard = Guard(tracking_uri)
        self._opened: StudyRef | None = None
        self._experiment_tags: dict[str, str] = {}  # the experiment's tags when opened
        self._params: dict[int, dict[str, Any]] = {}  # of trials started, for held ones
        # runs whose params wait for the trial's result (one MLflow call fewer per trial
        # that ends within PARAMS_GRACE_S): number -> (run id, when to log them anyway)
        self._params_due: dict[int, tuple[str, float]] = {}
        self._artifact_trouble_said = False
        self.repaired: list[int] = []  # trials whose records `repair` made agree again
        self._pareto = ParetoTags()
        self._runs = TrialRuns(self._client, self.study, self._pareto)
        self._front = FrontPublisher(self._client, self.study, self._pareto, self._guard)
        self._warm = {"plots": False, "models": False}

    @property
    def errors(self) -> list[str]:
        return self._guard.errors

    @property
    def experiment_id(self) -> str:
        return self.study.experiment_id

    @property
    def parent_run_id(self) -> str | None:
        return self.study.parent_run_id

    @property
    def has_trials(self) -> bool:
        """Whether a trial's run was made by this recorder."""
        return bool(self.study.run_ids)

    # -- study -----------------------------------------------------------------------
    def open_study(self, study: StudyRef) -> None:
        self.study.name = study.name
        self._opened = study
        self._guard.call(self._open_study, study.name, study.spec, study.parent_run_id, study.uid)
        # Without the study's record (an unreachable server, say) every later call would
        # fail too, each after MLflow's own retries: skip them and say so once, at close.
        if self.study.parent_run_id is None:
            self._guard.give_up("the study's record could not be opened")
            return
        objectives = study.objectives or study.spec.get("objectives") or {}
        if objectives and not self.study.objectives:
            self._guard.call(self._describe, objectives)

    def _open_study(
        self, name: str, spec: dict[str, Any], parent_run_id: str | None, study_uid: str | None
    ) -> None:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            self.study.experiment_id = self._client.create_experiment(
                name, artifact_location=sqlite.artifact_location(self.tracking_uri, name)
            )
        else:
            self.study.experiment_id = experiment.experiment_id
            self._experiment_tags = dict(experiment.tags)
        parent = self._existing_run(parent_run_id) if parent_run_id else None
        if parent is None and study_uid:
            parent = self._parent_tagged(study_uid)  # the driver died before storing its id
        if parent is not None:
            self._reopen(parent)
            return
        tags = {STUDY_TAG: name, ROLE_TAG: "study"}
        if study_uid:
            tags[STUDY_UID_TAG] = study_uid
        run = self._client.create_run(self.study.experiment_id, run_name=name, tags=tags)
        self.study.parent_run_id = run.info.run_id
        self._client.log_dict(run.info.run_id, spec, SPEC_ARTIFACT)

    def _reopen(self, parent: Any) -> None:
        """Carry on the record of a study run before: its parent ``parent`` runs again;
        what it charted and when it was closed are noted (see `StudyRecord`)."""
        run_id = parent.info.run_id
        self.study.reopened_end_ms = parent.info.end_time
        steps = [  # (a killed driver may have charted the hypervolume past the last front)
            point.step
            for key in ("pareto_size", "hypervolume")
            for point in self._client.get_metric_history(run_id, key)
        ]
        self.study.charted_until = max(steps, default=-1)
        self._client.update_run(run_id, status="RUNNING")
        self.study.parent_run_id = run_id

    def _describe(self, objectives: Mapping[str, str]) -> None:
        """Name the objectives and their directions where users look: the experiment's
        description and saved "Pareto front" view (rewritten while they hold what
        paretotune wrote, say for a new study of the same name; left as they are once a
        user edited them), and the parent run's ``objective.<metric>`` params."""
        self.study.objectives = dict(objectives)
        parent = self.study.parent_run_id
        assert parent is not None  # (described only once the parent is known)
        now = int(time.time() * 1000)
        tags = experiment_tags(self.study.name, objectives, self.study.experiment_id, parent, now)
        had = self._experiment_tags
        written = _written(had)
        changed = False
        for key, value in tags.items():
            ours = key not in had or _digest(had[key]) == written.get(key)  # else a user's
            if ours and had.get(key) != value:
                self._client.set_experiment_tag(self.study.experiment_id, key, value)
                had[key], written[key], changed = value, _digest(value), True
        if changed:
            had[WRITTEN_TAG] = json.dumps(written, sort_keys=True)
            self._client.set_experiment_tag(self.study.experiment_id, WRITTEN_TAG, had[WRITTEN_TAG])
        self._client.log_batch(parent, params=param_list(objective_params(objectives)))

    def _parent_tagged(self, study_uid: str) -> Any:
        runs = self._client.search_runs(
            [self.study.experiment_id], filter_string=f"tags.`{STUDY_UID_TAG}` = '{study_uid}'"
        )
        return runs[0] if runs else None

    def _existing_run(self, run_id: str) -> Any:
        try:
            return self._client.get_run(run_id)
        except Exception:
            return None

    # -- trials ----------------------------------------------------------------------
    def start_trial(
        self,
        number: int,
        params: dict[str, Any],
        outcome: tuple[str, TrialReport] | None = None,
        labels: dict[str, str] | None = None,
        *,
        dispatched_at: float = 0.0,
        told_at: float = 0.0,
    ) -> str | None:
        """Create the trial's nested run (tagged with ``labels`` too), starting when the
        driver ``dispatched_at`` it (else when its worker began it, else now), and log its
        params; with ``outcome`` (the trial already finished, its outcome ``told_at``)
        record the result in the same calls. Returns the run id."""
        self._params[number] = params
        started = dispatched_at or (outcome[1].started_at if outcome else 0.0)
        run_id = self._guard.call(self._runs.create, number, params, labels, started)
        if outcome is None:
            if run_id is not None:  # with its result, or alone after PARAMS_GRACE_S
                self._params_due[number] = (run_id, time.monotonic() + PARAMS_GRACE_S)
            return run_id
        self._record(number, run_id, *outcome, params=params, told_at=told_at)
        return run_id

    def finish_trial(
        self, number: int, state: str, report: TrialReport, *, told_at: float = 0.0
    ) -> None:
        """Record a trial's outcome, which the driver ``told_at`` (Unix time; 0: unknown)."""
        params = self._params.get(number) if self._params_due.pop(number, None) else None
        self._record(number, self.study.run_ids.get(number), state, report, params, told_at=told_at)

    def log_due_params(self, *, now: float | None = None, every: bool = False) -> float | None:
        """Log the params of runs whose trial has not ended within `PARAMS_GRACE_S` (all of
        them with ``every``); returns when the next are due (monotonic), or None."""
        now = time.monotonic() if now is None else now
        for number, (run_id, due) in list(self._params_due.items()):
            if every or due <= now:
                del self._params_due[number]
                self._guard.call(self._runs.log_params, run_id, self._params.get(number, {}))
        return min((due for _, due in self._params_due.values()), default=None)

    def _record(
        self,
        number: int,
        run_id: str | None,
        state: str,
        report: TrialReport,
        params: dict[str, Any] | None = None,
        told_at: float = 0.0,
    ) -> None:
        """Record a trial's outcome on its run; what MLflow does not take (all of it, or
        its artifacts) is held on disk for a later repair."""
        recorded = None
        if run_id is not None:
            recorded = self._guard.call(
                self._runs.record_outcome, number, run_id, state, report, params, told_at=told_at
            )
        if recorded is not None and recorded.artifacts_error is None:
            self._params.pop(number, None)
            return
        params = self._params.pop(number, params or {})
        if recorded is not None and not self._artifact_trouble_said:
            self._artifact_trouble_said = True  # once: the next trials would say the same
            self._guard.errors.append(
                f"trial {number}: its artifacts were not logged "
                f"({recorded.artifacts_error}); its metrics and state were"
            )
        self.unlogged.keep(HeldTrial(number, state, report, params, recorded is not None))

    def log_metrics(self, number: int, metrics: dict[str, float]) -> None:
        run_id = self.study.run_ids.get(number)
        if run_id is not None:
            self._guard.call(self._runs.log_metrics, run_id, metrics)

    def mark_interrupted(self, numbers: Sequence[int], at: float = 0.0) -> None:
        """Close the runs of trials the driver closed as interrupted ``at`` (Unix time)."""
        self.log_due_params(every=True)
        if numbers:
            self._guard.call(self._runs.mark_interrupted, list(numbers), at)

    def repair(
        self, finished: Sequence[FinishedTrial], *, held_only: bool = False
    ) -> dict[int, str]:
        """Make the study's runs agree with Optuna's ``finished`` trials and record the
        held ones (see `TrialRuns.repair`); ``held_only``: trials may be running, so
        record the held ones and touch no other run. Returns the runs it made."""
        made: dict[int, str] = {}
        errors = self._guard.call(
            self._runs.repair, list(finished), self.unlogged, made, self.repaired, not held_only
        )
        if errors and not self._artifact_trouble_said:  # (said once is enough)
            self._guard.errors.append(
                f"{len(errors)} trials' artifacts still could not be logged ({errors[0]})"
            )
        return made

    def reconnect(self, *, now: bool = False) -> dict[int, str] | None:
        """When a tracking server that stopped answering answers again (asked at most every
        few seconds, or ``now``): open the study's record if it never was, and record the
        trials held meanwhile. Returns the runs made, or None when nothing reconnected."""
        if not self._guard.server_is_back(now=now):
            return None
        if self.study.parent_run_id is None and self._opened is not None:
            self.open_study(self._opened)
        return self.repair([], held_only=True)

    # -- the front -------------------------------------------------------------------
    def expect_front(self, snapshot: FrontSnapshot | None) -> None:
        """Say which front snapshot waits to be published after the trials recorded next,
        so their Pareto tags go with their results instead of in one call each later."""
        self._pareto.expect(snapshot)

    def chart_front(self, points: list[tuple[int, dict[str, float]]]) -> None:
        """Chart the front's metrics on the parent run, each ``(step, metrics)`` at its
        step (finished trials), in one call."""
        if points:
            self._guard.call(self._front.chart_points, points)

    def update_front(self, snapshot: FrontSnapshot, *, superseded: bool = False) -> None:
        if not self.study.objectives and self.study.parent_run_id is not None:
            self._guard.call(self._describe, snapshot.objectives)  # known only now
        rows = [
            replace(row, run_id=row.run_id or self.study.run_ids.get(row.number))
            for row in snapshot.rows
        ]
        self._guard.call(self._front.publish, replace(snapshot, rows=rows), superseded)

    # -- idle time and the end -----------------------------------------------------------
    def warm_up(self) -> None:
        """Import what publishing the final front needs, while there is nothing else to
        do: the plotting libraries, and torch once trials have sent models (the Pareto
        trials' models are logged as MLflow models at the end). Cheap once done."""
        self._guard.call(self._warm_up)

    def _warm_up(self) -> None:
        if not self._warm["plots"]:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
            import mpl_toolkits.mplot3d  # noqa: F401

            self._warm["plots"] = True
        elif self.study.raw_models and not self._warm["models"]:
            import mlflow.pyfunc  # noqa: F401

            # rebuilding a built-in predictor from its model file needs it
            import paretotune.objectives._model_file  # noqa: F401

            self._warm["models"] = True

    def close(self, status: str = "FINISHED") -> dict[int, str]:
        """End the study's record; a server that stopped answering is asked once more,
        and the trials held meanwhile are recorded if it answers (as are trials held for
        an error it answered with). Returns the runs made."""
        self.log_due_params(every=True)
        made = self.reconnect(now=True) or {}
        if len(self.unlogged) and self.study.parent_run_id and not self._guard.unavailable_because:
            made |= self.repair([], held_only=True)
        if self.study.parent_run_id is not None and status != "RUNNING":  # (RUNNING: a
            # driver that lost its lease leaves the study's record to the one that took it)
            self._guard.call(self._client.set_terminated, self.study.parent_run_id, status)
        self._guard.close(len(self.unlogged), str(self.unlogged.folder), self.study.name)
        sqlite.fold_wal(self.tracking_uri)
        return made


def _written(tags: Mapping[str, str]) -> dict[str, str]:
    """What paretotune wrote into the experiment's tags (tag -> digest), from `WRITTEN_TAG`."""
    try:
        return dict(json.loads(tags.get(WRITTEN_TAG) or "{}"))
    except (ValueError, TypeError):
        return {}


def _digest(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:16]
