"""Model families over the flat, view and the :class:`Predictor` that wraps them.

Every family's network takes preprocessed flat features ``(batch, n_features)`` and
reshapes them itself (image or sequence view), so one training loop serves all families.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from paretotune.objectives._datasets import DatasetInfo
from paretotune.objectives._params import owned
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class Predictor(nn.Module):
    """Raw features in, logits or target-unit predictions out.

    Holds the preprocessing (``(x - shift) / scale``, fitted on the training rows) and, for
    regression, the target scaling as buffers, so a saved predictor is self-contained.
    ``compute_dtype`` is the dtype the network runs in (fp16/bf16 compression).
    """

    shift: torch.Tensor
    scale: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        shift: np.ndarray,
        scale: np.ndarray,
        *,
        regression: bool,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))
        self.regression = regression
        self.compute_dtype = torch.float32

    def net_output(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, or the prediction in standardized target units (shape ``(n, 1)``)."""
        z = ((x - self.shift) / self.scale).to(self.compute_dtype)
        return self.net(z).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net_output(x)
        if self.regression:
            return out.squeeze(-1) * self.y_std + self.y_mean
        return out


class ToImage(nn.Module):
    """Flat rows to ``(batch, C, H, W)``."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class ToSequence(nn.Module):
    """Flat rows to ``(batch, steps, features)``; an image's rows become its steps."""

    def __init__(self, steps: int, features: int, image: tuple[int, int, int] | None) -> None:
        super().__init__()
        self.steps, self.features = steps, features
        self.channels = image[0] if image is not None and image[0] > 1 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.channels > 1:  # (C, H, W) -> (H, C*W)
            x = x.reshape(n, self.channels, self.steps, -1).transpose(1, 2)
        return x.reshape(n, self.steps, self.features)


class RNNNet(nn.Module):
    """LSTM/GRU over the sequence view; the last layer's final hidden state feeds a linear head."""

    rnn: nn.Module  # nn.LSTM / nn.GRU, or their dynamically quantized versions
    head: nn.Module

    def __init__(self, view: ToSequence, rnn: nn.Module, directions: int, head: nn.Linear) -> None:
        super().__init__()
        self.view, self.rnn, self.head = view, rnn, head
        self.directions = directions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, hidden = self.rnn(self.view(x))
        if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
            hidden = hidden[0]
        last = hidden[-self.directions :].transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(last)


class EncoderBlock(nn.Module):
    """Post-norm transformer encoder block (self-attention, then a ReLU feed-forward)."""

    def __init__(self, d_model: int, heads: int, ff_width: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff_width)
        self.ff2 = nn.Linear(ff_width, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, x, x, need_weights=False)[0])
        return self.norm2(x + self.ff2(torch.relu(self.ff1(x))))


class TransformerNet(nn.Module):
    """Linear embedding + learned positions, encoder blocks, mean pooling, linear head."""

    def __init__(
        self, view: ToSequence, d_model: int, heads: int, layers: int, ff_width: int, out: int
    ) -> None:
        super().__init__()
        self.view = view
        self.embed = nn.Linear(view.features, d_model)
        self.pos = nn.Parameter(torch.randn(1, view.steps, d_model) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, heads, ff_width) for _ in range(layers))
        self.head = nn.Linear(d_model, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(self.view(x)) + self.pos.to(x.dtype)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(dim=1))


def build_net(params: Mapping[str, Any], info: DatasetInfo) -> nn.Module:
    """The network of ``params["architecture"]`` for a dataset (its view, body and head).

    Raises:
        ValueError: the family does not apply to the dataset (names both).
    """
    family = params["architecture"]
    info.check_family(family)
    out = info.n_classes if info.task == "classification" else 1
    assert out is not None
    knobs = owned(params, family)
    builder = {"mlp": _mlp, "cnn": _cnn, "rnn": _rnn, "transformer": _transformer}[family]
    return builder(knobs, info, out)


def transformer_width(d_model: int, heads: int) -> int:
    """``d_model`` rounded up to a multiple of ``heads`` (attention needs it to divide)."""
    return math.ceil(d_model / heads) * heads


