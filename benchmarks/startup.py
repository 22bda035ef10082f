"""Start-up: from the command to the first trial running, cold and with `paretotune up`.

The work: a 2-trial, 1-epoch digits study (``SPEC`` below), run as a whole command
(``paretotune run``) in a fresh folder each time:

- cold: nothing running; the command starts its own local Ray, its MLflow store
  (SQLite, created by the run) and its actors;
- up: `paretotune up` started a Ray head and an MLflow server in one folder beforehand
  (once, not timed, as a user would); each run there starts from a fresh journal and
  joins them.

Figures per run: *asked* (trial 0 asked of Optuna, `datetime_start`), *first trial
running* (the earliest worker start, the trials' ``started_at``), *last trial done* and
the *whole command* (process start to exit), each from the moment the command was
launched. Cases run interleaved; medians over ``--repeats``.

The timeline: each run sets ``$PARETOTUNE_TIMELINE``, so the command marks its phases
(``paretotune._timeline``): ``main`` (imports done, arguments parsed), ``run_study``,
``study_open`` (spec, dataset checked, lock, study), ``ray_ready`` (Ray joined or
started, actors asked for), ``tracker_open`` (the MLflow logging process started, the
parent run), ``worker_placed`` (the driver saw the first actor placed),
``first_dispatch``, ``trials_done``, ``remeasured`` (the end-of-run re-measurement),
``workers_stopped``, ``tracker_closed`` (MLflow caught up and its process exited),
``front_printed`` and ``ray_stopped``; the table gives each phase's median moment from
launch and the median step from the phase before it.

    .venv/bin/python benchmarks/startup.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, quiet, save, table
from paretotune._timeline import TIMELINE_ENV, read

SPEC = """\
name: startup
dataset: {source: digits}
space: {architecture: [mlp], mlp: {depth: 1, width: 32}, optimizer: [adam]}
budget: {trials: 2, epochs: 1}
resources: {workers: 2}
"""
PARETOTUNE = [sys.executable, "-m", "paretotune.cli"]


def run_once(folder: Path, env: dict[str, str]) -> dict[str, float]:
    """One `paretotune run` of ``SPEC`` in ``folder``, from a fresh journal."""
    import optuna
    from paretotune import open_storage

    (folder / "spec.yaml").write_text(SPEC)
    (folder / "paretotune.journal").unlink(missing_ok=True)
    timeline = folder / "timeline.jsonl"
    timeline.unlink(missing_ok=True)
    launched = time.time()
    subprocess.run(
        [*PARETOTUNE, "run", "spec.yaml", "--no-progress"],
        cwd=folder,
        env={**env, TIMELINE_ENV: str(timeline)},
        check=True,
        capture_output=True,
    )
    wall = time.time() - launched
    marks = {f"at_{phase}_s": moment - launched for phase, moment in read(timeline)}
    study = optuna.load_study(
        study_name="startup", storage=open_storage(str(folder / "paretotune.journal"))
    )
    trials = study.get_trials(deepcopy=False)
    return {
        "asked_s": min(t.datetime_start.timestamp() for t in trials) - launched,
        "first_running_s": min(t.user_attrs["started_at"] for t in trials) - launched,
        "last_done_s": max(t.datetime_complete.timestamp() for t in trials) - launched,
        "wall_s": wall,
        **marks,
    }


KEYS = ("asked_s", "first_running_s", "last_done_s", "wall_s")


def timeline_table(runs: list[dict[str, Any]]) -> str:
    """Each phase's median moment from launch, and its median step from the phase
    before it, per case (phases in the order of the cold runs' medians)."""
    columns: list[str] = []
    medians: dict[str, dict[str, float]] = {}
    for case in ("cold", "up"):
        mine = [r for r in runs if r["case"] == case]
        keys = {k for r in mine for k in r if k.startswith("at_")} | {"wall_s"}
        medians[case] = {k: statistics.median(r[k] for r in mine if k in r) for k in keys}
        columns += [k for k in sorted(keys, key=medians[case].get) if k not in columns]
    rows = []
    for key in columns:
        cells = [key.removeprefix("at_").removesuffix("_s").replace("wall", "exit")]
        for case in ("cold", "up"):
            at = medians[case].get(key)
            if at is None:
                cells += ["", ""]
                continue
            before = max((v for v in medians[case].values() if v < at), default=0.0)
            cells += [f"{at:.2f}", f"+{at - before:.2f}"]
        rows.append(cells)
    return table(["phase", "cold: at s", "step s", "up: at s", "step s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet()
    facts = machine()
    runs: list[dict[str, Any]] = []
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    served = Path(tempfile.mkdtemp(prefix="pt-startup-up-"))
    subprocess.run([*PARETOTUNE, "up"], cwd=served, env=env, check=True, capture_output=True)
    try:
        for repeat in range(args.repeats):
            for case in ("cold", "up"):
                folder = served if case == "up" else Path(tempfile.mkdtemp(prefix="pt-startup-"))
                try:
                    figures = run_once(folder, env)
                finally:
                    if case == "cold":
                        shutil.rmtree(folder, ignore_errors=True)
                runs.append({"case": case, "repeat": repeat, **figures})
                shown = ", ".join(f"{k} {v:.1f}" for k, v in figures.items() if k in KEYS)
                print(f"{case:5s} #{repeat}: {shown}", flush=True)
    finally:
        subprocess.run([*PARETOTUNE, "down"], cwd=served, env=env, capture_output=True)
        shutil.rmtree(served, ignore_errors=True)
    rows = []
    for case in ("cold", "up"):
        mine = [r for r in runs if r["case"] == case]
        rows.append([case, *(f"{statistics.median(r[k] for r in mine):.1f}" for k in KEYS)])
    print(table(["case", "asked s", "first trial running s", "last trial done s", "whole s"], rows))
    print(timeline_table(runs))
    path = save("startup", {"runs": runs, "spec": SPEC}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
