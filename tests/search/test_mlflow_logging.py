"""The MLflow logging process: real MLflow on SQLite, real subprocesses, no Ray."""

from __future__ import annotations

import contextlib
import json
import pickle
import shlex
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from paretotune import Client, InProcessExecutor, MlflowTracker, _driver, open_storage, run_study
from paretotune._progress import mlflow_ui_command
from paretotune.tracking import FrontRow, FrontSnapshot, StudyRef
from paretotune.tracking.mlflow.plots import PANEL_GID, front_pictures
from paretotune.tracking.mlflow.protocol import RunMade
from paretotune.tracking.mlflow.schema import (
    EXPERIMENT_KIND_TAG,
    FRONT_VIEW_ID,
    MODEL_TRAINING_KIND,
    NOTE_TAG,
    SAVED_VIEW_TAG_PREFIX,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from paretotune.tracking.mlflow.view import FRONT_FILTER, front_url

from tests.conftest import (
    Planted,
    free_port,
    mlflow_server,
    needs,
    stop_server,
    storage_url,
    tracking_uri,
)

SPACE = {
    "architecture": "mlp",
    "mlp": {"depth": [1, 2], "width": [16, 32]},
    "optimizer": ["adam", "sgd"],
    "compression": ["none"],
}


def _child_runs(uri: str, study: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [run for run in runs if TRIAL_TAG in run.data.tags]


def _noop(params):
    return {"accuracy": params["learning_rate"], "train_time_s": 1.0, "latency_ms": 1.0}


@needs("the MLflow logging process")
def _run_noop(workdir: Path, spec: dict, tracking: str, objective=_noop):
    """A study of no-op trials (or ``objective``'s), in-process, with the journal in
    ``workdir`` and MLflow at ``tracking``."""
    return run_study(
        spec,
        objective,
        storage=storage_url(workdir),
        tracking_uri=tracking,
        executor=InProcessExecutor(None, objective),
        progress=False,
    )


def _parent_status(uri: str, study: str) -> str:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`paretotune.role` = 'study'"
    )
    return runs[0].info.status


def test_trials_faster_than_mlflow_are_all_recorded(workdir: Path):
    """No-op trials end long before the logging process has made their runs: none is
    lost, each is recorded whole, and readers link every trial to its run."""

    spec = {"name": "fast", "space": SPACE, "budget": {"trials": 40}, "sampler": {"name": "random"}}
    result = _run_noop(workdir, spec, tracking_uri(workdir))
    assert result.n_complete == 40 and result.tracking_errors == []
    runs = _child_runs(tracking_uri(workdir), "fast")
    assert len(runs) == 40
    study = optuna.load_study(study_name="fast", storage=open_storage(storage_url(workdir)))
    by_number = {t.number: t for t in study.get_trials()}
    for run in runs:
        trial = by_number[int(run.data.tags[TRIAL_TAG])]
        assert run.info.status == "FINISHED"
        assert run.data.tags[STATE_TAG] == "COMPLETE"
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.data.metrics["accuracy"] == trial.params["learning_rate"]
        assert run.data.params["optimizer"] == trial.params["optimizer"]
        if "mlflow_run_id" in trial.user_attrs:  # stored when it came before the tell
            assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
    run_of = {int(run.data.tags[TRIAL_TAG]): run.info.run_id for run in runs}
    client = Client(storage=storage_url(workdir), tracking_uri=tracking_uri(workdir))
    assert {r.number: r.mlflow_run_id for r in client.front("fast").records} == run_of
    assert all(r.mlflow_run_id == run_of[r.number] for r in result.pareto)


_DYING_DRIVER = """
import os, sys
from paretotune.tracking.mlflow.tracker import MlflowTracker
from paretotune.execution import TrialReport
from paretotune.tracking import StudyRef

tracker = MlflowTracker(sys.argv[1])
tracker.open_study(StudyRef("orphaned", {"name": "orphaned"}))
for n in range(5):
    tracker.start_trial(n, {"architecture": "mlp", "learning_rate": 0.01})
    tracker.finish_trial(n, "COMPLETE", TrialReport(n, metrics={"accuracy": n / 10}))
tracker.start_trial(5, {"architecture": "mlp", "learning_rate": 0.02})
tracker._outbox.put(None)  # let the writer thread send everything queued, then die
tracker._writer.join()
os._exit(9)  # no close(): as if the driver were killed
"""


def test_logging_process_records_what_it_was_sent_after_the_driver_dies(tmp_path: Path):
    uri = tracking_uri(tmp_path)
    script = tmp_path / "dying_driver.py"
    script.write_text(textwrap.dedent(_DYING_DRIVER))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), uri], cwd=root, capture_output=True, timeout=120
    )
    assert done.returncode == 9, done.stderr.decode()
    runs: list = []
    parent_status = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = _child_runs(uri, "orphaned") if (tmp_path / "mlflow.db").exists() else []
        parent_status = _parent_status(uri, "orphaned") if runs else None
        if len(runs) == 6 and parent_status == "KILLED":
            break
        time.sleep(0.5)
    assert parent_status == "KILLED", "the study did not finish: its parent run says so"
    by_number = {int(r.data.tags[TRIAL_TAG]): r for r in runs}
    assert sorted(by_number) == [0, 1, 2, 3, 4, 5]
    for n in range(5):
        assert by_number[n].info.status == "FINISHED"
        assert by_number[n].data.metrics["accuracy"] == n / 10
        assert by_number[n].data.tags[STUDY_TAG] == "orphaned"
    # the trial still running when the driver died stays RUNNING for the resume to close,
    # which ends its run when the dead driver's record of the study was closed
    assert by_number[5].info.status == "RUNNING"
    client = MlflowClient(uri)
    (parent,) = client.search_runs(
        [by_number[5].info.experiment_id], filter_string="tags.`paretotune.role` = 'study'"
    )
    resumed = MlflowTracker(uri)
    resumed.open_study(StudyRef("orphaned", {"name": "orphaned"}, parent.info.run_id))
    resumed.mark_interrupted([5])
    assert resumed.close().errors == []
    closed = client.get_run(by_number[5].info.run_id).info
    assert (closed.status, closed.end_time) == ("KILLED", parent.info.end_time)


