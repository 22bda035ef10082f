"""Latency noise: one trained model timed 10 times with the project's latency measurement,
alone and while other trials train beside it.

The model is a digits MLP trained once with ``objectives.evaluate(..., keep_model=True)``.
Each measurement is exactly what a trial reports as ``latency_ms``:
``objectives._measure.latency(model, row, repeats=TrialContext.latency_repeats)`` (5
warm-up calls, then the median of 30 timed batch-1 calls) with torch pinned to 1 thread,
as a trial with ``cpus_per_trial: 1`` is. The spread is over the 10 measurements: median
and coefficient of variation (std / mean).

Scenarios:
- alone: nothing else of ours runs;
- 1 trainer: another process trains digits models in a loop (``objectives.evaluate``),
  as a second worker does on the other core;
- 1 trainer, pinned: the same, with the measurer on CPU 0 and the trainer on CPU 1
  (``os.sched_setaffinity``): the effect of an exclusive core;
- 2 trainers: both cores busy with training (workers = cores), the measurer oversubscribed;
- 1 trainer on the same core: measurer and trainer pinned to CPU 0 (time-slicing);
- alone, again: repeated last, so drift from load outside this script shows up.

The load average is recorded with the results: other processes on the machine are a
contention this script does not control.

Each measurement is preceded by the same measurement of a fixed reference model (a seeded
untrained 64-128-10 MLP); the last column is the CV of latency / reference latency: it
shows whether calibrating against a yardstick timed in the same window removes the
machine-speed swings that the median of 30 calls cannot.

Target: CV <= 10% alone.

Usage: .venv/bin/python benchmarks/latency_noise.py [--measurements 10] [--width 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from _common import machine, quiet, save, start_trainers, table


def train_model(width: int, depth: int) -> tuple[Any, Any, dict[str, float], int]:
    import numpy as np
    import torch
    from paretotune import objectives

    context = objectives.TrialContext(dataset={"source": "digits"}, epochs=5, num_threads=1)
    params = {"architecture": "mlp", "mlp.depth": depth, "mlp.width": width}
    outcome = objectives.evaluate(params, context, keep_model=True)
    splits = objectives.load_dataset(
        {"source": "digits"},
        context.seed,
        test_fraction=context.test_fraction,
        val_fraction=context.val_fraction,
    )
    row = torch.as_tensor(np.asarray(splits.folds[0].X_val[:1], dtype=np.float32))
    return outcome.model, row, outcome.metrics, context.latency_repeats


def reference_model(width: int = 128) -> Any:
    """A fixed, seeded, untrained MLP: the yardstick timed right before each measurement."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    ).eval()


def measure(
    model: Any, row: Any, repeats: int, n: int, reference: Any = None
) -> tuple[list[float], list[float], list[float]]:
    """``n`` latency measurements; with ``reference``, each one divided by the reference
    model's latency measured just before it (a calibration against machine speed)."""
    from paretotune.objectives._measure import latency, pinned_threads

    medians, inner_cv, ratios = [], [], []
    with pinned_threads(1):
        for _ in range(n):
            ref = latency(reference, row, repeats)["latency_ms"] if reference else None
            result = latency(model, row, repeats)
            medians.append(result["latency_ms"])
            inner_cv.append(result["latency_cv"])
            if ref:
                ratios.append(result["latency_ms"] / ref)
    return medians, inner_cv, ratios


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=10)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    quiet()
    facts = machine()
    model, row, metrics, repeats = train_model(args.width, args.depth)
    n_cpus = len(os.sched_getaffinity(0))
    everyone = set(os.sched_getaffinity(0))
    scenarios: list[tuple[str, int, list[int | None], set[int] | None]] = [
        ("alone", 0, [], None),
        ("1 trainer on the other core (unpinned)", 1, [None], None),
    ]
    if n_cpus >= 2:
        scenarios.append(("1 trainer, measurer pinned to CPU 0, trainer to CPU 1", 1, [1], {0}))
    scenarios.append((f"{n_cpus} trainers (every core busy)", n_cpus, [None] * n_cpus, None))
    scenarios.append(("1 trainer on the SAME core (both pinned to CPU 0)", 1, [0], {0}))
    scenarios.append(("alone, again (drift check)", 0, [], None))
    reference = reference_model()
    measure(model, row, repeats, 3, reference)  # discarded: first-call effects stay out
    rows = []
    for name, trainers, cpus, mine in scenarios:
        procs = start_trainers(trainers, cpus)
        try:
            if mine is not None:
                os.sched_setaffinity(0, mine)
            medians, inner, ratios = measure(model, row, repeats, args.measurements, reference)
        finally:
            os.sched_setaffinity(0, everyone)
            stop(procs)
        mean = statistics.fmean(medians)
        rows.append(
            {
                "scenario": name,
                "trainers": trainers,
                "median_ms": statistics.median(medians),
                "min_ms": min(medians),
                "max_ms": max(medians),
                "cv": statistics.pstdev(medians) / mean,
                "within_run_cv_median": statistics.median(inner),
                "calibrated_cv": statistics.pstdev(ratios) / statistics.fmean(ratios),
                "ratios": ratios,
                "measurements_ms": medians,
            }
        )
        print(
            f"  {name}: median {rows[-1]['median_ms']:.4f} ms, CV {rows[-1]['cv']:.1%}", flush=True
        )
    alone = rows[0]
    for r in rows:
        r["median_vs_alone"] = r["median_ms"] / alone["median_ms"]
    print()
    print(
        f"digits MLP {args.depth}×{args.width} (val accuracy {metrics['accuracy']:.3f}), "
        f"batch-1 latency, {args.measurements} measurements × (5 warm-up + {repeats} timed), "
        "torch 1 thread"
    )
    print(
        table(
            [
                "scenario",
                "median ms",
                "min ms",
                "max ms",
                "CV across measurements",
                "median ÷ alone",
                "within-measurement CV (median)",
                "CV of latency ÷ reference (calibrated)",
            ],
            [
                [
                    r["scenario"],
                    f"{r['median_ms']:.4f}",
                    f"{r['min_ms']:.4f}",
                    f"{r['max_ms']:.4f}",
                    f"{r['cv']:.1%}",
                    f"{r['median_vs_alone']:.2f}",
                    f"{r['within_run_cv_median']:.1%}",
                    f"{r['calibrated_cv']:.1%}",
                ]
                for r in rows
            ],
        )
    )
    met = alone["cv"] <= 0.10
    print(f"\ntarget CV ≤ 10% alone: {'MET' if met else 'MISSED'} ({alone['cv']:.1%})")
    _plot(rows)
    path = save(
        "latency_noise",
        {
            "rows": rows,
            "target_cv_met": met,
            "model": {"depth": args.depth, "width": args.width},
            "repeats": repeats,
        },
        facts,
    )
    print(f"wrote {path}")


def _plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.boxplot([r["measurements_ms"] for r in rows], vert=False)
    ax.set_yticks(range(1, len(rows) + 1), [r["scenario"] for r in rows], fontsize=7)
    ax.set_xlabel("latency_ms (median of 30 batch-1 calls), one point per measurement")
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "results" / "latency_noise.png", dpi=110)


if __name__ == "__main__":
    main()
