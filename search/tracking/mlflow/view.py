"""What a study shows first in the MLflow UI: its experiment's description (the
objectives, their directions, and where the front is), a saved view of its runs table
(the Pareto-optimal runs, objectives as columns, best first), and the address and
command that open that view.

MLflow 3's UI keeps a saved view as the experiment tag ``mlflow.sharedViewState.<id>``:
an envelope (``name``, ``createdAt``, ``updatedAt``) around the view's state as JSON,
the same keys the runs tab keeps (``searchFilter``, ``orderByKey``, ``orderByAsc``,
``selectedColumns``, ``columnOrder``, ``columnWidths``). The runs tab opens it with
``?viewStateShareKey=<id>`` and lists it by name in its saved-views menu;
``workflowType=machine_learning`` picks MLflow's "Model training" pages, where the runs
tab is (its "GenAI" pages open on traces). A column is ``metrics.`name``` or
``tags.`name```.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from paretotune.results.ordering import maximized
from paretotune.tracking.mlflow.schema import (
    DESCRIPTIVE_PARAMS,
    EXPERIMENT_KIND_TAG,
    FRONT_DIR,
    FRONT_VIEW_ID,
    MODEL_TRAINING_KIND,
    NOTE_TAG,
    OBJECTIVE_PARAM_PREFIX,
    PARETO_RANK_TAG,
    PARETO_TAG,
    SAVED_VIEW_TAG_PREFIX,
)
from paretotune.tracking.mlflow.sqlite import local_store_path

FRONT_FILTER = f"tags.{PARETO_TAG} = 'true'"  # the runs table's filter for the front
FRONT_VIEW_NAME = "Pareto front"
FRONT_PAGE = f"{FRONT_DIR}/pareto_front.html"  # on the parent run
LOCAL_UI = "http://127.0.0.1:5000"  # where `ui_command` serves the UI
UI_ENV = "PARETOTUNE_MLFLOW_UI"  # a UI already serving the local store (`paretotune up`)
_OBJECTIVE_COLUMN_PX = 150  # wide enough for 0.979166…
_MODEL_TRAINING = "workflowType=machine_learning"  # MLflow's pages with a runs tab


def front_url(tracking_uri: str, experiment_id: str) -> str:
    """The study's Pareto-optimal runs in the MLflow UI: its experiment's runs tab in
    the saved view `FRONT_VIEW_ID`. A tracking server serves it at its own address; a
    local store at ``$PARETOTUNE_MLFLOW_UI`` (a UI already serving it: `paretotune up`'s),
    else at `LOCAL_UI`, once `ui_command` runs."""
    base = _served_at(tracking_uri) or LOCAL_UI
    return base.rstrip("/") + front_route(experiment_id)


def front_route(experiment_id: str) -> str:
    """`front_url` without the server: a link that works on any MLflow UI page."""
    return (
        f"/#/experiments/{experiment_id}/runs?{_MODEL_TRAINING}&viewStateShareKey={FRONT_VIEW_ID}"
    )


def ui_command(tracking_uri: str) -> str | None:
    """The command that serves the UI of a local store, to paste from any folder (this
    Python's ``mlflow`` and the store by absolute paths); None for a tracking server,
    which serves its own, or a store a UI already serves (``$PARETOTUNE_MLFLOW_UI``)."""
    if _served_at(tracking_uri):
        return None
    beside = Path(sys.executable).absolute().parent / "mlflow"
    mlflow = str(beside) if beside.exists() else "mlflow"
    store = absolute_store_uri(tracking_uri)
    host, port = LOCAL_UI.removeprefix("http://").split(":")
    return shlex.join([mlflow, "ui", "--backend-store-uri", store, "--host", host, "--port", port])


def _served_at(tracking_uri: str) -> str | None:
    """Where a UI serves ``tracking_uri`` now: a server itself, or the UI named by
    ``$PARETOTUNE_MLFLOW_UI`` for a local store; None: no UI runs."""
    if _is_server(tracking_uri):
        return tracking_uri
    return os.environ.get(UI_ENV) or None


def absolute_store_uri(tracking_uri: str) -> str:
    """``tracking_uri`` with a local SQLite file or store folder made absolute (a relative
    one names a different store from another folder); any other URI as it is."""
    local = local_store_path(tracking_uri)
    if local is None:
        return tracking_uri
    if tracking_uri.startswith("sqlite:"):
        return f"sqlite:///{local.resolve()}"
    return local.resolve().as_uri()


def objective_params(objectives: Mapping[str, str]) -> dict[str, str]:
    """The parent run's params naming each objective's direction."""
    return {OBJECTIVE_PARAM_PREFIX + metric: d for metric, d in objectives.items()}


def experiment_tags(
    study: str,
    objectives: Mapping[str, str],
    experiment_id: str,
    parent_run_id: str,
    now_ms: int,
) -> dict[str, str]:
    """The experiment's description, its kind (model training: MLflow opens it on its
    runs) and the saved "Pareto front" view (tag -> value)."""
    return {
        NOTE_TAG: description(study, objectives, experiment_id, parent_run_id),
        EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND,
        SAVED_VIEW_TAG_PREFIX + FRONT_VIEW_ID: front_view(objectives, now_ms),
    }


def description(
    study: str, objectives: Mapping[str, str], experiment_id: str, parent_run_id: str
) -> str:
    """Markdown: the objectives and their directions first (the UI shows the first line
    when the description is folded), then the study and how to reach its front."""
    listed = ", ".join(f"**{metric}** ({d})" for metric, d in objectives.items())
    run = f"#/experiments/{experiment_id}/runs/{parent_run_id}"
    plot = f"{run}/artifacts/{FRONT_PAGE}?{_MODEL_TRAINING}"
    return (
        f"Objectives: {listed}.\n\n"
        f"paretotune study `{study}`: each trial is a run nested under the study's run "
        f"`{study}`, which holds the objectives as params (`{OBJECTIVE_PARAM_PREFIX}<metric>`)"
        " and charts `hypervolume` and `pareto_size` by finished trials.\n\n"
        f"**The Pareto front**: [its runs]({front_route(experiment_id).lstrip('/')}) (the saved"
        f' view "{FRONT_VIEW_NAME}"), or filter the runs with `{FRONT_FILTER}`; '
        f"`{PARETO_RANK_TAG}` is 0 on the front (every trial's rank is in the plot's "
        "table and `paretotune pareto`). Its plot: "
        f"[`{FRONT_PAGE}`]({plot}) on the study's run.\n"
    )


def front_view(objectives: Mapping[str, str], now_ms: int) -> str:
    """The saved view of the front: runs tagged ``pareto = true``, best first by the
    first objective, the objectives and the descriptive tags as columns."""
    first, direction = next(iter(objectives.items()))
    metrics = [f"metrics.`{metric}`" for metric in objectives]
    columns = metrics + [f"tags.`{tag}`" for tag in DESCRIPTIVE_PARAMS]
    state = {
        "searchFilter": FRONT_FILTER,
        "orderByKey": f"metrics.`{first}`",
        "orderByAsc": not maximized(direction),  # best first
        "selectedColumns": columns,
        "columnOrder": ["duration", *columns],  # the objectives in the spec's order
        "columnWidths": dict.fromkeys(metrics, _OBJECTIVE_COLUMN_PX),
    }
    envelope = {
        "name": FRONT_VIEW_NAME,
        "createdAt": now_ms,
        "updatedAt": now_ms,
        "state": json.dumps(state),
    }
    return json.dumps(envelope)


def _is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))
