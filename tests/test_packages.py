"""The `paretotune` and `paretotune.objectives` packages load their public names on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

HEAVY = ("optuna", "mlflow", "ray", "torch")


@pytest.mark.parametrize("package", ["paretotune", "paretotune.objectives"])
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name


@pytest.mark.parametrize("package", ["paretotune", "paretotune.objectives"])
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = module.nope


def _loaded_after(code: str) -> list[str]:
    """Which of Optuna, MLflow, Ray and torch a fresh interpreter has imported after
    running ``code``."""
    probe = f"{code}\nimport sys\nprint(*sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_worker_and_logging_modules_load_without_optuna_or_mlflow() -> None:
    """A Ray worker unpickles the trial runner; the MLflow logging process starts from
    its own module: neither should pay for importing Optuna or MLflow first."""
    code = "import paretotune.execution._worker, paretotune.tracking.mlflow.process"
    assert _loaded_after(code) == []


def test_the_drivers_dataset_check_needs_no_torch() -> None:
    """The driver checks a spec against its dataset (shape, task, metrics) before any
    trial; only the workers train, so only they import torch."""
    code = (
        "import paretotune.objectives as o; o.dataset_info({'source': 'wine'}); "
        "o.task_metrics('classification'); o.TrialContext; o.DatasetError"
    )
    assert "torch" not in _loaded_after(code)
