"""The quick measurement against the precise one, on the same model right after training.

Each trial of `evaluate` (digits, a few families) is asked for a precise measurement after
its quick one (`precise_if` returns True and keeps what it saw), so each model yields a
pair taken where a study takes them. Reports the quick figure's ratio to the precise one
(what `CANDIDATE_MARGIN` must cover) and what each costs (timed again on the kept model).

Usage:
  .venv/bin/python benchmarks/quick_measurement.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, quiet

CONFIGS: dict[str, dict[str, Any]] = {
    "mlp 32": {"architecture": "mlp", "mlp.width": 32},
    "mlp 256 x3": {"architecture": "mlp", "mlp.width": 256, "mlp.depth": 3},
    "cnn 16": {"architecture": "cnn", "cnn.channels": 16},
    "rnn lstm 32": {"architecture": "rnn", "rnn.hidden_size": 32},
}


def pairs(params: dict[str, Any], repeats: int) -> dict[str, Any]:
    from paretotune.objectives import TrialContext, evaluate
    from paretotune.objectives._measure import quick_serving_costs, serving_costs

    context = TrialContext({"source": "digits"}, epochs=3)
    ratios: list[float] = []
    quick_s: list[float] = []
    precise_s: list[float] = []
    for seed in range(repeats):
        seen: dict[str, float] = {}

        def precise_if(metrics: Any, seen: dict[str, float] = seen) -> bool:
            seen.update(metrics)
            return True

        outcome = evaluate(
            params, TrialContext(**{**context.__dict__, "seed": seed}), precise_if=precise_if,
            keep_model=True,
        )  # fmt: skip
        ratios.append(seen["latency_ms"] / outcome.metrics["latency_ms"])
        import torch
        from paretotune.objectives import load_dataset

        rows = torch.as_tensor(load_dataset({"source": "digits"}, seed).folds[-1].X_val[:256])
        model = outcome.model
        assert model is not None
        started = time.perf_counter()
        quick_serving_costs(model, rows)
        quick_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        serving_costs(model, rows, context.latency_repeats)
        precise_s.append(time.perf_counter() - started)
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_max": max(ratios),
        "ratio_min": min(ratios),
        "quick_ms": statistics.median(quick_s) * 1e3,
        "precise_ms": statistics.median(precise_s) * 1e3,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "quick_measurement.json")
    args = parser.parse_args()
    quiet()
    found = {name: pairs(params, args.repeats) for name, params in CONFIGS.items()}
    print("| model | quick ÷ precise latency: median | min | max | quick ms | precise ms |")
    print("|---|---|---|---|---|---|")
    for name, row in found.items():
        print(
            f"| {name} | {row['ratio_median']:.3f} | {row['ratio_min']:.3f} | "
            f"{row['ratio_max']:.3f} | {row['quick_ms']:.1f} | {row['precise_ms']:.1f} |"
        )
    args.out.write_text(json.dumps(found, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
