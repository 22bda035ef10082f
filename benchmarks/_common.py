"""Shared helpers of the benchmark scripts: machine facts, tables, results files, Ray start."""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DIGITS_SPEC = ROOT / "spaces" / "examples" / "digits.yaml"
OBJECTIVES = {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"}

if str(ROOT) not in sys.path:  # runnable as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def machine() -> dict[str, Any]:
    """Facts about where a benchmark ran (logged with every result)."""
    import optuna

    facts: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "optuna": optuna.__version__,
        "load_avg_at_start": list(os.getloadavg()),
    }
    for module in ("ray", "mlflow", "torch"):
        try:
            facts[module] = __import__(module).__version__
        except ImportError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        facts["cpu_model"] = names[0] if names else None
    except OSError:
        pass
    return facts


def start_ray(num_cpus: int) -> None:
    """A private local Ray with ``num_cpus`` logical CPUs (never an existing cluster).

    ``address="local"`` matters on a shared machine: a bare ``ray.init()`` joins whatever
    cluster ``/tmp/ray/ray_current_cluster`` names (e.g. one a test started with
    ``ray start --head``).
    """
    from paretotune.execution import ensure_ray

    ensure_ray("local", num_cpus=num_cpus, log_to_driver=False)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats get 3 significant-ish digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:
                return "–"
            if abs(value) >= 100:
                return f"{value:,.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(
    name: str, payload: dict[str, Any], facts: dict[str, Any], out: Path | None = None
) -> Path:
    """Write ``results/<name>.json`` (or ``out``) with the machine facts, the command and
    the payload."""
    facts = dict(facts, load_avg_at_end=list(os.getloadavg()))
    document = {
        "benchmark": name,
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": facts,
        **payload,
    }
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def child_json(command: Sequence[str], what: str, timeout: float | None = None) -> dict[str, Any]:
    """Run ``command`` (a benchmark's own ``--child`` mode) and return the last line of
    its stdout that is a JSON object; exit with its stderr's tail if it failed. Past
    ``timeout`` seconds the child is killed and `subprocess.TimeoutExpired` raised."""
    import subprocess

    done = subprocess.run(
        list(command), capture_output=True, text=True, check=False, timeout=timeout
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not lines:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} failed (exit {done.returncode})")
    return json.loads(lines[-1])


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def quiet() -> None:
    """Silence the libraries' chatter so the tables are readable."""
    import logging
    import warnings

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "ray", "ray.tune", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune_optuna_search(sampler: str) -> Any:
    """Ray Tune's ``OptunaSearch`` over the digits spec's space (define-by-run, the real
    ``spaces.sample_params``), 3 objectives, with the sampler ``run_study`` would build."""
    from paretotune.results.ordering import direction_word
    from paretotune.spaces import load_spec
    from paretotune.study._samplers import build_sampler as _sampler
    from ray.tune.search.optuna import OptunaSearch

    spec = load_spec(str(DIGITS_SPEC)).with_overrides(sampler=sampler)
    return OptunaSearch(
        space=functools.partial(_define_by_run, spec.space),
        metric=list(OBJECTIVES),
        mode=[direction_word(d) for d in OBJECTIVES.values()],  # Tune's "max" / "min"
        sampler=_sampler(spec),
    )


def _define_by_run(space: Any, trial: Any) -> None:
    """Module level, so Tune can pickle the searcher's state (it checkpoints it)."""
    from paretotune.spaces import sample_params

    sample_params(trial, space)


TRAINER = """
import os, sys, torch
sys.path.insert(0, {root!r})
cpu = {cpu}
if cpu is not None:
    os.sched_setaffinity(0, {{cpu}})
torch.set_num_threads(1)
from paretotune import objectives
ctx = objectives.TrialContext(
    dataset={{"source": "digits"}}, epochs=50, num_threads=1, exclusive_timing={exclusive}
)
params = {{"architecture": "mlp", "mlp.depth": 3, "mlp.width": 512, "optimizer": "adam"}}
print("ready", flush=True)
while True:
    objectives.evaluate(params, ctx)
"""


def start_trainers(count: int, cpus: list[int | None], *, exclusive: bool = False) -> list[Any]:
    """``count`` processes training a digits MLP in a loop (the ``i``-th pinned to
    ``cpus[i]`` when given), once each has begun: the load a neighbouring trial makes.
    ``exclusive``: they take the machine's measuring slot per batch, as trials of a study
    with several workers do."""
    import subprocess

    procs = []
    for i in range(count):
        cpu = cpus[i] if i < len(cpus) else None
        code = TRAINER.format(root=str(ROOT), cpu=cpu, exclusive=exclusive)
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
    for proc in procs:
        proc.stdout.readline()  # "ready": torch and objectives imported
    time.sleep(1.5)  # let training get going
    return procs
