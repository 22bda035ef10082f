"""Held trials (MLflow did not take them) are kept as JSON and plain files: a file
planted in the folder is never unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from paretotune.execution import TrialReport
from paretotune.tracking.mlflow.unlogged import HeldTrial, UnloggedTrials

from tests.conftest import Planted


def _report() -> TrialReport:
    return TrialReport(
        number=3,
        metrics={"accuracy": 0.9, "latency_ms": 0.02},
        history=[{"epoch": 1.0, "train_loss": 1.5}],
        artifacts={"confusion_matrix": np.eye(2, dtype=np.int64), "class_labels": [np.int64(0)]},
        model_bytes=b"\x80\x04 model bytes, uploaded as they are",
        input_example=np.ones((2, 4), dtype=np.float32),
        worker_time_s=1.5,
        placement={"node": "n1"},
    )


def test_a_held_trial_comes_back_whole(tmp_path: Path):
    held = UnloggedTrials(tmp_path / "held")
    assert held.keep(HeldTrial(3, "COMPLETE", _report(), {"mlp.width": 32}))
    back = held.get(3)
    assert back is not None and held.numbers() == [3]
    assert (back.state, back.params, back.artifacts_only) == ("COMPLETE", {"mlp.width": 32}, False)
    assert back.report.metrics == {"accuracy": 0.9, "latency_ms": 0.02}
    assert back.report.history == [{"epoch": 1.0, "train_loss": 1.5}]
    assert back.report.artifacts == {"confusion_matrix": [[1, 0], [0, 1]], "class_labels": [0]}
    assert back.report.model_bytes == b"\x80\x04 model bytes, uploaded as they are"
    np.testing.assert_array_equal(back.report.input_example, np.ones((2, 4), np.float32))
    assert (back.report.worker_time_s, back.report.placement) == (1.5, {"node": "n1"})
    held.drop(3)
    assert held.numbers() == [] and not (tmp_path / "held").exists()


def test_a_planted_pickle_is_never_loaded(tmp_path: Path):
    folder = tmp_path / "held"
    folder.mkdir()
    ran = Path("/tmp/paretotune-planted-ran")
    ran.unlink(missing_ok=True)
    (folder / "trial-7.pkl").write_bytes(pickle.dumps(Planted(ran)))  # the old format's name
    (folder / "trial-8.json").write_text('{"report": {"metrics": {}}, "state": "COMPLETE"}')
    (folder / "trial-8.example.npy").write_bytes(pickle.dumps(Planted(ran)))
    held = UnloggedTrials(folder)
    assert held.numbers() == [8]
    assert held.get(7) is None
    assert held.get(8) is not None  # its planted "example" is not read: it says none
    planted = folder / "trial-8.json"
    planted.write_text('{"report": {"metrics": {}}, "state": "COMPLETE", "example": true}')
    assert held.get(8) is None  # an example that is no plain array: the trial is unreadable
    assert not ran.exists(), "nothing planted ran"
