"""Sampler scaling: the cost of one ask (+ sampling the spec's space) as a study grows.

For each sampler offered (``paretotune.study._samplers.build_sampler``: auto, tpe, nsga2,
random, configured
exactly as ``run_study`` configures them), 2,000 no-op trials with 3 objectives run on an
in-memory Optuna study, so the figure is the sampler's own cost (no storage, no Ray, no
MLflow). Each trial is ``study.ask()`` + ``spaces.sample_params`` (timed), then a tell
with seeded random objective values (timed apart). The median and p95 are taken over the
50 trials ending at trial 100, 200, 500, 1,000 and 2,000.

Target: the default sampler (``auto``: TPE, then NSGA-II after ``switch_at`` trials) stays
under 30 ms per ask at 1,000 trials.

Usage: .venv/bin/python benchmarks/sampler_scaling.py [--trials 2000]
       [--samplers auto,tpe,nsga2,random]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, OBJECTIVES, machine, median, percentile, quiet, save, table
from paretotune.spaces import SamplerSpec

WINDOW = 50
TARGET_MS = 30.0


def run(sampler: str, trials: int, seed: int) -> dict[str, Any]:
    import optuna
    from paretotune.spaces import load_spec, sample_params
    from paretotune.study._samplers import build_sampler as _sampler

    spec = load_spec(str(DIGITS_SPEC)).with_overrides(sampler=sampler, seed=seed)
    study = optuna.create_study(directions=list(OBJECTIVES.values()), sampler=_sampler(spec))
    rng = random.Random(seed)
    ask_ms, tell_ms = [], []
    started = time.perf_counter()
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        sample_params(trial, spec.space)
        t1 = time.perf_counter()
        study.tell(trial, [rng.random(), rng.random() * 10, rng.random()])
        t2 = time.perf_counter()
        ask_ms.append((t1 - t0) * 1000)
        tell_ms.append((t2 - t1) * 1000)
    return {
        "sampler": sampler,
        "ask_ms": ask_ms,
        "tell_ms": tell_ms,
        "total_s": time.perf_counter() - started,
    }


def checkpoints(trials: int) -> list[int]:
    return [n for n in (100, 200, 500, 1000, 2000) if n <= trials] or [trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--samplers", default="auto,tpe,nsga2,random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    facts = machine()
    runs = []
    for sampler in args.samplers.split(","):
        result = run(sampler, args.trials, args.seed)
        runs.append(result)
        print(f"  {sampler}: {args.trials} trials in {result['total_s']:.1f} s", flush=True)
    rows = []
    for result in runs:
        for n in checkpoints(args.trials):
            window = result["ask_ms"][max(0, n - WINDOW) : n]
            tells = result["tell_ms"][max(0, n - WINDOW) : n]
            rows.append(
                {
                    "sampler": result["sampler"],
                    "at_trial": n,
                    "ask_median_ms": median(window),
                    "ask_p95_ms": percentile(window, 95),
                    "tell_median_ms": median(tells),
                }
            )
    print()
    print(
        f"One ask + sample_params on the digits space, 3 objectives, in-memory study "
        f"(window: the {WINDOW} trials ending at the mark)"
    )
    print(
        table(
            ["sampler", "at trial", "ask median ms", "ask p95 ms", "tell median ms"],
            [
                [
                    r["sampler"],
                    r["at_trial"],
                    r["ask_median_ms"],
                    r["ask_p95_ms"],
                    r["tell_median_ms"],
                ]
                for r in rows
            ],
        )
    )
    verdict = None
    default = SamplerSpec().name
    at_1000 = [r for r in rows if r["sampler"] == default and r["at_trial"] == 1000]
    if at_1000:
        figure = at_1000[0]["ask_median_ms"]
        verdict = {
            "default_sampler": default,
            "default_ask_median_ms_at_1000": figure,
            "default_ask_p95_ms_at_1000": at_1000[0]["ask_p95_ms"],
            "target_30ms_met": figure < TARGET_MS,
        }
        print(
            f"\ntarget: default sampler ({default}) < {TARGET_MS:.0f} ms per ask at 1,000 "
            "trials: "
            f"{'MET' if verdict['target_30ms_met'] else 'MISSED'} "
            f"(median {figure:.1f} ms, p95 {at_1000[0]['ask_p95_ms']:.1f} ms)"
        )
    _plot(runs)
    path = save(
        "sampler_scaling",
        {
            "rows": rows,
            "verdict": verdict,
            "seed": args.seed,
            "series": {
                r["sampler"]: {"ask_ms": r["ask_ms"], "tell_ms": r["tell_ms"]} for r in runs
            },
        },
        facts,
    )
    print(f"wrote {path}")


def _plot(runs: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for result in runs:
        ask = np.asarray(result["ask_ms"])
        k = 25
        rolling = [np.median(ask[max(0, i - k) : i + 1]) for i in range(len(ask))]
        ax.plot(np.arange(1, len(ask) + 1), rolling, label=result["sampler"])
    ax.axhline(TARGET_MS, color="tab:red", linestyle="--", label="30 ms target (@1000)")
    ax.set_yscale("log")
    ax.set_xlabel("trial number")
    ax.set_ylabel("ask + sample ms (rolling median of 25)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "results" / "sampler_scaling.png", dpi=110)


if __name__ == "__main__":
    main()
