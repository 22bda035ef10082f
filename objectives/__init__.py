"""What a trial measures: datasets, model families, training, compression and measurement.

A plain function, config in and metrics out (:func:`evaluate`), with an optional per-epoch
callback. Nothing here imports Optuna, Ray, MLflow or ``search``.

The names below load on first use (PEP 562): the driver checks a spec's dataset and
objectives without importing torch, which only the workers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from objectives._lazy import lazy_exports

if TYPE_CHECKING:
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
    from objectives._metric_names import METRIC_NAMES, task_metrics
    from objectives._models import Predictor
    from objectives._params import (
        COMPRESSIONS,
        DEFAULTS,
        FAMILIES,
        KNOWN_PARAM_NAMES,
        OPTIMIZERS,
        resolve_params,
    )

_HOMES = {
    "StopTraining": "objectives._context",
    "TrialContext": "objectives._context",
    "TrialOutcome": "objectives._context",
    "DatasetError": "objectives._datasets",
    "DatasetInfo": "objectives._datasets",
    "Fold": "objectives._datasets",
    "Splits": "objectives._datasets",
    "dataset_info": "objectives._datasets",
    "load_dataset": "objectives._datasets",
    "evaluate": "objectives._evaluate",
    "METRIC_NAMES": "objectives._metric_names",
    "task_metrics": "objectives._metric_names",
    "Predictor": "objectives._models",
    "COMPRESSIONS": "objectives._params",
    "DEFAULTS": "objectives._params",
    "FAMILIES": "objectives._params",
    "KNOWN_PARAM_NAMES": "objectives._params",
    "OPTIMIZERS": "objectives._params",
    "resolve_params": "objectives._params",
}

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


__getattr__ = lazy_exports(__name__, _HOMES)
