"""Utilisation: sleeping trials on N concurrent workers, wall time against the ideal.

Each configuration runs in a fresh child process, so its wall time includes everything a
user waits for: Ray start-up (``ray.init``), the actor pool's start-up, MLflow set-up,
the trials, and the final flush. Utilisation = ideal / wall, where ideal = trials x
duration / workers. It is quoted twice: with Ray start-up and without it (from the
``run_study`` call on). The same workload also runs through Ray Tune's ``Tuner`` with
``OptunaSearch`` and ``reuse_actors=True`` for comparison.

Each trial records (pid, start, end) of its sleep, so the table also shows the time to the
first trial and the median idle gap of a worker between two trials (dispatch latency).

Usage: .venv/bin/python benchmarks/utilisation.py [--configs 4x40x1.0,8x80x0.5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    DIGITS_SPEC,
    child_json,
    machine,
    median,
    quiet,
    save,
    table,
    tune_optuna_search,
)

CONTENDERS = ("paretotune+MLflow", "paretotune+NullTracker", "RayTune+OptunaSearch")


def sleeping_objective(path: str, seconds: float):
    def objective(params: dict[str, Any]) -> dict[str, float]:
        import os

        start = time.time()
        time.sleep(seconds)
        end = time.time()
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {start!r} {end!r}\n")
        return {"accuracy": 0.5, "train_time_s": seconds, "latency_ms": 0.01}

    return objective


def child(contender: str, workers: int, trials: int, seconds: float, sampler: str) -> None:
    """Run one configuration cold and print one JSON line."""
    quiet()
    folder = Path(tempfile.mkdtemp(prefix="pt-util-"))
    stamps = folder / "stamps.txt"
    objective = sleeping_objective(str(stamps), seconds)
    t0 = time.time()
    from _common import start_ray

    start_ray(num_cpus=max(8, workers))
    t_ray = time.time()
    if contender.startswith("paretotune"):
        from paretotune import NullTracker, run_study

        run_study(
            str(DIGITS_SPEC),
            objective=objective,
            storage=str(folder / "study.journal"),
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
            tracker=NullTracker() if contender.endswith("NullTracker") else None,
            progress=False,
            trials=trials,
            workers=workers,
            sampler=sampler,
            name="utilisation",
        )
    else:
        _ray_tune(folder, objective, workers, trials, sampler)
    t_end = time.time()
    rows = [line.split() for line in stamps.read_text().splitlines()]
    shutil.rmtree(folder, ignore_errors=True)
    print(
        json.dumps(
            {
                "t0": t0,
                "t_ray": t_ray,
                "t_end": t_end,
                "trials": [(int(p), float(s), float(e)) for p, s, e in rows],
            }
        )
    )


def _ray_tune(folder: Path, objective: Any, workers: int, trials: int, sampler: str) -> None:
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        tune.report(objective(config))

    search = tune_optuna_search(sampler)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=search,
            num_samples=trials,
            max_concurrent_trials=workers,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(folder / "tune"), name="util", verbose=0),
    )
    tuner.fit()


def summarise(
    contender: str, workers: int, trials: int, seconds: float, raw: dict[str, Any]
) -> dict[str, Any]:
    ideal = trials * seconds / workers
    runs = raw["trials"]
    if len(runs) != trials:
        raise RuntimeError(f"{contender}: {len(runs)} trials ran, expected {trials}")
    first = min(s for _, s, _ in runs)
    gaps = []
    for pid in {p for p, _, _ in runs}:
        mine = sorted((s, e) for p, s, e in runs if p == pid)
        gaps += [(b[0] - a[1]) * 1000 for a, b in zip(mine, mine[1:], strict=False)]
    wall_with = raw["t_end"] - raw["t0"]
    wall_without = raw["t_end"] - raw["t_ray"]
    return {
        "contender": contender,
        "workers": workers,
        "trials": trials,
        "trial_s": seconds,
        "ideal_s": ideal,
        "ray_init_s": raw["t_ray"] - raw["t0"],
        "first_trial_after_call_s": first - raw["t_ray"],
        "wall_with_ray_start_s": wall_with,
        "wall_without_ray_start_s": wall_without,
        "util_with_ray_start": ideal / wall_with,
        "util_without_ray_start": ideal / wall_without,
        "util_after_first_trial": ideal / (raw["t_end"] - first),
        "worker_gap_median_ms": median(gaps),
        "worker_gap_max_ms": max(gaps) if gaps else float("nan"),
        "processes": len({p for p, _, _ in runs}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="4x40x1.0,8x80x0.5", help="WORKERSxTRIALSxSECONDS")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--child", nargs=5, metavar=("CONTENDER", "W", "N", "S", "SAMPLER"))
    args = parser.parse_args()
    if args.child:
        name, w, n, s, smp = args.child
        child(name, int(w), int(n), float(s), smp)
        return
    quiet()
    facts = machine()
    rows = []
    for config in args.configs.split(","):
        w, n, s = config.split("x")
        for contender in args.contenders.split(","):
            command = [sys.executable, __file__, "--child", contender, w, n, s, args.sampler]
            raw = child_json(command, f"{contender} {config}")
            row = summarise(contender, int(w), int(n), float(s), raw)
            rows.append(row)
            print(
                f"  {config} {contender}: wall {row['wall_with_ray_start_s']:.2f} s "
                f"(ideal {row['ideal_s']:.1f}), util {row['util_with_ray_start']:.1%} / "
                f"{row['util_without_ray_start']:.1%} without Ray start",
                flush=True,
            )
    headers = [
        "workers × trials × s",
        "contender",
        "ideal s",
        "ray.init s",
        "1st trial after call s",
        "wall s (all)",
        "util (all)",
        "util (no ray.init)",
        "util (from 1st trial)",
        "worker idle gap median ms",
    ]
    body = [
        [
            f"{r['workers']} × {r['trials']} × {r['trial_s']}",
            r["contender"],
            r["ideal_s"],
            r["ray_init_s"],
            r["first_trial_after_call_s"],
            r["wall_with_ray_start_s"],
            f"{r['util_with_ray_start']:.1%}",
            f"{r['util_without_ray_start']:.1%}",
            f"{r['util_after_first_trial']:.1%}",
            r["worker_gap_median_ms"],
        ]
        for r in rows
    ]
    print()
    print(table(headers, body))
    verdicts = [
        {
            "config": f"{r['workers']}x{r['trials']}x{r['trial_s']}",
            "contender": r["contender"],
            "util_with_ray_start": r["util_with_ray_start"],
            "util_without_ray_start": r["util_without_ray_start"],
            "target_95_met_with_start": r["util_with_ray_start"] >= 0.95,
            "target_95_met_without_ray_start": r["util_without_ray_start"] >= 0.95,
        }
        for r in rows
        if r["contender"].startswith("paretotune")
    ]
    for v in verdicts:
        print(
            f"[{v['config']} {v['contender']}] target ≥ 95% start-up included: "
            f"{'MET' if v['target_95_met_with_start'] else 'MISSED'} "
            f"({v['util_with_ray_start']:.1%}; {v['util_without_ray_start']:.1%} without ray.init)"
        )
    _plot(rows)
    path = save("utilisation", {"rows": rows, "verdicts": verdicts}, facts)
    print(f"wrote {path}")


def _plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{r['contender']}\n{r['workers']}×{r['trials']}×{r['trial_s']}s" for r in rows]
    ax.barh(labels, [r["util_with_ray_start"] * 100 for r in rows], label="incl. ray.init")
    ax.barh(
        labels,
        [(r["util_without_ray_start"] - r["util_with_ray_start"]) * 100 for r in rows],
        left=[r["util_with_ray_start"] * 100 for r in rows],
        label="excl. ray.init",
        alpha=0.5,
    )
    ax.axvline(95, color="tab:red", linestyle="--", label="95% target")
    ax.set_xlabel("utilisation %")
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "results" / "utilisation.png", dpi=110)


if __name__ == "__main__":
    main()
