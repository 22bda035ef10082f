"""Scale: no-op studies of thousands of trials, and the driver on a simulated 64-worker cluster.

Real studies (``--trials``, each size and case in a fresh child process): ``run_study`` on
the digits spec's space with its default settings (the ``auto`` sampler: TPE, then
NSGA-II after 200 trials), a custom no-op objective, 2 workers (Ray actors on a private
local Ray), the journal storage and MLflow on SQLite, in a temporary folder. Two cases:

- ``front``: every point is Pareto-optimal (x = the sampled learning rate;
  ``accuracy = 1 - x``, ``train_time_s = x``, ``latency_ms = 1 / (1 + x)``);
- ``random``: uniform random values (seeded by the params), so the front stays small.

Measured per study:

- throughput (trials/s) over the first 10% and the last 10% of the trials, from the
  trials' ``datetime_complete`` (when the driver told Optuna) read back from the finished
  study (k trials over the span of k completion gaps), and their ratio; the same from
  ``datetime_start`` (dispatch). The two differ at the end: the driver holds the last
  trials' telling until MLflow has answered their run ids, so the told pace of the last
  10% includes MLflow's backlog, the dispatched pace does not;
- the driver's CPU seconds per trial (its ``getrusage`` around ``run_study``: all its
  threads, not Ray's workers nor the MLflow logging process) and its peak RSS
  (``ru_maxrss``); also the CPU and peak RSS of its reaped children (the MLflow logging
  process);
- the wall of ``run_study``, and all in per trial: the child's wall from its start to
  ``run_study``'s return (imports and Ray start included) / trials, set against MLflow's
  own floor per trial at the same number of runs (``mlflow_floor.floor_ms``:
  ``MlflowClient`` by hand on a fresh SQLite store, its import included);
- on the finished study: ``Client.front()`` in process (a fresh ``Client``), and the
  ``paretotune pareto NAME --json``, ``status NAME`` and ``show NAME N`` subprocesses
  (median of ``--cli-repeats``), each with ``--storage``.

Simulated (``--simulate-trials``, each case): ``paretotune.testing.simulate_study``, i.e.
``run_study`` with the simulated clock, the scripted executor (64 workers, 1-s trials)
and the recording tracker, on a journal. Utilisation = busy worker-seconds / (64 x
simulated wall); the best possible is trials / (64 x ceil(trials / 64)) (the last
round's idle workers). The simulated clock does not see the driver's own work, so the
real seconds the simulation took are reported too: the driver keeps 64 workers of 1-s
trials busy only while it needs under 1000/64 = 15.6 ms per trial, and "util at the
driver's speed" = busy / (64 x max(simulated wall, real wall)).

Usage:
  .venv/bin/python benchmarks/scale.py                     # 1000 5000 10000, both cases
  .venv/bin/python benchmarks/scale.py --trials 200 500 --simulate-trials 1000
  .venv/bin/python benchmarks/scale.py --simulate-only --simulate-trials 1000 10000
  --cut-after-s 300: a study still running then is killed, and what it finished is read
  back (the table marks it "cut"); --skip-cli: no read commands timed.

The figures are of the ``paretotune`` that imports (the results file names its folder).
To measure a commit beside the working tree, lay it out as the package and put it first
on PYTHONPATH (the child processes, Ray's workers and the CLI inherit it)::

  mkdir -p /tmp/old && git archive COMMIT search spaces objectives | tar -x -C /tmp/old
  mkdir -p /tmp/old-pkg && cp -r /tmp/old/search /tmp/old-pkg/paretotune
  cp -r /tmp/old/spaces /tmp/old/objectives /tmp/old-pkg/paretotune/
  PYTHONPATH=/tmp/old-pkg .venv/bin/python benchmarks/scale.py --out /tmp/scale-old.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    DIGITS_SPEC,
    RESULTS,
    ROOT,
    Stopwatch,
    child_json,
    machine,
    median,
    quiet,
    save,
    start_ray,
    table,
)
from mlflow_floor import floor_ms

WORKERS = 2
SIM_WORKERS = 64
SIM_TRIAL_S = 1.0
WINDOW = 0.10  # the first and last 10% of the trials


# -- the no-op objectives (module level in __main__: Ray pickles them by value) -----------
def front_metrics(params: dict[str, Any]) -> dict[str, float]:
    """Every point Pareto-optimal: a larger x is worse in accuracy and time, better in
    latency."""
    x = float(params["learning_rate"])
    return {"accuracy": 1.0 - x, "train_time_s": x, "latency_ms": 1.0 / (1.0 + x)}


def random_metrics(params: dict[str, Any]) -> dict[str, float]:
    """Uniform random values, reproducible from the params: a small front."""
    rng = random.Random(repr(sorted(params.items())))
    return {"accuracy": rng.random(), "train_time_s": rng.random(), "latency_ms": rng.random()}


CASES: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "front": front_metrics,
    "random": random_metrics,
}


def _cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


# -- each study runs in a child process (its own peak RSS; a stalled one can be cut) -------
def child(mode: str, case: str, trials: int, folder: str) -> None:
    """Run one study cold in ``folder`` and print one JSON line of its figures."""
    began = time.perf_counter()
    quiet()
    run = study_figures if mode == "study" else simulated_figures
    print(json.dumps(run(case, trials, folder, began)), flush=True)


def in_child(
    mode: str, case: str, trials: int, timeout: float | None, *, cli: int
) -> dict[str, Any]:
    """``child`` in a fresh process, in a fresh folder; past ``timeout`` seconds it is cut
    and what finished by then is read back (the throughput over its first and last 10%).
    With ``cli`` (repeats), the read commands are timed on the study it left."""
    with tempfile.TemporaryDirectory(prefix="pt-scale-") as folder:
        command = [sys.executable, __file__, "--child", mode, case, str(trials), folder]
        try:
            row = child_json(command, f"{mode} {case} {trials}", timeout=timeout)
            last = trials - 1
        except subprocess.TimeoutExpired:
            storage, name = f"{folder}/study.journal", study_name(mode, case, trials)
            times = trial_times(storage, name)
            row = {
                "case": case,
                "trials": trials,
                "cut_after_s": timeout,
                "n_complete_at_cut": len(times["complete"]),
                **throughput(times),
            }
            last = len(times["complete"]) - 1
            if mode == "study" and last >= 0:  # (a simulated study's front is not shown)
                row |= front_walls(storage, f"sqlite:///{folder}/mlflow.db", name)
        if cli and last >= 0:
            row |= cli_walls(study_name(mode, case, trials), last, folder, cli)
    return row


def study_figures(case: str, trials: int, folder: str, began: float) -> dict[str, Any]:
    """A real study: 2 Ray workers, MLflow on SQLite."""
    from paretotune import run_study

    with Stopwatch() as ray_start:
        start_ray(num_cpus=WORKERS)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Stopwatch() as study:
        result = run_study(
            str(DIGITS_SPEC),
            objective=CASES[case],
            storage=f"{folder}/study.journal",
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
            progress=False,
            trials=trials,
            workers=WORKERS,
            name=study_name("study", case, trials),
        )
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_in_s = time.perf_counter() - began
    driver_cpu_s = _cpu_s(self_after) - _cpu_s(self_before)
    if result.n_complete != trials:
        raise RuntimeError(f"{case} {trials}: {result.n_complete} complete trials")
    name, storage = study_name("study", case, trials), result.storage
    return {
        "case": case,
        "trials": trials,
        "n_complete": result.n_complete,
        **front_walls(storage, result.tracking_uri, name),
        "tracking_errors": len(result.tracking_errors),
        "ray_start_s": ray_start.seconds,
        "run_study_s": study.seconds,
        "all_in_s": all_in_s,
        "driver_cpu_s": driver_cpu_s,
        "driver_peak_rss_mb": self_after.ru_maxrss / 1024,
        "children_cpu_s": _cpu_s(children_after) - _cpu_s(children_before),
        "children_peak_rss_mb": children_after.ru_maxrss / 1024,
        "driver_cpu_ms_per_trial": driver_cpu_s / trials * 1000,
        "all_in_ms_per_trial": all_in_s / trials * 1000,
        **throughput(trial_times(storage, name)),
    }


def front_walls(storage: str, tracking_uri: str | None, name: str) -> dict[str, Any]:
    """``Client.front()`` twice, each from a fresh ``Client`` (it opens the storage itself);
    the first call also imports what reading needs (MLflow)."""
    from paretotune import Client

    walls = []
    for _ in range(2):
        with Stopwatch() as call:
            front = Client(storage, tracking_uri).front(name)
        walls.append(call.seconds)
    return {
        "pareto_size": len(front.pareto),
        "client_front_first_s": walls[0],
        "client_front_s": walls[1],
    }


def trial_times(storage: str, name: str) -> dict[str, list[datetime]]:
    """When the study's trials were asked (dispatched) and when told (``complete``), each
    in order (read through `Client`)."""
    from paretotune import Client, StudyNotFoundError

    try:
        trials = Client(storage).load_study(name).get_trials(deepcopy=False)
    except StudyNotFoundError:  # a study cut before it was created
        trials = []
    return {
        "start": sorted(t.datetime_start for t in trials if t.datetime_start is not None),
        "complete": sorted(t.datetime_complete for t in trials if t.datetime_complete),
    }


def throughput(times: dict[str, list[datetime]]) -> dict[str, float]:
    """Trials/s over the first and last ``WINDOW`` of the trials: k trials over the span of
    the k gaps that end them; by when they were told (as Optuna records them complete) and
    by when they were dispatched (``dispatch_``: a free worker's next trial, so the pace
    of the trials on the workers, without the wait of the last ones for MLflow's run ids
    at the study's end)."""
    figures = {}
    for prefix, key in (("", "complete"), ("dispatch_", "start")):
        ordered = times[key]
        k = max(1, int(len(ordered) * WINDOW))
        first = last = math.nan
        if len(ordered) > k:
            first = k / max(1e-9, (ordered[k] - ordered[0]).total_seconds())
            last = k / max(1e-9, (ordered[-1] - ordered[-1 - k]).total_seconds())
        figures |= {
            f"{prefix}first_tps": first,
            f"{prefix}last_tps": last,
            f"{prefix}last_over_first": last / first,
        }
    return figures


def study_name(mode: str, case: str, trials: int) -> str:
    return f"scale-{mode}-{case}-{trials}"


# -- the read commands on the finished study ----------------------------------------------
def cli_walls(name: str, last: int, folder: str, repeats: int) -> dict[str, float]:
    """Median wall of each read command, as a user runs it (a fresh process); ``show``
    shows trial ``last``."""
    command = str(Path(sys.executable).parent / "paretotune")
    storage = f"{folder}/study.journal"
    commands = {
        "pareto_json_s": ["pareto", name, "--json"],
        "status_s": ["status", name],
        "show_s": ["show", name, str(last)],
    }
    walls: dict[str, float] = {}
    for key, words in commands.items():
        seconds = []
        for _ in range(repeats):
            with Stopwatch() as watch:
                done = subprocess.run(
                    [command, *words, "--storage", storage],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if done.returncode != 0:
                raise RuntimeError(
                    f"paretotune {' '.join(words)}: exit {done.returncode}\n{done.stderr[-2000:]}"
                )
            seconds.append(watch.seconds)
        walls[key] = median(seconds)
    return walls


# -- the simulated cluster ----------------------------------------------------------------
def simulated_figures(case: str, trials: int, folder: str, began: float) -> dict[str, Any]:
    """The driver on a simulated cluster of 64 workers with 1-s trials."""
    from paretotune.testing import Outcome, simulate_study

    metrics = CASES[case]
    cpu_before = time.process_time()
    with Stopwatch() as real:
        run = simulate_study(
            str(DIGITS_SPEC),  # type: ignore[arg-type]  # run_study takes a path too
            lambda task: Outcome(seconds=SIM_TRIAL_S, metrics=metrics(task.params)),
            storage=f"{folder}/study.journal",
            capacity=SIM_WORKERS,
            trials=trials,
            workers=SIM_WORKERS,
            name=study_name("sim", case, trials),
        )
    cpu_s = time.process_time() - cpu_before
    if run.result.n_complete != trials:
        raise RuntimeError(f"simulated {case} {trials}: {run.result.n_complete} complete")
    busy = len(run.executor.reported) * SIM_TRIAL_S
    sim_wall = run.clock.now()
    return {
        "case": case,
        "trials": trials,
        "workers": SIM_WORKERS,
        "trial_s": SIM_TRIAL_S,
        "pareto_size": len(run.result.pareto),
        "simulated_wall_s": sim_wall,
        "utilisation": busy / (SIM_WORKERS * sim_wall),
        "best_utilisation": trials / (SIM_WORKERS * math.ceil(trials / SIM_WORKERS)),
        "real_wall_s": real.seconds,
        "real_cpu_s": cpu_s,
        "real_ms_per_trial": real.seconds / trials * 1000,
        "real_cpu_ms_per_trial": cpu_s / trials * 1000,
        "util_at_driver_speed": busy / (SIM_WORKERS * max(sim_wall, real.seconds)),
        # in real time: how fast the driver got through the trials at the start and the end
        **throughput(trial_times(run.result.storage, run.result.name)),
    }


# -- the report ---------------------------------------------------------------------------
def tree_state() -> dict[str, Any]:
    """The commit measured and the files changed in the working tree (figures of a dirty
    tree are of that tree, not of the commit)."""

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip()

    import paretotune

    return {
        "commit": git("rev-parse", "HEAD"),
        "changed": git("status", "--short").splitlines(),
        "paretotune_imported_from": str(Path(paretotune.__file__).parent),
    }


STUDY_COLUMNS = {
    "pareto_size": "front",
    "run_study_s": "run_study s",
    "first_tps": "trials/s first 10%",
    "last_tps": "last 10%",
    "last_over_first": "last ÷ first",
    "dispatch_first_tps": "dispatched/s first 10%",
    "dispatch_last_tps": "last 10%",
    "dispatch_last_over_first": "last ÷ first",
    "driver_cpu_ms_per_trial": "driver CPU ms/trial",
    "driver_peak_rss_mb": "driver peak RSS MB",
    "all_in_ms_per_trial": "all-in ms/trial",
    "floor_ms_per_trial": "MLflow floor ms/trial",
    "all_in_over_floor": "all-in ÷ floor",
}
READ_COLUMNS = {
    "client_front_s": "Client.front() s",
    "client_front_first_s": "(first call) s",
    "pareto_json_s": "pareto --json s",
    "status_s": "status s",
    "show_s": "show s",
}
SIM_COLUMNS = {
    "pareto_size": "front",
    "first_tps": "real trials/s first 10%",
    "last_tps": "last 10%",
    "simulated_wall_s": "simulated wall s",
    "utilisation": "utilisation",
    "best_utilisation": "best possible",
    "real_wall_s": "real wall s",
    "real_ms_per_trial": "real ms/trial",
    "real_cpu_ms_per_trial": "CPU ms/trial",
    "util_at_driver_speed": "util at the driver's speed",
}


def print_table(title: str, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """``rows`` under ``columns`` (key: header), a cut study's trials marked with what
    finished; utilisations as percentages."""

    def cell(row: dict[str, Any], key: str) -> Any:
        value = row.get(key, math.nan)
        percent = "utilisation" in key or "util_" in key
        return f"{value:.1%}" if percent and value == value else value

    def trials(row: dict[str, Any]) -> str:
        if "cut_after_s" in row:
            return (
                f"{row['trials']} (cut at {row['cut_after_s']:.0f} s: {row['n_complete_at_cut']})"
            )
        return str(row["trials"])

    if rows:
        print(f"\n{title}")
        body = [[r["case"], trials(r), *(cell(r, key) for key in columns)] for r in rows]
        print(table(["case", "trials", *columns.values()], body))


def say(mode: str, row: dict[str, Any]) -> None:
    """One line as each study ends."""
    head = f"  {mode} {row['case']} {row['trials']}:"
    speed = f"{row['first_tps']:.1f} -> {row['last_tps']:.1f} trials/s"
    if "cut_after_s" in row:
        line = f"CUT after {row['cut_after_s']:.0f} s, {row['n_complete_at_cut']} finished"
    elif mode == "study":
        line = (
            f"run_study {row['run_study_s']:.1f} s, driver CPU "
            f"{row['driver_cpu_ms_per_trial']:.1f} ms/trial, RSS {row['driver_peak_rss_mb']:.0f} MB"
        )
    else:
        line = f"utilisation {row['utilisation']:.1%}, real {row['real_wall_s']:.1f} s"
    print(f"{head} {line}, {speed}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--simulate-trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--skip-cli", action="store_true", help="no read commands timed")
    parser.add_argument("--simulate-only", action="store_true", help="no real studies")
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument(
        "--cut-after-s", type=float, help="cut a study (real or simulated) running longer"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "CASE", "TRIALS", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        mode, case, trials, folder = args.child
        child(mode, case, int(trials), folder)
        return
    quiet()
    facts = machine()
    studies: list[dict[str, Any]] = []
    for trials in [] if args.simulate_only else args.trials:
        floor = floor_ms(trials)
        print(f"  MLflow floor at {trials} runs: {floor:.1f} ms/run", flush=True)
        for case in args.cases:
            cli = 0 if args.skip_cli else args.cli_repeats
            row = in_child("study", case, trials, args.cut_after_s, cli=cli)
            row["floor_ms_per_trial"] = floor
            if "all_in_ms_per_trial" in row:
                row["all_in_over_floor"] = row["all_in_ms_per_trial"] / floor
            studies.append(row)
            say("study", row)
    sims: list[dict[str, Any]] = []
    for trials in args.simulate_trials:
        for case in args.cases:
            sims.append(in_child("sim", case, trials, args.cut_after_s, cli=0))
            say("simulated", sims[-1])
    print_table(
        f"No-op studies, {WORKERS} workers, journal + MLflow on SQLite", studies, STUDY_COLUMNS
    )
    print_table("Reading the finished study (CLI: a fresh process, median)", studies, READ_COLUMNS)
    print_table(
        f"Simulated: {SIM_WORKERS} workers, {SIM_TRIAL_S:g}-s trials, scripted executor, "
        "recording tracker, journal",
        sims,
        SIM_COLUMNS,
    )
    payload = {"tree": tree_state(), "studies": studies, "simulated": sims}
    print(f"\nwrote {save('scale', payload, facts, args.out)}")


if __name__ == "__main__":
    main()
