"""What is searched: the study spec, its validation and the sampling of its space."""

from pathlib import Path

from spaces._expressions import Comparison, Expression, ExpressionError, parse_expression
from spaces._knobs import COMPRESSIONS, FAMILIES, OPTIMIZERS
from spaces._loading import SpecError, format_validation_error, load_spec, validate_spec
from spaces._sampling import covering_choices, replay_params, sample_params
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
    "Comparison",
    "DatasetSpec",
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
