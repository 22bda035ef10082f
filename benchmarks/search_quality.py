"""Search quality: hypervolume of each sampler against random search, fixed trial budget.

The digits demo study (``spaces/examples/digits.yaml``: accuracy max, train_time_s min,
latency_ms min) runs through ``run_study`` with the built-in training objective, for
each sampler offered (random, tpe, nsga2) and several seeds (the seed drives both the
sampler and the training). Hypervolume is computed with ``search.hypervolume`` on the
first 25%, 50% and 100% of the budget (trials in ask order) with fixed normalisation:

- accuracy: as is, in [0, 1] (maximised);
- train_time_s and latency_ms (minimised), two scalings, both with bounds taken over
  *all* trials of *all* runs of this benchmark (so every run is scaled alike):
  ``log`` (the headline): log(x / min) / log(max / min), in [0, 1]: a model 10x cheaper
  gains the same wherever it sits; ``linear``: x / max, in (0, 1] (a few slow outliers
  squash every other model near 0, so it barely separates the samplers);
- reference point: accuracy 0, costs 1.1 (normalised), so the largest possible
  hypervolume is 1 x 1.1 x 1.1 = 1.21.

Runs are interleaved seed by seed (random, tpe, nsga2 for seed 0, then seed 1, ...), so
background load hits every sampler alike. Tracking is off (NullTracker): it does not
change what the samplers see.

Usage: .venv/bin/python benchmarks/search_quality.py [--trials 30] [--epochs 5] [--seeds 0,1,2,3,4]
       [--out search_quality]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, OBJECTIVES, machine, quiet, save, start_ray, table

FRACTIONS = (0.25, 0.5, 1.0)
REFERENCE_NORMALISED = (0.0, 1.1, 1.1)
SCALES = ("log", "linear")
SCALE_WORDS = {"log": "log(x/min)/log(max/min)", "linear": "x/max"}


def summarise(
    runs: list[dict[str, Any]], samplers: list[str], scale: str, trials: int
) -> list[dict[str, Any]]:
    rows = []
    for sampler in samplers:
        for fraction in FRACTIONS:
            key = str(fraction)
            mine = [r["hv"][scale][key] for r in runs if r["sampler"] == sampler]
            ratios = [
                r["hv"][scale][key] / base["hv"][scale][key]
                for r in runs
                if r["sampler"] == sampler
                for base in runs
                if base["sampler"] == "random"
                and base["seed"] == r["seed"]
                and base["hv"][scale][key] > 0
            ]
            rows.append(
                {
                    "sampler": sampler,
                    "fraction": fraction,
                    "trials": max(1, round(trials * fraction)),
                    "hv_median": statistics.median(mine),
                    "hv_min": min(mine),
                    "hv_max": max(mine),
                    "vs_random_median_ratio": statistics.median(ratios) if ratios else None,
                    "wins_vs_random": sum(1 for x in ratios if x > 1.0),
                    "seeds": len(mine),
                }
            )
    return rows


def one_run(sampler: str, seed: int, trials: int, epochs: int, workers: int) -> dict[str, Any]:
    import optuna
    from paretotune import NullTracker, open_storage, run_study

    folder = Path(tempfile.mkdtemp(prefix="pt-quality-"))
    storage = str(folder / "study.journal")
    name = f"quality-{sampler}-{seed}"
    t0 = time.perf_counter()
    result = run_study(
        str(DIGITS_SPEC),
        storage=storage,
        tracker=NullTracker(),
        progress=False,
        trials=trials,
        epochs=epochs,
        workers=workers,
        sampler=sampler,
        seed=seed,
        name=name,
    )
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    trials_done = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    shutil.rmtree(folder, ignore_errors=True)
    values = [
        list(t.values) if t.state == optuna.trial.TrialState.COMPLETE else None for t in trials_done
    ]
    return {
        "sampler": sampler,
        "seed": seed,
        "wall_s": wall,
        "n_complete": result.n_complete,
        "n_failed": result.n_failed,
        "values": values,  # per trial number, in OBJECTIVES order; None when not complete
    }


def normalise(values: list[float], bounds: dict[str, float], scale: str) -> list[float]:
    """Accuracy as is; a cost divided by its max (linear) or log-scaled into [0, 1] between
    its min and max over all runs (log: a 10x cheaper model counts the same anywhere)."""
    acc, *costs = values
    out = [acc]
    for name, value in zip(("train_time_s", "latency_ms"), costs, strict=True):
        low, high = bounds[f"{name}_min"], bounds[name]
        if scale == "linear":
            out.append(value / high)
        else:
            out.append(math.log(value / low) / math.log(high / low))
    return out


def hv_at(
    run: dict[str, Any], fraction: float, trials: int, bounds: dict[str, float], scale: str
) -> float:
    from paretotune import hypervolume

    k = max(1, round(trials * fraction))
    points = [normalise(v, bounds, scale) for v in run["values"][:k] if v is not None]
    if not points:
        return 0.0
    return hypervolume(points, list(OBJECTIVES.values()), REFERENCE_NORMALISED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--samplers", default="random,tpe,nsga2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="search_quality", help="results/<out>.json|png")
    args = parser.parse_args()
    quiet()
    facts = machine()
    start_ray(num_cpus=max(2, args.workers))
    seeds = [int(s) for s in args.seeds.split(",")]
    samplers = args.samplers.split(",")
    runs = []
    for seed in seeds:
        for sampler in samplers:
            run = one_run(sampler, seed, args.trials, args.epochs, args.workers)
            runs.append(run)
            print(
                f"  seed {seed} {sampler}: {run['n_complete']} complete, "
                f"{run['n_failed']} failed, {run['wall_s']:.0f} s",
                flush=True,
            )
    complete = [v for run in runs for v in run["values"] if v is not None]
    bounds = {
        "train_time_s": max(v[1] for v in complete),
        "latency_ms": max(v[2] for v in complete),
        "train_time_s_min": min(v[1] for v in complete),
        "latency_ms_min": min(v[2] for v in complete),
    }
    tables = {}
    for scale in SCALES:
        for run in runs:
            run.setdefault("hv", {})[scale] = {
                str(f): hv_at(run, f, args.trials, bounds, scale) for f in FRACTIONS
            }
        tables[scale] = summarise(runs, samplers, scale, args.trials)
        print()
        print(
            f"Digits, 3 objectives, {args.trials} trials × {args.epochs} epochs, "
            f"{args.workers} workers, seeds {args.seeds}; hypervolume with costs scaled "
            f"{SCALE_WORDS[scale]} (train_time_s in [{bounds['train_time_s_min']:.3f}, "
            f"{bounds['train_time_s']:.3f}] s, latency_ms in [{bounds['latency_ms_min']:.4f}, "
            f"{bounds['latency_ms']:.4f}] ms); reference (acc 0, 1.1, 1.1), max 1.21"
        )
        print(
            table(
                [
                    "sampler",
                    "budget",
                    "trials",
                    "HV median",
                    "HV min",
                    "HV max",
                    "÷ random (median of per-seed ratios)",
                    "seeds beating random",
                ],
                [
                    [
                        r["sampler"],
                        f"{r['fraction']:.0%}",
                        r["trials"],
                        f"{r['hv_median']:.4f}",
                        f"{r['hv_min']:.4f}",
                        f"{r['hv_max']:.4f}",
                        "–"
                        if r["vs_random_median_ratio"] is None
                        else f"{r['vs_random_median_ratio']:.3f}",
                        f"{r['wins_vs_random']}/{r['seeds']}" if r["sampler"] != "random" else "–",
                    ]
                    for r in tables[scale]
                ],
            )
        )
    path = save(
        args.out,
        {
            "tables": tables,
            "runs": runs,
            "bounds": bounds,
            "reference": REFERENCE_NORMALISED,
            "trials": args.trials,
            "epochs": args.epochs,
            "workers": args.workers,
        },
        facts,
    )
    _plot(runs, samplers, args.trials, bounds, args.out)
    print(f"wrote {path}")


def _plot(
    runs: list[dict[str, Any]], samplers: list[str], trials: int, bounds: dict, out: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.arange(1, trials + 1)
    for sampler in samplers:
        curves = np.array(
            [
                [hv_at(r, k / trials, trials, bounds, "log") for k in xs]
                for r in runs
                if r["sampler"] == sampler
            ]
        )
        ax.plot(xs, np.median(curves, axis=0), label=f"{sampler} (median)")
        ax.fill_between(xs, curves.min(axis=0), curves.max(axis=0), alpha=0.15)
    ax.set_xlabel("trials (ask order)")
    ax.set_ylabel("hypervolume, log-scaled costs (max 1.21)")
    ax.set_title("digits, 3 objectives: hypervolume vs budget (band: min–max over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "results" / f"{out}.png", dpi=110)


if __name__ == "__main__":
    main()
