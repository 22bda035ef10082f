"""Early stopping: hypervolume against compute, four ways, several seeds.

The study: sklearn's digits, MLP and CNN families, Adam/SGD/RMSprop, 60 trials of 15
epochs on 2 workers (local Ray, no MLflow: the tracker is not what is measured).

- (a) ``tpe``: TPE, every trial trains all its epochs;
- (b) ``tpe+mo_asha``: TPE with MO-ASHA (min 1 epoch, reduction factor 3: rungs at 1, 3, 9);
- (c) ``random``: random search, no stopping;
- (d) ``tpe+asha_weighted``: TPE with single-objective ASHA on a weighted sum, what Ray
  Tune's schedulers offer (its maintainers' answer to several objectives): at a rung the
  objectives are min-max normalised over the rung's records, oriented so higher is
  better, and averaged with equal weights (generous to (d): a Ray Tune user must fix the
  scales in advance).

Compute is counted as epochs trained (all trials) and as the study's wall seconds.
Hypervolume: objectives normalised by fixed bounds, error = 1 - accuracy over 0.25,
train_time_s over 3 s, latency_ms over 0.3 ms, each clipped to [0, 1], reference point
(1, 1, 1) in those losses; the volume is measured after every finished trial, in finish
order, so it can be read against the compute spent so far.

    .venv/bin/python benchmarks/early_stopping.py --seeds 0 1 2        # ~15 min here
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, quiet, save, start_ray, table
from paretotune.stopping import MoAsha, balance

SPEC: dict[str, Any] = {
    "name": "es-bench",
    "dataset": {"source": "digits"},
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"},
    "space": {
        "architecture": ["mlp", "cnn"],
        "mlp": {"depth": {"low": 1, "high": 3}, "width": {"low": 16, "high": 512, "log": True}},
        "batch_size": [32, 64, 128],
        "learning_rate": {"low": 1.0e-4, "high": 1.0e-1, "log": True},
        "optimizer": ["sgd", "adam", "rmsprop"],
        "compression": ["none"],
    },
    "budget": {"trials": 60, "epochs": 15},
    "resources": {"workers": 2},
}
BOUNDS = {"error": 0.25, "train_time_s": 3.0, "latency_ms": 0.3}
VARIANTS = {
    "tpe": {"sampler": "tpe", "early_stopping": "none"},
    "tpe+mo_asha": {"sampler": "tpe", "early_stopping": "mo_asha"},
    "random": {"sampler": "random", "early_stopping": "none"},
    "tpe+asha_weighted": {"sampler": "tpe", "early_stopping": "mo_asha"},
}


class WeightedAsha(MoAsha):
    """ASHA on one number: the mean of the rung's min-max normalised objectives (MO-ASHA's
    own tie-break, `balance`, used alone, without the non-dominated rank)."""

    def _order(self, records):  # type: ignore[no-untyped-def]
        names = [n for n in self.directions if all(n in r.values for r in records)]
        points = np.array([[r.values[n] for n in names] for r in records], dtype=float)
        score = balance(points, [self.directions[n] for n in names])
        order = sorted(range(len(records)), key=lambda i: (-score[i], records[i].number))
        return [records[i].number for i in order]


def losses(values: list[float]) -> list[float]:
    accuracy, train_time, latency = values
    raw = [(1 - accuracy) / BOUNDS["error"], train_time / BOUNDS["train_time_s"]]
    raw.append(latency / BOUNDS["latency_ms"])
    return [min(1.0, max(0.0, x)) for x in raw]


def hypervolume_of(points: list[list[float]]) -> float:
    from paretotune import hypervolume

    if not points:
        return 0.0
    return hypervolume([losses(p) for p in points], ["minimize"] * 3, [1.0, 1.0, 1.0])


def one_run(variant: str, seed: int) -> dict[str, Any]:
    import optuna
    from paretotune import NullTracker, open_storage, run_study
    from paretotune import _run as run_module
    from paretotune.stopping import EarlyStopping

    if variant == "tpe+asha_weighted":
        run_module._early_stopping = lambda spec, objectives: EarlyStopping(  # type: ignore[assignment]
            objectives, epochs=15, min_epochs=1, reduction_factor=3, ranking=WeightedAsha
        )
    folder = Path(tempfile.mkdtemp(prefix="pt-es-"))
    storage = str(folder / "study.journal")
    name = f"es-{variant.replace('+', '-')}-{seed}"
    started = time.perf_counter()
    try:
        result = run_study(
            SPEC,
            storage=storage,
            tracker=NullTracker(),
            progress=False,
            seed=seed,
            name=name,
            **VARIANTS[variant],
        )
    finally:
        run_module._early_stopping = ORIGINAL_EARLY_STOPPING
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    trials = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    shutil.rmtree(folder, ignore_errors=True)
    curve, points, epochs = [], [], 0
    for trial in trials:
        epochs += int(trial.user_attrs.get("epochs_trained", 0))
        if trial.state == optuna.trial.TrialState.COMPLETE:
            points.append(list(trial.values))
        curve.append({"epochs": epochs, "hv": hypervolume_of(points)})
    return {
        "variant": variant,
        "seed": seed,
        "wall_s": wall,
        "epochs": epochs,
        "n_complete": result.n_complete,
        "n_pruned": result.n_pruned,
        "n_failed": result.n_failed,
        "hv": curve[-1]["hv"] if curve else 0.0,
        "curve": curve,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    full = {r["seed"]: r for r in runs if r["variant"] == "tpe"}
    rows = []
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        hv_share = [r["hv"] / full[r["seed"]]["hv"] for r in mine if r["seed"] in full]
        epoch_share = [r["epochs"] / full[r["seed"]]["epochs"] for r in mine if r["seed"] in full]
        wall_share = [r["wall_s"] / full[r["seed"]]["wall_s"] for r in mine if r["seed"] in full]
        rows.append(
            {
                "variant": variant,
                "hv_median": statistics.median(r["hv"] for r in mine),
                "hv_vs_a": statistics.median(hv_share) if hv_share else None,
                "epochs_median": statistics.median(r["epochs"] for r in mine),
                "epochs_vs_a": statistics.median(epoch_share) if epoch_share else None,
                "wall_median_s": statistics.median(r["wall_s"] for r in mine),
                "wall_vs_a": statistics.median(wall_share) if wall_share else None,
                "pruned_median": statistics.median(r["n_pruned"] for r in mine),
                "seeds": len(mine),
            }
        )
    return rows


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {"tpe": "#1c7ed6", "tpe+mo_asha": "#d9480f", "random": "#868e96"}
    colours["tpe+asha_weighted"] = "#2f9e44"
    for variant, colour in colours.items():
        for i, run in enumerate(r for r in runs if r["variant"] == variant):
            xs = [p["epochs"] for p in run["curve"]]
            ys = [p["hv"] for p in run["curve"]]
            ax.plot(xs, ys, color=colour, alpha=0.8, label=variant if i == 0 else None)
    ax.set_xlabel("epochs trained (all trials so far)")
    ax.set_ylabel("hypervolume (fixed bounds, ref 1,1,1)")
    ax.set_title("Hypervolume against compute: 60 trials of digits MLP/CNN")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


ORIGINAL_EARLY_STOPPING: Any = None


def main() -> None:
    global ORIGINAL_EARLY_STOPPING
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    quiet()
    facts = machine()
    start_ray(2)
    from paretotune import _run as run_module

    ORIGINAL_EARLY_STOPPING = run_module._early_stopping
    runs = []
    for seed in args.seeds:  # interleaved: load changes hit every variant alike
        for variant in args.variants:
            run = one_run(variant, seed)
            runs.append(run)
            print(
                f"{variant:18s} seed {seed}: hv {run['hv']:.3f}, {run['epochs']} epochs, "
                f"{run['wall_s']:.1f} s, {run['n_pruned']} stopped",
                flush=True,
            )
    rows = summarise(runs)
    print(table(list(rows[0]), [[_fmt(v) for v in row.values()] for row in rows]))
    path = save("early_stopping", {"runs": runs, "summary": rows, "bounds": BOUNDS}, facts)
    plot(runs, path.with_suffix(".png"))
    print(f"saved {path} and {path.with_suffix('.png')}")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
