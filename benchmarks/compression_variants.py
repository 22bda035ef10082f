"""Compression as one choice per trial against compression variants (issue 24).

The work: digits MLPs (or ``--architecture``), objectives accuracy (max), latency_ms
(min) and size_bytes (min), where compression pays. Two arms of the same study, run
side by side for each seed (interleaved, one local Ray, 2 workers, TPE, no tracker):

- ``per trial``: ``compression: [none, int8_dynamic, fp16, prune_structured,
  prune_unstructured]``, one compression drawn per trial, each point a full training;
- ``variants``: ``compression: {variants: [int8_dynamic, fp16, prune_structured,
  prune_unstructured]}``, every trained model forked into all four.

Both arms run the same number of trainings. Compute is trial-seconds: each trial's time
on its worker (a variant's: its fork's compressing, fine-tuning and measuring), summed in
the order the trials were told. Hypervolume: the share of a box made, per seed, from
every point either arm found (`HypervolumeBox.from_values`: accuracy 1 and latency and
size 0 ideal). Reported per seed: each arm's hypervolume at the compute the cheaper arm
spent in all (equal compute), their ratio, and the share of the per-trial arm's compute
the variants arm needed to reach its final hypervolume.

    .venv/bin/python benchmarks/compression_variants.py --seeds 0 1 2 [--trainings 30]
        [--epochs 10] [--architecture mlp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, quiet, save, start_ray, table

COMPRESSIONS = ["int8_dynamic", "fp16", "prune_structured", "prune_unstructured"]
OBJECTIVES = {"accuracy": "maximize", "latency_ms": "minimize", "size_bytes": "minimize"}
ARMS = {"per trial": ["none", *COMPRESSIONS], "variants": {"variants": COMPRESSIONS}}


def spec(arm: str, seed: int, trainings: int, epochs: int, family: str) -> dict[str, Any]:
    return {
        "name": f"compression-{arm.replace(' ', '-')}-{seed}",
        "objectives": OBJECTIVES,
        "dataset": {"source": "digits"},
        "space": {
            "architecture": family,
            "optimizer": ["adam", "adamw"],
            "compression": ARMS[arm],
        },
        "budget": {"trials": trainings, "epochs": epochs},
        "resources": {"workers": 2},
        "sampler": {"name": "tpe"},
        "seed": seed,
    }


def run_arm(arm: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One arm's study: every trial's compute and, for complete ones, values."""
    import optuna
    from paretotune import NullTracker, open_storage, run_study
    from paretotune.study._attrs import TRIAL_SECONDS_ATTR

    storage = str(folder / f"{arm.replace(' ', '-')}-{seed}.journal")
    study_spec = spec(arm, seed, args.trainings, args.epochs, args.architecture)
    result = run_study(study_spec, storage=storage, tracker=NullTracker(), progress=False)
    study = optuna.load_study(study_name=study_spec["name"], storage=open_storage(storage))
    trials = [
        {
            "seconds": float(t.user_attrs.get(TRIAL_SECONDS_ATTR, 0.0)),
            "values": list(t.values) if t.values is not None else None,
            "compression": (t.user_attrs.get("config") or {}).get("compression"),
            "forked": "forked_from" in t.user_attrs,
            "precise": t.user_attrs.get("metric.latency_precise"),
        }
        for t in sorted(study.trials, key=lambda t: t.number)
    ]
    return {"trials": trials, "wall_s": result.wall_time_s, "trainings": result.n_complete}


def curve(trials: list[dict[str, Any]], box: Any) -> list[tuple[float, float]]:
    """(compute so far, hypervolume so far) after each trial."""
    spent, points, out = 0.0, [], []
    for trial in trials:
        spent += trial["seconds"]
        if trial["values"] is not None:
            points.append(trial["values"])
        out.append((spent, box.share(points) if points else 0.0))
    return out


def at(points: list[tuple[float, float]], compute: float) -> float:
    """The hypervolume reached within ``compute``."""
    return max((hv for spent, hv in points if spent <= compute + 1e-9), default=0.0)


