"""A trial's model in MLflow: log it as an MLflow PyTorch model, load it, register it.

Every child run of a built-in-objective trial carries its pickled predictor as the artifact
``model/model.pt`` (with ``model/input_example.npy``, a few raw validation rows) and the
tag ``paretotune.model_uri``. Pareto-optimal trials are also logged as MLflow 3 *logged
models* (signature, input example, pinned torch requirement), and the tag then reads
``models:/<model id>``. Everything goes through an explicit `MlflowClient`, never the
process-wide fluent tracking URI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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


def log_trial_model(client: MlflowClient, run_id: str) -> str:
    """Log a run's raw model as an MLflow PyTorch model; return its ``models:/`` URI.

    The logged model gets an input signature and example (from ``input_example.npy``
    when the run has it), is linked to the run as its output, and the run's
    ``paretotune.model_uri`` tag is pointed at it.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model, infer_signature

    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(client.download_artifacts(run_id, MODEL_DIR, folder))
        model = torch.load(local / RAW_MODEL_FILE, weights_only=False).eval()
        example, signature = None, None
        if (local / EXAMPLE_FILE).is_file():
            example = np.load(local / EXAMPLE_FILE)
            with torch.no_grad():
                output = model(torch.as_tensor(example)).float().numpy()
            signature = infer_signature(example, output)
        logged = client.create_logged_model(
            run.info.experiment_id,
            name=LOGGED_MODEL_NAME,
            source_run_id=run_id,
            tags={k: v for k, v in run.data.tags.items() if k.startswith("paretotune.")},
        )
        saved = Path(folder) / "mlflow_model"
        mlflow.pytorch.save_model(
            model,
            str(saved),
            mlflow_model=Model(run_id=run_id, model_id=logged.model_id),
            signature=signature,
            input_example=example,
            serialization_format="pickle",  # int8 packed params do not torch.export
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        client.log_model_artifacts(logged.model_id, str(saved))
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    uri = f"models:/{logged.model_id}"
    client.set_tag(run_id, MODEL_URI_TAG, uri)
    return uri


def load_model(tracking_uri: str, model_uri: str) -> torch.nn.Module:
    """The predictor at ``model_uri`` (a trial's ``runs:/<run>/model``, ``models:/<id>``
    or a raw ``runs:/`` artifact), in eval mode: raw rows in, logits (classification) or
    target-unit predictions out."""
    import mlflow.pytorch
    import torch
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

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
            model = mlflow.pytorch.load_model(local)
        else:
            run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
            local = client.download_artifacts(run_id, path, folder)
            model = torch.load(local, weights_only=False)
    return model.eval()


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
    pickle-format warnings on the user's terminal: the pickle format is a deliberate
    choice (int8 models do not export to pt2)."""
    logger = logging.getLogger("mlflow.pytorch")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        yield
    finally:
        logger.setLevel(previous)
