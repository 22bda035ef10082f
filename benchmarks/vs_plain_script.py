"""paretotune against the script a user would write instead, side by side.

The work: the demo study (``spaces/examples/digits.yaml``: 30 trials × 15 epochs of
digits MLPs, accuracy / train time / latency, TPE). The baseline is a ~40-line sequential
Optuna script (``PLAIN`` below) doing the same training and the same latency
measurement in one process (``paretotune.objectives.evaluate``, so the two differ only
in how the search runs), with no storage and no tracking. ``paretotune run`` runs cold:
a fresh folder, its own local Ray, MLflow on SQLite, the journal file; and (``--up``)
again in a folder where `paretotune up` started a Ray head and an MLflow server once,
before the seeds (not timed), from a fresh journal each time.

Both are timed as whole commands (process start to exit). Hypervolume (issue 15's
definition): error = 1 - accuracy over 0.1, train time over 2 s, latency over 0.1 ms,
each clipped to [0, 1], reference point (1, 1, 1). Seeds run interleaved.

    .venv/bin/python benchmarks/vs_plain_script.py --seeds 0 1 2 [--up]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, machine, quiet, save, table

PLAIN = """
import json, sys
import optuna, torch
from paretotune import objectives
from paretotune.spaces import load_spec, sample_params

seed, out, spec_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
space = load_spec(spec_path).space  # the same space, sampled the same way
context = objectives.TrialContext(dataset={"source": "digits"}, epochs=15, seed=seed)


def objective(trial):
    params = sample_params(trial, space)
    metrics = objectives.evaluate(params, context).metrics
    return metrics["accuracy"], metrics["train_time_s"], metrics["latency_ms"]


study = optuna.create_study(
    directions=["maximize", "minimize", "minimize"],
    sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True),
)
study.optimize(objective, n_trials=30, catch=(ValueError,))  # a failed trial, as paretotune
json.dump([t.values for t in study.trials if t.values], open(out, "w"))
"""
BOUNDS = (0.1, 2.0, 0.1)  # error, train time (s), latency (ms)


def hypervolume_of(points: list[list[float]]) -> float:
    from paretotune import hypervolume

    losses = [
        [min(1.0, max(0.0, x / b)) for x, b in zip((1 - a, t, lat), BOUNDS, strict=True)]
        for a, t, lat in points
    ]
    return hypervolume(losses, ["minimize"] * 3, [1.0, 1.0, 1.0]) if losses else 0.0


def run_plain(seed: int, folder: Path) -> tuple[float, list[list[float]]]:
    out = folder / "plain.json"
    started = time.perf_counter()
    command = [sys.executable, "-c", PLAIN, str(seed), str(out), str(DIGITS_SPEC)]
    subprocess.run(command, check=True, cwd=folder)
    return time.perf_counter() - started, json.loads(out.read_text())


def run_paretotune(seed: int, folder: Path) -> tuple[float, list[list[float]]]:
    import optuna
    from paretotune import open_storage

    spec = folder / "spec.yaml"  # the demo spec with this seed
    spec.write_text(DIGITS_SPEC.read_text() + f"seed: {seed}\n")
    (folder / "paretotune.journal").unlink(missing_ok=True)
    command = [sys.executable, "-m", "paretotune.cli", "run", str(spec), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=folder, env=env, capture_output=True)
    wall = time.perf_counter() - started
    study = optuna.load_study(
        study_name="digits-tradeoff", storage=open_storage(str(folder / "paretotune.journal"))
    )
    return wall, [list(t.values) for t in study.trials if t.values]


def paretotune_up() -> Path:
    """A folder where `paretotune up` runs (stopped by `paretotune_down`)."""
    folder = Path(tempfile.mkdtemp(prefix="pt-vs-up-"))
    command = [sys.executable, "-m", "paretotune.cli", "up"]
    subprocess.run(command, check=True, cwd=folder, capture_output=True)
    return folder


def paretotune_down(folder: Path) -> None:
    command = [sys.executable, "-m", "paretotune.cli", "down"]
    subprocess.run(command, cwd=folder, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--up", action="store_true", help="also run with `paretotune up`")
    args = parser.parse_args()
    quiet()
    facts = machine()
    runners: dict[str, Any] = {"plain script": run_plain, "paretotune run": run_paretotune}
    served = paretotune_up() if args.up else None
    if served is not None:
        runners["paretotune run, up"] = lambda seed, _: run_paretotune(seed, served)
    runs: list[dict[str, Any]] = []
    try:
        for seed in args.seeds:
            for name, runner in runners.items():
                folder = Path(tempfile.mkdtemp(prefix="pt-vs-"))
                try:
                    wall, points = runner(seed, folder)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                runs.append(
                    {
                        "runner": name,
                        "seed": seed,
                        "wall_s": wall,
                        "hv": hypervolume_of(points),
                        "values": points,
                    }
                )
                print(f"{name:18s} seed {seed}: {wall:.1f} s, hv {runs[-1]['hv']:.3f}", flush=True)
    finally:
        if served is not None:
            paretotune_down(served)
    rows = []
    for name in runners:
        mine = [r for r in runs if r["runner"] == name]
        rows.append(
            [
                name,
                " / ".join(f"{r['wall_s']:.1f}" for r in mine),
                f"{statistics.median(r['wall_s'] for r in mine):.1f}",
                " / ".join(f"{r['hv']:.3f}" for r in mine),
                f"{statistics.median(r['hv'] for r in mine):.3f}",
            ]
        )
    print(table(["", "wall s (per seed)", "median", "hypervolume (per seed)", "median"], rows))
    path = save("vs_plain_script", {"runs": runs, "bounds": BOUNDS}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
