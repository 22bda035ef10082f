"""What runs inside a worker: one trial, from params to a report. No storage, no MLflow."""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paretotune.objectives._candidates import FrontHint
    from paretotune.objectives._measure import ServingMeter

UserObjective = Callable[[dict[str, Any]], Mapping[str, float]]
# Called after every epoch of a built-in trial as gate(trial number, epoch, history entry);
# raises `StopTraining` to stop the trial (see `paretotune.stopping.RungGate`).
EpochGate = Callable[[int, int, Mapping[str, float]], None]
EXAMPLE_ROWS = 5  # raw validation rows shipped with a model as its input example


@dataclass(frozen=True)
class TrialTask:
    """One trial to run: its Optuna number and its full flat params; with ``front``, the
    study's front at dispatch (a built-in trial measures its model precisely only if it
    could join it, see `paretotune.objectives.could_join`)."""

    number: int
    params: dict[str, Any]
    front: FrontHint | None = None


@dataclass
class TrialReport:
    """What a worker sends back. ``error`` is set when the trial raised."""

    number: int
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    model_bytes: bytes | None = None
    input_example: Any = None  # a few raw input rows (numpy) the model accepts
    error: str | None = None
    worker_time_s: float = 0.0
    started_at: float = 0.0  # Unix time the worker began the trial (0: unknown)
    stopped_at: int | None = None  # the epoch after which early stopping ended the trial
    # where it ran, for the record: "node" (trained on), "latency_node" (latency measured on)
    placement: dict[str, str] = field(default_factory=dict)
    transient: bool = False  # the worker was lost (its process, its node), not the trial
    # set by the driver as it tells a complete trial (``told``): ``pareto_rank`` 0 when it
    # joined the front then, None when it did not; its run is tagged on or off the front
    # with its results, not in a call of its own later
    pareto_rank: int | None = None
    told: bool = False
    # the trained model's compressed forks (``compression.variants``): (compression, its
    # report, numbered as this one until the driver makes it a trial); their seconds are
    # not in this report's ``worker_time_s``
    variants: list[tuple[str, TrialReport]] = field(default_factory=list)


