"""Trustworthy objectives: the same configs timed alone and beside a training trial, on
the wall clock (what trials reported before) and on the compute clock (the trial's own
thread CPU time, what ``train_time_s`` and ``latency_ms`` report now).

Five digits configs (MLPs of several sizes, one CNN), torch pinned to 1 thread as in a
trial with ``cpus_per_trial: 1``. Per scenario, each config is trained ``--repeats``
times with ``objectives.evaluate`` (15 epochs: the train-time figures), and one model of
it, trained once beforehand, is timed ``--repeats`` times with the trials' latency
measurement (the latency figures: the same model each time):

- alone: nothing else of ours runs;
- beside: another process trains a digits MLP in a loop, unpinned, as the second worker
  of a 2-worker study does;
- beside, slot: the same, with both in the machine's measuring slot
  (``objectives._slot``, what trials of a study with several workers use now): the
  trainer pauses at its next batch while a model is timed;
- same core: measurer and trainer pinned to CPU 0 (the worst case: time-slicing);
- alone again: last, so drift over the run (and a first scenario's warm-up) shows up.

Reported per config and clock: the CV over repeats within each scenario, and the bias,
median beside (or same core) / median alone. Target (issue 15): latency CV <= 5% alone
and beside.

    .venv/bin/python benchmarks/measurement_trust.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from _common import machine, quiet, save, start_trainers, table

CONFIGS = {
    "mlp-1x32": {"architecture": "mlp", "mlp.depth": 1, "mlp.width": 32},
    "mlp-2x128": {"architecture": "mlp", "mlp.depth": 2, "mlp.width": 128},
    "mlp-3x512": {"architecture": "mlp", "mlp.depth": 3, "mlp.width": 512},
    "mlp-2x64-sgd": {"architecture": "mlp", "mlp.depth": 2, "mlp.width": 64, "optimizer": "sgd"},
    "cnn-1x8": {"architecture": "cnn", "cnn.blocks": 1, "cnn.channels": 8},
}
FIGURES = {  # name -> (metric on the compute clock, metric on the wall clock)
    "train_time_s": ("train_time_s", "train_wall_s"),
    "latency_ms": ("latency_ms", "latency_wall_ms"),
}


def trained(params: dict[str, Any]) -> tuple[Any, Any]:
    """The config's model, trained once (alone), and one validation row."""
    import torch
    from paretotune import objectives

    context = objectives.TrialContext(dataset={"source": "digits"}, epochs=15, num_threads=1)
    outcome = objectives.evaluate(params, context, keep_model=True)
    splits = objectives.load_dataset({"source": "digits"}, 0)
    return outcome.model, torch.as_tensor(splits.folds[-1].X_val[:1])


def measure(
    params: dict[str, Any], model: Any, row: Any, repeats: int, exclusive: bool
) -> list[dict[str, float]]:
    """``repeats`` trainings of the config (train time: each training is a new trial) and
    ``repeats`` latency measurements of one and the same trained model (in the machine's
    measuring slot when ``exclusive``)."""
    from paretotune import objectives
    from paretotune.objectives._measure import latency
    from paretotune.objectives._slot import NO_SLOT, machine_slot

    context = objectives.TrialContext(
        dataset={"source": "digits"}, epochs=15, num_threads=1, exclusive_timing=exclusive
    )
    slot = machine_slot() if exclusive else NO_SLOT
    found = []
    for _ in range(repeats):
        metrics = dict(objectives.evaluate(params, context).metrics)
        with slot.timing():
            metrics |= latency(model, row, context.latency_repeats)  # the same model each time
        found.append(metrics)
    return found


def cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet()
    facts = machine()
    import torch

    torch.set_num_threads(1)
    models = {name: trained(p) for name, p in CONFIGS.items()}
    scenarios: dict[str, dict[str, list[dict[str, float]]]] = {}
    order = (
        ("alone", None),
        ("beside", None),
        ("beside, slot", None),
        ("same core", 0),
        ("alone again", None),
    )
    for scenario, cpu in order:
        exclusive = scenario == "beside, slot"
        trainer = (
            None
            if scenario.startswith("alone")
            else start_trainers(1, [cpu], exclusive=exclusive)[0]
        )
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        try:
            scenarios[scenario] = {
                name: measure(p, *models[name], args.repeats, exclusive)
                for name, p in CONFIGS.items()
            }
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            if trainer is not None:
                trainer.kill()
                trainer.wait()
        print(f"{scenario}: done", flush=True)
    rows = []
    for name in CONFIGS:
        for figure, (compute_key, wall_key) in FIGURES.items():
            for clock, key in (("wall (before)", wall_key), ("compute (now)", compute_key)):
                values = {s: [m[key] for m in runs[name]] for s, runs in scenarios.items()}
                alone = statistics.median(values["alone"])
                rows.append(
                    {
                        "config": name,
                        "figure": figure,
                        "clock": clock,
                        "median_alone": alone,
                        "cv_alone": cv(values["alone"]),
                        "cv_alone_again": cv(values["alone again"]),
                        "bias_alone_again": statistics.median(values["alone again"]) / alone,
                        "cv_beside": cv(values["beside"]),
                        "bias_beside": statistics.median(values["beside"]) / alone,
                        "cv_beside_slot": cv(values["beside, slot"]),
                        "bias_beside_slot": statistics.median(values["beside, slot"]) / alone,
                        "cv_same_core": cv(values["same core"]),
                        "bias_same_core": statistics.median(values["same core"]) / alone,
                    }
                )
    print(table(list(rows[0]), [[_fmt(v) for v in r.values()] for r in rows]))
    summary = {}
    for figure in FIGURES:
        for clock in ("wall (before)", "compute (now)"):
            mine = [r for r in rows if r["figure"] == figure and r["clock"] == clock]
            summary[f"{figure} {clock}"] = {
                k: statistics.median(r[k] for r in mine)
                for k in (
                    "cv_alone",
                    "cv_alone_again",
                    "bias_alone_again",
                    "cv_beside",
                    "bias_beside",
                    "cv_beside_slot",
                    "bias_beside_slot",
                    "cv_same_core",
                    "bias_same_core",
                )
            }
    print(
        table(
            ["figure", *next(iter(summary.values()))],
            [[k, *(_fmt(v) for v in s.values())] for k, s in summary.items()],
        )
    )
    path = save("measurement_trust", {"rows": rows, "summary": summary, "raw": scenarios}, facts)
    print(f"saved {path}")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
