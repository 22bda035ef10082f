"""The searchable knobs: every name a spec may mention, its kind and its default range.

This table is the single source of truth for trial parameter names. A sampled trial
is a flat dict: top-level knobs by their own name (``batch_size``), a family's or an
option's own knobs prefixed by it (``mlp.width``, ``sgd.momentum``,
``prune_unstructured.sparsity``). ``objectives`` consumes exactly these names.

Bounds are inclusive everywhere (``low <= x <= high``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from paretotune.objectives._params import COMPRESSIONS, FAMILIES, OPTIMIZERS

KnobKind = Literal["int", "float", "categorical"]


@dataclass(frozen=True)
class Knob:
    """One searchable parameter: its kind, its default search range and its hard limits."""

    kind: KnobKind
    default: Any  # a list of choices, a dict {low, high, log?, step?}, or a fixed scalar
    minimum: float | None = None  # hard lower limit any user range must respect
    maximum: float | None = None  # hard upper limit any user range must respect
    choices: tuple[Any, ...] | None = None  # allowed values of a categorical knob


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")
PREPROCESSING: tuple[str, ...] = ("standardize", "minmax")

# Knobs owned by one choice of a categorical dimension, keyed by that choice.
FAMILY_KNOBS: dict[str, dict[str, Knob]] = {
    "mlp": {
        "depth": Knob("int", {"low": 1, "high": 3}, minimum=1, maximum=16),
        "width": Knob("int", {"low": 16, "high": 256, "log": True}, minimum=1, maximum=8192),
        "activation": Knob(
            "categorical", ["relu", "tanh", "gelu"], choices=("relu", "tanh", "gelu")
        ),
        "dropout": Knob("float", {"low": 0.0, "high": 0.3}, minimum=0.0, maximum=0.95),
    },
    "cnn": {
        "blocks": Knob("int", {"low": 1, "high": 2}, minimum=1, maximum=4),
        "channels": Knob("int", {"low": 8, "high": 32, "log": True}, minimum=1, maximum=512),
        "kernel_size": Knob("categorical", [3, 5], choices=(1, 3, 5, 7)),
        "pooling": Knob("categorical", ["max", "avg", "none"], choices=("max", "avg", "none")),
        "head_width": Knob("int", {"low": 16, "high": 128, "log": True}, minimum=1, maximum=4096),
    },
    "rnn": {
        "cell": Knob("categorical", ["lstm", "gru"], choices=("lstm", "gru")),
        "hidden_size": Knob("int", {"low": 16, "high": 128, "log": True}, minimum=1, maximum=2048),
        "layers": Knob("int", {"low": 1, "high": 2}, minimum=1, maximum=4),
        "bidirectional": Knob("categorical", [False, True], choices=(False, True)),
    },
    "transformer": {
        "d_model": Knob("categorical", [16, 32, 64], choices=(8, 16, 32, 64, 128, 256)),
        "heads": Knob("categorical", [1, 2, 4], choices=(1, 2, 4, 8)),
        "layers": Knob("int", {"low": 1, "high": 2}, minimum=1, maximum=6),
        "ff_width": Knob("int", {"low": 32, "high": 128, "log": True}, minimum=1, maximum=4096),
    },
}

OPTIMIZER_KNOBS: dict[str, dict[str, Knob]] = {
    "sgd": {
        "momentum": Knob("float", {"low": 0.0, "high": 0.95}, minimum=0.0, maximum=0.999),
        "nesterov": Knob("categorical", [False, True], choices=(False, True)),
    },
    "adam": {},
    "adamw": {
        "weight_decay": Knob("float", {"low": 1e-5, "high": 1e-1, "log": True}, minimum=0.0),
    },
    "rmsprop": {
        "alpha": Knob("float", {"low": 0.9, "high": 0.999}, minimum=0.0, maximum=0.9999),
        "momentum": Knob("float", {"low": 0.0, "high": 0.9}, minimum=0.0, maximum=0.999),
    },
}

COMPRESSION_KNOBS: dict[str, dict[str, Knob]] = {
    "none": {},
    "int8_dynamic": {},
    "fp16": {},
    "bf16": {},
    "prune_structured": {
        "amount": Knob("float", {"low": 0.2, "high": 0.7}, minimum=0.0, maximum=0.95),
        "finetune_epochs": Knob("int", 2, minimum=0, maximum=100),
    },
    "prune_unstructured": {
        "sparsity": Knob("float", {"low": 0.3, "high": 0.9}, minimum=0.0, maximum=0.99),
    },
    "distill": {
        "temperature": Knob("float", {"low": 1.0, "high": 8.0}, minimum=0.1, maximum=100.0),
        "alpha": Knob("float", {"low": 0.1, "high": 0.9}, minimum=0.0, maximum=1.0),
    },
}

# Top-level knobs of the training strategy (not owned by any choice).
TOP_KNOBS: dict[str, Knob] = {
    "batch_size": Knob("int", [32, 64, 128], minimum=1, maximum=65536),
    "learning_rate": Knob(
        "float", {"low": 1e-4, "high": 1e-1, "log": True}, minimum=1e-8, maximum=10.0
    ),
    "lr_schedule": Knob("categorical", ["constant"], choices=LR_SCHEDULES),
    "preprocessing": Knob("categorical", ["standardize"], choices=PREPROCESSING),
    "augment": Knob("categorical", [False], choices=(False, True)),
}

# Categorical dimensions whose choices own knobs: (dimension name, allowed choices, knobs).
OWNING_DIMENSIONS: dict[str, tuple[tuple[str, ...], dict[str, dict[str, Knob]]]] = {
    "architecture": (FAMILIES, FAMILY_KNOBS),
    "optimizer": (OPTIMIZERS, OPTIMIZER_KNOBS),
    "compression": (COMPRESSIONS, COMPRESSION_KNOBS),
}
OWNING_DEFAULTS: dict[str, list[str]] = {
    "architecture": ["mlp"],
    "optimizer": ["sgd", "adam", "adamw", "rmsprop"],
    "compression": ["none"],
}
