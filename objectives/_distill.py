"""Knowledge-distillation teachers: a fixed, larger model of the student's family.

A teacher depends only on (dataset, split, family, epochs, seed, device), never on the
student's knobs, so it is trained once and cached in-process; with the environment
variable ``PARETOTUNE_CACHE_DIR`` set, its weights are also kept on disk there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable
from typing import Any

import torch
from paretotune.objectives._datasets import DatasetInfo, Fold
from paretotune.objectives._models import Predictor, build_predictor
from paretotune.objectives._params import resolve_params
from paretotune.objectives._training import TensorFold, Trainer

CACHE_ENV = "PARETOTUNE_CACHE_DIR"

# A fixed larger configuration per family (about 4x the default width / hidden size).
TEACHER_PARAMS: dict[str, dict[str, Any]] = {
    "mlp": {"mlp.depth": 2, "mlp.width": 256, "mlp.dropout": 0.1},
    "cnn": {"cnn.blocks": 2, "cnn.channels": 32, "cnn.head_width": 128},
    "rnn": {"rnn.cell": "lstm", "rnn.hidden_size": 128, "rnn.bidirectional": True},
    "transformer": {"transformer.d_model": 64, "transformer.heads": 4, "transformer.ff_width": 256},
}
_TEACHER_TRAINING = {"optimizer": "adam", "learning_rate": 3e-3, "batch_size": 64}
_MEMORY: dict[Hashable, Predictor] = {}
_MEMORY_SLOTS = 16


def teacher_params(family: str) -> dict[str, Any]:
    """The full resolved params of the teacher for a family."""
    return resolve_params({"architecture": family, **TEACHER_PARAMS[family], **_TEACHER_TRAINING})


def get_teacher(
    key: Hashable,
    family: str,
    info: DatasetInfo,
    fold: Fold,
    data: TensorFold,
    *,
    epochs: int,
    seed: int,
) -> tuple[Predictor, float]:
    """The trained teacher for ``key`` and the seconds spent training it now (0 if cached)."""
    if key in _MEMORY:
        return _MEMORY[key], 0.0
    params = teacher_params(family)
    torch.manual_seed(seed)
    teacher = build_predictor(params, info, fold.X_train, fold.y_train).to(data.X_train.device)
    path = _disk_path(key)
    seconds = 0.0
    if path is not None and os.path.isfile(path):
        teacher.load_state_dict(
            torch.load(path, map_location=data.X_train.device, weights_only=True)
        )
    else:
        trainer = Trainer(teacher, data, params, epochs=epochs, seed=seed)
        for _ in range(epochs):
            trainer.run_epoch()
        seconds = trainer.train_time_s
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.save({k: v.cpu() for k, v in teacher.state_dict().items()}, path + ".tmp")
            os.replace(path + ".tmp", path)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if len(_MEMORY) >= _MEMORY_SLOTS:
        _MEMORY.pop(next(iter(_MEMORY)))  # drop the oldest
    _MEMORY[key] = teacher
    return teacher, seconds


def _disk_path(key: Hashable) -> str | None:
    root = os.environ.get(CACHE_ENV)
    if not root:
        return None
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
    return os.path.join(root, "teachers", f"teacher-{digest}.pt")