def needed(points: list[tuple[float, float]], target: float) -> float:
    """The compute at which ``target`` hypervolume was first reached (inf: never)."""
    return next((spent for spent, hv in points if hv >= target - 1e-12), float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trainings", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--architecture", default="mlp", choices=["mlp", "cnn", "rnn", "transformer"]
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "compression_variants.json")
    args = parser.parse_args()
    quiet()
    facts = machine()
    start_ray(2)
    from paretotune.results.pareto import HypervolumeBox

    seeds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            runs = {arm: run_arm(arm, seed, args, Path(folder)) for arm in ARMS}
            every = [t["values"] for r in runs.values() for t in r["trials"] if t["values"]]
            box = HypervolumeBox.from_values(every, list(OBJECTIVES.values()))
            curves = {arm: curve(r["trials"], box) for arm, r in runs.items()}
            totals = {arm: c[-1][0] for arm, c in curves.items()}
            seconds = {  # median trial-seconds by kind of trial
                f"{arm}: {kind}": statistics.median(
                    [t["seconds"] for t in r["trials"] if t["compression"] == kind]
                )
                for arm, r in runs.items()
                for kind in dict.fromkeys(t["compression"] for t in r["trials"])
            }
            equal = min(totals.values())
            per_trial, variants = curves["per trial"], curves["variants"]
            row = {
                "seed": seed,
                "compute_s": totals,
                "trials": {arm: len(r["trials"]) for arm, r in runs.items()},
                "wall_s": {arm: r["wall_s"] for arm, r in runs.items()},
                "equal_compute_s": equal,
                "median_seconds_by_kind": seconds,
                "hv_at_equal": {arm: at(c, equal) for arm, c in curves.items()},
                "hv_final": {arm: c[-1][1] for arm, c in curves.items()},
                "curves": curves,
            }
            row["hv_ratio"] = row["hv_at_equal"]["variants"] / max(
                row["hv_at_equal"]["per trial"], 1e-12
            )
            target = per_trial[-1][1]
            row["compute_share_to_match"] = needed(variants, target) / totals["per trial"]
            seeds.append(row)
            print(
                f"seed {seed}: HV at {equal:.1f} trial-s: per trial "
                f"{row['hv_at_equal']['per trial']:.3f}, variants "
                f"{row['hv_at_equal']['variants']:.3f} ({row['hv_ratio']:.2f}x); variants "
                f"reach per-trial's final HV at {row['compute_share_to_match']:.0%} of its compute",
                flush=True,
            )
    summary = {
        "hv_ratio_median": statistics.median(r["hv_ratio"] for r in seeds),
        "compute_share_to_match_median": statistics.median(
            r["compute_share_to_match"] for r in seeds
        ),
    }
    rows = [
        [
            r["seed"],
            r["trials"]["per trial"],
            r["trials"]["variants"],
            r["equal_compute_s"],
            r["hv_at_equal"]["per trial"],
            r["hv_at_equal"]["variants"],
            f"{r['hv_ratio']:.2f}x",
            f"{r['compute_share_to_match']:.0%}",
        ]
        for r in seeds
    ]
    headers = [
        "seed",
        "trials (per trial)",
        "trials (variants)",
        "equal compute, trial-s",
        "HV per trial",
        "HV variants",
        "ratio",
        "compute to match",
    ]
    print(table(headers, rows))
    print(
        f"medians: {summary['hv_ratio_median']:.2f}x hypervolume at equal compute; "
        f"{summary['compute_share_to_match_median']:.0%} of the compute to match"
    )
    _chart(seeds, args.out.with_suffix(".png"))
    save(
        "compression_variants",
        {"args": vars(args) | {"out": str(args.out)}, "seeds": seeds, "summary": summary},
        facts,
        args.out,
    )


def _chart(seeds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(seeds), figsize=(4 * len(seeds), 3.2), squeeze=False)
    for axis, row in zip(axes[0], seeds, strict=True):
        for arm, points in row["curves"].items():
            axis.step([p[0] for p in points], [p[1] for p in points], where="post", label=arm)
        axis.axvline(row["equal_compute_s"], color="grey", linestyle=":", linewidth=1)
        axis.set(title=f"seed {row['seed']}", xlabel="compute (trial-s)", ylabel="hypervolume")
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
