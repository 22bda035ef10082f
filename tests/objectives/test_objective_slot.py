"""The measuring slot across real processes: no batch runs while a model is timed, and
trainers that never pause cannot starve a timer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from paretotune.objectives._slot import MeasuringSlot

TRAINER = """
import json, sys, time
from paretotune.objectives._slot import MeasuringSlot
slot, out, until = MeasuringSlot(sys.argv[1]), sys.argv[2], float(sys.argv[3])
batches = []
while time.time() < until:
    with slot.training():  # back to back, as a training loop takes batches
        start = time.time()
        while time.time() - start < 0.002:
            pass
        batches.append((start, time.time()))
json.dump(batches, open(out, "w"))
"""


def test_no_batch_runs_while_a_model_is_timed_and_timers_are_not_starved(tmp_path: Path):
    path = str(tmp_path / "slot")
    until = time.time() + 3.0
    trainers = [
        subprocess.Popen(
            [sys.executable, "-c", TRAINER, path, str(tmp_path / f"t{i}.json"), str(until)]
        )
        for i in range(2)
    ]
    time.sleep(1.0)  # both trainers busy
    slot = MeasuringSlot(path)
    timed, waits = [], []
    for _ in range(5):
        asked = time.time()
        with slot.timing():
            start = time.time()
            time.sleep(0.1)
            timed.append((start, time.time()))
        waits.append(start - asked)
        time.sleep(0.05)
    slot.close()
    for trainer in trainers:
        assert trainer.wait(timeout=30) == 0
    batches = [b for i in range(2) for b in json.loads((tmp_path / f"t{i}.json").read_text())]
    assert len(batches) > 100, "the trainers ran"
    overlapping = [b for b in batches for t in timed if b[0] < t[1] and t[0] < b[1]]
    assert overlapping == [], "a batch ran while a model was timed"
    assert max(waits) < 0.5, f"the timer waited {max(waits):.3f} s for busy trainers"
    between = [b for b in batches if timed[0][1] < b[0] < timed[-1][0]]
    assert between, "trainers went on between timings"


def test_without_a_path_the_slot_does_nothing():
    slot = MeasuringSlot(None)
    with slot.training(), slot.timing():
        pass
    assert not slot.active


def test_a_worker_times_its_trials_models_inside_the_slot():
    """Another process holds the slot for training 3 s: a trial of a multi-worker study
    (``exclusive_timing``) trains beside it, but cannot time its model until it is done."""
    from paretotune.execution import TrialRunner, TrialTask
    from paretotune.objectives import TrialContext
    from paretotune.objectives._slot import machine_slot_path

    holder = """
import sys, time
from paretotune.objectives._slot import MeasuringSlot
with MeasuringSlot(sys.argv[1]).training():
    print("held", flush=True)
    time.sleep(3.0)
"""
    context = TrialContext(
        dataset={"source": "digits"}, epochs=1, latency_repeats=3, exclusive_timing=True
    )
    runner = TrialRunner(context, keep_models=False)
    params = {"architecture": "mlp", "mlp.width": 16, "optimizer": "adam"}
    runner.run(TrialTask(0, params))  # imports and data warm, outside the timed run
    training = subprocess.Popen(
        [sys.executable, "-c", holder, machine_slot_path()], stdout=subprocess.PIPE, text=True
    )
    try:
        assert training.stdout.readline().strip() == "held"
        started = time.monotonic()
        report = runner.run(TrialTask(1, params))
        waited = time.monotonic() - started
    finally:
        training.wait(timeout=30)
    assert report.error is None, report.error
    assert waited > 2.0, f"the model was timed while another trial trained ({waited:.2f} s)"
