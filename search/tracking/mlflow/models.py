"""A trial's model in MLflow: log it as an MLflow model, load it, register it.

Every child run of a built-in-objective trial carries its model file as the artifact
``model/model.pt`` (weights and the recipe that rebuilds the architecture, never a pickle:
`paretotune.objectives.model_from_bytes`), with ``model/input_example.npy`` (a few raw
validation rows), and the tag ``paretotune.model_uri``. Pareto-optimal trials are also
logged as MLflow 3 *logged models*: ``python_function`` models whose loader is
`paretotune.tracking.mlflow.pyfunc_model` and whose data is that same file (signature,
input example, pinned torch requirement); the tag then reads ``models:/<model id>``.
Everything goes through an explicit `MlflowClient`, never the process-wide fluent
tracking URI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from paretotune.tracking.mlflow.pyfunc_model import DATA_FILE
from paretotune.tracking.mlflow.schema import (
    EXAMPLE_FILE,
    LOGGED_MODEL_NAME,
    MODEL_DIR,
    MODEL_URI_TAG,
    RAW_MODEL_FILE,
    trial_model_uri,
)

if TYPE_CHECKING:
    import torch
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

LOADER_MODULE = "paretotune.tracking.mlflow.pyfunc_model"


def log_trial_model(client: MlflowClient, run_id: str) -> str:
    """Log a run's model file as an MLflow ``python_function`` model; return its
    ``models:/`` URI.

    The logged model gets an input signature and example (from ``input_example.npy``
    when the run has it), is linked to the run as its output, and the run's
    ``paretotune.model_uri`` tag is pointed at it.

    Raises:
        ModelFileError: the run's model file is not one paretotune wrote.
    """
    import mlflow.pyfunc
    import numpy as np
    import torch
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model, infer_signature
    from paretotune import objectives

    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(client.download_artifacts(run_id, MODEL_DIR, folder))
        model_file = local / RAW_MODEL_FILE
        source = f"run {run_id}'s {MODEL_DIR}/{RAW_MODEL_FILE}"
        model = objectives.model_from_bytes(model_file.read_bytes(), source)  # before logging
        example, signature = None, None
        if (local / EXAMPLE_FILE).is_file():
            example = np.load(local / EXAMPLE_FILE, allow_pickle=False)
            with torch.no_grad():
                output = model(torch.as_tensor(example)).float().numpy()
            signature = infer_signature(example, output)
        logged = client.create_logged_model(
            run.info.experiment_id,
            name=LOGGED_MODEL_NAME,
            source_run_id=run_id,
            tags={k: v for k, v in run.data.tags.items() if k.startswith("paretotune.")},
        )
        data = Path(folder) / "data"
        data.mkdir()
        model_file.replace(data / DATA_FILE)
        saved = Path(folder) / "mlflow_model"
        with quiet_model_io():  # (it validates the example through the loader: INFO lines)
            mlflow.pyfunc.save_model(
                str(saved),
                loader_module=LOADER_MODULE,
                data_path=str(data / DATA_FILE),
                mlflow_model=Model(run_id=run_id, model_id=logged.model_id),
                signature=signature,
                input_example=example,
                # its loader is paretotune's: serving it needs paretotune installed
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", _paretotune()],
            )
        client.log_model_artifacts(logged.model_id, str(saved))
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    uri = f"models:/{logged.model_id}"
    client.set_tag(run_id, MODEL_URI_TAG, uri)
    return uri


def _paretotune() -> str:
    """paretotune's requirement line, pinned to the version installed here."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"paretotune=={version('paretotune')}"
    except PackageNotFoundError:
        return "paretotune"


def load_model(tracking_uri: str, model_uri: str) -> torch.nn.Module:
    """The predictor at ``model_uri`` (a trial's ``runs:/<run>/model``, ``models:/<id>``
    or a raw ``runs:/`` artifact), in eval mode: raw rows in, logits (classification) or
    target-unit predictions out. Only a paretotune model file is read (weights and
    recipe); anything else is refused with `ModelFileError`, never run."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from paretotune import objectives

    client = MlflowClient(tracking_uri)
    model_uri = exact_model_uri(client, model_uri)
    with tempfile.TemporaryDirectory() as folder, quiet_model_io():
        if model_uri.startswith("models:/"):
            logged = client.get_logged_model(model_uri.removeprefix("models:/"))
            local = download_artifacts(
                artifact_uri=logged.artifact_location,
                dst_path=folder,
                tracking_uri=tracking_uri,
            )
            data = _pyfunc_data(Path(local), model_uri)
            return objectives.model_from_bytes(data.read_bytes(), model_uri)
        run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
        local = client.download_artifacts(run_id, path, folder)
        return objectives.model_from_bytes(Path(local).read_bytes(), model_uri)


def _pyfunc_data(local: Path, model_uri: str) -> Path:
    """The model file of a logged model paretotune wrote (its pyfunc flavour's data).

    Raises:
        ModelFileError: the logged model is not one of paretotune's (another flavour or
            loader, as an older paretotune's pickled PyTorch models are).
    """
    from mlflow.models import Model
    from paretotune.errors import ModelFileError

    flavor = Model.load(str(local)).flavors.get("python_function", {})
    if flavor.get("loader_module") != LOADER_MODULE or not flavor.get("data"):
        raise ModelFileError(
            f"{model_uri}: not a model paretotune logged as weights (an older pickled "
            "model is never loaded; run the trial again or retrain it)"
        )
    data = (local / flavor["data"]).resolve()
    if not data.is_relative_to(local.resolve()):
        raise ModelFileError(f"{model_uri}: its data path leaves the model's folder")
    return data


def exact_model_uri(client: MlflowClient, model_uri: str) -> str:
    """A trial's model URI (`trial_model_uri`: ``runs:/<run>/model``) made exact from its
    run's ``paretotune.model_uri`` tag, with one ``get_run``: ``models:/<id>`` once logged
    as an MLflow model, else the raw artifact. Other URIs are returned as they are.

    Raises:
        MlflowException: the run has no model (yet).
    """
    from mlflow.exceptions import MlflowException

    run_id = model_uri.removeprefix("runs:/").partition("/")[0]
    if model_uri != trial_model_uri(run_id):
        return model_uri
    exact = client.get_run(run_id).data.tags.get(MODEL_URI_TAG)
    if not exact:
        raise MlflowException(f"run {run_id} has no model")
    return exact


def register_model(
    client: MlflowClient, run_id: str, model_uri: str, name: str, alias: str | None
) -> ModelVersion:
    """A new version of registered model ``name`` from a trial's model (logging it as an
    MLflow model first if it is only a raw artifact), with ``alias`` pointing at it."""
    from mlflow.exceptions import MlflowException

    uri = exact_model_uri(client, model_uri)
    if not uri.startswith("models:/"):
        uri = log_trial_model(client, run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    logged = client.get_logged_model(uri.removeprefix("models:/"))
    # The store resolves a models:/ source through the *global* tracking URI (an MLflow
    # TODO), so hand it the artifact location it would resolve to.
    version = client.create_model_version(
        name, source=logged.artifact_location, run_id=run_id, model_id=logged.model_id
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return version


@contextlib.contextmanager
def quiet_model_io() -> Iterator[None]:
    """No download progress bars (MLflow draws one per file, tqdm lines when piped) or
    MLflow's INFO lines about validating a model's input example on the user's terminal."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)
