"""A trained predictor as a file that holds data only: its weights and the recipe that
rebuilds it.

The file is ``torch.save`` of a dict with three keys: ``format`` (an int), ``recipe`` (a
JSON string: the trial's resolved params, compression included, and the dataset's shape)
and ``state`` (the predictor's ``state_dict``: tensors, int8 packed weights, dtypes). It is
read with ``torch.load(weights_only=True)``, whose unpickler only builds tensors and plain
containers, so a tampered file cannot run code; the architecture is rebuilt from
paretotune's own model code (`build_net`, then the recipe's compression applied to its
shapes) and the weights are loaded into it strictly. Nothing here ever unpickles a module.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from paretotune.errors import ModelFileError, first_line
from paretotune.objectives._compression import prune_structured, quantize_int8
from paretotune.objectives._datasets import DatasetInfo
from paretotune.objectives._models import Predictor, build_net
from paretotune.objectives._params import resolve_params

FORMAT = 1
RECIPE_ATTRIBUTE = "paretotune_recipe"  # set on a kept model by `describe_model`
_FLOAT_STATE_ATTRIBUTE = "paretotune_float_state"  # an int8 model's float weights


def describe_model(
    model: Predictor,
    params: Mapping[str, Any],
    info: DatasetInfo,
    float_source: Predictor | None = None,
) -> Predictor:
    """``model`` (in place) labelled with what rebuilds it: the resolved ``params`` of the
    trial it came from (their ``compression`` is the one applied) and the dataset's shape.

    An int8 model's file keeps the weights of ``float_source``, the float predictor it was
    quantized from: quantizing them again when the file is read gives the same int8 model
    (dynamic quantization is deterministic), and int8 LSTM/GRU weights are TorchScript
    objects ``torch.load(weights_only=True)`` rightly refuses.
    """
    if params["compression"] == "int8_dynamic" and float_source is None:
        raise ValueError("an int8 model is described with the float model it came from")
    recipe = {"params": dict(params), "info": dataclasses.asdict(info)}
    setattr(model, RECIPE_ATTRIBUTE, recipe)
    if float_source is not None:  # a copy: what the file keeps cannot change later
        state = float_source.state_dict()
        copied = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
        copied._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
        setattr(model, _FLOAT_STATE_ATTRIBUTE, copied)
    return model


def model_to_bytes(model: Predictor) -> bytes:
    """The model file's bytes for a predictor `describe_model` labelled."""
    recipe = getattr(model, RECIPE_ATTRIBUTE, None)
    if recipe is None:
        raise ValueError("a model without a recipe cannot be saved as weights (see describe_model)")
    # the state_dict as it is: its ``_metadata`` (module versions) tells layers how to read
    # their weights back; a CUDA tensor is mapped to CPU when it is read
    state = getattr(model, _FLOAT_STATE_ATTRIBUTE, None) or model.state_dict()
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "recipe": json.dumps(recipe), "state": state}, buffer)
    return buffer.getvalue()


def model_from_bytes(data: bytes, source: str) -> Predictor:
    """The predictor a model file holds, rebuilt and in eval mode on CPU.

    Raises:
        ModelFileError: ``source`` (named in the one-line message) is not such a file.
    """
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # untrusted bytes: whatever fails, one line
        raise ModelFileError(
            f"{source}: not a paretotune model file ({_why(err)}); nothing in it was run"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ModelFileError(f"{source}: not a paretotune model file (no format {FORMAT} header)")
    try:
        recipe = json.loads(saved["recipe"])
        _check_fits(recipe, saved["state"])  # before anything is allocated for it
        model = rebuild(recipe)
        model.load_state_dict(saved["state"], strict=True)
        if recipe["params"]["compression"] == "int8_dynamic":
            model = describe_model(quantize_int8(model), recipe["params"], _info(recipe), model)
    except Exception as err:  # a tampered recipe or state: one line, never a traceback
        first = first_line(err)[:200]
        raise ModelFileError(f"{source}: the model file does not rebuild ({first})") from None
    return model.eval()


def load_model_file(path: str | Path) -> Predictor:
    """`model_from_bytes` of a file, named by its path in errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read the model file ({err.strerror})") from None
    return model_from_bytes(data, str(path))


def rebuild(recipe: Mapping[str, Any]) -> Predictor:
    """A predictor with the recipe's architecture, its weights not set yet: int8 models
    come back float (their file keeps the float weights, see `describe_model`).

    Shapes only depend on the recipe: structured pruning keeps ``round(units * (1 -
    amount))`` units whatever the weights; fp16/bf16 change types, not shapes.
    """
    params = resolve_params(recipe["params"])
    info = _info(recipe)
    width = np.zeros(info.n_features, dtype=np.float32)
    net = build_net(params, info)
    model = Predictor(net, width, width + 1, regression=info.task == "regression")
    kind = params["compression"]
    if kind == "prune_structured":
        model = prune_structured(model, params["prune_structured.amount"])
    elif kind in ("fp16", "bf16"):
        dtype = torch.float16 if kind == "fp16" else torch.bfloat16
        model.net.to(dtype)
        model.compute_dtype = dtype
    return describe_model(model, params, info) if kind != "int8_dynamic" else model


def _check_fits(recipe: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """That the recipe's architecture has exactly the file's tensors, by name and shape:
    built on the meta device (nothing allocated, so a tampered recipe claiming a huge
    model costs nothing), after every architecture knob is bounded by the file's own
    tensors (no layer wider than its weights, no more layers than tensors).

    Raises:
        ValueError: they differ, or a knob exceeds what the weights could hold.
    """
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    limit = max([len(state), *(max(t.shape, default=1) for t in tensors.values())])
    family = recipe["params"]["architecture"]  # (the other families' knobs build nothing)
    sizes = {f"params.{k}": v for k, v in recipe["params"].items() if k.startswith(f"{family}.")}
    sizes |= {f"info.{k}": v for k, v in recipe["info"].items() if k in ("n_features", "n_classes")}
    for name, value in sizes.items():
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise ValueError(f"{name} {value} is larger than its weights could hold")
    with torch.device("meta"):
        skeleton = rebuild(recipe)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in tensors.items()}:
        raise ValueError("its weights do not fit the architecture its recipe describes")


def _info(recipe: Mapping[str, Any]) -> DatasetInfo:
    raw = dict(recipe["info"])
    for key in ("image_shape", "sequence_shape"):
        raw[key] = tuple(raw[key]) if raw[key] is not None else None
    return DatasetInfo(**raw)


def _why(err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return "it holds Python objects, not only weights"
    return first_line(err)[:160]
