"""The training loop: optimisers, schedules, augmentation and one-epoch steps.

Data lives on the device as whole tensors; batches are index slices of a seeded
permutation (no DataLoader), so per-batch Python overhead is the step itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from paretotune.objectives._context import TrainingDiverged
from paretotune.objectives._measure import compute_clock, sync
from paretotune.objectives._models import Predictor
from paretotune.objectives._slot import NO_SLOT, MeasuringSlot
from torch import nn

# An epoch's training loss this many times the untrained model's validation loss: diverged.
DIVERGED_FACTOR = 100.0


@dataclass(frozen=True)
class TensorFold:
    """One fold's rows as tensors on the training device (raw features)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor


@dataclass(frozen=True)
class Distillation:
    """A trained teacher and the loss mix ``alpha*KL(T)*T^2 + (1-alpha)*task loss``."""

    teacher: Predictor
    temperature: float
    alpha: float


def warm_up() -> None:
    """Import what a process's first trial would otherwise import inside its own clock:
    the first torch optimiser pulls in ``torch._dynamo`` (seconds on a small machine).
    A worker calls it (with `paretotune.objectives.evaluate`'s imports) as it starts."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def make_optimizer(params: Mapping[str, Any], model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The optimiser named by ``params["optimizer"]`` with its own knobs."""
    name, weights = params["optimizer"], model.parameters()
    if name == "sgd":
        momentum = params["sgd.momentum"]
        nesterov = params["sgd.nesterov"] and momentum > 0  # torch rejects nesterov without it
        return torch.optim.SGD(weights, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(weights, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(weights, lr=lr, weight_decay=params["adamw.weight_decay"])
    return torch.optim.RMSprop(
        weights, lr=lr, alpha=params["rmsprop.alpha"], momentum=params["rmsprop.momentum"]
    )


def make_schedule(
    name: str, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``constant`` (none), ``cosine`` over the epochs, or ``step`` (x0.1 every epochs//3)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None


def random_shift(
    x: torch.Tensor, image_shape: tuple[int, int, int], generator: torch.Generator
) -> torch.Tensor:
    """Shift each image of a flat batch by a random -1..1 pixels in each direction (zero fill)."""
    n = x.shape[0]
    c, h, w = image_shape
    padded = F.pad(x.reshape(n, c, h, w), (1, 1, 1, 1))
    offsets = torch.randint(0, 3, (2, n), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device) + offsets[0][:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device) + offsets[1][:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols].reshape(n, -1)


class Trainer:
    """Trains one predictor on one fold, an epoch per :meth:`run_epoch` call.

    ``train_time_s`` accumulates the training steps alone (forward, backward, optimizer
    step, cuda synchronised), ``val_time_s`` the per-epoch validation passes, never the
    caller's callback, both on the compute clock (the trial's own CPU time with one thread
    on CPU, else the wall clock; see `compute_clock`); ``train_wall_s`` the training
    steps on the wall clock.
    """

    def __init__(
        self,
        model: Predictor,
        data: TensorFold,
        params: Mapping[str, Any],
        *,
        epochs: int,
        seed: int,
        lr: float | None = None,
        schedule: str | None = None,
        augment_shape: tuple[int, int, int] | None = None,
        distill: Distillation | None = None,
        slot: MeasuringSlot = NO_SLOT,
    ) -> None:
        self.model, self.data, self.distill = model, data, distill
        self.slot = slot  # shared per batch: no batch runs while a trial times its model
        self.batch_size = params["batch_size"]
        self.optimizer = make_optimizer(params, model, lr or params["learning_rate"])
        self.schedule = make_schedule(schedule or params["lr_schedule"], self.optimizer, epochs)
        self.augment_shape = augment_shape
        self.generator = torch.Generator().manual_seed(seed)
        self.device = data.X_train.device
        self.train_time_s = 0.0
        self.train_wall_s = 0.0
        self.val_time_s = 0.0
        self.regression = model.regression
        # Regression trains on the standardized target; the teacher's output is rescaled alike.
        self.y_train = self._target(data.y_train)
        self.y_val = self._target(data.y_val)
        self.epochs_run = 0
        self.untrained_loss = self.validate()["val_loss"]  # what divergence is judged by

    def _target(self, y: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return ((y - self.model.y_mean) / self.model.y_std).unsqueeze(-1)
        return y

    def _loss(self, out: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        task = F.mse_loss(out, target) if self.regression else F.cross_entropy(out, target)
        if self.distill is None:
            return task
        with torch.no_grad():
            teacher = self.distill.teacher(x)
        t, alpha = self.distill.temperature, self.distill.alpha
        if self.regression:
            soft = F.mse_loss(out, self._target(teacher))
        else:
            soft = F.kl_div(
                F.log_softmax(out / t, dim=-1),
                F.softmax(teacher / t, dim=-1),
                reduction="batchmean",
            ) * (t * t)
        return alpha * soft + (1 - alpha) * task

    def run_epoch(self) -> dict[str, float]:
        """One pass over the training rows, then validation; returns the history entry."""
        _, clock = compute_clock(self.device)
        wall, start = time.perf_counter(), clock()
        self.model.train()
        n = self.data.X_train.shape[0]
        order = torch.randperm(n, generator=self.generator).to(self.device)
        total = torch.zeros((), device=self.device)
        for i in range(0, n, self.batch_size):
            with self.slot.training():
                idx = order[i : i + self.batch_size]
                x = self.data.X_train[idx]
                if self.augment_shape is not None:
                    x = random_shift(x, self.augment_shape, self.generator)
                loss = self._loss(self.model.net_output(x), self.y_train[idx], x)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.detach() * idx.shape[0]
                if self.slot.active:  # the batch's GPU work done inside the slot
                    sync(self.device)
        if self.schedule is not None:
            self.schedule.step()
        sync(self.device)
        trained = clock()
        self.train_time_s += trained - start
        self.train_wall_s += time.perf_counter() - wall
        with self.slot.training():
            entry = {"train_loss": float(total) / n, **self.validate()}
            sync(self.device)
        self.val_time_s += clock() - trained
        self.epochs_run += 1
        self._check_diverged(entry["train_loss"])
        return entry

    def _check_diverged(self, loss: float) -> None:
        """Raise `TrainingDiverged` when the epoch's training loss is not finite or is
        `DIVERGED_FACTOR` times the untrained model's validation loss (a learning rate
        far too high: losses in the millions, and a model at chance that looks fast)."""
        limit = DIVERGED_FACTOR * max(self.untrained_loss, 1e-3)
        if math.isfinite(loss) and loss <= limit:
            return
        raise TrainingDiverged(
            f"training diverged: loss {loss:.3g} after epoch {self.epochs_run} (the untrained "
            f"model's was {self.untrained_loss:.3g}); try a lower learning rate"
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss and accuracy (or MSE in target units) of the current model."""
        self.model.eval()
        out = self.model.net_output(self.data.X_val)
        if self.regression:
            mse = float(F.mse_loss(out, self.y_val))
            return {"val_loss": mse, "val_mse": mse * float(self.model.y_std) ** 2}
        accuracy = float((out.argmax(dim=-1) == self.y_val).float().mean())
        return {"val_loss": float(F.cross_entropy(out, self.y_val)), "val_accuracy": accuracy}
