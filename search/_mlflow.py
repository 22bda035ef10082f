"""MLflow's side of a study: one parent run per study, one nested child run per trial.

`MlflowRecorder` makes the MLflow calls; it runs in a logging process of its own (see
`search._mlflow_process`), so a slow tracking store never stalls the dispatch of trials
and MLflow's CPU work runs beside the driver's. The trial -> run mapping: every child
run carries the tags ``paretotune.study`` and ``paretotune.trial_number``, and the driver
also stores the run id as the trial's ``mlflow_run_id`` user attribute when it arrives
before the trial ends.

Models: every child run gets its raw predictor (``model/model.pt``, plus a few raw input
rows) and the tag ``paretotune.model_uri``; when the final front is published, each
Pareto-optimal trial is also logged as an MLflow PyTorch model (see `search._models`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from search._models import (
    EXAMPLE_FILE,
    MODEL_DIR,
    MODEL_URI_TAG,
    RAW_MODEL_FILE,
    log_trial_model,
    raw_model_uri,
)
from search._tracking import FinishedTrial, FrontSnapshot
from search._worker import TrialReport

STUDY_TAG = "paretotune.study"
TRIAL_TAG = "paretotune.trial_number"
STATE_TAG = "paretotune.state"
STUDY_UID_TAG = "paretotune.study_uid"  # on the parent run: the Optuna study's uid attr
RECOVERED_TAG = "paretotune.recovered"  # on a run recorded again from Optuna by `repair`
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_DESCRIPTIVE_PARAMS = ("architecture", "optimizer", "compression")
_MAX_TAG_CHARS = 5000


class MlflowRecorder:
    """Does the MLflow work of a study, synchronously, in the logging process.

    Trials are named by their Optuna number; the recorder keeps the number -> run id map.
    For a local ``sqlite:///path.db`` URI, artifacts go to ``mlartifacts/`` beside the
    database file, so the whole study lives in one folder. MLflow trouble never raises:
    each failure after set-up becomes one line in ``errors``.
    """

    def __init__(self, tracking_uri: str):
        from mlflow import MlflowClient

        # "Creating initial MLflow database tables..." is not news on the user's terminal
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self.tracking_uri = tracking_uri
        with _schema_lock(tracking_uri):  # one process at a time creates the tables
            _prefer_wal(tracking_uri)
            self._client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str = ""
        self.parent_run_id: str | None = None
        self._study: str = ""
        self._run_ids: dict[int, str] = {}
        self._pareto_tags_logged: dict[str, int] = {}  # run id -> Pareto rank it is tagged with
        # trial number -> Pareto rank in the newest front snapshot not yet published
        self._known_ranks: dict[int, int] = {}
        self._expected_front: FrontSnapshot | None = None
        self._warm = {"plots": False, "models_seen": False, "models": False}
        self._raw_models: set[str] = set()  # runs this recorder logged a raw model for
        self._unavailable_because = ""  # set: no use trying MLflow again, and why
        self._skipped = 0
        self.errors: list[str] = []

    # -- study -----------------------------------------------------------------------
    def open_study(
        self,
        name: str,
        spec: dict[str, Any],
        parent_run_id: str | None,
        study_uid: str | None = None,
    ) -> None:
        self._study = name
        self._guarded(self._open_study, name, spec, parent_run_id, study_uid)
        # Without the study's record (an unreachable server, say) every later call would
        # fail too, each after MLflow's own retries: skip them and say so once, at close.
        if self.parent_run_id is None and not self._unavailable_because:
            self._unavailable_because = "the study's record could not be opened"

    def _open_study(
        self, name: str, spec: dict[str, Any], parent_run_id: str | None, study_uid: str | None
    ) -> None:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            self.experiment_id = self._client.create_experiment(
                name, artifact_location=_artifact_location(self.tracking_uri, name)
            )
        else:
            self.experiment_id = experiment.experiment_id
        if parent_run_id and not self._run_exists(parent_run_id):
            parent_run_id = None
        if parent_run_id is None and study_uid:
            parent_run_id = self._parent_tagged(study_uid)  # the driver died before storing it
        if parent_run_id:
            self._client.update_run(parent_run_id, status="RUNNING")
            self.parent_run_id = parent_run_id
            return
        tags = {STUDY_TAG: name, "paretotune.role": "study"}
        if study_uid:
            tags[STUDY_UID_TAG] = study_uid
        run = self._client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        self._client.log_dict(self.parent_run_id, spec, "spec.json")

    def _parent_tagged(self, study_uid: str) -> str | None:
        runs = self._client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{STUDY_UID_TAG}` = '{study_uid}'"
        )
        return runs[0].info.run_id if runs else None

    def _run_exists(self, run_id: str) -> bool:
        try:
            self._client.get_run(run_id)
        except Exception:
            return False
        return True

    # -- trials ----------------------------------------------------------------------
    def start_trial(
        self, number: int, params: dict[str, Any], outcome: tuple[str, TrialReport] | None = None
    ) -> str | None:
        """Create the trial's nested run and log its params; with ``outcome`` (the trial
        already finished) record the result in the same calls. Returns the run id."""
        from mlflow.entities import Param

        run_id = self._guarded(self._create_run, number, params)
        if run_id is None:
            return None
        self._run_ids[number] = run_id
        param_list = [Param(key, str(value)) for key, value in params.items()]
        if outcome is None:
            self._guarded(self._client.log_batch, run_id, [], param_list)
        else:
            self._guarded(self._record_outcome, number, run_id, *outcome, param_list)
        return run_id

    def _create_run(self, number: int, params: dict[str, Any]) -> str:
        tags = {STUDY_TAG: self._study, TRIAL_TAG: str(number), STATE_TAG: "RUNNING"}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        tags |= {key: str(params[key]) for key in _DESCRIPTIVE_PARAMS if key in params}
        run = self._client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        return run.info.run_id

    def finish_trial(self, number: int, state: str, report: TrialReport) -> None:
        run_id = self._run_ids.get(number)
        if run_id is not None:
            self._guarded(self._record_outcome, number, run_id, state, report)

    def _record_outcome(
        self,
        number: int,
        run_id: str,
        state: str,
        report: TrialReport,
        params: list[Any] | None = None,
        extra_tags: Sequence[Any] = (),
    ) -> None:
        """Metrics, curves, tags, artifacts, then the run's end; the end even when some of
        the rest fails (the run is FAILED then, and the failure is one line in errors)."""
        try:
            self._log_outcome(number, run_id, state, report, params, extra_tags)
        except Exception:
            self._client.set_terminated(run_id, "FAILED")
            raise
        self._client.set_terminated(run_id, _RUN_STATUS.get(state, "FAILED"))

    def _log_outcome(
        self,
        number: int,
        run_id: str,
        state: str,
        report: TrialReport,
        params: list[Any] | None,
        extra_tags: Sequence[Any],
    ) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in report.metrics.items() if _finite(v)]
        for epoch, entry in enumerate(report.history):
            metrics += [Metric(k, v, now, epoch) for k, v in entry.items() if _finite(v)]
        tags = [RunTag(STATE_TAG, state), *extra_tags]
        pareto = []
        if number in self._known_ranks:  # a front is queued: tag now, not in a call later
            pareto = self._pareto_tags(self._known_ranks[number])
        if report.error:
            tags.append(RunTag("paretotune.error", report.error[:_MAX_TAG_CHARS]))
        for name, value in report.artifacts.items():
            self._client.log_dict(run_id, {name: value}, f"{name}.json")
        if report.model_bytes is not None:
            self._warm["models_seen"] = True
            self._log_raw_model(run_id, report)
            self._raw_models.add(run_id)
            tags.append(RunTag(MODEL_URI_TAG, raw_model_uri(run_id)))
        # One transaction for params, tags and up to 1000 metrics (MLflow's batch limit).
        self._client.log_batch(
            run_id, metrics=metrics[:1000], params=params or [], tags=tags + pareto
        )
        if pareto:
            self._pareto_tags_logged[run_id] = self._known_ranks[number]
        for start in range(1000, len(metrics), 1000):
            self._client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def _log_raw_model(self, run_id: str, report: TrialReport) -> None:
        """``model/model.pt`` (the pickled predictor) and ``model/input_example.npy``."""
        import numpy as np

        with tempfile.TemporaryDirectory() as folder:
            assert report.model_bytes is not None
            (Path(folder) / RAW_MODEL_FILE).write_bytes(report.model_bytes)
            if report.input_example is not None:
                np.save(Path(folder) / EXAMPLE_FILE, np.asarray(report.input_example))
            self._client.log_artifacts(run_id, folder, MODEL_DIR)

    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        if numbers:
            self._guarded(self._mark_interrupted, list(numbers))

    def _mark_interrupted(self, numbers: list[int]) -> None:
        wanted = {str(n) for n in numbers}
        running = self._client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' "
            "AND attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in running:
            if run.data.tags.get(TRIAL_TAG) in wanted:
                self._client.set_tag(run.info.run_id, STATE_TAG, "INTERRUPTED")
                self._client.set_terminated(run.info.run_id, "KILLED")

    def repair(self, finished: Sequence[FinishedTrial]) -> dict[int, str]:
        """Record the ``finished`` trials whose runs are missing or still RUNNING (a driver
        killed outright loses the jobs it had not handed over yet): params, final metrics
        and state from Optuna, tagged ``paretotune.recovered``. Returns the runs it made."""
        made: dict[int, str] = {}
        if finished:
            self._guarded(self._repair, list(finished), made)
        return made

    def _repair(self, finished: list[FinishedTrial], made: dict[int, str]) -> None:
        from mlflow.entities import Param, RunTag

        runs = self._trial_runs()
        for trial in finished:
            run = runs.get(trial.number)
            if run is not None and run.info.status != "RUNNING":
                continue
            if run is None:
                run_id = self._create_run(trial.number, trial.params)
                made[trial.number] = run_id
            else:
                run_id = run.info.run_id
            # params again on a run left open too: its own params call may have failed
            params = [Param(key, str(value)) for key, value in trial.params.items()]
            self._run_ids[trial.number] = run_id
            report = TrialReport(trial.number, metrics=dict(trial.metrics), error=trial.error)
            recovered = [RunTag(RECOVERED_TAG, "true")]
            self._record_outcome(trial.number, run_id, trial.state, report, params, recovered)

    def _trial_runs(self) -> dict[int, Any]:
        """The study's trial runs (children of its parent run), by trial number."""
        found: dict[int, Any] = {}
        token = None
        while True:
            page = self._client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                number = run.data.tags.get(TRIAL_TAG)
                if number is not None:
                    found[int(number)] = run
            token = page.token
            if not token:
                return found

    # -- the front -------------------------------------------------------------------
    def update_front(self, snapshot: FrontSnapshot, *, superseded: bool = False) -> None:
        """Tag the runs with their Pareto rank and publish the front on the parent run;
        a ``superseded`` snapshot (a newer one is queued) only adds its metric points."""
        rows = [
            row | {"run_id": row.get("run_id") or self._run_ids.get(row["number"])}
            for row in snapshot.rows
        ]
        self._guarded(self._update_front, replace(snapshot, rows=rows), superseded)

    def _update_front(self, snapshot: FrontSnapshot, superseded: bool) -> None:
        from mlflow.entities import Metric

        from search._plots import front_figure_png, front_html, front_table_csv

        for row in [] if superseded else snapshot.rows:
            run_id = row.get("run_id")
            if run_id and self._pareto_tags_logged.get(run_id) != row["rank"]:
                self._client.log_batch(run_id, tags=self._pareto_tags(row["rank"]))
                self._pareto_tags_logged[run_id] = row["rank"]
        parent = self.parent_run_id
        if parent is None:
            return  # the parent run could not be made: already one line in errors
        now = int(time.time() * 1000)
        front_size = sum(1 for row in snapshot.rows if row["rank"] == 0)
        metrics = [Metric("pareto_size", float(front_size), now, snapshot.step)]
        if snapshot.hypervolume is not None:
            metrics.append(Metric("hypervolume", snapshot.hypervolume, now, snapshot.step))
        self._client.log_batch(parent, metrics=metrics)
        if superseded:
            return
        self._client.log_text(parent, front_table_csv(snapshot), "pareto/pareto_front.csv")
        front = [row for row in snapshot.rows if row["rank"] == 0]
        self._client.log_text(
            parent, json.dumps(front, indent=2, default=str), "pareto/pareto_front.json"
        )
        if snapshot.rows:
            self._client.log_text(parent, front_html(snapshot), "pareto/pareto_front.html")
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "pareto_front.png"
                path.write_bytes(front_figure_png(snapshot))
                self._client.log_artifact(parent, str(path), "pareto")
        if snapshot.final:
            self._log_front_models(snapshot)

    def _log_front_models(self, snapshot: FrontSnapshot) -> None:
        """Log every Pareto-optimal trial's raw model as an MLflow PyTorch model (once)."""
        recorded_here = set(self._run_ids.values())
        for row in snapshot.rows:
            run_id = row.get("run_id")
            if row["rank"] != 0 or not run_id:
                continue
            if run_id in recorded_here and run_id not in self._raw_models:
                continue  # its trial sent no model (a user objective): nothing to convert
            logged = self._client.get_run(run_id).data.tags.get(MODEL_URI_TAG, "")
            if logged.startswith("runs:/"):  # a raw model, not yet an MLflow model
                with _quiet_model_logging():
                    self._guarded(log_trial_model, self._client, run_id)

    @property
    def has_trials(self) -> bool:
        """Whether a trial's run was made by this recorder."""
        return bool(self._run_ids)

    def warm_up(self) -> None:
        """Import what publishing the final front needs, while there is nothing else to
        do: the plotting libraries, and torch once trials have sent models (the Pareto
        trials' models are logged as MLflow models at the end). Cheap once done."""
        self._guarded(self._warm_up)

    def _warm_up(self) -> None:
        if not self._warm["plots"]:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
            import plotly.graph_objects  # noqa: F401

            self._warm["plots"] = True
        elif self._warm["models_seen"] and not self._warm["models"]:
            import mlflow.pytorch  # noqa: F401

            import objectives._models  # noqa: F401  (unpickling a built-in predictor needs it)

            self._warm["models"] = True

    def expect_front(self, snapshot: FrontSnapshot | None) -> None:
        """Say which front snapshot waits to be published after the trials recorded next,
        so their Pareto tags go with their results instead of in one call each later."""
        if snapshot is not self._expected_front:
            self._expected_front = snapshot
            rows = snapshot.rows if snapshot is not None else []
            self._known_ranks = {row["number"]: row["rank"] for row in rows}

    @staticmethod
    def _pareto_tags(rank: int) -> list[Any]:
        """The ``pareto`` (``true``/``false``) and ``pareto_rank`` tags for ``rank``."""
        from mlflow.entities import RunTag

        return [RunTag("pareto", str(rank == 0).lower()), RunTag("pareto_rank", str(rank))]

    def close(self, status: str = "FINISHED") -> None:
        if self.parent_run_id is not None:
            self._guarded(self._client.set_terminated, self.parent_run_id, status)
        if self._skipped:
            self.errors.append(
                f"MLflow: {self._skipped} calls skipped (trials, fronts) because "
                f"{self._unavailable_because}; run the study again once MLflow answers to "
                "record its finished trials"
            )
        _fold_wal(self.tracking_uri)

    # -- plumbing ----------------------------------------------------------------------
    def _guarded(self, fn: Any, *args: Any) -> Any:
        if self._unavailable_because:
            self._skipped += 1
            return None
        try:
            return fn(*args)
        except Exception as err:  # tracking trouble must not kill the study
            self.errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
            if _lost_contact(err):  # each later call would wait out the retries too
                self._unavailable_because = "the tracking server did not answer"
            return None


