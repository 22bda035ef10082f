"""The Python API and CLI for choosing trials, on one real small digits study: real Ray,
real training, the Optuna journal and MLflow on SQLite in a temporary folder."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.models import Model
from paretotune import Client, objectives, run_study
from paretotune.cli import main
from paretotune.errors import NoTrialMatchesError, UnknownMetricError
from paretotune.results.selection import namespace
from paretotune.spaces import parse_expression

from tests.conftest import Planted

pytestmark = pytest.mark.slow

STUDY = "digits-choose"
SPEC = {
    "name": STUDY,
    "dataset": {"source": "digits"},
    # Both objectives are deterministic under seeded training (latency is not), so the
    # front is the same on every run: trials 3 and 4 are dominated.
    "objectives": {"accuracy": "maximize", "size_bytes": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": {"low": 1, "high": 2}, "width": [16, 128]},
        "optimizer": ["adam"],
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
        "compression": ["none", "int8_dynamic"],
    },
    "budget": {"trials": 5, "epochs": 2},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
    "constraints": ["mlp.width <= 16"],
}


@pytest.fixture(scope="module")
def study(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("choose")
    storage, tracking = str(folder / "study.journal"), f"sqlite:///{folder / 'mlflow.db'}"
    result = run_study(SPEC, storage=storage, tracking_uri=tracking, progress=False)
    assert result.n_complete == 5 and not result.tracking_errors
    return {"storage": storage, "tracking_uri": tracking, "folder": str(folder)}


@pytest.fixture()
def client(study: dict[str, str]) -> Client:
    return Client(storage=study["storage"], tracking_uri=study["tracking_uri"])


def _validation_accuracy(model: torch.nn.Module) -> float:
    fold = objectives.load_dataset({"source": "digits"}, seed=0).folds[-1]
    with torch.no_grad():
        predicted = model(torch.as_tensor(fold.X_val)).argmax(dim=1).numpy()
    return float(np.mean(predicted == fold.y_val))


def _exact_uri(mlflow: MlflowClient, record) -> str:
    return mlflow.get_run(record.mlflow_run_id).data.tags["paretotune.model_uri"]


def test_studies_summarise_objectives_states_front_and_times(client: Client):
    (summary,) = client.studies()
    assert summary.name == STUDY
    assert summary.objectives == SPEC["objectives"]
    assert summary.trials_by_state == {"COMPLETE": 5}
    assert summary.pareto_size == len(client.pareto_front(STUDY, feasible_only=False))
    assert 0 < summary.hypervolume <= 1.1**2
    assert summary.created is not None and summary.created <= summary.updated
    assert summary.mlflow_experiment_id and summary.mlflow_parent_run_id


def test_pareto_front_is_immutable_feasible_and_tabular(client: Client):
    everything = client.trials(STUDY)
    constraint = parse_expression(SPEC["constraints"][0])
    assert [r.feasible for r in everything] == [constraint.holds(namespace(r)) for r in everything]
    assert {True, False} == {r.feasible for r in everything}, "the seeded study has both kinds"

    feasible_front = client.pareto_front(STUDY)
    full_front = client.pareto_front(STUDY, feasible_only=False)
    assert feasible_front and all(r.feasible and r.pareto_rank == 0 for r in feasible_front)
    assert {r.number for r in full_front} == {r.number for r in everything if r.pareto_rank == 0}
    mlflow = MlflowClient(client.tracking_uri)
    for record in full_front:
        assert record.model_uri == f"runs:/{record.mlflow_run_id}/model"
        tag = mlflow.get_run(record.mlflow_run_id).data.tags["paretotune.model_uri"]
        assert tag.startswith("models:/"), "Pareto trials are MLflow models"
        assert record.mlflow_run_id and set(record.values) == set(SPEC["objectives"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        full_front[0].number = 99
    with pytest.raises(TypeError):
        full_front[0].params["batch_size"] = 1

    frame = full_front.to_pandas()
    assert list(frame["number"]) == [r.number for r in full_front]
    assert {"accuracy", "size_bytes", "metrics.latency_ms", "params.mlp.width"} <= set(frame)


def test_best_knee_and_weighted_choose_from_the_feasible_trials(client: Client):
    feasible = [r for r in client.trials(STUDY) if r.feasible]
    latency = float(np.median([r.metrics["latency_ms"] for r in feasible]))
    where = f"latency_ms <= {latency!r} and size_bytes < 1e6"
    chosen = client.best_config(STUDY, where=where, prefer="accuracy")
    matching = [r for r in feasible if parse_expression(where).holds(namespace(r))]
    assert chosen.number in {r.number for r in matching}
    assert chosen.metrics["accuracy"] == max(r.metrics["accuracy"] for r in matching)
    assert chosen.model_uri is not None

    knee = client.knee_point(STUDY)
    assert knee.number in {r.number for r in client.pareto_front(STUDY)}
    lightest = client.weighted(STUDY, {"size_bytes": 1})
    assert lightest.metrics["size_bytes"] == min(r.metrics["size_bytes"] for r in feasible)

    with pytest.raises(NoTrialMatchesError) as err:
        client.best_config(STUDY, where="latency_ms <= 1e-9")
    fastest = min(r.metrics["latency_ms"] for r in feasible)
    assert str(err.value) == (
        f"no complete trial of {STUDY!r} satisfies latency_ms <= 1e-9 "
        f"(best latency_ms is {fastest:.4g}; {len(feasible)} trials considered)"
    )
    with pytest.raises(UnknownMetricError, match="unknown metric 'latency' .* latency_ms,"):
        client.best_config(STUDY, where="latency < 1")
    with pytest.raises(UnknownMetricError, match="unknown metric 'speed'"):
        client.weighted(STUDY, {"speed": 1})


def test_every_trial_model_predicts_its_recorded_accuracy(client: Client):
    records = client.trials(STUDY)
    for number in (r.number for r in records):
        record = client.trial(STUDY, number)
        model = client.load_model(record)
        assert _validation_accuracy(model) == pytest.approx(record.metrics["accuracy"], abs=1e-6)
        assert record.model_uri == f"runs:/{record.mlflow_run_id}/model"


def test_pareto_models_carry_a_signature_and_an_input_example(client: Client, tmp_path: Path):
    record = client.pareto_front(STUDY, feasible_only=False)[0]
    mlflow = MlflowClient(client.tracking_uri)
    logged = mlflow.get_logged_model(_exact_uri(mlflow, record).removeprefix("models:/"))
    assert logged.source_run_id == record.mlflow_run_id
    local = mlflow.download_artifacts(record.mlflow_run_id, "model", str(tmp_path))
    example = np.load(Path(local) / "input_example.npy")
    from mlflow.artifacts import download_artifacts

    folder = download_artifacts(artifact_uri=logged.artifact_location, dst_path=str(tmp_path / "m"))
    info = Model.load(str(Path(folder) / "MLmodel"))
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 64)
    assert info.saved_input_example_info is not None
    assert example.shape == (5, 64) and example.dtype == np.float32


def test_a_front_model_uri_loads_with_mlflow_itself(client: Client):
    """The docs hand `record.model_uri` to `mlflow.pyfunc.load_model`: MLflow resolves
    `runs:/<run>/model` to the trial's logged model, a python_function model whose loader
    is paretotune's and whose data is the model file (weights and recipe, no pickle)."""
    import mlflow.pyfunc

    for record in client.pareto_front(STUDY, feasible_only=False):
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(client.tracking_uri)
        try:
            served = mlflow.pyfunc.load_model(record.model_uri)
        finally:
            mlflow.set_tracking_uri(previous)
        fold = objectives.load_dataset({"source": "digits"}, seed=0).folds[0]
        logits = served.predict(np.asarray(fold.X_val, dtype=np.float32))
        accuracy = float(np.mean(logits.argmax(1) == fold.y_val))
        assert accuracy == pytest.approx(record.metrics["accuracy"], abs=1e-6)
        assert served.metadata.flavors["python_function"]["loader_module"] == (
            "paretotune.tracking.mlflow.pyfunc_model"
        )


