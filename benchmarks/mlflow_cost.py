"""MLflow cost: ms per trial of logging to MLflow on SQLite, and whether that logging
blocks the driver.

Part A drives the MLflow code directly (no Optuna, no Ray), for N trials, two payloads:

- ``lean``: params (one real digits config), 3 final metrics, 15-epoch curves of 3
  metrics (45 metric points);
- ``built-in``: the same plus what the built-in objective sends: ~40 final metrics, two
  confusion-matrix JSON artifacts and a pickled model (~ a 64-wide digits MLP).

Synchronous cost, `paretotune.tracking.mlflow.recorder.MlflowRecorder` on this thread:
``start`` (create the
nested run + log params) and ``finish`` (metrics, curves, tags, artifacts, end) as two
jobs, and ``one go`` (the same trial recorded in one job, as the logging process does
when a trial's result is already queued behind its start). Asynchronous, through the
public `MlflowTracker` (the logging process): what the calling thread pays per call,
and the throughput (N trials started and finished, then ``close()``, divided by N).

Part B runs the same no-op workload through ``run_study`` with MLflow on and with the
NullTracker (random sampler and journal storage, so the sampler does not drown the
difference; once in-process and once on one Ray actor). A subclass of `MlflowTracker`
times every call the driver thread makes into the tracker: the time in which no trial
can be dispatched because of MLflow. It also counts the trials whose Optuna record got
its MLflow run id before the trial was told (the rest are linked by their run's trial
tag when read).

Usage: .venv/bin/python benchmarks/mlflow_cost.py [--trials 100]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, OBJECTIVES, machine, median, percentile, quiet, save, table

EPOCHS = 15


def digits_params() -> dict[str, Any]:
    import optuna
    from paretotune.spaces import load_spec, sample_params

    spec = load_spec(str(DIGITS_SPEC))
    study = optuna.create_study(directions=list(OBJECTIVES.values()))
    return sample_params(study.ask(), spec.space)


def make_report(number: int, payload: str):
    import io
    import random

    from paretotune.execution._worker import TrialReport

    rng = random.Random(number)
    metrics = {"accuracy": rng.random(), "train_time_s": rng.random(), "latency_ms": rng.random()}
    history = [
        {"train_loss": rng.random(), "val_loss": rng.random(), "val_accuracy": rng.random()}
        for _ in range(EPOCHS)
    ]
    report = TrialReport(number=number, metrics=metrics, history=history)
    if payload == "built-in":
        import torch

        report.metrics |= {f"extra_metric_{i}": rng.random() for i in range(37)}
        matrix = [[rng.randint(0, 40) for _ in range(10)] for _ in range(10)]
        report.artifacts = {
            "confusion_matrix": matrix,
            "test_confusion_matrix": matrix,
            "class_labels": list(range(10)),
            "notes": [],
        }
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )
        buffer = io.BytesIO()
        torch.save(model, buffer)
        report.model_bytes = buffer.getvalue()
    return report


def part_a(trials: int, payload: str) -> dict[str, Any]:
    from paretotune.tracking import StudyRef
    from paretotune.tracking.mlflow.recorder import MlflowRecorder
    from paretotune.tracking.mlflow.tracker import MlflowTracker

    folder = Path(tempfile.mkdtemp(prefix="pt-mlflow-"))
    try:
        params = digits_params()
        reports = [make_report(n, payload) for n in range(3 * trials)]
        # synchronous: each job timed on the calling thread
        recorder = MlflowRecorder(f"sqlite:///{folder}/sync.db")
        recorder.open_study(StudyRef("sync", {"name": "sync"}))
        start_ms, finish_ms, one_go_ms = [], [], []
        for n in range(trials):
            t0 = time.perf_counter()
            recorder.start_trial(n, params)
            t1 = time.perf_counter()
            recorder.finish_trial(n, "COMPLETE", reports[n])
            t2 = time.perf_counter()
            recorder.start_trial(trials + n, params, ("COMPLETE", reports[trials + n]))
            t3 = time.perf_counter()
            start_ms.append((t1 - t0) * 1000)
            finish_ms.append((t2 - t1) * 1000)
            one_go_ms.append((t3 - t2) * 1000)
        recorder.close()
        if recorder.errors:
            raise RuntimeError(recorder.errors[:3])
        # asynchronous: what the driver thread pays, and the logging process's throughput
        tracker = MlflowTracker(f"sqlite:///{folder}/async.db")
        tracker.open_study(StudyRef("async", {"name": "async"}))
        submit_ms = []
        t_all = time.perf_counter()
        for n in range(trials):
            t0 = time.perf_counter()
            tracker.start_trial(n, params)
            tracker.finish_trial(n, "COMPLETE", reports[2 * trials + n])
            submit_ms.append((time.perf_counter() - t0) * 1000 / 2)
        errors = tracker.close().errors
        async_total = time.perf_counter() - t_all
        if errors:
            raise RuntimeError(errors[:3])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total = [a + b for a, b in zip(start_ms, finish_ms, strict=True)]
    return {
        "payload": payload,
        "trials": trials,
        "start_trial_median_ms": median(start_ms),
        "finish_trial_median_ms": median(finish_ms),
        "per_trial_median_ms": median(total),
        "per_trial_p95_ms": percentile(total, 95),
        "one_go_median_ms": median(one_go_ms),
        "async_throughput_ms_per_trial": async_total / trials * 1000,
        "submit_median_ms": median(submit_ms),
    }


def timed_tracker(uri: str, waits: list[float], end_waits: list[float]) -> Any:
    """An `MlflowTracker` that adds the time of every driver-thread call to ``waits``,
    except ``poll`` with a timeout: the driver makes those only when nothing is left to
    dispatch (waiting for the last run ids), and they go to ``end_waits``."""
    from paretotune.tracking.mlflow.tracker import MlflowTracker

    class TimedTracker(MlflowTracker):
        pass

    for name in ("open_study", "start_trial", "finish_trial", "update_front", "poll"):
        method = getattr(MlflowTracker, name)

        def timed(self: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _method(self, *args, **kwargs)
            finally:
                ending = _method.__name__ == "poll" and bool(args or kwargs)
                (end_waits if ending else waits).append((time.perf_counter() - t0) * 1000)

        setattr(TimedTracker, name, timed)
    return TimedTracker(uri)


def part_b(trials: int, executor: str, mlflow: bool) -> dict[str, Any]:
    import optuna
    from overhead import read_stamps, stamping_objective
    from paretotune import InProcessExecutor, NullTracker, open_storage, run_study

    waits: list[float] = []
    end_waits: list[float] = []
    folder = Path(tempfile.mkdtemp(prefix="pt-mlflow-b-"))
    stamps = folder / "stamps.txt"
    objective = stamping_objective(str(stamps))
    try:
        t0 = time.perf_counter()
        result = run_study(
            str(DIGITS_SPEC),
            objective=objective,
            storage=str(folder / "study.journal"),
            tracker=timed_tracker(f"sqlite:///{folder}/mlflow.db", waits, end_waits)
            if mlflow
            else NullTracker(),
            executor=InProcessExecutor(None, objective) if executor == "in-process" else None,
            progress=False,
            trials=trials,
            workers=1,
            sampler="random",
            name="mlflow-cost",
        )
        wall = time.perf_counter() - t0
        returned = time.time()
        times = read_stamps(stamps)
        study = optuna.load_study(
            study_name="mlflow-cost", storage=open_storage(str(folder / "study.journal"))
        )
        linked = sum(1 for t in study.get_trials() if "mlflow_run_id" in t.user_attrs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if result.n_complete != trials or result.tracking_errors:
        raise RuntimeError(f"incomplete: {result.n_complete}, {result.tracking_errors[:3]}")
    return {
        "executor": executor,
        "tracker": "MLflow (SQLite)" if mlflow else "NullTracker",
        "trials": trials,
        "wall_s": wall,
        "startup_s": wall - (returned - times[0]),
        "ms_per_trial": (returned - times[0]) / (trials - 1) * 1000,
        "per_trial_median_ms": median(
            [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]
        ),
        "blocked_ms_per_trial": sum(waits) / trials,
        "blocked_max_ms": max(waits, default=0.0),
        "blocked_share": sum(waits) / 1000 / wall,
        "end_wait_s": sum(end_waits) / 1000,
        "run_id_in_optuna_share": linked / trials if mlflow else None,
    }


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    quiet()
    facts = machine()
    from _common import start_ray

    a_rows = [part_a(args.trials, payload) for payload in ("lean", "built-in")]
    print(f"A. MLflow on SQLite, {args.trials} trials each")
    print(
        table(
            [
                "payload",
                "start ms",
                "finish ms",
                "start + finish median ms",
                "p95 ms",
                "one go ms",
                "logging process: ms/trial throughput",
                "driver-side call ms",
            ],
            [
                [
                    r["payload"],
                    r["start_trial_median_ms"],
                    r["finish_trial_median_ms"],
                    r["per_trial_median_ms"],
                    r["per_trial_p95_ms"],
                    r["one_go_median_ms"],
                    r["async_throughput_ms_per_trial"],
                    r["submit_median_ms"],
                ]
                for r in a_rows
            ],
        ),
        flush=True,
    )
    start_ray(num_cpus=4)
    b_rows = []
    for executor in ("in-process", "Ray actor"):
        for mlflow in (False, True):
            b_rows.append(part_b(args.trials, executor, mlflow))
    print(f"\nB. run_study, {args.trials} no-op trials, random sampler, journal, 1 worker")
    print(
        table(
            [
                "executor",
                "tracker",
                "start-up s",
                "per-trial median ms",
                "amortised ms/trial",
                "driver in tracker calls ms/trial",
                "longest call ms",
                "share of wall",
                "run id in Optuna before tell",
                "end: waiting for the last run ids s",
            ],
            [
                [
                    r["executor"],
                    r["tracker"],
                    r["startup_s"],
                    r["per_trial_median_ms"],
                    r["ms_per_trial"],
                    r["blocked_ms_per_trial"],
                    r["blocked_max_ms"],
                    f"{r['blocked_share']:.1%}",
                    _share(r["run_id_in_optuna_share"]),
                    r["end_wait_s"],
                ]
                for r in b_rows
            ],
        )
    )
    for executor in ("in-process", "Ray actor"):
        null, on = (r for r in b_rows if r["executor"] == executor)
        print(
            f"[{executor}] MLflow adds {on['ms_per_trial'] - null['ms_per_trial']:.1f} ms per "
            f"trial (amortised, start-up excluded); the driver spent "
            f"{on['blocked_ms_per_trial']:.3f} ms per trial in tracker calls (longest "
            f"{on['blocked_max_ms']:.1f} ms)"
        )
    path = save("mlflow_cost", {"tracker_direct": a_rows, "driver": b_rows}, facts)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
