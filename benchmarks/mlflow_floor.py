"""Per-trial MLflow cost, all in: paretotune against MLflow's own floor and against Ray
Tune's `MLflowLoggerCallback`, measured in one run.

Every figure is a difference of whole runs of the same no-op work (``overhead.py``'s
stamping objective on the digits space, random sampler, one trial at a time, one shared
private local Ray), so it holds everything logging costs the study, start-up and the
final flush included:

- paretotune: ``run_study`` with MLflow on SQLite minus the same with the NullTracker,
  per trial;
- Ray Tune: ``Tuner`` + ``OptunaSearch`` (``reuse_actors``) with ``MLflowLoggerCallback``
  on SQLite minus the same without, per trial;
- MLflow's floor: a fresh process doing by hand, with ``MlflowClient`` on a fresh SQLite
  store, what paretotune records for these trials (an experiment, a parent run, and per
  trial a nested run with its params, metrics and tags, then ended), its import and the
  store's creation included, per trial. That is the least any tool logging the same
  runs to the same store pays.

Runs interleave over ``--repeats``; medians.

    .venv/bin/python benchmarks/mlflow_floor.py --trials 200 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import machine, quiet, save, start_ray, table
from overhead import measure

FLOOR = """
import sys, time
started = time.perf_counter()
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
folder, trials = sys.argv[1], int(sys.argv[2])
client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
experiment = client.create_experiment("floor")
parent = client.create_run(experiment, run_name="study").info.run_id
params = {"architecture": "mlp", "mlp.depth": 2, "mlp.width": 64, "mlp.activation": "relu",
          "mlp.dropout": 0.1, "batch_size": 64, "learning_rate": 0.01, "optimizer": "adam",
          "compression": "none"}
for number in range(trials):
    run = client.create_run(experiment, run_name=f"trial-{number}", tags={
        "mlflow.parentRunId": parent, "paretotune.study": "floor",
        "paretotune.trial_number": str(number)})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id,
        metrics=[Metric(k, 0.5, now, 0) for k in ("accuracy", "train_time_s", "latency_ms")],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag("paretotune.state", "COMPLETE"), RunTag("architecture", "mlp")])
    client.set_terminated(run.info.run_id, "FINISHED")
client.set_terminated(parent, "FINISHED")
print(time.perf_counter() - started)
"""
PAIRS = {
    "paretotune": (
        "paretotune · Ray actors · journal · MLflow (SQLite)",
        "paretotune · Ray actors · journal · NullTracker",
    ),
    "Ray Tune": (
        "Ray Tune Tuner + OptunaSearch · reuse_actors · MLflowLoggerCallback (SQLite)",
        "Ray Tune Tuner + OptunaSearch · reuse_actors",
    ),
}


def floor_ms(trials: int) -> float:
    with tempfile.TemporaryDirectory(prefix="pt-floor-") as folder:
        done = subprocess.run(
            [sys.executable, "-c", FLOOR, folder, str(trials)],
            check=True,
            capture_output=True,
            text=True,
        )
    return float(done.stdout.split()[-1]) / trials * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    quiet()
    facts = machine()
    start_ray(num_cpus=4)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        row: dict[str, Any] = {"repeat": repeat, "floor_ms": floor_ms(args.trials)}
        for tool, (logged, bare) in PAIRS.items():
            with_mlflow = measure(logged, args.trials, "random")["wall_s"]
            without = measure(bare, args.trials, "random")["wall_s"]
            row[f"{tool}_ms"] = (with_mlflow - without) / args.trials * 1000
            row[f"{tool}_walls_s"] = [with_mlflow, without]
        runs.append(row)
        print(
            f"#{repeat}: floor {row['floor_ms']:.1f} ms, paretotune {row['paretotune_ms']:.1f}"
            f" ms, Ray Tune {row['Ray Tune_ms']:.1f} ms per trial",
            flush=True,
        )
    floor = statistics.median(r["floor_ms"] for r in runs)
    ours = statistics.median(r["paretotune_ms"] for r in runs)
    tune = statistics.median(r["Ray Tune_ms"] for r in runs)
    rows = [
        ["MLflow's floor (MlflowClient by hand)", f"{floor:.1f}", "1.00", ""],
        ["paretotune (MLflow − NullTracker)", f"{ours:.1f}", f"{ours / floor:.2f}", ""],
        [
            "Ray Tune (MLflowLoggerCallback − none)",
            f"{tune:.1f}",
            f"{tune / floor:.2f}",
            f"{tune / ours:.1f}× paretotune's",
        ],
    ]
    print(table(["per-trial MLflow cost, all in", "ms", "÷ floor", ""], rows))
    path = save("mlflow_floor", {"runs": runs, "trials": args.trials, "at": time.time()}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