def _artifact_path(tracking_uri: str, run_id: str, path: str) -> Path:
    uri = MlflowClient(tracking_uri).get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://")) / path


def test_a_tampered_model_file_runs_no_code_and_is_one_line(client: Client, tmp_path: Path):
    """The raw model of a dominated trial and the logged model of a front one, each
    replaced by a pickle that would create a file: `Client.load_model` refuses each with
    one line, MLflow's own loader (paretotune's pyfunc loader) refuses it too, and the
    marker is never created."""
    import mlflow.pyfunc
    from paretotune.errors import ModelFileError

    marker = tmp_path / "ran"
    records = client.trials(STUDY)
    number = next(r.number for r in records if r.pareto_rank != 0 and r.state == "COMPLETE")
    dominated = client.trial(STUDY, number)
    front = client.pareto_front(STUDY, feasible_only=False)[0]
    logged = MlflowClient(client.tracking_uri).get_logged_model(
        _exact_uri(MlflowClient(client.tracking_uri), front).removeprefix("models:/")
    )
    targets = [
        _artifact_path(client.tracking_uri, dominated.mlflow_run_id, "model/model.pt"),
        Path(logged.artifact_location.removeprefix("file://")) / "data" / "model.pt",
    ]
    originals = [target.read_bytes() for target in targets]
    try:
        for target in targets:
            target.write_bytes(pickle.dumps(Planted(marker)))
        for record in (dominated, front):
            with pytest.raises(ModelFileError, match="not a paretotune model file") as err:
                client.load_model(record)
            assert "\n" not in str(err.value)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(client.tracking_uri)
        try:
            with pytest.raises(ModelFileError):
                mlflow.pyfunc.load_model(front.model_uri)
        finally:
            mlflow.set_tracking_uri(previous)
    finally:
        for target, original in zip(targets, originals, strict=True):
            target.write_bytes(original)
    assert not marker.exists(), "the planted pickle ran"
    assert client.load_model(front) is not None  # restored: it loads again