def test_resume_finds_the_parent_run_by_the_study_uid(workdir: Path):
    """A driver killed before it stored the parent run id leaves the study without it;
    the resume finds the parent by the study's uid tag instead of opening a second."""

    spec = {"name": "lost-parent", "space": SPACE, "budget": {"trials": 3}}
    first = _run_noop(workdir, spec, tracking_uri(workdir))
    study = optuna.load_study(study_name="lost-parent", storage=open_storage(storage_url(workdir)))
    study.set_user_attr("mlflow_parent_run_id", None)  # as if never stored
    again = _run_noop(workdir, {**spec, "budget": {"trials": 5}}, tracking_uri(workdir))
    assert again.trials_run == 2 and again.parent_run_id == first.parent_run_id
    client = MlflowClient(tracking_uri(workdir))
    parents = client.search_runs(
        [first.experiment_id], filter_string="tags.`paretotune.role` = 'study'"
    )
    assert [run.info.run_id for run in parents] == [first.parent_run_id]
    assert len(_child_runs(tracking_uri(workdir), "lost-parent")) == 5


def test_a_study_goes_on_when_mlflow_cannot_open_its_store(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    """The logging process cannot open the store: the trials still run and are stored in
    Optuna, and the result says what went wrong, in one line, without waiting on MLflow."""
    # A driver that waited for run ids would wait 600 s: far beyond the bound below,
    # which a loaded machine's start of the logging process cannot reach.
    monkeypatch.setattr(_driver, "RUN_ID_WAIT_S", 600.0)

    (workdir / "not-a-folder").write_text("")
    started = time.monotonic()
    result = _run_noop(
        workdir,
        {"name": "no-store", "space": SPACE, "budget": {"trials": 4}},
        f"sqlite:///{workdir / 'not-a-folder' / 'mlflow.db'}",
    )
    assert result.n_complete == 4 and result.parent_run_id is None
    assert result.tracking_errors[0].startswith("MLflow at sqlite:///"), result.tracking_errors
    assert "not-a-folder" in result.tracking_errors[0]
    assert time.monotonic() - started < 120, "no trial waited for a run id MLflow cannot make"


def test_an_unreachable_tracking_server_costs_one_attempt(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Nothing listens at the tracking URI: the study's record cannot be opened, so no
    trial tries again (each would wait out MLflow's retries); the result says so."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast in the test

    port = free_port()  # nobody listens on it
    result = _run_noop(
        workdir,
        {"name": "no-server", "space": SPACE, "budget": {"trials": 4}},
        f"http://127.0.0.1:{port}",
    )
    assert result.n_complete == 4 and result.parent_run_id is None
    assert result.tracking_errors[0].startswith("_open_study: "), result.tracking_errors
    assert (
        result.tracking_errors[-1].startswith("MLflow: ")
        and "skipped" in (result.tracking_errors[-1])
    )
    assert len(result.tracking_errors) == 2


def test_the_database_file_alone_holds_the_finished_study(workdir: Path, tmp_path: Path):
    """The logging process exits without MLflow's teardown; it first folds SQLite's
    write-ahead log into the database, so a copy of ``mlflow.db`` alone misses nothing."""

    spec = {"name": "folded", "space": SPACE, "budget": {"trials": 6}}
    result = _run_noop(workdir, spec, tracking_uri(workdir))
    assert result.tracking_errors == []
    wal = workdir / "mlflow.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "mlflow.db").write_bytes((workdir / "mlflow.db").read_bytes())
    runs = _child_runs(f"sqlite:///{copy / 'mlflow.db'}", "folded")
    assert sorted(int(run.data.tags[TRIAL_TAG]) for run in runs) == list(range(6))
    assert all(run.info.status == "FINISHED" for run in runs)
    assert _parent_status(f"sqlite:///{copy / 'mlflow.db'}", "folded") == "FINISHED"


class _LosingTracker(MlflowTracker):
    """Loses the jobs a driver killed outright had not handed over: all of trial 1's
    (its run is never made) and trial 2's end (its run stays RUNNING, without results)."""

    def start_trial(self, number: int, params: dict, labels=None) -> None:
        if number == 1:
            self._inbox.put(RunMade(1, None))  # MLflow made no run: do not wait for one
        else:
            super().start_trial(number, params)

    def finish_trial(self, number: int, state: str, report) -> None:
        if number not in (1, 2):
            super().finish_trial(number, state, report)

    def repair(self, finished) -> None:
        pass  # a driver killed outright never gets to its closing repair


def test_a_resume_records_again_what_a_killed_driver_lost(workdir: Path):
    """The next run of the study records the trials whose MLflow jobs were lost again,
    from Optuna (params, final metrics, state), tagged as recovered."""

    spec = {"name": "repaired", "space": SPACE, "budget": {"trials": 4}}
    first = run_study(
        spec,
        _noop,
        storage=storage_url(workdir),
        tracker=_LosingTracker(tracking_uri(workdir)),
        executor=InProcessExecutor(None, _noop),
        progress=False,
    )
    lost = {int(r.data.tags[TRIAL_TAG]): r for r in _child_runs(tracking_uri(workdir), "repaired")}
    assert sorted(lost) == [0, 2, 3] and lost[2].info.status == "RUNNING"
    again = _run_noop(workdir, {**spec, "budget": {"trials": 5}}, tracking_uri(workdir))
    assert again.trials_run == 1 and again.tracking_errors == []
    runs = {int(r.data.tags[TRIAL_TAG]): r for r in _child_runs(tracking_uri(workdir), "repaired")}
    assert sorted(runs) == [0, 1, 2, 3, 4]
    study = optuna.load_study(study_name="repaired", storage=open_storage(storage_url(workdir)))
    trials = {t.number: t for t in study.get_trials()}
    for number in (1, 2):
        run = runs[number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["paretotune.recovered"] == "true"
        assert run.data.tags[STATE_TAG] == "COMPLETE"
        assert run.data.tags["mlflow.parentRunId"] == first.parent_run_id
        assert run.data.metrics["accuracy"] == trials[number].params["learning_rate"]
        assert run.data.params["optimizer"] == trials[number].params["optimizer"]
    assert runs[2].info.run_id == lost[2].info.run_id
    for number in (0, 3, 4):
        assert "paretotune.recovered" not in runs[number].data.tags
    linked = Client(storage=storage_url(workdir), tracking_uri=tracking_uri(workdir))
    assert {r.number: r.mlflow_run_id for r in linked.front("repaired").records} == {
        n: r.info.run_id for n, r in runs.items()
    }


def _runs_so_far(uri: str, study: str) -> list:
    """The child runs of ``study`` recorded so far (none before it exists)."""
    if MlflowClient(uri).get_experiment_by_name(study) is None:
        return []
    return _child_runs(uri, study)


def _stop_when_two_runs_exist(server, study: str, calls: list, at: int):
    """An objective that stops ``server`` on its ``at``-th call, once MLflow has made a
    couple of runs (so the study's record exists)."""

    def objective(params):
        calls.append(params)
        if len(calls) == at:
            deadline = time.monotonic() + 90
            while len(_runs_so_far(server.url, study)) < 2:
                assert time.monotonic() < deadline, "MLflow recorded nothing in 90 s"
                time.sleep(0.2)
            stop_server(server)
        return _noop(params)

    return objective


def test_a_server_that_stays_down_holds_the_trials_and_sync_records_them(workdir: Path, paretotune):
    """The tracking server goes away mid-study and stays away, with MLflow's own retry
    settings: the first call that cannot reach it is one error line, every later call is
    skipped (the study pays no retries per trial), and what MLflow did not record is held
    on disk. Once the server is back, `paretotune sync` records it all, and closes the
    runs and the parent left RUNNING."""
    store, log, port = workdir / "server.db", workdir / "server.log", free_port()
    spec = {"name": "server-died", "space": SPACE, "budget": {"trials": 8}}
    calls: list = []
    with mlflow_server(store, log, port) as server:
        objective = _stop_when_two_runs_exist(server, "server-died", calls, at=4)
        result = _run_noop(workdir, spec, server.url, objective)
    assert result.n_complete == 8
    errors = result.tracking_errors
    assert "failed with exception" in errors[0], errors
    assert sum("failed with exception" in line for line in errors) == 1, errors
    assert errors[-1].startswith("MLflow: ") and "skipped" in errors[-1], errors
    assert "`paretotune sync server-died`" in errors[-1], errors
    held = workdir / "study.journal.server-died.unlogged"
    assert len(list(held.glob("trial-*.json"))) >= 4, "the trials after the outage are held"
    legacy = held / "trial-0.pkl"  # an older version's held trial: a pickle, never read
    legacy.write_bytes(pickle.dumps(Planted(workdir / "planted-ran")))

    with mlflow_server(store, log, port) as server:
        synced = paretotune(
            "sync",
            "server-died",
            "--storage",
            storage_url(workdir),
            "--tracking-uri",
            server.url,
            cwd=workdir,
        )
        assert synced.returncode == 0, synced.stderr
        assert synced.stdout.startswith("synced server-died with MLflow at "), synced.stdout
        runs = _child_runs(server.url, "server-died")
        assert sorted(int(r.data.tags[TRIAL_TAG]) for r in runs) == list(range(8))
        assert all(r.info.status == "FINISHED" for r in runs)
        assert all(r.data.tags[STATE_TAG] == "COMPLETE" for r in runs)
        assert all("accuracy" in r.data.metrics for r in runs)
        assert _parent_status(server.url, "server-died") == "FINISHED"
        assert not (workdir / "planted-ran").exists(), "the old pickle was never loaded"
        [note] = [line for line in synced.stderr.splitlines() if line.startswith("note: ")]
        assert note.startswith(f"note: 1 held trial file(s) in {held} (trial-N.pkl) are "), note
        assert sorted(p.name for p in held.iterdir()) == ["trial-0.pkl"], (
            "what was held is recorded and dropped; the old pickle is left to the user"
        )


def test_a_server_back_before_the_study_ends_gets_everything_it_missed(workdir: Path):
    """The server is down for a few trials and back before the study ends: the trials held
    meanwhile are recorded by the same run, nothing is left for a sync."""
    store, log, port = workdir / "server.db", workdir / "server.log", free_port()
    spec = {"name": "server-blip", "space": SPACE, "budget": {"trials": 8}}
    calls: list = []
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(mlflow_server(store, log, port))
        stopping = _stop_when_two_runs_exist(server, "server-blip", calls, at=3)

        def objective(params):
            if len(calls) == 5:  # the 6th trial brings the server back
                servers.enter_context(mlflow_server(store, log, port))
            return stopping(params)

        result = _run_noop(workdir, spec, server.url, objective)
        assert result.n_complete == 8
        assert not any("skipped" in line for line in result.tracking_errors[1:]), result
        runs = _child_runs(server.url, "server-blip")
        assert sorted(int(r.data.tags[TRIAL_TAG]) for r in runs) == list(range(8))
        statuses = {r.data.tags[TRIAL_TAG]: (r.info.status, r.data.tags[STATE_TAG]) for r in runs}
        assert all(r.info.status == "FINISHED" for r in runs), (statuses, result.tracking_errors)
        assert _parent_status(server.url, "server-blip") == "FINISHED"
        assert not (workdir / "study.journal.server-blip.unlogged").exists()


def test_the_experiment_names_its_objectives_and_saves_a_view_of_its_front(workdir: Path):
    """Where users look first: the experiment's description names each objective and its
    direction, the parent run holds them as params, a saved view of the runs table shows
    the runs the front filter finds with the objectives as columns, and every trial logs
    its objectives first (MLflow's compare view picks a run's first metric). A
    description the user edited stays as it is on a resume."""
    objectives = {"latency_ms": "minimize", "accuracy": "maximize"}
    spec = {"name": "described", "space": SPACE, "budget": {"trials": 5}, "objectives": objectives}
    result = _run_noop(workdir, spec, tracking_uri(workdir))
    assert result.tracking_errors == []
    client = MlflowClient(tracking_uri(workdir))
    tags = client.get_experiment(result.experiment_id).tags
    assert tags[NOTE_TAG].startswith(
        "Objectives: **latency_ms** (minimize), **accuracy** (maximize)."
    )
    assert "`described`" in tags[NOTE_TAG] and FRONT_FILTER in tags[NOTE_TAG]
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    view = json.loads(tags[SAVED_VIEW_TAG_PREFIX + FRONT_VIEW_ID])
    state = json.loads(view["state"])
    assert view["name"] == "Pareto front" and state["searchFilter"] == FRONT_FILTER
    assert state["selectedColumns"][:2] == ["metrics.`latency_ms`", "metrics.`accuracy`"]
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`latency_ms`", True)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params == {
        "objective.latency_ms": "minimize",
        "objective.accuracy": "maximize",
    }
    front = client.search_runs([result.experiment_id], filter_string=FRONT_FILTER)
    assert sorted(int(r.data.tags[TRIAL_TAG]) for r in front) == sorted(
        r.number for r in result.pareto
    )
    for run in _child_runs(tracking_uri(workdir), "described"):
        assert list(run.data.metrics)[:2] == ["latency_ms", "accuracy"], run.data.metrics

    # a new study of that name (its journal gone) with other objectives: described anew
    Path(storage_url(workdir)).unlink()
    swapped = {"accuracy": "maximize", "latency_ms": "minimize"}
    anew = _run_noop(workdir, {**spec, "objectives": swapped}, tracking_uri(workdir))
    assert anew.experiment_id == result.experiment_id and anew.tracking_errors == []
    tags = client.get_experiment(result.experiment_id).tags
    assert tags[NOTE_TAG].startswith("Objectives: **accuracy** (maximize), **latency_ms**")
    assert anew.parent_run_id in tags[NOTE_TAG] and result.parent_run_id not in tags[NOTE_TAG]
    view = json.loads(json.loads(tags[SAVED_VIEW_TAG_PREFIX + FRONT_VIEW_ID])["state"])
    assert view["orderByKey"] == "metrics.`accuracy`"

    client.set_experiment_tag(result.experiment_id, NOTE_TAG, "my own notes")
    again = _run_noop(workdir, {**spec, "budget": {"trials": 6}}, tracking_uri(workdir))
    assert again.tracking_errors == []
    assert client.get_experiment(result.experiment_id).tags[NOTE_TAG] == "my own notes"


def test_runs_span_their_trials_real_times(workdir: Path):
    """A trial's run starts when the driver dispatched it and ends when its worker
    finished it, failed or not; an interrupted trial's run ends when the driver closed it."""
    calls: list = []

    def slow(params):
        calls.append(params)
        time.sleep(0.3)
        if len(calls) % 2 == 0:
            raise ValueError("every other trial fails")
        return _noop(params)

    spec = {"name": "timed", "space": SPACE, "budget": {"trials": 4}}
    result = _run_noop(workdir, spec, tracking_uri(workdir), slow)
    assert result.n_complete == 2 and result.tracking_errors == []
    study = optuna.load_study(study_name="timed", storage=open_storage(storage_url(workdir)))
    trials = {t.number: t for t in study.get_trials()}
    runs = _child_runs(tracking_uri(workdir), "timed")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    for run in runs:
        attrs = trials[int(run.data.tags[TRIAL_TAG])].user_attrs
        began, ended = attrs["started_at"] * 1000, (attrs["started_at"] + attrs["trial_seconds"])
        assert run.info.start_time <= began + 1, "the run starts when its trial is dispatched"
        assert run.info.end_time == int(ended * 1000), "and ends when its worker finished it"
        assert run.info.end_time - run.info.start_time >= 300

    uri = f"sqlite:///{workdir / 'interrupted.db'}"
    tracker = MlflowTracker(uri)
    tracker.open_study(StudyRef("interrupted", {"name": "interrupted"}))
    tracker.start_trial(0, {"x": 1})
    time.sleep(0.3)
    before = time.time()
    tracker.mark_interrupted([0])
    after = time.time()
    assert tracker.close("KILLED").errors == []
    (run,) = _child_runs(uri, "interrupted")
    assert run.info.status == "KILLED" and run.data.tags[STATE_TAG] == "INTERRUPTED"
    assert run.info.end_time - run.info.start_time >= 300
    assert int(before * 1000) <= run.info.end_time <= after * 1000 + 1, "ends when it was closed"


def _snapshot(step: int, hypervolume: float, final: bool = False) -> FrontSnapshot:
    row = FrontRow(0, None, {"x": 1}, {"accuracy": 0.9}, 0)
    return FrontSnapshot({"accuracy": "maximize"}, [row], hypervolume, step, final)


def test_the_front_is_charted_once_per_finished_trial(tmp_path: Path):
    """The hypervolume is charted at each number of finished trials once: a step charted
    before, by a finished trial, a front snapshot or an earlier run of the study, is not
    charted again."""
    uri = tracking_uri(tmp_path)
    tracker = MlflowTracker(uri)
    tracker.open_study(
        StudyRef("charted", {"name": "charted"}, objectives={"accuracy": "maximize"})
    )
    for step, hypervolume in ((1, 0.1), (2, 0.2), (2, 0.25), (3, 0.3)):
        tracker.chart_front(step, {"hypervolume": hypervolume, "pareto_size": 1.0})
    tracker.update_front(_snapshot(3, 0.3, final=True))
    news = tracker.close()
    assert news.errors == [] and news.parent_run_id is not None
    resumed = MlflowTracker(uri)  # a resume that finishes no trial, then one that does
    resumed.open_study(StudyRef("charted", {"name": "charted"}, news.parent_run_id))
    resumed.update_front(_snapshot(3, 0.3, final=True))
    resumed.chart_front(4, {"hypervolume": 0.4, "pareto_size": 1.0})
    assert resumed.close().errors == []
    client = MlflowClient(uri)
    for metric, values in (("hypervolume", [0.1, 0.2, 0.3, 0.4]), ("pareto_size", [1.0] * 4)):
        history = client.get_metric_history(news.parent_run_id, metric)
        assert [(m.step, m.value) for m in history] == list(zip([1, 2, 3, 4], values, strict=True))


def test_the_front_plot_fits_the_artifact_pane_offline():
    """The front's page for 60 trials: a few hundred kB at most (plotly.js inline weighed
    4.9 MB), nothing fetched from the internet, one group per panel (three projections and
    a 3-D view) and a tooltip on every 2-D point; the PNG fits a ~1,100 px pane."""
    objectives = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}
    rows = [
        FrontRow(
            n,
            f"run-{n}",
            {"learning_rate": n / 100, "optimizer": "adam"},
            {"accuracy": 0.5 + n / 200, "train_time_s": 3 - n / 30, "latency_ms": n % 7},
            n % 3,
        )
        for n in range(60)
    ]
    page, png = front_pictures(FrontSnapshot(objectives, rows, 0.5, 60, final=True))
    assert len(page.encode()) < 300_000, len(page.encode())
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert [page.count(f'id="{PANEL_GID.format(i)}"') for i in range(5)] == [1, 1, 1, 1, 0]
    assert page.count("<title>trial ") == 3 * 60
    width = struct.unpack(">I", png[16:20])[0]  # the PNG's IHDR chunk
    assert png.startswith(b"\x89PNG") and width <= 1000


def test_a_front_row_is_written_to_the_front_json_as_the_dict_it_replaced():
    """``pareto/pareto_front.json`` keeps its shape: each row's keys in this order."""
    row = FrontRow(3, "run-3", {"lr": 0.1}, {"accuracy": 0.9}, 0)
    assert json.dumps([row.as_dict()]) == (
        '[{"number": 3, "run_id": "run-3", "params": {"lr": 0.1}, '
        '"values": {"accuracy": 0.9}, "rank": 0}]'
    )


def test_a_single_objective_front_plots_its_value_by_trial():
    rows = [FrontRow(n, None, {}, {"mse": 10 - n}, int(n < 9)) for n in range(10)]
    page, _ = front_pictures(FrontSnapshot({"mse": "minimize"}, rows, None, 10, final=True))
    assert [page.count(f'id="{PANEL_GID.format(i)}"') for i in range(2)] == [1, 0]
    assert ">trial<" in page or "trial</" in page  # the x axis, not mse against itself
    assert page.count("<title>trial ") == 10


def test_the_printed_commands_work_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The hint at the end of a run: an `mlflow ui` command with absolute paths, and the
    address of the runs filtered to the front."""
    monkeypatch.chdir(tmp_path)
    command = shlex.split(mlflow_ui_command("sqlite:///mlflow.db") or "")
    assert Path(command[0]).is_absolute() and command[0].endswith("mlflow")
    assert command[1:4] == ["ui", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    route = "/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=paretotune-front"
    assert front_url("sqlite:///mlflow.db", "3") == "http://127.0.0.1:5000" + route
    assert mlflow_ui_command("http://mlflow.internal:8080/") is None
    assert front_url("http://mlflow.internal:8080/", "3") == "http://mlflow.internal:8080" + route


@pytest.mark.needs("mlflow")  # (MLflow's client starts a process to learn the platform)
def test_a_quick_trials_params_go_with_its_result_and_a_slow_ones_alone(tmp_path: Path):
    """The recorder, in process on a real SQLite store: a trial that ends within the
    grace gets its params in its result's batch; one still running after it gets them
    logged alone then (a run shows its params while it trains)."""
    from paretotune.execution import TrialReport
    from paretotune.tracking.mlflow.recorder import PARAMS_GRACE_S, MlflowRecorder

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recorder = MlflowRecorder(uri, tmp_path / "held")
    recorder.open_study(StudyRef("grace", {"name": "grace"}, objectives={"accuracy": "maximize"}))
    quick = recorder.start_trial(0, {"lr": 0.1, "optimizer": "adam"})
    slow = recorder.start_trial(1, {"lr": 0.2, "optimizer": "sgd"})
    assert quick and slow
    mlflow = MlflowClient(uri)
    assert mlflow.get_run(quick).data.params == {}, "waiting for the result"
    recorder.finish_trial(0, "COMPLETE", TrialReport(0, metrics={"accuracy": 0.9}))
    assert mlflow.get_run(quick).data.params == {"lr": "0.1", "optimizer": "adam"}
    assert mlflow.get_run(quick).data.metrics["accuracy"] == 0.9
    assert mlflow.get_run(slow).data.params == {}
    due = recorder.log_due_params()
    assert due is not None and due <= time.monotonic() + PARAMS_GRACE_S
    assert recorder.log_due_params(now=due) is None  # the grace is over: logged alone
    assert mlflow.get_run(slow).data.params == {"lr": "0.2", "optimizer": "sgd"}
    recorder.finish_trial(1, "COMPLETE", TrialReport(1, metrics={"accuracy": 0.8}))
    assert mlflow.get_run(slow).data.metrics["accuracy"] == 0.8
    recorder.close()
