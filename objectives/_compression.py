"""Post-training compression: int8 dynamic quantization, fp16/bf16, structured and
unstructured pruning. Distillation lives in ``_distill`` (it changes training instead).

What each option really changes:

* ``int8_dynamic``: ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``,
  ``nn.LSTM`` and ``nn.GRU`` (int8 weights, activations quantized per call). It is
  CPU-only, so the model moves to CPU and is timed there. torch 2.13 warns that
  ``torch.ao.quantization`` is deprecated in favour of ``torchao``; ``torchao`` is not a
  dependency and the eager API still works, so the warning is silenced here only.
* ``fp16`` / ``bf16``: the network's weights and its inputs are cast; outputs come back as
  float32. An op the device cannot run in that dtype raises ``ValueError``.
* ``prune_structured``: whole units are removed by L1-norm ranking and smaller layers are
  built with the kept weights, so size and latency really shrink: hidden neurons of MLP
  layers, output channels of every conv and the CNN head's hidden units, RNN hidden units
  (every layer, both directions, gates kept consistent), and the feed-forward width of each
  transformer block (attention and ``d_model`` are kept).
* ``prune_unstructured``: global L1 magnitude pruning of every weight matrix
  (``torch.nn.utils.prune`` then ``prune.remove``). Zeros do not speed dense kernels up:
  only ``size_bytes`` (sparse CSR storage) benefits.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, TypeVar, cast

import torch
import torch.nn.utils.prune as prune
from paretotune.errors import first_line
from paretotune.objectives._models import EncoderBlock, Predictor, RNNNet, TransformerNet
from torch import nn

_Layer = TypeVar("_Layer", nn.Linear, nn.Conv2d)


def quantize_int8(model: Predictor) -> Predictor:
    """A CPU copy of ``model`` with dynamically quantized int8 Linear/LSTM/GRU layers."""
    from torch.ao.quantization import quantize_dynamic

    source = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = quantize_dynamic(source, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)
    return quantized


def cast_precision(model: Predictor, dtype: torch.dtype, sample: torch.Tensor) -> Predictor:
    """Run the network in ``dtype`` (in place); check that a forward pass works.

    Raises:
        ValueError: the device has no kernel for an op of this model in ``dtype``.
    """
    model.net.to(dtype)
    model.compute_dtype = dtype
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    except (RuntimeError, NotImplementedError) as err:
        name = str(dtype).removeprefix("torch.")
        first = first_line(err)
        raise ValueError(
            f"compression: {name} is not supported for this model on {sample.device.type} ({first})"
        ) from err
    return model


def prune_unstructured(model: Predictor, sparsity: float) -> Predictor:
    """Zero the ``sparsity`` share of smallest-magnitude weights across all weight matrices."""
    targets = [
        (module, name)
        for module in model.net.modules()
        for name, p in module.named_parameters(recurse=False)
        if "weight" in name and p.dim() >= 2
    ]
    if sparsity > 0 and targets:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
        for module, name in targets:
            prune.remove(module, name)
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Share of exactly-zero entries over all weight matrices (2+ dims)."""
    weights = [p for n, p in model.named_parameters() if "weight" in n and p.dim() >= 2]
    total = sum(p.numel() for p in weights)
    zeros = sum(int((p == 0).sum()) for p in weights)
    return zeros / total if total else 0.0


def prune_structured(model: Predictor, amount: float) -> Predictor:
    """Rebuild ``model.net`` with the ``amount`` share of its prunable units removed (in place)."""
    net = model.net
    if isinstance(net, nn.Sequential):
        model.net = _prune_chain(net, amount)
    elif isinstance(net, RNNNet):
        _prune_rnn(net, amount)
    elif isinstance(net, TransformerNet):
        for block in net.blocks:
            assert isinstance(block, EncoderBlock)
            keep = _keep(block.ff1.weight, amount)
            block.ff1 = _sliced(block.ff1, out_idx=keep)
            block.ff2 = _sliced(block.ff2, in_idx=keep)
    else:
        raise ValueError(f"compression: prune_structured does not know {type(net).__name__}")
    return model