def test_register_puts_the_model_in_the_registry_with_its_alias(client: Client):
    registry = MlflowClient(client.tracking_uri, registry_uri=client.tracking_uri)
    pareto = client.knee_point(STUDY, feasible_only=False)
    version = client.register(pareto, "digits-mlp")
    assert registry.get_model_version_by_alias("digits-mlp", "champion").version == version.version
    logged = registry.get_logged_model(_exact_uri(registry, pareto).removeprefix("models:/"))
    assert (version.source, version.run_id) == (logged.artifact_location, pareto.mlflow_run_id)

    dominated = next(r for r in client.trials(STUDY) if r.pareto_rank != 0)
    again = client.register(client.trial(STUDY, dominated.number), "digits-mlp", alias="runner-up")
    assert int(again.version) == int(version.version) + 1
    # A raw model is logged as an MLflow model first, and its trial now points at it.
    now = _exact_uri(registry, client.trial(STUDY, dominated.number))
    assert now.startswith("models:/") and again.run_id == dominated.mlflow_run_id
    assert registry.get_logged_model(now.removeprefix("models:/")).artifact_location == again.source
    model = client.load_model(client.trial(STUDY, dominated.number))
    assert _validation_accuracy(model) == pytest.approx(dominated.metrics["accuracy"], abs=1e-6)


