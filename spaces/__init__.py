"""What is searched: the study spec, its validation and the sampling of its space.

The names below load on first use (PEP 562): the command line builds its parser from
`Overrides` on every command, without importing pydantic and Optuna for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paretotune._lazy import lazy_exports

if TYPE_CHECKING:
    from paretotune.errors import ExpressionError, SpecError
    from paretotune.spaces._expressions import Comparison, Expression, parse_expression
    from paretotune.spaces._knobs import COMPRESSIONS, FAMILIES, OPTIMIZERS
    from paretotune.spaces._loading import format_validation_error, load_spec, validate_spec
    from paretotune.spaces._overrides import Overrides
    from paretotune.spaces._sampling import covering_choices, sample_params
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

_HOMES = {
    "ExpressionError": "paretotune.errors",
    "SpecError": "paretotune.errors",
    "Comparison": "paretotune.spaces._expressions",
    "Expression": "paretotune.spaces._expressions",
    "parse_expression": "paretotune.spaces._expressions",
    "COMPRESSIONS": "paretotune.spaces._knobs",
    "FAMILIES": "paretotune.spaces._knobs",
    "OPTIMIZERS": "paretotune.spaces._knobs",
    "format_validation_error": "paretotune.spaces._loading",
    "load_spec": "paretotune.spaces._loading",
    "validate_spec": "paretotune.spaces._loading",
    "Overrides": "paretotune.spaces._overrides",
    "covering_choices": "paretotune.spaces._sampling",
    "sample_params": "paretotune.spaces._sampling",
    **{
        name: "paretotune.spaces._spec"
        for name in (
            "METRIC_NAMES",
            "BudgetSpec",
            "DatasetSpec",
            "EarlyStoppingSpec",
            "ResourcesSpec",
            "SamplerSpec",
            "SearchSpace",
            "StudySpec",
            "ValidationSpec",
        )
    },
}

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
    "Overrides",
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
    "sample_params",
    "validate_spec",
]

__getattr__ = lazy_exports(__name__, _HOMES)
