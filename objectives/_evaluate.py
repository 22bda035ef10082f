"""``evaluate``: train one trial's model, compress it, and measure it.

Order of work: load and split the data (cached), build one model per fold, train all folds
epoch by epoch (so ``on_epoch`` sees the fold mean), measure the uncompressed model,
compress every fold's model (fine-tuning counts as training time), then measure again.
With k-fold the validation metrics are the mean over folds; the final model, the test
metrics and every cost metric come from the last fold's model (no refit).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from paretotune.errors import first_line
from paretotune.objectives._compression import (
    cast_precision,
    prune_structured,
    prune_unstructured,
    quantize_int8,
    weight_sparsity,
)
from paretotune.objectives._context import (
    TrialContext,
    TrialOutcome,
    TrivialModel,
    VariantOutcome,
)
from paretotune.objectives._datasets import DatasetInfo, Fold, Splits, dataset_key, load_dataset
from paretotune.objectives._distill import get_teacher
from paretotune.objectives._measure import (
    THROUGHPUT_BATCH,
    PeakMemory,
    ServingMeter,
    compute_clock,
    count_nonzero_params,
    count_params,
    pinned_threads,
    precise_after_quick,
    quick_serving_costs,
    serialized_size,
    serving_costs,
    serving_memory_mb,
    training_memory_mb,
)
from paretotune.objectives._metrics import (
    classification_scores,
    confusion,
    predict,
    regression_scores,
)
from paretotune.objectives._model_file import describe_model
from paretotune.objectives._models import Predictor, build_predictor, transformer_width
from paretotune.objectives._params import resolve_params
from paretotune.objectives._slot import NO_SLOT, machine_slot
from paretotune.objectives._training import Distillation, TensorFold, Trainer

OnEpoch = Callable[[int, Mapping[str, float]], None]
# Given a trial's metrics with quick serving figures: does it earn a precise measurement?
PreciseIf = Callable[[Mapping[str, float]], bool]
FINETUNE_LR_FACTOR = 0.1  # structured-pruning fine-tune runs at a tenth of the learning rate
_BEFORE = "_before_compression"  # a variant's are its trial's: the uncompressed model


@dataclass
class _FoldRun:
    fold: Fold
    data: TensorFold
    trainer: Trainer
    teacher: Predictor | None = None


def evaluate(
    params: Mapping[str, Any],
    context: TrialContext,
    *,
    on_epoch: OnEpoch | None = None,
    keep_model: bool = False,
    serving_meter: ServingMeter | None = None,
    precise_if: PreciseIf | None = None,
    precise_throughput: bool = True,
) -> TrialOutcome:
    """Train, compress and measure the model described by ``params``.

    Args:
        params: a flat trial config (names of ``spaces._knobs``); absent knobs take
            :data:`objectives.DEFAULTS`.
        context: the study-wide settings.
        on_epoch: called after every training epoch as ``on_epoch(epoch, entry)`` with the
            epoch number (from 1) and its history entry, plus ``train_time_s`` so far and,
            with ``context.costs_on_epoch``, the uncompressed model's ``latency_ms`` and
            ``size_bytes`` (measured once); it may raise :class:`StopTraining`.
        keep_model: return the final predictor in ``TrialOutcome.model``.
        serving_meter: measures ``latency_*`` and ``throughput_sps`` of a model (default:
            here, on the model's device, in the machine's measuring slot with
            ``context.exclusive_timing``); the Ray executor passes one that measures on
            the node ``measure.latency_on`` names.
        precise_if: with it, the final model's serving figures are measured quickly
            first (`quick_serving_costs`, ``latency_precise`` 0) and precisely only when
            ``precise_if(metrics so far)`` is true (the worker passes `could_join` with
            the front at dispatch); without it, always precisely. Both in one hold of
            the measuring slot, so no trainer runs between them. A compressed model's
            ``latency_ms_before_compression`` is then the quick figure. Not with a
            ``serving_meter`` (which measures every model precisely, where it measures).
        precise_throughput: with ``precise_if``, whether the precise measurement also
            re-takes ``throughput_sps`` (the worker asks for it when the study optimises
            throughput); otherwise the quick throughput figure stands.

    Metrics (validation ones are the optimisation targets):
        classification: ``accuracy``, ``f1_macro``, ``precision_macro``, ``recall_macro``,
        ``roc_auc`` (when defined); regression: ``mse``, ``mae``, ``rmse``, ``r2`` in target
        units. Each also as ``test_*`` on the held-out test rows. Costs: ``train_time_s``
        (the training steps and a pruning fine-tune's, no validation; a distillation
        teacher's time is separate as ``teacher_train_time_s``), ``val_time_s`` (the
        per-epoch validation passes), ``latency_ms`` (median at batch 1), ``latency_ms_p90``,
        ``latency_cv``, ``throughput_sps`` (batch 256), ``size_bytes`` (serialized state
        dict; sparse encoding for ``prune_unstructured``), ``n_params``, ``peak_mem_mb``.
        Compression: ``accuracy_before_compression`` (or ``mse_...``),
        ``size_bytes_before_compression``, ``latency_ms_before_compression``,
        ``n_params_before_compression`` (for distill: the teacher's); unstructured pruning
        adds ``sparsity``, ``size_bytes_dense``, ``n_params_nonzero``. With k-fold:
        ``n_folds`` and ``accuracy_std`` (or ``mse_std``).

    Raises:
        StopTraining: re-raised from ``on_epoch``; the trial is to be recorded as pruned.
        DatasetError: the dataset is unusable.
        ValueError: invalid params, a family that does not apply to the dataset, a device
            that is not available, or a compression the model's ops do not support.
    """
    if precise_if is not None and serving_meter is not None:
        raise ValueError("precise_if: not with a serving_meter, which measures every model")
    p = resolve_params(params)
    device = _device(context.device)
    splits = load_dataset(
        context.dataset,
        context.seed,
        test_fraction=context.test_fraction,
        val_fraction=context.val_fraction,
        kfold=context.kfold,
    )
    splits.info.check_family(p["architecture"])
    with pinned_threads(context.num_threads):
        trial = _Trial(p, context, splits, device, serving_meter, precise_if, precise_throughput)
        return trial.run(on_epoch, keep_model)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("context.device: 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(name)


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.array(a), device=device)


def _serving_rows(model: torch.nn.Module, X: np.ndarray) -> torch.Tensor:
    """The rows ``model`` is timed on (a throughput batch's worth, on its device), the
    model put in eval mode."""
    model.eval()
    return _tensor(X[:THROUGHPUT_BATCH], next(model.buffers()).device)


class _Trial:
    """The state of one evaluation (kept in one place to keep the steps small)."""

    def __init__(
        self,
        p: dict[str, Any],
        context: TrialContext,
        splits: Splits,
        device: torch.device,
        serving_meter: ServingMeter | None,
        precise_if: PreciseIf | None = None,
        precise_throughput: bool = True,
    ) -> None:
        self.p, self.context, self.splits, self.device = p, context, splits, device
        self.slot = machine_slot() if context.exclusive_timing else NO_SLOT
        self._meter = serving_meter  # as given (a fork of this trial gets it too)
        self.serving_meter = serving_meter or self._timed_alone
        self.precise_if = precise_if
        self.precise_throughput = precise_throughput
        self.info: DatasetInfo = splits.info
        self.primary = "accuracy" if self.info.task == "classification" else "mse"
        self.compression: str = p["compression"]
        self.notes = _notes(p, self.info)
        self.metrics: dict[str, float] = {}
        self.finetune_s = 0.0  # structured-pruning fine-tuning, counted as training time
        self.n_params_float: int | None = None  # parameter count before int8 quantization
        self.artifacts: dict[str, Any] = {"notes": self.notes}

    def run(self, on_epoch: OnEpoch | None, keep_model: bool) -> TrialOutcome:
        runs = [self._fold_run(i, fold) for i, fold in enumerate(self.splits.folds)]
        history: list[dict[str, float]] = []
        early_costs: dict[str, float] = {}
        with PeakMemory(self.device) as memory:
            for epoch in range(1, self.context.epochs + 1):
                entries = [run.trainer.run_epoch() for run in runs]
                entry = {**_mean(entries), "epoch": float(epoch)}
                history.append(entry)
                if on_epoch is not None:
                    if self.context.costs_on_epoch and not early_costs:
                        early_costs = self._early_costs(runs[-1])
                    trained_s = sum(run.trainer.train_time_s for run in runs)
                    on_epoch(epoch, entry | {"train_time_s": trained_s} | early_costs)
            before = self._before(runs)
            models = [self._compress(i, run) for i, run in enumerate(runs)]
        last = runs[-1]
        batch = last.data.X_train[: last.trainer.batch_size]
        counted = training_memory_mb(
            last.trainer.model, last.trainer.optimizer, batch, last.trainer.model.net_output
        )
        peak_mb = memory.peak_mb if self.device.type == "cuda" else counted
        self._measure(runs, models, history, peak_mb)
        self.metrics.update(before)
        outcome = TrialOutcome(self.metrics, history, None, self.artifacts)
        for kind in self.context.variants:  # (before the final model leaves the device)
            variant = self._fork(kind, runs, history, peak_mb, keep_model)
            if variant is not None:
                outcome.variants.append(variant)
        outcome.model = self._kept(models[-1], last) if keep_model else None
        return outcome

    def _kept(self, model: torch.nn.Module, run: _FoldRun) -> torch.nn.Module:
        """The final model as a trial returns it: on CPU, in eval mode, labelled with the
        recipe that rebuilds it from its weights alone (`describe_model`; an int8 model's
        float source is ``run``'s trained model)."""
        assert isinstance(model, Predictor)
        source = run.trainer.model if self.compression == "int8_dynamic" else None
        return describe_model(model.cpu().eval(), self.p, self.info, source)

    def _measure(
        self,
        runs: list[_FoldRun],
        models: list[torch.nn.Module],
        history: list[dict[str, float]],
        peak_mb: float,
    ) -> None:
        """The metrics of the trained and compressed ``models``, one per fold."""
        self.metrics["peak_mem_mb"] = peak_mb
        trained = sum(run.trainer.train_time_s for run in runs)
        self.metrics["train_time_s"] = trained + self.finetune_s
        self.metrics["train_wall_s"] = sum(run.trainer.train_wall_s for run in runs)
        self.metrics["val_time_s"] = sum(run.trainer.val_time_s for run in runs)
        self.artifacts["time_clock"] = compute_clock(self.device)[0]
        self._score_folds(runs, models)
        self._check_beats_trivial(runs, history)
        self._score_final(runs[-1], models[-1])

    def _fork(
        self,
        kind: str,
        runs: list[_FoldRun],
        history: list[dict[str, float]],
        peak_mb: float,
        keep_model: bool,
    ) -> VariantOutcome | None:
        """The trained (uncompressed) models of ``runs``, copied and compressed as
        ``kind``, measured as a trial compressed so is measured; None, with a note on the
        trial, when ``kind`` does not apply to this model (an op without a kernel in that
        dtype, a fork no better than a trivial predictor)."""
        started = time.perf_counter()
        params = {**self.p, "compression": kind}
        fork = _Trial(
            params,
            self.context,
            self.splits,
            self.device,
            self._meter,
            self.precise_if,
            self.precise_throughput,
        )
        copies = [_copied(run) for run in runs]
        try:
            models = [fork._compress(i, run) for i, run in enumerate(copies)]
            fork._measure(copies, models, history, peak_mb)
        except ValueError as err:  # (TrivialModel is one)
            self.notes.append(f"variant {kind} skipped: {first_line(err)}")
            return None
        fork.metrics |= {k: v for k, v in self.metrics.items() if k.endswith(_BEFORE)}
        model = fork._kept(models[-1], copies[-1]) if keep_model else None
        seconds = time.perf_counter() - started
        return VariantOutcome(kind, fork.metrics, model, fork.artifacts, seconds)

    def _early_costs(self, run: _FoldRun) -> dict[str, float]:
        """Latency and size of the model as it trains (uncompressed), measured once for the
        per-epoch callback: they depend on the architecture, not on the epoch."""
        costs = self._costs(run.trainer.model, run.fold.X_val, sparse=False)
        run.trainer.model.train()
        return {k: costs[k] for k in ("latency_ms", "size_bytes")}

    def _timed_alone(
        self, model: torch.nn.Module, rows: torch.Tensor, repeats: int
    ) -> dict[str, float]:
        with self.slot.timing():
            return serving_costs(model, rows, repeats)

    def _timed_quickly(self, model: torch.nn.Module, rows: torch.Tensor) -> dict[str, float]:
        with self.slot.timing():
            return quick_serving_costs(model, rows)

    def _fold_run(self, index: int, fold: Fold) -> _FoldRun:
        data = TensorFold(
            _tensor(fold.X_train, self.device),
            _tensor(fold.y_train, self.device),
            _tensor(fold.X_val, self.device),
            _tensor(fold.y_val, self.device),
        )
        seed = self.context.seed + index
        teacher, distill = None, None
        if self.compression == "distill":
            teacher, seconds = get_teacher(
                self._teacher_key(index),
                self.p["architecture"],
                self.info,
                fold,
                data,
                epochs=self.context.epochs,
                seed=seed,
            )
            self.metrics["teacher_train_time_s"] = (
                self.metrics.get("teacher_train_time_s", 0.0) + seconds
            )
            distill = Distillation(teacher, self.p["distill.temperature"], self.p["distill.alpha"])
        torch.manual_seed(seed)  # after the teacher, so a cached teacher changes nothing
        model = build_predictor(self.p, self.info, fold.X_train, fold.y_train).to(self.device)
        augment = self.info.image_shape if self.p["augment"] else None
        trainer = Trainer(
            model,
            data,
            self.p,
            epochs=self.context.epochs,
            seed=seed,
            augment_shape=augment,
            distill=distill,
            slot=self.slot,
        )
        return _FoldRun(fold, data, trainer, teacher)

    def _teacher_key(self, index: int) -> tuple[Any, ...]:
        c = self.context
        split = (c.test_fraction, c.val_fraction, c.kfold, index)
        family = self.p["architecture"]
        return (dataset_key(c.dataset), split, family, c.epochs, c.seed, self.device.type)

    def _before(self, runs: list[_FoldRun]) -> dict[str, float]:
        """The ``*_before_compression`` metrics: the trained model (or, for distill, the
        teacher) before any compression; cost metrics from the last fold."""
        if self.compression == "none":
            return {}
        reference = [run.teacher if run.teacher is not None else run.trainer.model for run in runs]
        scores = [
            self._scores(m, run.fold.X_val, run.fold.y_val)[0]
            for m, run in zip(reference, runs, strict=True)
        ]
        last = reference[-1]
        cost = self._costs(
            last, runs[-1].fold.X_val, sparse=False, quick=self.precise_if is not None
        )
        return {
            f"{self.primary}_before_compression": statistics.fmean(s[self.primary] for s in scores),
            "latency_ms_before_compression": cost["latency_ms"],
            "size_bytes_before_compression": cost["size_bytes"],
            "n_params_before_compression": float(count_params(last)),
        }

    def _compress(self, index: int, run: _FoldRun) -> torch.nn.Module:
        model = run.trainer.model.eval()
        kind, p = self.compression, self.p
        if kind == "int8_dynamic":
            self.n_params_float = count_params(model)  # int8 keeps the count, not the bytes
            return quantize_int8(model)
        if kind in ("fp16", "bf16"):
            dtype = torch.float16 if kind == "fp16" else torch.bfloat16
            return cast_precision(model, dtype, run.data.X_val[:2])
        if kind == "prune_unstructured":
            return prune_unstructured(model, p["prune_unstructured.sparsity"])
        if kind == "prune_structured":
            model = prune_structured(model, p["prune_structured.amount"])
            epochs = p["prune_structured.finetune_epochs"]
            if epochs > 0:
                trainer = Trainer(
                    model,
                    run.data,
                    p,
                    epochs=epochs,
                    seed=self.context.seed + index + 1,
                    lr=p["learning_rate"] * FINETUNE_LR_FACTOR,
                    schedule="constant",
                    augment_shape=run.trainer.augment_shape,
                    slot=self.slot,
                )
                entries = [trainer.run_epoch() for _ in range(epochs)]
                self.artifacts.setdefault("finetune_history", []).append(entries)
                self.finetune_s += trainer.train_time_s
        return model.eval()

    def _scores(
        self, model: torch.nn.Module, X: np.ndarray, y: np.ndarray
    ) -> tuple[dict[str, float], np.ndarray]:
        device = next(model.buffers()).device
        out = predict(model, _tensor(X, device))
        if self.info.task == "classification":
            assert self.info.n_classes is not None
            return classification_scores(y, out, self.info.n_classes), out
        return regression_scores(y, out), out

    def _costs(
        self, model: torch.nn.Module, X: np.ndarray, *, sparse: bool, quick: bool = False
    ) -> dict[str, float]:
        serving = self._serving(model, X, quick=quick)
        return serving | {"size_bytes": float(serialized_size(model, sparse=sparse))}

    def _serving(self, model: torch.nn.Module, X: np.ndarray, *, quick: bool) -> dict[str, float]:
        """Latency and throughput: precisely (`serving_meter`) or quickly."""
        rows = _serving_rows(model, X)
        if quick:
            return self._timed_quickly(model, rows)
        return self.serving_meter(model, rows, self.context.latency_repeats)

    def _final_serving(self, model: torch.nn.Module, X: np.ndarray) -> dict[str, float]:
        """The final model's latency and throughput: precisely, or with ``precise_if``
        quickly and then, if ``precise_if`` holds for the metrics so far, precisely, in
        one hold of the measuring slot (the quick rounds warmed the model up)."""
        if self.precise_if is None:
            return self._serving(model, X, quick=False)
        rows = _serving_rows(model, X)
        with self.slot.timing():
            quick = quick_serving_costs(model, rows)
            if not self.precise_if(self.metrics | quick):
                return quick
            repeats = self.context.latency_repeats
            return quick | precise_after_quick(
                model, rows, repeats, throughput_too=self.precise_throughput
            )

    def _score_folds(self, runs: list[_FoldRun], models: list[torch.nn.Module]) -> None:
        """Validation metrics (the optimisation targets): mean over folds."""
        per_fold, matrices = [], []
        for run, model in zip(runs, models, strict=True):
            scores, out = self._scores(model, run.fold.X_val, run.fold.y_val)
            per_fold.append(scores)
            if self.info.n_classes is not None:
                matrices.append(confusion(run.fold.y_val, out, self.info.n_classes))
        self.metrics.update(_mean(per_fold))
        if len(per_fold) > 1:
            self.metrics["n_folds"] = float(len(per_fold))
            self.metrics[f"{self.primary}_std"] = statistics.pstdev(
                s[self.primary] for s in per_fold
            )
        if matrices:
            self.artifacts["confusion_matrix"] = np.sum(matrices, axis=0).tolist()
            self.artifacts["class_labels"] = list(self.splits.class_labels or ())

    def _check_beats_trivial(self, runs: list[_FoldRun], history: list[dict[str, float]]) -> None:
        """Raise `TrivialModel` when the training went nowhere: the validation quality is
        no better than a trivial predictor's (the most frequent training class, or the
        training mean for regression, averaged over folds alike) and the training loss
        never fell below the untrained model's. Such a model (a learning rate far off) is
        fast and small, and would otherwise sit on the front. A slow learner, still at the
        trivial score after a short training but whose loss falls, is kept."""
        trivial = statistics.fmean(_trivial_score(run.fold, self.primary) for run in runs)
        score = self.metrics[self.primary]
        better = score > trivial if self.primary == "accuracy" else score < trivial
        untrained = statistics.fmean(run.trainer.untrained_loss for run in runs)
        best_loss = min(entry["train_loss"] for entry in history)
        if better or best_loss < untrained:
            return
        baseline = "the most frequent class" if self.primary == "accuracy" else "the mean"
        raise TrivialModel(
            f"no better than a trivial predictor: {self.primary} {score:.4g} against "
            f"{trivial:.4g} for always predicting {baseline}, and the training loss never "
            f"fell below the untrained model's ({best_loss:.3g} >= {untrained:.3g}); is the "
            "learning rate far off?"
        )

    def _score_final(self, run: _FoldRun, model: torch.nn.Module) -> None:
        """Test metrics and cost metrics of the final (last fold's, compressed) model."""
        if len(self.splits.y_test):
            scores, out = self._scores(model, self.splits.X_test, self.splits.y_test)
            self.metrics.update({f"test_{k}": v for k, v in scores.items()})
            if self.info.n_classes is not None:
                matrix = confusion(self.splits.y_test, out, self.info.n_classes)
                self.artifacts["test_confusion_matrix"] = matrix.tolist()
        sparse = self.compression == "prune_unstructured"
        self.metrics["size_bytes"] = float(serialized_size(model, sparse=sparse))
        self.metrics.update(self._final_serving(model, run.fold.X_val))
        row = _tensor(run.fold.X_val[:1], next(model.buffers()).device)
        self.metrics["serve_mem_mb"] = serving_memory_mb(
            model, row, weights_bytes=int(self.metrics["size_bytes"])
        )
        n_params = self.n_params_float if self.n_params_float is not None else count_params(model)
        self.metrics["n_params"] = float(n_params)
        if sparse:
            self.metrics["size_bytes_dense"] = float(serialized_size(model))
            self.metrics["sparsity"] = weight_sparsity(model)
            self.metrics["n_params_nonzero"] = float(count_nonzero_params(model))
        self.artifacts["latency_device"] = next(model.buffers()).device.type
        if self.compression == "none":
            self.metrics[f"{self.primary}_before_compression"] = self.metrics[self.primary]
            for name in ("latency_ms", "size_bytes", "n_params"):
                self.metrics[f"{name}_before_compression"] = self.metrics[name]


def _copied(run: _FoldRun) -> _FoldRun:
    """``run`` with a copy of its trained model, to compress without touching it."""
    trainer = copy.copy(run.trainer)
    trainer.model = copy.deepcopy(run.trainer.model)
    return _FoldRun(run.fold, run.data, trainer, run.teacher)


def _trivial_score(fold: Fold, primary: str) -> float:
    """The validation accuracy of always predicting the most frequent training class, or
    the validation MSE of always predicting the training mean."""
    if primary == "accuracy":
        majority = np.bincount(fold.y_train).argmax()
        return float(np.mean(fold.y_val == majority))
    return float(np.mean((fold.y_val - fold.y_train.mean()) ** 2))


def _mean(entries: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over dicts (keys missing from some entries average over the rest)."""
    keys = dict.fromkeys(k for e in entries for k in e)
    return {k: statistics.fmean(e[k] for e in entries if k in e) for k in keys}


def _notes(p: Mapping[str, Any], info: DatasetInfo) -> list[str]:
    """Human-readable adjustments made to the requested config."""
    notes = []
    if p["optimizer"] == "sgd" and p["sgd.nesterov"] and p["sgd.momentum"] == 0:
        notes.append("sgd.nesterov ignored: it needs momentum > 0")
    if p["augment"] and info.image_shape is None:
        notes.append("augment ignored: the dataset has no image shape")
    if p["architecture"] == "transformer":
        d, heads = p["transformer.d_model"], p["transformer.heads"]
        if transformer_width(d, heads) != d:
            notes.append(
                f"transformer.d_model rounded up from {d} to {transformer_width(d, heads)} "
                f"(a multiple of transformer.heads={heads})"
            )
    return notes
