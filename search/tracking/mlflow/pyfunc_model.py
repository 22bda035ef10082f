"""The loader of the MLflow models paretotune logs: a ``python_function`` model whose
``loader_module`` is this module and whose data is the trial's model file (weights and
recipe, see `paretotune.objectives.model_from_bytes`).

``mlflow.pyfunc.load_model(uri)`` imports this module and calls `_load_pyfunc` with the
model's data path: no pickle is read, and paretotune must be installed where it loads.
"""

from __future__ import annotations

from typing import Any

DATA_FILE = "model.pt"  # under the MLflow model's ``data/`` folder


class ParetotunePredictor:
    """What ``mlflow.pyfunc`` serves: raw feature rows (a DataFrame or an array, float32
    ``(n, features)``) in, logits ``(n, classes)`` or target-unit predictions ``(n,)`` out."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import torch

        rows = np.asarray(getattr(model_input, "values", model_input), dtype=np.float32)
        with torch.no_grad():
            return self.model(torch.as_tensor(rows)).float().numpy()


def _load_pyfunc(data_path: str) -> ParetotunePredictor:
    from paretotune import objectives

    return ParetotunePredictor(objectives.load_model_file(data_path))
