"""The MLflow tracker: one parent run per study, one nested child run per trial.

All MLflow calls happen on one background thread, in call order, so a slow tracking
store never stalls the dispatch of trials. Durability of the trial -> run mapping:
the driver stores each run id as the trial's ``mlflow_run_id`` user attribute as soon
as it is known, and every child run carries the tags ``paretotune.study`` and
``paretotune.trial_number``, so a resumed study finds its runs instead of duplicating.

Models: every child run gets its raw predictor (``model/model.pt``, plus a few raw input
rows) and the tag ``paretotune.model_uri``; when the final front is published, each
Pareto-optimal trial is also logged as an MLflow PyTorch model (see `search._models`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from search._tracking import FrontSnapshot, Tracker
from search._worker import TrialReport

STUDY_TAG = "paretotune.study"
TRIAL_TAG = "paretotune.trial_number"
STATE_TAG = "paretotune.state"
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_DESCRIPTIVE_PARAMS = ("architecture", "optimizer", "compression")
_MAX_TAG_CHARS = 5000


class MlflowTracker(Tracker):
    """Logs to the MLflow tracking server or store at ``tracking_uri``.

    For a local ``sqlite:///path.db`` URI, artifacts go to ``mlartifacts/`` beside the
    database file, so the whole study lives in one folder.
    """

    def __init__(self, tracking_uri: str):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-tracker")
        self._experiment_id: str = ""
        self._parent_run_id: str | None = None
        self._study: str = ""
        self._pareto_tags: dict[str, tuple[str, str]] = {}
        self.errors: list[str] = []

    @property
    def location(self) -> str | None:
        return self.tracking_uri

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id or None

    # -- study -----------------------------------------------------------------------
    def open_study(self, name: str, spec: dict[str, Any], parent_run_id: str | None) -> str:
        self._study = name
        return self._thread.submit(self._open_study, name, spec, parent_run_id).result()

    def _open_study(self, name: str, spec: dict[str, Any], parent_run_id: str | None) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            self._experiment_id = self._client.create_experiment(
                name, artifact_location=_artifact_location(self.tracking_uri, name)
            )
        else:
            self._experiment_id = experiment.experiment_id
        if parent_run_id and self._run_exists(parent_run_id):
            self._client.update_run(parent_run_id, status="RUNNING")
            self._parent_run_id = parent_run_id
            return parent_run_id
        run = self._client.create_run(
            self._experiment_id,
            run_name=name,
            tags={STUDY_TAG: name, "paretotune.role": "study"},
        )
        self._parent_run_id = run.info.run_id
        self._client.log_dict(self._parent_run_id, spec, "spec.json")
        return self._parent_run_id

    def _run_exists(self, run_id: str) -> bool:
        try:
            self._client.get_run(run_id)
        except Exception:
            return False
        return True

    # -- trials ----------------------------------------------------------------------
    def start_trial(self, number: int, params: dict[str, Any]) -> Future[str | None]:
        return self._submit(self._start_trial, number, params)

    def _start_trial(self, number: int, params: dict[str, Any]) -> str:
        from mlflow.entities import Param

        tags = {
            "mlflow.parentRunId": self._parent_run_id,
            STUDY_TAG: self._study,
            TRIAL_TAG: str(number),
            STATE_TAG: "RUNNING",
        }
        tags |= {key: str(params[key]) for key in _DESCRIPTIVE_PARAMS if key in params}
        run = self._client.create_run(
            self._experiment_id, run_name=f"trial-{number:04d}", tags=tags
        )
        run_id = run.info.run_id
        self._client.log_batch(
            run_id, params=[Param(key, str(value)) for key, value in params.items()]
        )
        return run_id

    def finish_trial(self, run_id: str | None, state: str, report: TrialReport) -> None:
        if run_id is not None:
            self._submit(self._finish_trial, run_id, state, report)

    def _finish_trial(self, run_id: str, state: str, report: TrialReport) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in report.metrics.items() if _finite(v)]
        for epoch, entry in enumerate(report.history):
            metrics += [Metric(k, v, now, epoch) for k, v in entry.items() if _finite(v)]
        tags = [RunTag(STATE_TAG, state)]
        if report.error:
            tags.append(RunTag("paretotune.error", report.error[:_MAX_TAG_CHARS]))
        for name, value in report.artifacts.items():
            self._client.log_dict(run_id, {name: value}, f"{name}.json")
        if report.model_bytes is not None:
            self._log_raw_model(run_id, report)
            tags.append(RunTag(MODEL_URI_TAG, raw_model_uri(run_id)))
        # One transaction for tags and up to 1000 metrics (MLflow's per-batch limit).
        self._client.log_batch(run_id, metrics=metrics[:1000], tags=tags)
        for start in range(1000, len(metrics), 1000):
            self._client.log_batch(run_id, metrics=metrics[start : start + 1000])
        self._client.set_terminated(run_id, _RUN_STATUS.get(state, "FAILED"))

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
            self._submit(self._mark_interrupted, list(numbers))

    def _mark_interrupted(self, numbers: list[int]) -> None:
        wanted = {str(n) for n in numbers}
        running = self._client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self._parent_run_id}' "
            "AND attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in running:
            if run.data.tags.get(TRIAL_TAG) in wanted:
                self._client.set_tag(run.info.run_id, STATE_TAG, "INTERRUPTED")
                self._client.set_terminated(run.info.run_id, "KILLED")

    # -- the front -------------------------------------------------------------------
    def update_front(self, snapshot: FrontSnapshot) -> None:
        self._submit(self._update_front, snapshot)

    def _update_front(self, snapshot: FrontSnapshot) -> None:
        from mlflow.entities import Metric

        from search._plots import front_figure_png, front_html, front_table_csv

        for row in snapshot.rows:
            run_id = row.get("run_id")
            wanted = (str(row["rank"] == 0).lower(), str(row["rank"]))
            if run_id and self._pareto_tags.get(run_id) != wanted:
                from mlflow.entities import RunTag

                tags = [RunTag("pareto", wanted[0]), RunTag("pareto_rank", wanted[1])]
                self._client.log_batch(run_id, tags=tags)
                self._pareto_tags[run_id] = wanted
        parent = self._parent_run_id
        assert parent is not None, "open_study must come first"
        now = int(time.time() * 1000)
        front_size = sum(1 for row in snapshot.rows if row["rank"] == 0)
        metrics = [Metric("pareto_size", float(front_size), now, snapshot.step)]
        if snapshot.hypervolume is not None:
            metrics.append(Metric("hypervolume", snapshot.hypervolume, now, snapshot.step))
        self._client.log_batch(parent, metrics=metrics)
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
        for row in snapshot.rows:
            run_id = row.get("run_id")
            if row["rank"] != 0 or not run_id:
                continue
            logged = self._client.get_run(run_id).data.tags.get(MODEL_URI_TAG, "")
            if logged.startswith("runs:/"):  # a raw model, not yet an MLflow model
                with _quiet_model_logging():
                    self._guarded(log_trial_model, self._client, run_id)

    # -- plumbing ----------------------------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> Future[Any]:
        return self._thread.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as err:  # tracking trouble must not kill the study
            self.errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
            return None

    def close(self, status: str = "FINISHED") -> None:
        if self._parent_run_id is not None:
            self._submit(self._client.set_terminated, self._parent_run_id, status)
        self._thread.shutdown(wait=True)


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


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``mlartifacts/<experiment>`` beside a local SQLite database; the store's default else."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts" / experiment).as_uri()
