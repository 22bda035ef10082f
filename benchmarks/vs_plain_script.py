"""paretotune against the script a user would write instead, side by side.

The work: the demo study (``spaces/examples/digits.yaml``: 30 trials x 15 epochs of
digits MLPs, accuracy / train time / latency, TPE). The baseline (``PLAIN`` below) is
the sequential Optuna script a user writes instead: scikit-learn's digits, an 80/20
split, a torch MLP over the same space (same param names), 15 epochs of minibatch
training timed with ``perf_counter``, then 100 batch-1 calls after 10 warm-up calls
(median), ``study.optimize``; no storage, no tracking, none of paretotune's code.
``paretotune run`` runs cold: a fresh folder, its own local Ray, MLflow on SQLite, the
journal file; and (``--up``) again in a folder where `paretotune up` started a Ray head
and an MLflow server once, before the seeds (not timed), from a fresh journal each time.

Both are timed as whole commands (process start to exit). Hypervolume (issue 15's
definition): error = 1 - accuracy over 0.1, train time over 2 s, latency over 0.1 ms,
each clipped to [0, 1], reference point (1, 1, 1). Seeds run interleaved.

Each figure has its own definitions of time and latency, so each front is also
*judged*: every configuration on a run's own front is trained and measured again,
after all runs, in this process, by one procedure (``paretotune.objectives.evaluate``,
one torch thread, 15 epochs, seed 0), and the judged hypervolume is of those figures.

    .venv/bin/python benchmarks/vs_plain_script.py --seeds 0 1 2 [--up]
        [--variant 'one worker=--workers 1' --variant 'MO-ASHA=--early-stopping mo_asha']
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
from functools import partial
from pathlib import Path
from typing import Any

from _common import DIGITS_SPEC, machine, quiet, save, table

PLAIN = """
import json, statistics, sys, time
import optuna, torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

seed, out = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X / 16.0, y, test_size=0.2, random_state=seed)
X_tr, X_va = (torch.tensor(a, dtype=torch.float32) for a in (X_tr, X_va))
y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


def objective(trial):
    depth = trial.suggest_int("mlp.depth", 1, 3)
    width = trial.suggest_int("mlp.width", 16, 512, log=True)
    batch = trial.suggest_categorical("batch_size", [32, 64, 128])
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    name = trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop"])
    torch.manual_seed(seed)
    layers, n_in = [], 64
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, 10))
    optimizer = OPTIMIZERS[name](model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(15):
        order = torch.randperm(len(X_tr))
        for i in range(0, len(X_tr), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(X_tr[idx]), y_tr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    train_time = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(X_va).argmax(1) == y_va).float().mean().item()
        row = X_va[:1]
        for _ in range(10):
            model(row)
        calls = []
        for _ in range(100):
            t0 = time.perf_counter()
            model(row)
            calls.append(time.perf_counter() - t0)
    return accuracy, train_time, 1000 * statistics.median(calls)


study = optuna.create_study(
    directions=["maximize", "minimize", "minimize"],
    sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True),
)
study.optimize(objective, n_trials=30)
json.dump([[t.values, t.params] for t in study.trials if t.values], open(out, "w"))
"""
BOUNDS = (0.1, 2.0, 0.1)  # error, train time (s), latency (ms)
Point = tuple[list[float], dict[str, Any]]  # (accuracy, train time, latency), params


def own_front(points: list[Point]) -> list[Point]:
    """The points on a run's own front, by its own figures."""
    from paretotune import pareto_mask

    if not points:
        return []
    mask = pareto_mask([v for v, _ in points], ["maximize", "minimize", "minimize"])
    return [p for p, keep in zip(points, mask, strict=True) if keep]


def judged(points: list[Point]) -> list[list[float]]:
    """Each front configuration trained and measured again by one procedure."""
    import torch
    from paretotune import objectives

    torch.set_num_threads(1)
    context = objectives.TrialContext(dataset={"source": "digits"}, epochs=15, seed=0)
    again = []
    for _, params in own_front(points):
        try:
            m = objectives.evaluate(params, context).metrics
        except ValueError:  # a diverged training: no point
            continue
        again.append([m["accuracy"], m["train_time_s"], m["latency_ms"]])
    return again


