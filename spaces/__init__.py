"""What is searched: the study spec, its validation and the sampling of its space."""

from pathlib import Path

from spaces._knobs import COMPRESSIONS, FAMILIES, OPTIMIZERS
from spaces._loading import SpecError, format_validation_error, load_spec, validate_spec
from spaces._sampling import replay_params, sample_params
from spaces._spec import (
    METRIC_NAMES,
    BudgetSpec,
    DatasetSpec,
    ResourcesSpec,
    SamplerSpec,
    SearchSpace,
    StudySpec,
    ValidationSpec,
)

EXAMPLES_DIR = Path(__file__).parent / "examples"

__all__ = [
    "COMPRESSIONS",
    "EXAMPLES_DIR",
    "FAMILIES",
    "METRIC_NAMES",
    "OPTIMIZERS",
    "BudgetSpec",
    "DatasetSpec",
    "ResourcesSpec",
    "SamplerSpec",
    "SearchSpace",
    "SpecError",
    "StudySpec",
    "ValidationSpec",
    "format_validation_error",
    "load_spec",
    "replay_params",
    "sample_params",
    "validate_spec",
]
