"""The pydantic models of a study spec. Unknown keys are errors everywhere."""

from __future__ import annotations

import re
from typing import Any, Literal

from paretotune.objectives._metric_names import METRICS, Direction
from paretotune.spaces._dimensions import DimensionError, normalize
from paretotune.spaces._expressions import ExpressionError, parse_expression
from paretotune.spaces._knobs import OWNING_DEFAULTS, OWNING_DIMENSIONS, TOP_KNOBS
from paretotune.spaces._overrides import (
    Overrides,
    PreciseMeasurement,
    SamplerName,
    StoppingMethod,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

METRIC_NAMES = tuple(METRICS)  # in the catalogue's order, for messages
BUILTIN_DATASETS = ("digits", "wine", "breast_cancer", "diabetes")
REGRESSION_DATASETS = ("diabetes",)

OPTION_DIMENSION = {
    option: dimension
    for dimension, (_, knobs_by_option) in OWNING_DIMENSIONS.items()
    for option in knobs_by_option
    if option != "none"
}
OPTION_NAMES = tuple(OPTION_DIMENSION)

# The default objectives: the task's quality metric, training time and latency.
DEFAULT_QUALITY = {"classification": "accuracy", "regression": "mse"}
DEFAULT_COST_OBJECTIVES: dict[str, Direction] = {
    name: METRICS[name].direction for name in ("train_time_s", "latency_ms")
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DatasetSpec(_Strict):
    """Where the data comes from. Built-in sklearn sets, or the user's CSV/NPZ file."""

    source: Literal["digits", "wine", "breast_cancer", "diabetes", "csv", "npz"] = "digits"
    path: str | None = None
    target: str | None = None
    task: Literal["classification", "regression"] | None = None
    image_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = (
        None  # [C, H, W] of flat rows
    )

    @model_validator(mode="after")
    def _check_source_keys(self) -> DatasetSpec:
        if self.source in ("csv", "npz") and not self.path:
            raise ValueError(f"source {self.source!r} needs `path`")
        if self.source == "csv" and not self.target:
            raise ValueError("source 'csv' needs `target` (the label column)")
        if self.source in BUILTIN_DATASETS and (self.path or self.target or self.image_shape):
            raise ValueError(
                f"built-in source {self.source!r} takes no `path`, `target` or `image_shape`"
            )
        return self

    def inferred_task(self) -> Literal["classification", "regression"] | None:
        """The task when known without reading the file (built-ins, or an explicit `task`)."""
        if self.task:
            return self.task
        if self.source in BUILTIN_DATASETS:
            return "regression" if self.source in REGRESSION_DATASETS else "classification"
        return None


class BudgetSpec(_Strict):
    """How much to spend: trials in total (finished ones count on resume), epochs per trial,
    a time limit for the study and one for each trial (a trial past it is stopped and
    recorded as failed; its worker is replaced), and a goal (``stop_when``) that ends the
    study once a feasible trial meets it, e.g. ``"accuracy >= 0.98 and latency_ms <= 0.05"``."""

    trials: int = Field(30, ge=1, le=10_000_000)
    epochs: int = Field(15, ge=1, le=10_000)
    timeout_s: float | None = Field(None, gt=0)
    trial_timeout_s: float | None = Field(None, gt=0)
    stop_when: str | None = None

    @field_validator("stop_when")
    @classmethod
    def _check_goal(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_expression(value)
            except ExpressionError as err:
                raise ValueError(str(err)) from None
        return value


class EarlyStoppingSpec(_Strict):
    """Stopping trials early: ``mo_asha`` (asynchronous successive halving, ranked by
    non-dominated sorting) or ``none``. Rungs sit at ``min_epochs * reduction_factor**k``
    epochs below ``budget.epochs``; the top ``1/reduction_factor`` of a rung goes on."""

    method: StoppingMethod = "none"
    min_epochs: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2, le=100)


class ResourcesSpec(_Strict):
    """Where trials run: concurrent workers and what each one reserves on Ray."""

    workers: int = Field(2, ge=1, le=1024)
    cpus_per_trial: float = Field(1.0, ge=0.01)  # (Ray counts CPUs in 1e-4 steps)
    gpus_per_trial: float = Field(0.0, ge=0)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # A trial whose worker was lost (its process or node died) is run again, with the same
    # params, up to this many times; a trial's own error is never retried.
    retries: int = Field(0, ge=0, le=10)

    @model_validator(mode="after")
    def _check_device(self) -> ResourcesSpec:
        """Ray hides every GPU from a worker that reserved none: ``cuda`` with no GPU per
        trial would fail every trial (and a machine or cluster without GPUs refuses a
        study that reserves them before it starts)."""
        if self.device == "cuda" and self.gpus_per_trial == 0:
            raise ValueError(
                "device: 'cuda' needs resources.gpus_per_trial > 0 (Ray shows a worker only "
                "the GPUs it reserved; 'auto' takes a GPU where one is reserved)"
            )
        return self


class LatencyTargetSpec(_Strict):
    """The deployment target the models are timed on: a Ray node offering ``resources``
    (custom resources such as ``{edge: 1}``, declared with ``ray start --resources``)."""

    resources: dict[str, float]

    @field_validator("resources")
    @classmethod
    def _check_resources(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("an empty mapping; name a resource the target node offers")
        for name, amount in value.items():
            if amount <= 0:
                raise ValueError(f"{name}: {amount} must be positive")
        return value


class MeasureSpec(_Strict):
    """How and where costs are measured. ``latency_on`` times every model (latency and
    throughput) on the node it names, one model at a time, instead of on the worker that
    trained it. ``precise``: ``candidates`` (default) measures every model quickly and
    precisely only those that could be on the front; ``all`` measures every model
    precisely (with ``latency_on``, every model is measured precisely there)."""

    latency_on: LatencyTargetSpec | None = None
    precise: PreciseMeasurement = "candidates"


class ValidationSpec(_Strict):
    """How trials are scored: a holdout split (default) or k-fold CV, plus a final test split."""

    holdout: float = Field(0.2, gt=0, lt=1)
    kfold: int | None = Field(None, ge=2, le=20)
    test: float = Field(0.2, ge=0, lt=1)


class SamplerSpec(_Strict):
    """The Optuna sampler: auto (default: tpe, then nsga2 after `switch_at` trials), tpe,
    nsga2 or random."""

    name: SamplerName = "auto"
    startup_trials: int = Field(10, ge=0)
    switch_at: int = Field(200, ge=0)
    population_size: int = Field(20, ge=2)
    cover_choices: bool = True  # first trials try every family/optimizer/compression once


# Compressions a trained model can be forked into (`CompressionVariants`): distillation
# changes the training itself, so it stays a per-trial choice.
VARIANT_COMPRESSIONS = tuple(
    c for c in OWNING_DIMENSIONS["compression"][0] if c not in ("none", "distill")
)


class CompressionVariants(_Strict):
    """``compression: {variants: [int8_dynamic, fp16, prune_structured]}``: every trial
    trains the uncompressed model, then each listed compression of it becomes a trial of
    its own (forked from it; see `paretotune.objectives.evaluate`)."""

    variants: list[str] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, value: list[str]) -> list[str]:
        for choice in value:
            if choice == "distill":
                raise ValueError(
                    "'distill' cannot be a variant: it changes the training (search it as a "
                    "choice instead: compression: [none, distill])"
                )
            if choice not in VARIANT_COMPRESSIONS:
                raise ValueError(f"{choice!r} is not one of: {', '.join(VARIANT_COMPRESSIONS)}")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate variants in {value!r}")
        return value


class SearchSpace(_Strict):
    """The searched dimensions. Each is a fixed value, a list of choices or a range.

    ``architecture``, ``optimizer`` and ``compression`` are choices whose options own
    knobs: the block under an option's name (``mlp:``, ``sgd:``, ``distill:``) overrides
    that option's default ranges and exists in a trial only when the option is chosen.
    """

    architecture: list[str] | str = Field(
        default_factory=lambda: list(OWNING_DEFAULTS["architecture"])
    )
    optimizer: list[str] | str = Field(default_factory=lambda: list(OWNING_DEFAULTS["optimizer"]))
    # a choice per trial, or variants of every trained model (`CompressionVariants`)
    compression: list[str] | str | CompressionVariants = Field(
        default_factory=lambda: list(OWNING_DEFAULTS["compression"])
    )
    batch_size: Any = None
    learning_rate: Any = None
    lr_schedule: Any = None
    preprocessing: Any = None
    augment: Any = None
    mlp: dict[str, Any] | None = None
    cnn: dict[str, Any] | None = None
    rnn: dict[str, Any] | None = None
    transformer: dict[str, Any] | None = None
    sgd: dict[str, Any] | None = None
    adam: dict[str, Any] | None = None
    adamw: dict[str, Any] | None = None
    rmsprop: dict[str, Any] | None = None
    int8_dynamic: dict[str, Any] | None = None
    fp16: dict[str, Any] | None = None
    bf16: dict[str, Any] | None = None
    prune_structured: dict[str, Any] | None = None
    prune_unstructured: dict[str, Any] | None = None
    distill: dict[str, Any] | None = None

    @field_validator("architecture", "optimizer", "compression", mode="after")
    @classmethod
    def _check_owning(
        cls, value: list[str] | str | CompressionVariants, info: ValidationInfo
    ) -> list[str] | CompressionVariants:
        if isinstance(value, CompressionVariants):
            return value
        choices = [value] if isinstance(value, str) else value
        allowed, _ = OWNING_DIMENSIONS[info.field_name or ""]
        if not choices:
            raise ValueError("an empty list; give at least one of: " + ", ".join(allowed))
        for choice in choices:
            if choice not in allowed:
                raise ValueError(f"{choice!r} is not one of: {', '.join(allowed)}")
        if len(set(choices)) != len(choices):
            raise ValueError(f"duplicate choices in {choices!r}")
        return choices

    @field_validator("batch_size", "learning_rate", "lr_schedule", "preprocessing", "augment")
    @classmethod
    def _check_top(cls, value: Any, info: ValidationInfo) -> Any:
        knob = TOP_KNOBS[info.field_name or ""]
        try:
            return normalize(knob.default if value is None else value, knob)
        except DimensionError as err:
            raise ValueError(str(err)) from None

    @field_validator(*OPTION_NAMES)
    @classmethod
    def _check_block(cls, block: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if block is None:
            return None
        option = info.field_name or ""
        dimension = OPTION_DIMENSION[option]
        knobs = OWNING_DIMENSIONS[dimension][1][option]
        chosen = info.data.get(dimension)
        if isinstance(chosen, CompressionVariants):
            chosen = chosen.variants
        if chosen is not None and option not in chosen:
            raise ValueError(f"has settings but {option!r} is not in space.{dimension} {chosen!r}")
        for key, value in block.items():
            if key not in knobs:
                known = ", ".join(knobs) or "(none)"
                raise ValueError(f"{key}: unknown knob; {option} knows: {known}")
            try:
                normalize(value, knobs[key])
            except DimensionError as err:
                raise ValueError(f"{key}: {err}") from None
        return block

    def choices(self, dimension: str) -> list[str]:
        """The options a trial draws for an owning dimension (with compression variants:
        ``none``, every trial trains the uncompressed model)."""
        value = getattr(self, dimension)
        return ["none"] if isinstance(value, CompressionVariants) else list(value)

    @property
    def variants(self) -> list[str]:
        """The compressions each trained model is forked into (none without variants)."""
        value = self.compression
        return list(value.variants) if isinstance(value, CompressionVariants) else []

    def option_dimensions(self, option: str) -> dict[str, Any]:
        """The canonical dimensions of one option's knobs: its defaults overridden by the spec."""
        dimension = OPTION_DIMENSION.get(option)
        if dimension is None:
            return {}
        knobs = OWNING_DIMENSIONS[dimension][1][option]
        given = getattr(self, option) or {}
        return {
            name: normalize(given.get(name, knob.default), knob) for name, knob in knobs.items()
        }


class StudySpec(_Strict):
    """A whole study, as written in YAML. Every part but `name` has a documented default.

    ``constraints`` (optional) are conditions over a trial's final metrics and params, such
    as ``"latency_ms <= 0.5"``; a complete trial meeting all of them is *feasible*. They
    steer the sampler (each trial's constraint values, for TPE and NSGA-II) and the
    Client's ``feasible_only`` queries filter by them.
    """

    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    objectives: dict[str, Direction] | None = None
    space: SearchSpace = Field(default_factory=SearchSpace)
    budget: BudgetSpec = BudgetSpec()
    resources: ResourcesSpec = ResourcesSpec()
    validation: ValidationSpec = ValidationSpec()
    sampler: SamplerSpec = SamplerSpec()
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    measure: MeasureSpec = MeasureSpec()
    seed: int = Field(0, ge=0, le=2**32 - 1)  # what numpy's generators accept
    constraints: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(
                f"{value!r} must start with a letter or digit and use only letters, digits, "
                "'.', '_' and '-'"
            )
        return value

    @field_validator("objectives")
    @classmethod
    def _check_objectives(cls, value: dict[str, Direction] | None) -> dict[str, Direction] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty mapping; give at least one metric: direction")
        for metric in value:
            if metric not in METRIC_NAMES:
                raise ValueError(f"{metric!r} is not a metric; known: {', '.join(METRIC_NAMES)}")
        return value

    @field_validator("constraints")
    @classmethod
    def _check_constraints(cls, value: list[str] | None) -> list[str] | None:
        """Each one a condition such as ``latency_ms <= 0.5`` (see ``spaces._expressions``)."""
        for text in value or []:
            try:
                parse_expression(text)
            except ExpressionError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _check_rungs(self) -> StudySpec:
        stopping, epochs = self.early_stopping, self.budget.epochs
        if stopping.method != "none" and stopping.min_epochs >= epochs:
            raise ValueError(
                f"early_stopping.min_epochs: {stopping.min_epochs} leaves no rung below "
                f"budget.epochs {epochs}; lower it or train longer"
            )
        return self

    @model_validator(mode="after")
    def _check_task_metrics(self) -> StudySpec:
        task = self.dataset.inferred_task()
        if self.objectives is None or task is None:
            return self
        for metric in self.objectives:
            if METRICS[metric].task not in (task, None):
                raise ValueError(
                    f"objectives.{metric}: not produced by a {task} task "
                    f"(dataset.source={self.dataset.source!r})"
                )
        return self

    def resolved_objectives(self, task: str | None = None) -> dict[str, Direction]:
        """The objectives, defaulting to quality + train time + latency for the task."""
        if self.objectives is not None:
            return dict(self.objectives)
        task = task or self.dataset.inferred_task() or "classification"
        quality = DEFAULT_QUALITY["regression" if task == "regression" else "classification"]
        return {quality: METRICS[quality].direction} | DEFAULT_COST_OBJECTIVES

    def with_overrides(self, overrides: Overrides | None = None, /, **keywords: Any) -> StudySpec:
        """A copy with a run's `Overrides` applied (``overrides``, and/or the same as
        keywords: ``with_overrides(trials=5)``); None values keep the spec's own.

        Raises:
            SpecError: a keyword that is no override (naming it).
            pydantic.ValidationError: when an override is out of range.
        """
        return StudySpec.model_validate(
            Overrides.of(overrides, **keywords).apply_to(self.model_dump())
        )