def hypervolume_of(points: list[list[float]]) -> float:
    from paretotune import hypervolume

    losses = [
        [min(1.0, max(0.0, x / b)) for x, b in zip((1 - a, t, lat), BOUNDS, strict=True)]
        for a, t, lat in points
    ]
    return hypervolume(losses, ["minimize"] * 3, [1.0, 1.0, 1.0]) if losses else 0.0


def run_plain(seed: int, folder: Path) -> tuple[float, list[Point]]:
    out = folder / "plain.json"
    started = time.perf_counter()
    command = [sys.executable, "-c", PLAIN, str(seed), str(out)]
    subprocess.run(command, check=True, cwd=folder)
    wall = time.perf_counter() - started
    return wall, [(values, {"architecture": "mlp", **params}) for values, params in load(out)]


def load(path: Path) -> list[Any]:
    return json.loads(path.read_text())


def run_paretotune(
    seed: int, folder: Path, flags: tuple[str, ...] = ()
) -> tuple[float, list[Point]]:
    import optuna
    from paretotune import open_storage

    spec = folder / "spec.yaml"  # the demo spec with this seed
    spec.write_text(DIGITS_SPEC.read_text() + f"seed: {seed}\n")
    (folder / "paretotune.journal").unlink(missing_ok=True)
    command = [sys.executable, "-m", "paretotune.cli", "run", str(spec), "--no-progress", *flags]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=folder, env=env, capture_output=True)
    wall = time.perf_counter() - started
    study = optuna.load_study(
        study_name="digits-tradeoff", storage=open_storage(str(folder / "paretotune.journal"))
    )
    return wall, [(list(t.values), t.params) for t in study.trials if t.values]


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
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="also a cold `paretotune run` with these flags, e.g. 'one worker=--workers 1'",
    )
    args = parser.parse_args()
    quiet()
    facts = machine()
    runners: dict[str, Any] = {"plain script": run_plain, "paretotune run": run_paretotune}
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        runners[f"paretotune run, {name}"] = partial(run_paretotune, flags=tuple(flags.split()))
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
                values = [v for v, _ in points]
                runs.append(
                    {
                        "runner": name,
                        "seed": seed,
                        "wall_s": wall,
                        "hv": hypervolume_of(values),
                        "values": values,
                        "front": own_front(points),
                    }
                )
                print(f"{name:18s} seed {seed}: {wall:.1f} s, hv {runs[-1]['hv']:.3f}", flush=True)
    finally:
        if served is not None:
            paretotune_down(served)
    print("judging each front by one procedure ...", flush=True)
    for run in runs:
        run["judged_values"] = judged(run["front"])
        run["judged_hv"] = hypervolume_of(run["judged_values"])
    rows = []
    script_wall = statistics.median(r["wall_s"] for r in runs if r["runner"] == "plain script")
    for name in runners:
        mine = [r for r in runs if r["runner"] == name]
        rows.append(
            [
                name,
                " / ".join(f"{r['wall_s']:.1f}" for r in mine),
                f"{statistics.median(r['wall_s'] for r in mine):.1f}",
                f"{statistics.median(r['wall_s'] for r in mine) / script_wall:.2f}",
                " / ".join(f"{r['hv']:.3f}" for r in mine),
                f"{statistics.median(r['hv'] for r in mine):.3f}",
                " / ".join(f"{r['judged_hv']:.3f}" for r in mine),
                f"{statistics.median(r['judged_hv'] for r in mine):.3f}",
            ]
        )
    header = ["", "wall s (per seed)", "median", "÷ script", "own hv (per seed)", "median"]
    print(table([*header, "judged hv (per seed)", "median"], rows))
    path = save("vs_plain_script", {"runs": runs, "bounds": BOUNDS}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
