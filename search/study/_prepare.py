"""Checking a spec against its dataset before any trial, and the trials' shared context."""

from __future__ import annotations

import difflib
import math
from typing import Any

from paretotune.errors import DatasetError, SpecError
from paretotune.objectives._metric_names import Task
from paretotune.spaces import Overrides, StudySpec, format_validation_error, parse_expression
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
    problems += condition_problems(spec, info.task)
    problems += _split_problems(spec, info)
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


def condition_problems(spec: StudySpec, task: Task) -> list[str]:
    """One line per name in ``constraints`` and ``budget.stop_when`` that a built-in
    trial of ``task`` never reports (a typo would mean nothing, silently), and per
    comparison of a number with text or of text with a number."""
    from paretotune.objectives._metric_names import reported_metrics
    from paretotune.objectives._params import DEFAULTS

    metrics = reported_metrics(task)
    known = sorted(metrics | set(DEFAULTS))
    fields = [(f"constraints[{i}]", text) for i, text in enumerate(spec.constraints or [])]
    if spec.budget.stop_when:
        fields.append(("budget.stop_when", spec.budget.stop_when))
    problems = []
    for field, text in fields:
        for comparison in parse_expression(text).comparisons:
            name, value = comparison.name, comparison.value
            if name not in metrics and name not in DEFAULTS:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"{field}: {name!r} in {text!r} is no metric or param of this study{hint}"
                )
                continue
            numeric = name in metrics or not isinstance(DEFAULTS[name], str)
            if numeric and isinstance(value, str):
                problems.append(f"{field}: {name} is a number, compared with the text {value!r}")
            elif not numeric and not isinstance(value, str):
                problems.append(f"{field}: {name} is text, compared with {value!r}")
    return problems


MIN_TRAIN_ROWS = 10  # and 2 a class


def _split_problems(spec: StudySpec, info: Any) -> list[str]:
    """A line when ``validation`` leaves (almost) no rows to train or validate on (the
    sizes scikit-learn's splits give: the held-out share rounded up)."""
    v, rows = spec.validation, info.n_rows
    rest = rows - math.ceil(rows * v.test)
    val = math.ceil(rest / v.kfold) if v.kfold else math.ceil(rest * v.holdout)
    train = rest - val
    needed = max(MIN_TRAIN_ROWS, 2 * (info.n_classes or 0))
    if train >= needed and val >= 1:
        return []
    split = f"test {v.test} then " + (f"kfold {v.kfold}" if v.kfold else f"holdout {v.holdout}")
    return [
        f"validation: {split} leave {max(train, 0)} of the {rows} rows of dataset "
        f"{_dataset_name(spec)} to train on and {max(val, 0)} to validate on "
        f"(at least {needed} and 1 needed)"
    ]


def _dataset_name(spec: StudySpec) -> str:
    return repr(spec.dataset.path or spec.dataset.source)


def _shape_words(info: Any) -> str:
    if info.image_shape:
        return f"images {info.image_shape}"
    return f"tabular, {info.n_features} features, no image or sequence shape"
