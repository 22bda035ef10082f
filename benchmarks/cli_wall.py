"""End to end: the wall time of ``paretotune run`` as a user waits for it, for one or more
code trees side by side (interleaved rounds, so load changes hit every tree alike).

Each run starts cold in a fresh working directory: a new local Ray, a new journal, a new
MLflow SQLite store, the built-in objective on the spec's dataset. Reported per tree: the
median wall time from the command's start to its exit, the study time the command prints
(``N trials run in X s``), and the time after that line until the process has exited.

To compare with an older commit, check it out beside this one and name both trees:

  git worktree add /tmp/paretotune-old <commit>
  .venv/bin/python benchmarks/cli_wall.py --tree new=. --tree old=/tmp/paretotune-old

Usage: .venv/bin/python benchmarks/cli_wall.py [--spec spaces/examples/digits.yaml]
       [--trials 12] [--epochs 5] [--rounds 3] [--tree NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, ROOT, machine, median, save, table

SUMMARY = re.compile(r": (\d+) trials run in ([\d.]+) s")
TIMINGS = ("wall_s", "study_s", "exit_after_summary_s")


def run_once(tree: Path, spec: Path, trials: int, epochs: int) -> dict[str, float]:
    """One cold ``python -m paretotune.cli run`` of ``tree``'s code; its timings.

    ``tree`` must hold the code the venv's editable install maps to ``paretotune`` (the
    package maps its folders, so another tree cannot simply go first on PYTHONPATH):
    install each tree into a venv of its own to compare commits."""
    folder = Path(tempfile.mkdtemp(prefix="pt-cli-"))
    command = [sys.executable, "-m", "paretotune.cli", "run", str(spec), "--no-progress"]
    command += ["--trials", str(trials), "--epochs", str(epochs)]
    env = os.environ | {"PYTHONPATH": str(tree.resolve()), "RAY_ADDRESS": ""}
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        summary_at = None
        study_s = None
        output: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if match := SUMMARY.search(line):
                summary_at = time.perf_counter()
                study_s = float(match.group(2))
        code = process.wait()
        ended = time.perf_counter()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if code != 0 or summary_at is None or study_s is None:
        raise RuntimeError(f"{tree}: exit {code}\n{''.join(output)[-2000:]}")
    return {
        "wall_s": ended - started,
        "study_s": study_s,
        "exit_after_summary_s": ended - summary_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DIGITS_SPEC)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree) or {"this": str(ROOT)}
    facts = machine()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, path in trees.items():
            timing = run_once(Path(path), args.spec.resolve(), args.trials, args.epochs)
            runs[name].append(timing)
            print(
                f"  round {round_ + 1} {name}: wall {timing['wall_s']:.1f} s, study "
                f"{timing['study_s']:.1f} s, exit {timing['exit_after_summary_s']:.2f} s",
                flush=True,
            )
    rows: list[dict[str, Any]] = [
        {
            "tree": name,
            "path": trees[name],
            "runs": timings,
            **{f"median_{key}": median([t[key] for t in timings]) for key in TIMINGS},
        }
        for name, timings in runs.items()
    ]
    print(
        f"\n`paretotune run {args.spec.name} --trials {args.trials} --epochs {args.epochs}`, "
        f"cold, {args.rounds} interleaved rounds"
    )
    print(
        table(
            ["tree", "wall s (median)", "study s (median)", "exit after summary s"],
            [[r["tree"], *(r[f"median_{key}"] for key in TIMINGS)] for r in rows],
        )
    )
    config = {"spec": str(args.spec), "trials": args.trials, "epochs": args.epochs}
    print(f"\nwrote {save('cli_wall', {'config': config, 'rows': rows}, facts)}")


if __name__ == "__main__":
    main()
