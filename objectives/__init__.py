"""What a trial measures: datasets, model families, training, compression and measurement.

A plain function, config in and metrics out (:func:`evaluate`), with an optional per-epoch
callback. Nothing here imports Optuna, Ray, MLflow or ``search``.
"""

from objectives._context import StopTraining, TrialContext, TrialOutcome
from objectives._datasets import (
    DatasetError,
    DatasetInfo,
    Fold,
    Splits,
    dataset_info,
    load_dataset,
)
from objectives._evaluate import evaluate
from objectives._metrics import METRIC_NAMES, task_metrics
from objectives._models import Predictor
from objectives._params import (
    COMPRESSIONS,
    DEFAULTS,
    FAMILIES,
    KNOWN_PARAM_NAMES,
    OPTIMIZERS,
    resolve_params,
)

__all__ = [
    "COMPRESSIONS",
    "DEFAULTS",
    "FAMILIES",
    "KNOWN_PARAM_NAMES",
    "METRIC_NAMES",
    "OPTIMIZERS",
    "DatasetError",
    "DatasetInfo",
    "Fold",
    "Predictor",
    "Splits",
    "StopTraining",
    "TrialContext",
    "TrialOutcome",
    "dataset_info",
    "evaluate",
    "load_dataset",
    "resolve_params",
    "task_metrics",
]
