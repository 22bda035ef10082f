"""What is searched: the study spec, its validation and the sampling of its space."""

from pathlib import Path

from paretotune.errors import ExpressionError, SpecError
from paretotune.spaces._expressions import Comparison, Expression, parse_expression
from paretotune.spaces._knobs import COMPRESSIONS, FAMILIES, OPTIMIZERS
from paretotune.spaces._loading import format_validation_error, load_spec, validate_spec
from paretotune.spaces._sampling import covering_choices, replay_params, sample_params
from paretotune.spaces._spec import (
    METRIC_NAMES,
    BudgetSpec,
    DatasetSpec,
    EarlyStoppingSpec,
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
    "Comparison",
    "DatasetSpec",
    "EarlyStoppingSpec",
    "Expression",
    "ExpressionError",
    "ResourcesSpec",
    "SamplerSpec",
    "SearchSpace",
    "SpecError",
    "StudySpec",
    "ValidationSpec",
    "covering_choices",
    "format_validation_error",
    "load_spec",
    "parse_expression",
    "replay_params",
    "sample_params",
    "validate_spec",
]