def _keep(weight: torch.Tensor, amount: float, groups: int = 1) -> torch.Tensor:
    """Sorted indices of the units to keep, ranked by the L1 norm of their weights.

    ``groups`` > 1 sums the norms of a unit's rows in stacked gate blocks (RNN gates).
    """
    units = weight.shape[0] // groups
    scores = weight.detach().abs().reshape(groups, units, -1).sum(dim=(0, 2))
    k = max(1, round(units * (1 - amount)))
    return torch.sort(torch.topk(scores, k).indices).values


def _sliced(
    layer: _Layer, *, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None
) -> _Layer:
    """A copy of a Linear/Conv2d holding only the given output rows and input columns."""
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    if out_idx is not None:
        weight = weight[out_idx]
        bias = bias[out_idx] if bias is not None else None
    if in_idx is not None:
        weight = weight[:, in_idx]
    new = copy.deepcopy(layer)
    new.weight = nn.Parameter(weight.clone())
    new.bias = nn.Parameter(bias.clone()) if bias is not None else None
    if isinstance(new, nn.Conv2d):
        new.out_channels, new.in_channels = weight.shape[0], weight.shape[1]
    else:
        new.out_features, new.in_features = weight.shape[0], weight.shape[1]
    return new


def _prune_chain(seq: nn.Sequential, amount: float) -> nn.Sequential:
    """Prune every Linear/Conv2d's outputs except the last layer's, fixing the next inputs."""
    layers: list[Any] = list(seq)
    prunable = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear | nn.Conv2d)]
    for a, b in zip(prunable, prunable[1:], strict=False):
        first, second = layers[a], layers[b]
        keep = _keep(first.weight, amount)
        layers[a] = _sliced(first, out_idx=keep)
        cols = keep
        if isinstance(first, nn.Conv2d) and isinstance(second, nn.Linear):
            per_channel = second.in_features // first.out_channels  # flattened H*W per channel
            offsets = torch.arange(per_channel, device=keep.device)
            cols = (keep[:, None] * per_channel + offsets).reshape(-1)
        layers[b] = _sliced(second, in_idx=cols)
    return nn.Sequential(*layers)


def _prune_rnn(net: RNNNet, amount: float) -> None:
    """Remove hidden units of every LSTM/GRU layer (both directions share the kept set)."""
    rnn = net.rnn
    assert isinstance(rnn, nn.LSTM | nn.GRU)
    reference = cast(torch.Tensor, rnn.weight_hh_l0)
    gates = 4 if isinstance(rnn, nn.LSTM) else 3
    hidden, dirs = rnn.hidden_size, net.directions
    suffixes = ["", "_reverse"][:dirs]
    keeps: list[torch.Tensor] = []
    for layer in range(rnn.num_layers):
        row_norms = sum(
            getattr(rnn, f"weight_{kind}_l{layer}{s}").detach().abs().sum(dim=1)
            for kind in ("ih", "hh")
            for s in suffixes
        )
        keeps.append(_keep(row_norms[:, None], amount, groups=gates))
    k = len(keeps[0])
    new = type(rnn)(
        rnn.input_size,
        k,
        num_layers=rnn.num_layers,
        batch_first=True,
        bidirectional=dirs == 2,
    ).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        for layer, keep in enumerate(keeps):
            rows = torch.cat([g * hidden + keep for g in range(gates)])
            in_cols = None if layer == 0 else _direction_cols(keeps[layer - 1], hidden, dirs)
            for s in suffixes:
                w_ih = getattr(rnn, f"weight_ih_l{layer}{s}")[rows]
                getattr(new, f"weight_ih_l{layer}{s}").copy_(
                    w_ih if in_cols is None else w_ih[:, in_cols]
                )
                getattr(new, f"weight_hh_l{layer}{s}").copy_(
                    getattr(rnn, f"weight_hh_l{layer}{s}")[rows][:, keep]
                )
                for kind in ("ih", "hh"):
                    getattr(new, f"bias_{kind}_l{layer}{s}").copy_(
                        getattr(rnn, f"bias_{kind}_l{layer}{s}")[rows]
                    )
    net.rnn = new
    net.head = _sliced(cast(nn.Linear, net.head), in_idx=_direction_cols(keeps[-1], hidden, dirs))


def _direction_cols(keep: torch.Tensor, hidden: int, dirs: int) -> torch.Tensor:
    """Columns of a (directions x hidden) concatenated output that belong to kept units."""
    return torch.cat([d * hidden + keep for d in range(dirs)])
