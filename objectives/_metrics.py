"""Task metrics (classification / regression); their names are in `_metric_names`."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn import metrics as skm


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, chunk: int = 8192) -> np.ndarray:
    """The model's outputs on raw rows, as a float64 numpy array (eval mode, chunked)."""
    model.eval()
    parts = [model(X[i : i + chunk]).float().cpu() for i in range(0, X.shape[0], chunk)]
    return torch.cat(parts).numpy().astype(np.float64)


def classification_scores(y: np.ndarray, logits: np.ndarray, n_classes: int) -> dict[str, float]:
    """accuracy, f1/precision/recall (macro) and roc_auc (binary: positive-class prob; else
    one-vs-rest macro; omitted where undefined)."""
    pred = logits.argmax(axis=1)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, average="macro", zero_division=0
    )  # (one call: f1_score, precision_score and recall_score each make the same counts)
    scores = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1_macro": float(f1),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
    }
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if n_classes == 2:
                auc = skm.roc_auc_score(y, probs[:, 1])
            else:
                auc = skm.roc_auc_score(
                    y, probs, multi_class="ovr", average="macro", labels=np.arange(n_classes)
                )
            if np.isfinite(auc):
                scores["roc_auc"] = float(auc)
        except ValueError:
            pass  # undefined: a class is missing from these rows
    return scores


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """mse, mae, rmse and r2 in the target's original units."""
    mse = float(skm.mean_squared_error(y, pred))
    return {
        "mse": mse,
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(mse)),
        "r2": float(skm.r2_score(y, pred)),
    }


def confusion(y: np.ndarray, logits: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (rows: true class code, columns: predicted)."""
    return skm.confusion_matrix(y, logits.argmax(axis=1), labels=np.arange(n_classes))