def _mlp(k: Mapping[str, Any], info: DatasetInfo, out: int) -> nn.Module:
    layers: list[nn.Module] = []
    width_in = info.n_features
    for _ in range(k["depth"]):
        layers += [nn.Linear(width_in, k["width"]), ACTIVATIONS[k["activation"]]()]
        if k["dropout"] > 0:
            layers.append(nn.Dropout(k["dropout"]))
        width_in = k["width"]
    return nn.Sequential(*layers, nn.Linear(width_in, out))


def _cnn(k: Mapping[str, Any], info: DatasetInfo, out: int) -> nn.Module:
    assert info.image_shape is not None
    c, h, w = info.image_shape
    layers: list[nn.Module] = [ToImage(info.image_shape)]
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}.get(k["pooling"])
    size = k["kernel_size"]
    if size % 2 == 0:  # "same" padding needs an odd kernel
        raise ValueError(f"params.cnn.kernel_size: must be odd, got {size}")
    for i in range(k["blocks"]):
        channels = k["channels"] * 2**i  # channels double with each block
        layers += [nn.Conv2d(c, channels, size, padding=size // 2), nn.ReLU()]
        if pool is not None and h >= 2 and w >= 2:  # keep spatial dims >= 1
            layers.append(pool(2))
            h, w = h // 2, w // 2
        c = channels
    layers += [nn.Flatten(), nn.Linear(c * h * w, k["head_width"]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(k["head_width"], out))


def _rnn(k: Mapping[str, Any], info: DatasetInfo, out: int) -> nn.Module:
    assert info.sequence_shape is not None
    steps, features = info.sequence_shape
    cell = nn.LSTM if k["cell"] == "lstm" else nn.GRU
    rnn = cell(
        features,
        k["hidden_size"],
        num_layers=k["layers"],
        batch_first=True,
        bidirectional=k["bidirectional"],
    )
    directions = 2 if k["bidirectional"] else 1
    view = ToSequence(steps, features, info.image_shape)
    return RNNNet(view, rnn, directions, nn.Linear(k["hidden_size"] * directions, out))


def _transformer(k: Mapping[str, Any], info: DatasetInfo, out: int) -> nn.Module:
    assert info.sequence_shape is not None
    view = ToSequence(*info.sequence_shape, info.image_shape)
    d_model = transformer_width(k["d_model"], k["heads"])
    return TransformerNet(view, d_model, k["heads"], k["layers"], k["ff_width"], out)


def fit_scaler(
    X: np.ndarray, method: str, image_shape: tuple[int, int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (per-channel for images) ``shift`` and ``scale`` fitted on training rows.

    ``standardize``: mean and standard deviation; ``minmax``: minimum and range. A constant
    feature gets scale 1. Image channels share one statistic so pixel shifts stay consistent.
    """
    data = X.astype(np.float64)
    if image_shape is not None:
        c = image_shape[0]
        data = data.reshape(len(X), c, -1).transpose(0, 2, 1).reshape(-1, c)
    if method == "standardize":
        shift, scale = data.mean(axis=0), data.std(axis=0)
    else:
        shift, scale = data.min(axis=0), data.max(axis=0) - data.min(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    if image_shape is not None:
        pixels = image_shape[1] * image_shape[2]
        shift, scale = np.repeat(shift, pixels), np.repeat(scale, pixels)
    return shift.astype(np.float32), scale.astype(np.float32)


def build_predictor(
    params: Mapping[str, Any], info: DatasetInfo, X_train: np.ndarray, y_train: np.ndarray
) -> Predictor:
    """A freshly initialised predictor whose scalers are fitted on the training rows."""
    shift, scale = fit_scaler(X_train, params["preprocessing"], info.image_shape)
    regression = info.task == "regression"
    y_mean = float(y_train.mean()) if regression else 0.0
    y_std = float(y_train.std()) if regression else 1.0
    y_std = y_std if y_std > 1e-12 else 1.0
    net = build_net(params, info)
    return Predictor(net, shift, scale, regression=regression, y_mean=y_mean, y_std=y_std)
