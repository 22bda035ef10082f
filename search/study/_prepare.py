"""Checking a spec against its dataset before any trial, and the trials' shared context."""

from __future__ import annotations

from typing import Any

from paretotune.errors import DatasetError, SpecError
from paretotune.spaces import Overrides, StudySpec, format_validation_error
from pydantic import ValidationError


def apply_overrides(spec: StudySpec, overrides: Overrides) -> StudySpec:
    """The spec with a run's `Overrides` applied.

    Raises:
        SpecError: an override is out of range (one line per problem, naming the spec
            field: ``budget.trials``).
    """
    try:
        return spec.with_overrides(overrides)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None


def prepare(spec: StudySpec, custom_objective: bool) -> tuple[dict[str, str], Any]:
    """The study's objectives and the built-in objective's context (None for a custom
    objective); checks that the dataset loads and fits the spec.

    Raises:
        SpecError: the dataset cannot be used, an architecture cannot apply to it, or an
            objective is not a metric its task produces.
    """
    if custom_objective:
        if spec.measure.latency_on is not None:
            raise SpecError(
                [
                    "measure.latency_on: times the built-in objective's models; a custom "
                    "objective measures its own latency (remove it or the objective)"
                ]
            )
        return dict(spec.resolved_objectives()), None
    from paretotune import objectives as builtin

    dataset = spec.dataset.model_dump(exclude_none=True)
    try:
        info = builtin.dataset_info(dataset)
    except DatasetError as err:
        raise SpecError([str(err)]) from None
    problems = [
        f"space.architecture: {family!r} cannot apply to dataset {_dataset_name(spec)} "
        f"({_shape_words(info)})"
        for family in spec.space.architecture
        if not info.supports(family)
    ]
    chosen: dict[str, str] = dict(spec.resolved_objectives(info.task))
    produced = builtin.task_metrics(info.task)
    problems += [
        f"objectives.{metric}: not produced by a {info.task} task "
        f"(dataset {_dataset_name(spec)}); it produces: {', '.join(sorted(produced))}"
        for metric in chosen
        if metric not in produced
    ]
    if problems:
        raise SpecError(problems)
    context = builtin.TrialContext(
        dataset=dataset,
        epochs=spec.budget.epochs,
        seed=spec.seed,
        device=spec.resources.device,
        kfold=spec.validation.kfold,
        val_fraction=spec.validation.holdout,
        test_fraction=spec.validation.test,
        num_threads=max(1, int(spec.resources.cpus_per_trial)),
        # early stopping ranks rungs by latency and size too: measure them at epoch 1
        costs_on_epoch=spec.early_stopping.method != "none"
        and bool({"latency_ms", "size_bytes"} & set(chosen)),
        # several trials at once: each times its model while none of the others trains
        exclusive_timing=spec.resources.workers > 1,
        variants=tuple(spec.space.variants),
    )
    return chosen, context


def _dataset_name(spec: StudySpec) -> str:
    return repr(spec.dataset.path or spec.dataset.source)


def _shape_words(info: Any) -> str:
    if info.image_shape:
        return f"images {info.image_shape}"
    return f"tabular, {info.n_features} features, no image or sequence shape"
