"""The `search` package loads its public names on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import search


def test_every_public_name_resolves() -> None:
    for name in search.__all__:
        value = getattr(search, name)
        assert getattr(value, "__name__", name) == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = search.nope  # type: ignore[attr-defined]


def test_worker_and_logging_modules_load_without_optuna_or_mlflow() -> None:
    """A Ray worker unpickles `search._worker`; the MLflow logging process starts from
    `search._mlflow_logger`: neither should pay for importing Optuna or MLflow first."""
    code = (
        "import sys, search._worker, search._mlflow_logger; "
        "print(sorted(m for m in ('optuna', 'mlflow', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
