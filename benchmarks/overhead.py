"""Orchestration overhead: no-op trials through paretotune, plain Optuna and Ray Tune.

Every contender runs the same no-op objective (it returns fixed metrics at once) on the
digits spec's search space (3 objectives) with the same Optuna sampler, one trial at a
time, all in this one process run. The objective appends ``time.time()`` to a file each
time it is called, wherever it runs (driver, Ray actor, Tune trainable), so:

- start-up = first objective call - the call that starts the study;
- per-trial = the interval between consecutive objective calls (median and p95);
- amortised = (return of the call - first objective call) / (trials - 1): everything after
  start-up, including the tail (MLflow flush, actor shutdown);
- all-in = (return of the call - the call) / trials: start-up included. MLflow's start-up
  runs beside the first trials, so it lands in *amortised*, not in *start-up*; compare
  all-in figures when start-ups differ.

Usage: .venv/bin/python benchmarks/overhead.py [--trials 200] [--samplers tpe,random]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    DIGITS_SPEC,
    OBJECTIVES,
    machine,
    median,
    percentile,
    quiet,
    save,
    start_ray,
    table,
    tune_optuna_search,
)

NOOP_METRICS = {"accuracy": 0.5, "train_time_s": 0.01, "latency_ms": 0.01}


def stamping_objective(path: str) -> Callable[[dict[str, Any]], dict[str, float]]:
    """A no-op objective that records when it was called (appends to ``path``)."""

    def objective(params: dict[str, Any]) -> dict[str, float]:
        with open(path, "a") as f:
            f.write(f"{time.time()!r}\n")
        return dict(NOOP_METRICS)

    return objective


def read_stamps(path: Path) -> list[float]:
    return sorted(float(line) for line in path.read_text().split())


# -- contenders ---------------------------------------------------------------------------
def run_paretotune(
    folder: Path,
    stamps: str,
    trials: int,
    sampler: str,
    *,
    storage: str,
    mlflow: bool,
    in_process: bool,
) -> None:
    from paretotune import InProcessExecutor, NullTracker, run_study

    objective = stamping_objective(stamps)
    result = run_study(
        str(DIGITS_SPEC),
        objective=objective,
        storage=storage,
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        tracker=None if mlflow else NullTracker(),
        executor=InProcessExecutor(None, objective) if in_process else None,
        progress=False,
        trials=trials,
        workers=1,
        sampler=sampler,
        name="overhead",
    )
    if result.n_complete != trials or result.tracking_errors:
        raise RuntimeError(f"paretotune run incomplete: {result}")


def run_optuna(folder: Path, stamps: str, trials: int, sampler: str, *, journal: bool) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from paretotune.spaces import load_spec, sample_params
    from paretotune.study._samplers import build_sampler as _sampler

    spec = load_spec(str(DIGITS_SPEC)).with_overrides(sampler=sampler)
    storage = (
        JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))) if journal else None
    )
    objective = stamping_objective(stamps)
    study = optuna.create_study(
        study_name="overhead",
        storage=storage,
        sampler=_sampler(spec),
        directions=list(OBJECTIVES.values()),
    )

    def optuna_objective(trial: optuna.Trial) -> tuple[float, ...]:
        metrics = objective(sample_params(trial, spec.space))
        return tuple(metrics[m] for m in OBJECTIVES)

    study.optimize(optuna_objective, n_trials=trials)


def run_ray_tune(
    folder: Path, stamps: str, trials: int, sampler: str, *, mlflow: bool = False
) -> None:
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    objective = stamping_objective(stamps)

    def trainable(config: dict[str, Any]) -> None:
        tune.report(objective(config))

    search = tune_optuna_search(sampler)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=trials, max_concurrent_trials=1, reuse_actors=True
        ),
        run_config=tune.RunConfig(
            storage_path=str(folder / "tune"),
            name="overhead",
            verbose=0,
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment_name="overhead"
                )
            ]
            if mlflow
            else None,
        ),
    )
    grid = tuner.fit()
    if len(grid) != trials or grid.errors:
        raise RuntimeError(f"Ray Tune run incomplete: {len(grid)} results, {grid.errors}")


CONTENDERS: dict[str, Callable[..., None]] = {
    "paretotune · Ray actors · journal · MLflow (SQLite)": lambda f, s, n, smp: run_paretotune(
        f, s, n, smp, storage=str(f / "study.journal"), mlflow=True, in_process=False
    ),
    "paretotune · Ray actors · journal · NullTracker": lambda f, s, n, smp: run_paretotune(
        f, s, n, smp, storage=str(f / "study.journal"), mlflow=False, in_process=False
    ),
    "paretotune · Ray actors · journal on /dev/shm · NullTracker": lambda f, s, n, smp: (
        run_paretotune(f, s, n, smp, storage=_shm_journal(f), mlflow=False, in_process=False)
    ),
    "paretotune · in-process · journal · NullTracker": lambda f, s, n, smp: run_paretotune(
        f, s, n, smp, storage=str(f / "study.journal"), mlflow=False, in_process=True
    ),
    "Optuna study.optimize · journal": lambda f, s, n, smp: run_optuna(f, s, n, smp, journal=True),
    "Optuna study.optimize · in-memory": lambda f, s, n, smp: run_optuna(
        f, s, n, smp, journal=False
    ),
    "Ray Tune Tuner + OptunaSearch · reuse_actors": run_ray_tune,
    "Ray Tune Tuner + OptunaSearch · reuse_actors · MLflowLoggerCallback (SQLite)": (
        lambda f, s, n, smp: run_ray_tune(f, s, n, smp, mlflow=True)
    ),
}
HEADLINE = "paretotune · Ray actors · journal · MLflow (SQLite)"
RAY_TUNE = "Ray Tune Tuner + OptunaSearch · reuse_actors"
RAY_TUNE_MLFLOW = f"{RAY_TUNE} · MLflowLoggerCallback (SQLite)"
OPTUNA = "Optuna study.optimize · journal"


def _shm_journal(folder: Path) -> str:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else folder
    made = Path(tempfile.mkdtemp(dir=base, prefix="pt-bench-"))
    _SCRATCH.append(made)
    return str(made / "study.journal")


_SCRATCH: list[Path] = []


def measure(name: str, trials: int, sampler: str) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="pt-overhead-"))
    stamps = folder / "stamps.txt"
    try:
        called = time.time()
        CONTENDERS[name](folder, str(stamps), trials, sampler)
        returned = time.time()
        times = read_stamps(stamps)
    finally:
        for path in [folder, *_SCRATCH]:
            shutil.rmtree(path, ignore_errors=True)
        _SCRATCH.clear()
    if len(times) != trials:
        raise RuntimeError(f"{name}: {len(times)} objective calls, expected {trials}")
    gaps_ms = [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]
    return {
        "contender": name,
        "sampler": sampler,
        "trials": trials,
        "startup_s": times[0] - called,
        "per_trial_median_ms": median(gaps_ms),
        "per_trial_p95_ms": percentile(gaps_ms, 95),
        "amortised_ms": (returned - times[0]) / (trials - 1) * 1000,
        "wall_s": returned - called,
        "all_in_ms": (returned - called) / trials * 1000,
        "gaps_ms": gaps_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--samplers", default="tpe,random")
    parser.add_argument("--only", default="", help="comma-separated substrings of contenders")
    args = parser.parse_args()
    quiet()
    facts = machine()
    start_ray(num_cpus=4)  # private local Ray, shared by paretotune and Ray Tune
    names = [n for n in CONTENDERS if not args.only or any(k in n for k in args.only.split(","))]
    rows = []
    for sampler in args.samplers.split(","):
        for name in names:
            row = measure(name, args.trials, sampler)
            rows.append(row)
            print(
                f"  {sampler:6s} {name}: median {row['per_trial_median_ms']:.1f} ms, "
                f"amortised {row['amortised_ms']:.1f} ms, start-up {row['startup_s']:.2f} s",
                flush=True,
            )
    by_key = {(r["sampler"], r["contender"]): r for r in rows}
    for row in rows:
        tune_row = by_key.get((row["sampler"], RAY_TUNE))
        optuna_row = by_key.get((row["sampler"], OPTUNA))
        row["ray_tune_over_this"] = (
            tune_row["amortised_ms"] / row["amortised_ms"] if tune_row else float("nan")
        )
        row["this_minus_optuna_ms"] = (
            row["amortised_ms"] - optuna_row["amortised_ms"] if optuna_row else float("nan")
        )
    headers = [
        "sampler",
        "contender",
        "start-up s",
        "per-trial median ms",
        "p95 ms",
        "amortised ms/trial",
        "all-in ms/trial",
        "vs Optuna journal (+ms)",
        "Ray Tune ÷ this",
    ]
    body = [
        [
            r["sampler"],
            r["contender"],
            r["startup_s"],
            r["per_trial_median_ms"],
            r["per_trial_p95_ms"],
            r["amortised_ms"],
            r["all_in_ms"],
            r["this_minus_optuna_ms"],
            r["ray_tune_over_this"],
        ]
        for r in rows
    ]
    print()
    print(f"No-op trials, {args.trials} per contender, 1 at a time, 3 objectives, digits space")
    print(table(headers, body))
    verdicts = []
    for sampler in args.samplers.split(","):
        head = by_key.get((sampler, HEADLINE))
        if head is None:
            continue
        tune_row = by_key.get((sampler, RAY_TUNE))
        verdicts.append(
            {
                "sampler": sampler,
                "headline_amortised_ms": head["amortised_ms"],
                "target_10ms_met": head["amortised_ms"] <= 10.0,
                "ray_tune_ratio": head["ray_tune_over_this"] if tune_row else None,
                "target_10x_met": bool(tune_row) and head["ray_tune_over_this"] >= 10.0,
                "ray_tune_mlflow_ratio": _ratio(by_key.get((sampler, RAY_TUNE_MLFLOW)), head),
            }
        )
    for v in verdicts:
        print(
            f"\n[{v['sampler']}] target ≤ 10 ms/trial with logging: "
            f"{'MET' if v['target_10ms_met'] else 'MISSED'} ({v['headline_amortised_ms']:.1f} ms); "
            f"target ≥ 10× below Ray Tune: {'MET' if v['target_10x_met'] else 'MISSED'} "
            f"({v['ray_tune_ratio'] or float('nan'):.1f}×); like for like, against Ray Tune "
            f"with its MLflow callback: {v['ray_tune_mlflow_ratio'] or float('nan'):.1f}×"
        )
    _plot(rows)
    path = save("overhead", {"rows": rows, "verdicts": verdicts}, facts)
    print(f"\nwrote {path}")


def _ratio(slower: dict[str, Any] | None, faster: dict[str, Any]) -> float | None:
    return slower["amortised_ms"] / faster["amortised_ms"] if slower else None


def _plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    fig, axes = plt.subplots(1, len(samplers), figsize=(7 * len(samplers), 4.5), squeeze=False)
    for ax, sampler in zip(axes[0], samplers, strict=True):
        mine = [r for r in rows if r["sampler"] == sampler]
        names = [r["contender"].replace(" · ", "\n", 1) for r in mine]
        ax.barh(names, [r["amortised_ms"] for r in mine], color="tab:blue")
        ax.set_xscale("log")
        ax.axvline(10, color="tab:red", linestyle="--", label="10 ms target")
        ax.set_xlabel("ms per no-op trial (amortised, start-up excluded; log)")
        ax.set_title(f"sampler = {sampler}")
        ax.tick_params(axis="y", labelsize=7)
        ax.invert_yaxis()
        ax.legend()
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "results" / "overhead.png", dpi=110)


if __name__ == "__main__":
    main()
