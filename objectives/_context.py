"""What is fixed for a whole study (:class:`TrialContext`) and what one trial returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class StopTraining(Exception):  # noqa: N818 - the name is the public contract
    """Raised by an ``on_epoch`` callback to stop a trial early; ``evaluate`` re-raises it.

    The caller records such a trial as pruned, never as complete with partial values.
    ``epoch`` is the last epoch trained.
    """

    def __init__(self, epoch: int = 0):
        super().__init__(f"stopped after epoch {epoch}")
        self.epoch = epoch


class TrainingDiverged(ValueError):  # noqa: N818 - reads as what happened to the trial
    """The training loss became non-finite or exploded: the trial is a failure, never a
    fast model on the front. The message says when and how far."""


class TrivialModel(ValueError):  # noqa: N818 - reads as what the trial produced
    """The trained model is no better than a trivial predictor (the most frequent class,
    the mean): a failed trial, never a fast model on the front."""


@dataclass(frozen=True)
class TrialContext:
    """The settings shared by every trial of a study (not searched).

    Attributes:
        dataset: ``{"source": "digits"|"wine"|"breast_cancer"|"diabetes"}``,
            ``{"source": "csv", "path": ..., "target": COLUMN}`` or
            ``{"source": "npz", "path": ...}`` (keys ``X`` and ``y``); optional keys
            ``task`` (``"classification"``/``"regression"``) and ``image_shape`` ([C, H, W]).
        epochs: training epochs of every trial.
        seed: seeds the splits, the initialisation and the batch order.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (cuda when available).
        kfold: k-fold cross-validation on the train+val part instead of one holdout.
        val_fraction: share of the train+val part used for validation (holdout only).
        test_fraction: share of all rows held out first, reported as ``test_*`` metrics;
            0 means no test split (and no ``test_*`` metrics).
        latency_repeats: timed single-sample runs behind ``latency_ms`` (median).
        num_threads: torch threads pinned while a trial trains and is timed.
        costs_on_epoch: measure the model's latency and size once, at the first epoch, and
            pass them to ``on_epoch`` with every entry (early stopping ranks by them).
        exclusive_timing: time models in the machine's measuring slot, with no trial of
            this machine training meanwhile (see ``objectives._slot``); for studies that
            run several trials at once.
        variants: compressions each trained model is also forked into (the trial itself
            stays uncompressed); each comes back as a `VariantOutcome`.
    """

    dataset: Mapping[str, Any]
    epochs: int = 15
    seed: int = 0
    device: str = "cpu"
    kfold: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    latency_repeats: int = 30
    num_threads: int = 1
    costs_on_epoch: bool = False
    exclusive_timing: bool = False
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "kfold": self.kfold is None or self.kfold >= 2,
            "val_fraction": 0.0 < self.val_fraction < 1.0,
            "test_fraction": 0.0 <= self.test_fraction < 1.0,
            "latency_repeats": self.latency_repeats >= 1,
            "num_threads": self.num_threads >= 1,
            "device": self.device in ("cpu", "cuda", "auto"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"context.{name}: invalid value {getattr(self, name)!r}")


@dataclass
class TrialOutcome:
    """Everything one evaluated trial produced.

    Attributes:
        metrics: every metric computed, validation metrics under their plain names
            (``accuracy``), test metrics prefixed ``test_``, cost metrics, and for a
            compressed trial the ``*_before_compression`` values.
        history: one dict per training epoch (``train_loss``, ``val_loss``,
            ``val_accuracy`` or ``val_mse``, ``epoch``); the mean over folds with k-fold.
        model: with ``keep_model=True``, the final (compressed) predictor on CPU in eval
            mode; it takes raw flat float32 features ``(n, n_features)`` and returns logits
            ``(n, n_classes)`` or predictions ``(n,)`` in target units.
        artifacts: e.g. ``confusion_matrix`` and ``class_labels`` for classification.
        variants: the trained model forked into each of ``TrialContext.variants`` that
            applies to it, in that order.
    """

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    model: torch.nn.Module | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    variants: list[VariantOutcome] = field(default_factory=list)


@dataclass
class VariantOutcome:
    """One compressed fork of a trial's trained model, measured after compressing as a
    compressed trial is: ``metrics`` (``train_time_s`` is the trial's training plus the
    fork's fine-tune), its model (with ``keep_model``), and ``seconds``, the wall time
    the fork took (compressing, fine-tuning, scoring, measuring)."""

    compression: str
    metrics: dict[str, float]
    model: torch.nn.Module | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