def _lost_contact(err: Exception) -> bool:
    """Whether MLflow's REST client gave up reaching the server (after its own retries),
    as opposed to the server answering with an error."""
    text = str(err)
    return text.startswith("API request to ") and (
        " failed with exception " in text or " failed with timeout exception " in text
    )


@contextlib.contextmanager
def _quiet_model_logging() -> Iterator[None]:
    """No download progress bars or pickle-format warnings on the user's terminal: the
    pickle format is a deliberate choice (int8 models do not export to pt2)."""
    logger = logging.getLogger("mlflow.pytorch")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        yield
    finally:
        logger.setLevel(previous)


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


@contextlib.contextmanager
def _schema_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a local SQLite store while MLflow opens it: two
    logging processes (a resumed study's, and one a killed driver left draining) must not
    both create its tables."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prefer_wal(tracking_uri: str) -> None:
    """Put a local SQLite store in write-ahead-log mode (it stays so): the MLflow UI can
    read while the study writes, and each commit syncs one file instead of two. Left as
    it is when the database is busy or not a local file."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=1)) as database:
            database.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass


def _fold_wal(tracking_uri: str) -> None:
    """Copy a local SQLite store's write-ahead log into the database file and empty it,
    so the ``.db`` file alone holds the whole study (a copy of it misses nothing), even
    though the logging process exits without closing MLflow's connections."""
    path = _sqlite_path(tracking_uri)
    if path is None or not path.exists():
        return
    try:
        # A short busy timeout: a checkpoint that waits for a reader (the MLflow UI, say)
        # holds up other writers (another study in the same store) meanwhile.
        with contextlib.closing(sqlite3.connect(path, timeout=0.1)) as database:
            busy = database.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:  # copy what no reader needs; SQLite folds in the rest later
                database.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` URI; None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///"))


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``mlartifacts/<experiment>`` beside a local SQLite database; the store's default else."""
    database = _sqlite_path(tracking_uri)
    if database is None:
        return None
    return (database.resolve().parent / "mlartifacts" / experiment).as_uri()