class TrialRunner:
    """Runs trials in one long-lived process: imports, data and teacher caches stay warm.

    With ``objective=None`` the built-in objective (``objectives.evaluate``) runs with the
    study's ``context``; otherwise the user's callable gets the params and returns metrics.
    ``serving_meter`` measures the models' latency and throughput (default: here).
    """

    def __init__(
        self,
        context: Any = None,
        objective: UserObjective | None = None,
        *,
        keep_models: bool = True,
        num_threads: int | None = None,
        epoch_gate: EpochGate | None = None,
        serving_meter: ServingMeter | None = None,
    ):
        self.context = context
        self.objective = objective
        self.keep_models = keep_models
        self.epoch_gate = epoch_gate
        self.serving_meter = serving_meter
        self._example: Any = None
        if objective is None:
            self._warm_up(num_threads)

    @staticmethod
    def _warm_up(num_threads: int | None) -> None:
        """The built-in objective's imports, done as the worker starts (beside the
        driver's own start-up) rather than on the first trial's clock."""
        import torch
        from paretotune import objectives

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        objectives.evaluate  # noqa: B018 (loads the module: torch, scikit-learn's metrics)
        objectives.warm_up()

    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        """Early stopping for the trials run from now on (None: none)."""
        self.epoch_gate = gate

    def run(self, task: TrialTask) -> TrialReport:
        started = time.perf_counter()
        report = TrialReport(number=task.number, started_at=time.time())
        try:
            if self.objective is not None:
                report.metrics = _as_metrics(self.objective(dict(task.params)))
            else:
                self._run_builtin(task, report)
        except Exception as err:  # a failing trial is data, not a crash
            report.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
        forks = sum(variant.worker_time_s for _, variant in report.variants)
        report.worker_time_s = time.perf_counter() - started - forks
        report.placement = self.placement()
        for _, variant in report.variants:
            variant.placement = report.placement
        return report

    def placement(self) -> dict[str, str]:
        """Where this runner's trials train and are timed (none known here; see
        `RayTrialRunner`)."""
        return {}

    def _run_builtin(self, task: TrialTask, report: TrialReport) -> None:
        from paretotune import objectives

        gate, history = self.epoch_gate, report.history

        def on_epoch(epoch: int, entry: Mapping[str, float]) -> None:
            history.append(dict(entry))
            if gate is not None:
                gate(task.number, epoch, entry)

        precise_if, precise_throughput = None, True
        if task.front is not None and self.serving_meter is None:  # (latency_on: always)
            precise_if = functools.partial(objectives.could_join, task.front)
            precise_throughput = "throughput_sps" in task.front.objectives
        try:
            outcome = objectives.evaluate(
                task.params,
                self.context,
                on_epoch=on_epoch,
                keep_model=self.keep_models,
                serving_meter=self.serving_meter,  # None: here, in the measuring slot
                precise_if=precise_if,
                precise_throughput=precise_throughput,
            )
        except objectives.StopTraining as stop:  # a pruned trial: what it trained, no model
            report.stopped_at = stop.epoch
            report.metrics = {k: v for k, v in history[-1].items() if k != "epoch"}
            return
        report.metrics = _as_metrics(outcome.metrics)
        report.history = [dict(entry) for entry in outcome.history]
        report.artifacts = dict(outcome.artifacts)
        self._keep_model(report, outcome.model)
        for variant in outcome.variants:
            fork = TrialReport(
                number=task.number,
                metrics=_as_metrics(variant.metrics),
                artifacts=dict(variant.artifacts),
                worker_time_s=variant.seconds,
                started_at=report.started_at,
            )
            self._keep_model(fork, variant.model)
            report.variants.append((variant.compression, fork))

    def _keep_model(self, report: TrialReport, model: Any) -> None:
        """The model as its weights and recipe (`objectives.model_to_bytes`), never a pickle."""
        if model is not None:
            from paretotune import objectives

            report.model_bytes = objectives.model_to_bytes(model)
            report.input_example = self._input_example()

    def remeasure(self, models: Mapping[int, bytes]) -> dict[int, dict[str, float]]:
        """Serving costs of each trial's model (its model file's bytes), measured again as a
        trial measures them (here at 1 thread on CPU, or by the study's serving meter). The
        driver calls this when no trial is running, so the figures are taken in isolation."""
        import torch
        from paretotune import objectives
        from paretotune.objectives._measure import pinned_threads

        rows = torch.as_tensor(self._input_example())
        meter, found = self._meter(), {}
        with pinned_threads(1):
            for number, model_bytes in models.items():
                model = objectives.model_from_bytes(model_bytes, f"trial {number}'s model")
                measured = meter(model, rows, self.context.latency_repeats)
                found[number] = {f"{k}_isolated": v for k, v in measured.items()}
        return found

    def _meter(self) -> ServingMeter:
        if self.serving_meter is not None:
            return self.serving_meter
        from paretotune.objectives._measure import serving_costs

        return serving_costs

    def _input_example(self) -> Any:
        """The first validation rows of the study's split, as the dataset gives them."""
        if self._example is None:
            from paretotune import objectives

            c = self.context
            splits = objectives.load_dataset(
                c.dataset,
                c.seed,
                test_fraction=c.test_fraction,
                val_fraction=c.val_fraction,
                kfold=c.kfold,
            )
            self._example = splits.folds[-1].X_val[:EXAMPLE_ROWS].copy()
        return self._example


class ServingProbe:
    """The measuring end of ``measure.latency_on``: a process on the deployment target that
    times the models trials send it, one at a time (1 thread on CPU)."""

    def measure(self, model: Any, rows: Any, repeats: int) -> dict[str, float]:
        """``model`` comes as a Ray argument, on CPU: the cluster's own transport, which
        paretotune trusts as it trusts every trial's params and report."""
        import torch
        from paretotune.objectives._measure import pinned_threads, serving_costs

        with pinned_threads(1):
            return serving_costs(model.eval(), torch.tensor(rows), repeats)


def _as_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise TypeError(f"the objective must return a dict of metrics, got {type(raw).__name__}")
    metrics = {}
    for name, value in raw.items():
        try:
            metrics[str(name)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} is not a number: {value!r}") from None
    return metrics
