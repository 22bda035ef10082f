"""A trial's model as a file of weights and a recipe: every family and compression comes
back exactly, and a tampered file is refused with one line, never run."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch
from paretotune.errors import ModelFileError
from paretotune.objectives import COMPRESSIONS, load_model_file, model_from_bytes, model_to_bytes

from tests.conftest import Planted

ROWS = torch.rand(4, 64) * 16  # digits pixels are 0..16
QUICK = {"epochs": 1, "latency_repeats": 1, "keep_model": True}  # exactness needs no training
SMALL = {
    "mlp": {"mlp.width": 32},
    "rnn": {"rnn.hidden_size": 16, "rnn.layers": 2, "rnn.bidirectional": True},
    "transformer": {"transformer.d_model": 16, "transformer.heads": 2, "transformer.ff_width": 32},
}


def _same(model: torch.nn.Module, restored: torch.nn.Module) -> None:
    with torch.no_grad():
        torch.testing.assert_close(restored(ROWS), model(ROWS), rtol=0, atol=0)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_compression_of_a_cnn_comes_back_exactly(compression, run):
    params = {"architecture": "cnn", "cnn.channels": 4, "cnn.head_width": 16}
    outcome = run({**params, "compression": compression}, **QUICK)
    _same(outcome.model, model_from_bytes(model_to_bytes(outcome.model), "m"))


@pytest.mark.parametrize(
    ("family", "compression"),
    [("rnn", "prune_structured"), ("rnn", "int8_dynamic"), ("transformer", "prune_structured"),
     ("transformer", "bf16"), ("mlp", "prune_structured")],
)  # fmt: skip
def test_sequence_families_and_pruned_shapes_come_back_exactly(family, compression, run):
    outcome = run({"architecture": family, **SMALL[family], "compression": compression}, **QUICK)
    data = model_to_bytes(outcome.model)
    restored = model_from_bytes(data, "m")
    _same(outcome.model, restored)
    assert (
        json.loads(torch.load(io.BytesIO(data), weights_only=True)["recipe"])["params"][
            "compression"
        ]
        == compression
    )


def test_a_regression_model_and_a_file_on_disk(run, tmp_path: Path):
    outcome = run({"mlp.width": 8}, {"source": "diabetes"}, epochs=1, keep_model=True)
    (tmp_path / "model.pt").write_bytes(model_to_bytes(outcome.model))
    restored = load_model_file(tmp_path / "model.pt")
    rows = torch.rand(3, 10)
    with torch.no_grad():
        assert restored(rows).shape == (3,)
        torch.testing.assert_close(restored(rows), outcome.model(rows))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path):
    marker = tmp_path / "pwned"
    planted = tmp_path / "model.pt"
    buffer = io.BytesIO()
    torch.save({"format": 1, "recipe": "{}", "state": Planted(marker)}, buffer)
    planted.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError, match=r"model\.pt: not a paretotune model file") as err:
        load_model_file(planted)
    assert "\n" not in str(err.value)
    planted.write_bytes(pickle.dumps(Planted(marker)))  # a bare pickle, torch.load's legacy path
    with pytest.raises(ModelFileError, match="nothing in it was run"):
        load_model_file(planted)
    assert not marker.exists()


def test_a_file_that_is_not_a_model_file_gets_one_line(tmp_path: Path, fast_mlp, run):
    outcome = run(fast_mlp, epochs=1, keep_model=True)
    saved = torch.load(io.BytesIO(model_to_bytes(outcome.model)), weights_only=True)
    cases = {
        "garbage": b"not a model at all",
        "empty": b"",
        "truncated": model_to_bytes(outcome.model)[:200],
        "no header": _saved({"state": saved["state"]}),
        "a tampered recipe": _saved({**saved, "recipe": json.dumps({"params": {"x": 1}})}),
        "a wider model than its weights": _saved(
            {**saved, "recipe": saved["recipe"].replace('"mlp.width": 32', '"mlp.width": 33')}
        ),
        # a few bytes claiming a 10^7-wide network: refused before anything is allocated
        "a huge model claimed": _saved(
            {**saved, "recipe": saved["recipe"].replace('"mlp.width": 32', '"mlp.width": 10000000')}
        ),
        "deeper than its weights": _saved(
            {**saved, "recipe": saved["recipe"].replace('"mlp.depth": 2', '"mlp.depth": 4')}
        ),
    }
    for case, data in cases.items():
        with pytest.raises(ModelFileError) as err:
            model_from_bytes(data, "trial 3's model")
        message = str(err.value)
        assert message.startswith("trial 3's model: ") and "\n" not in message, case
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model_file(Path("/nonexistent/model.pt"))


def _saved(payload: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()
