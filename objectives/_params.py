"""Trial parameters: the flat knob names objectives understands, their defaults, validation.

A trial's params is a flat dict named as in ``spaces._knobs``: top-level knobs by their own
name (``batch_size``) and the knobs owned by a choice prefixed by it (``mlp.width``). Any knob
may be absent; :data:`DEFAULTS` fills it. This module deliberately does not import ``spaces``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

FAMILIES = ("mlp", "cnn", "rnn", "transformer")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
COMPRESSIONS = (
    "none",
    "int8_dynamic",
    "fp16",
    "bf16",
    "prune_structured",
    "prune_unstructured",
    "distill",
)

# Every knob with its fixed default, used when a trial does not set it.
DEFAULTS: dict[str, Any] = {
    "architecture": "mlp",
    "mlp.depth": 2,
    "mlp.width": 64,
    "mlp.activation": "relu",
    "mlp.dropout": 0.0,
    "cnn.blocks": 2,
    "cnn.channels": 16,
    "cnn.kernel_size": 3,
    "cnn.pooling": "max",
    "cnn.head_width": 64,
    "rnn.cell": "lstm",
    "rnn.hidden_size": 64,
    "rnn.layers": 1,
    "rnn.bidirectional": False,
    "transformer.d_model": 32,
    "transformer.heads": 2,
    "transformer.layers": 1,
    "transformer.ff_width": 64,
    "optimizer": "adam",
    "sgd.momentum": 0.9,
    "sgd.nesterov": False,
    "adamw.weight_decay": 1e-2,
    "rmsprop.alpha": 0.99,
    "rmsprop.momentum": 0.0,
    "compression": "none",
    "prune_structured.amount": 0.5,
    "prune_structured.finetune_epochs": 2,
    "prune_unstructured.sparsity": 0.5,
    "distill.temperature": 4.0,
    "distill.alpha": 0.5,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "preprocessing": "standardize",
    "augment": False,
}

KNOWN_PARAM_NAMES: frozenset[str] = frozenset(DEFAULTS)

_CHOICES: dict[str, tuple[Any, ...]] = {
    "architecture": FAMILIES,
    "optimizer": OPTIMIZERS,
    "compression": COMPRESSIONS,
    "mlp.activation": ("relu", "tanh", "gelu"),
    "cnn.pooling": ("max", "avg", "none"),
    "rnn.cell": ("lstm", "gru"),
    "lr_schedule": ("constant", "cosine", "step"),
    "preprocessing": ("standardize", "minmax"),
}
# Inclusive lower bounds of numeric knobs (the model cannot be built below them).
_MINIMA: dict[str, float] = {
    "mlp.depth": 1,
    "mlp.width": 1,
    "cnn.blocks": 1,
    "cnn.channels": 1,
    "cnn.kernel_size": 1,
    "cnn.head_width": 1,
    "rnn.hidden_size": 1,
    "rnn.layers": 1,
    "transformer.d_model": 1,
    "transformer.heads": 1,
    "transformer.layers": 1,
    "transformer.ff_width": 1,
    "batch_size": 1,
    "prune_structured.finetune_epochs": 0,
}


def resolve_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return a full copy of ``params`` with defaults filled in and values coerced.

    Raises:
        ValueError: an unknown name, a choice outside its options, or a value below its
            minimum; the message names the parameter and the value.
    """
    unknown = sorted(set(params) - KNOWN_PARAM_NAMES)
    if unknown:
        raise ValueError(f"params: unknown parameter name(s) {unknown}")
    resolved = {**DEFAULTS, **params}
    for name, default in DEFAULTS.items():
        value = resolved[name]
        if isinstance(default, bool):
            resolved[name] = _as_bool(name, value)
        elif isinstance(default, int | float):
            resolved[name] = _as_number(name, value, type(default))
        if name in _CHOICES and resolved[name] not in _CHOICES[name]:
            raise ValueError(f"params.{name}: {value!r} is not one of {list(_CHOICES[name])}")
        if name in _MINIMA and resolved[name] < _MINIMA[name]:
            raise ValueError(f"params.{name}: must be >= {_MINIMA[name]}, got {value!r}")
    if resolved["learning_rate"] <= 0:
        raise ValueError(f"params.learning_rate: must be > 0, got {resolved['learning_rate']!r}")
    return resolved


def owned(params: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """The knobs owned by one choice, without their prefix: ``owned(p, "mlp")["width"]``."""
    prefix = owner + "."
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise ValueError(f"params.{name}: expected a boolean, got {value!r}")


def _as_number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"params.{name}: expected a number, got {value!r}")
    number = float(value)
    if kind is not int:
        return number
    if not number.is_integer():
        raise ValueError(f"params.{name}: expected an integer, got {value!r}")
    return int(number)
