"""Every name paretotune writes into MLflow, in one place: run tags, artifact paths and
run states. Readers (the `Client`, the MLflow UI filters in docs/mlflow.md) use these."""

from __future__ import annotations

# tags of every run of a study
STUDY_TAG = "paretotune.study"
ROLE_TAG = "paretotune.role"  # "study" on the parent run
STUDY_UID_TAG = "paretotune.study_uid"  # on the parent run: the Optuna study's uid attr
# tags of a trial's run
TRIAL_TAG = "paretotune.trial_number"
STATE_TAG = "paretotune.state"  # the Optuna state: COMPLETE, FAIL, PRUNED, INTERRUPTED
ERROR_TAG = "paretotune.error"
STOPPED_AT_TAG = "paretotune.stopped_at_epoch"  # early stopping: the rung epoch it reached
RECOVERED_TAG = "paretotune.recovered"  # recorded again from Optuna by `repair`
MODEL_URI_TAG = "paretotune.model_uri"
PLACEMENT_TAG_PREFIX = "paretotune."  # + "node" (trained on), "latency_node" (timed on)
LABEL_TAG_PREFIX = "paretotune."  # + "attempt", "retry_of": a retried trial's run
PARETO_TAG = "pareto"  # "true" / "false"
PARETO_RANK_TAG = "pareto_rank"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
# A compression variant's run is nested under its trial's run; this tag names the study's
# parent run on it, so the study's trial runs are its children and the runs tagged so.
STUDY_RUN_TAG = "paretotune.study_run_id"
FORKED_FROM_LABEL = "forked_from"  # a variant's `start_trial` label: the trial it forks
DESCRIPTIVE_PARAMS = ("architecture", "optimizer", "compression")  # also set as tags
MAX_TAG_CHARS = 5000
# params of the parent run: ``objective.<metric>`` = maximize | minimize
OBJECTIVE_PARAM_PREFIX = "objective."
# ``hypervolume_box.<metric>`` = ``ideal..reference``: the box the hypervolume is a share of
HV_BOX_PARAM = "hypervolume_box"

# tags of the study's experiment, MLflow's own (see `view`)
NOTE_TAG = "mlflow.note.content"  # the experiment's description (markdown)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"  # runs first, not MLflow's GenAI pages
SAVED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # + a saved view's id
# {tag: digest of the value paretotune wrote}: a tag still holding what it wrote is
# paretotune's to rewrite (a new study of the same name); one a user edited is kept
WRITTEN_TAG = "paretotune.written"
FRONT_VIEW_ID = "paretotune-front"  # the saved "Pareto front" view of the runs table

# the MLflow run status of each Optuna trial state
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "RETRIED": "FAILED"}

# artifacts
MODEL_DIR = "model"  # artifact folder of the raw model on every child run
RAW_MODEL_FILE = "model.pt"
EXAMPLE_FILE = "input_example.npy"
LOGGED_MODEL_NAME = "model"
FRONT_DIR = "pareto"  # on the parent run: pareto_front.{csv,json,html,png}
SPEC_ARTIFACT = "spec.json"
TRIAL_ARTIFACT = "trial.json"  # on a child run: what its trial reported besides metrics


def trial_model_uri(run_id: str) -> str:
    """The model of a trial's run, as MLflow resolves ``runs:/<run>/<name>``: the logged
    MLflow model of that name where the run has one (Pareto-optimal and registered
    trials), else the run's ``model/`` artifact folder (the raw predictor). Known from the
    run id alone, so reading a front asks MLflow nothing."""
    return f"runs:/{run_id}/{LOGGED_MODEL_NAME}"


def raw_model_uri(run_id: str) -> str:
    """Where a run's model file (weights and recipe) is."""
    return f"runs:/{run_id}/{MODEL_DIR}/{RAW_MODEL_FILE}"