def test_cli_best_and_knee_match_the_api_and_errors_are_one_line(
    client: Client, study: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the study's own URI is used
    storage = ["--storage", study["storage"]]
    where = "latency_ms < 1 and size_bytes < 1e6"
    assert main(["best", STUDY, "--where", where, "--prefer", "accuracy", "--json", *storage]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["number"] == client.best_config(STUDY, where=where, prefer="accuracy").number
    assert shown["model_uri"] and shown["feasible"] is True
    assert main(["knee", STUDY, "--all", *storage]) == 0
    knee = client.knee_point(STUDY, feasible_only=False)
    assert capsys.readouterr().out.startswith(f"trial {knee.number} of {STUDY} (Pareto rank 0")

    for args, message in [
        (["--where", "latency_ms <= 1e-9"], "error: no complete trial of 'digits-choose' sat"),
        (["--where", "latency < 1"], "error: --where: unknown metric 'latency' in study"),
        (["--where", "latency_ms <"], "error: --where: in 'latency_ms <': expected a metric"),
        (["--prefer", "speed"], "error: --prefer: unknown metric 'speed' in study"),
    ]:
        assert main(["best", STUDY, *args, *storage]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert main(["knee", "nope", *storage]) == 2
    assert capsys.readouterr().err.startswith("error: study 'nope' not found")


def test_export_then_retrain_reproduces_the_trial(
    client: Client, study: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch
):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    record = client.knee_point(STUDY)
    spec = Path(study["folder"]) / "knee.yaml"
    storage = ["--storage", study["storage"]]
    assert main(["export", STUDY, str(record.number), "-o", str(spec), *storage]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {spec}")
    assert spec.read_text().startswith(f"# re-trains trial {record.number} of study {STUDY!r}")
    tracking = ["--tracking-uri", study["tracking_uri"]]
    assert main(["retrain", str(spec), "--json", *storage, *tracking]) == 0
    retrained = json.loads(capsys.readouterr().out)
    assert retrained["study"] == f"{STUDY}-trial-{record.number}"
    assert retrained["params"] == dict(record.params)
    assert retrained["metrics"]["accuracy"] == record.metrics["accuracy"], "training is seeded"
    assert retrained["metrics"]["size_bytes"] == record.metrics["size_bytes"]
    assert retrained["model_uri"] == f"runs:/{retrained['mlflow_run_id']}/model"
    mlflow = MlflowClient(study["tracking_uri"])
    tags = mlflow.get_run(retrained["mlflow_run_id"]).data.tags
    assert tags["paretotune.model_uri"].startswith("models:/"), "a one-trial front logs its model"


def test_model_uris_come_from_the_study_alone(study: dict[str, str]):
    """A front's model URIs are made from what the study records, so reading a front of
    any size asks MLflow nothing: here MLflow's store is not even there, and nothing warns
    (looking runs up would warn "no MLflow store")."""
    import warnings

    gone = f"sqlite:///{study['folder']}/not-there.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        front = Client(storage=study["storage"], tracking_uri=gone).front(STUDY)
    assert front.records and all(r.mlflow_run_id for r in front.records)
    assert all(r.model_uri == f"runs:/{r.mlflow_run_id}/model" for r in front.records)
    assert not Path(study["folder"], "not-there.db").exists()


def test_mlflow_ui_records_front_artifacts_hypervolume_and_child_tags(client: Client):
    summary = client.summary(STUDY)
    mlflow = MlflowClient(client.tracking_uri)
    artifacts = {a.path for a in mlflow.list_artifacts(summary.mlflow_parent_run_id, "pareto")}
    assert artifacts == {f"pareto/pareto_front.{ext}" for ext in ("csv", "json", "html", "png")}, (
        "the parent run carries the front as CSV, JSON, interactive HTML and PNG"
    )
    curve = mlflow.get_metric_history(summary.mlflow_parent_run_id, "hypervolume")
    assert curve[-1].step == 5 and curve[-1].value == pytest.approx(summary.hypervolume)
    for record in client.trials(STUDY):
        tags = mlflow.get_run(record.mlflow_run_id).data.tags
        assert tags["pareto"] == str(record.pareto_rank == 0).lower()
        # 0 on the front; off it, none (never on it) or the rank it had when it left
        assert (tags.get("pareto_rank") == "0") == (record.pareto_rank == 0), tags
        assert tags["paretotune.state"] == "COMPLETE"
        assert (tags["architecture"], tags["optimizer"]) == ("mlp", "adam")
        assert tags["compression"] == record.params["compression"]
        assert tags["paretotune.model_uri"].startswith(("models:/", "runs:/"))


def test_cli_show_and_pareto_read_the_real_study_and_create_nothing(
    client: Client, study: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch
):
    """`show` prints the trial's MLflow run and model; `pareto` fits 80 columns with every
    param that varies; neither adds a file beside the study."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the study's own URI is used
    monkeypatch.setenv("COLUMNS", "80")
    folder = Path(study["folder"])
    before = sorted(p.name for p in folder.iterdir())
    storage = ["--storage", study["storage"]]
    knee = client.knee_point(STUDY, feasible_only=False)
    assert main(["show", STUDY, str(knee.number), *storage]) == 0
    out = capsys.readouterr().out
    assert f"  MLflow run  {knee.mlflow_run_id}\n" in out
    assert f"  model       runs:/{knee.mlflow_run_id}/model\n" in out
    shown_cv = f"{knee.metrics['latency_cv']:.1%} between rounds)"
    assert any(
        line.lstrip().startswith("latency_ms ") and shown_cv in line for line in out.splitlines()
    )
    assert main(["pareto", STUDY, *storage]) == 0
    out = capsys.readouterr().out
    assert "measured noise" not in out, "no measured objective here (accuracy, size_bytes)"
    front = client.pareto_front(STUDY, feasible_only=False)
    varying = {k for k in front[0].params if len({repr(r.params.get(k)) for r in front}) > 1}
    assert varying and all(k in out for k in varying)
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    assert sorted(p.name for p in folder.iterdir()) == before


def test_loading_a_model_prints_no_download_noise(client: Client):
    """Outside the test session's TQDM_DISABLE, as a user's script runs: `load_model` of a
    Pareto trial (an MLflow model, several files) and of a raw one print nothing."""
    pareto = client.pareto_front(STUDY, feasible_only=False)[0].number
    other = next(r.number for r in client.trials(STUDY) if r.pareto_rank != 0)
    script = (
        "import sys\nfrom paretotune import Client\n"
        "storage, tracking, study, *numbers = sys.argv[1:]\n"
        "client = Client(storage=storage, tracking_uri=tracking)\n"
        "for number in numbers:\n"
        "    client.load_model(client.trial(study, int(number)))\n"
    )
    quiet = ("TQDM_DISABLE", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    env = {k: v for k, v in os.environ.items() if k not in quiet}
    done = subprocess.run(
        [sys.executable, "-c", script, client.storage_url, client.tracking_uri, STUDY]
        + [str(pareto), str(other)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "" and done.stderr == "", done.stderr[-3000:]
