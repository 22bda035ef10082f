"""What a trial measures: datasets, model families, training, compression and measurement.

A plain function, config in and metrics out (:func:`evaluate`), with an optional per-epoch
callback. Nothing here imports Optuna, Ray, MLflow or the rest of ``paretotune`` (its errors aside).

The names below load on first use (PEP 562): the driver checks a spec's dataset and
objectives without importing torch, which only the workers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paretotune._lazy import lazy_exports

if TYPE_CHECKING:
    from paretotune.errors import DatasetError
    from paretotune.objectives._candidates import FrontHint, could_join
    from paretotune.objectives._context import (
        StopTraining,
        TrainingDiverged,
        TrialContext,
        TrialOutcome,
        TrivialModel,
        VariantOutcome,
    )
    from paretotune.objectives._datasets import (
        DatasetInfo,
        Fold,
        Splits,
        dataset_info,
        load_dataset,
    )
    from paretotune.objectives._evaluate import evaluate
    from paretotune.objectives._metric_names import METRIC_NAMES, task_metrics
    from paretotune.objectives._model_file import (
        describe_model,
        load_model_file,
        model_from_bytes,
        model_to_bytes,
    )
    from paretotune.objectives._models import Predictor
    from paretotune.objectives._params import (
        COMPRESSIONS,
        DEFAULTS,
        FAMILIES,
        KNOWN_PARAM_NAMES,
        OPTIMIZERS,
        resolve_params,
    )
    from paretotune.objectives._training import warm_up

_HOMES = {
    "FrontHint": "paretotune.objectives._candidates",
    "could_join": "paretotune.objectives._candidates",
    "StopTraining": "paretotune.objectives._context",
    "TrainingDiverged": "paretotune.objectives._context",
    "TrivialModel": "paretotune.objectives._context",
    "TrialContext": "paretotune.objectives._context",
    "TrialOutcome": "paretotune.objectives._context",
    "VariantOutcome": "paretotune.objectives._context",
    "DatasetError": "paretotune.errors",
    "DatasetInfo": "paretotune.objectives._datasets",
    "Fold": "paretotune.objectives._datasets",
    "Splits": "paretotune.objectives._datasets",
    "dataset_info": "paretotune.objectives._datasets",
    "load_dataset": "paretotune.objectives._datasets",
    "evaluate": "paretotune.objectives._evaluate",
    "METRIC_NAMES": "paretotune.objectives._metric_names",
    "task_metrics": "paretotune.objectives._metric_names",
    "describe_model": "paretotune.objectives._model_file",
    "load_model_file": "paretotune.objectives._model_file",
    "model_from_bytes": "paretotune.objectives._model_file",
    "model_to_bytes": "paretotune.objectives._model_file",
    "Predictor": "paretotune.objectives._models",
    "COMPRESSIONS": "paretotune.objectives._params",
    "DEFAULTS": "paretotune.objectives._params",
    "FAMILIES": "paretotune.objectives._params",
    "KNOWN_PARAM_NAMES": "paretotune.objectives._params",
    "OPTIMIZERS": "paretotune.objectives._params",
    "resolve_params": "paretotune.objectives._params",
    "warm_up": "paretotune.objectives._training",
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
    "FrontHint",
    "Predictor",
    "Splits",
    "StopTraining",
    "TrainingDiverged",
    "TrialContext",
    "TrialOutcome",
    "TrivialModel",
    "VariantOutcome",
    "could_join",
    "dataset_info",
    "describe_model",
    "evaluate",
    "load_dataset",
    "load_model_file",
    "model_from_bytes",
    "model_to_bytes",
    "resolve_params",
    "task_metrics",
    "warm_up",
]


__getattr__ = lazy_exports(__name__, _HOMES)
