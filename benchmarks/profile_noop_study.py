"""A no-op study to profile the driver's hot path (py-spy), with MLflow or the journal only.

Usage (the profiles quoted in benchmarks/README.md):
  .venv/bin/py-spy record --idle --threads -r 200 -f raw -o /tmp/mlflow.txt -- \\
      .venv/bin/python benchmarks/profile_noop_study.py --tracker mlflow --executor ray
  .venv/bin/python benchmarks/pyspy_summary.py /tmp/mlflow.txt --thread MainThread \\
      --within _Driver.loop
  .venv/bin/python benchmarks/pyspy_summary.py /tmp/mlflow.txt --thread mlflow-tracker
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

from _common import DIGITS_SPEC, quiet, start_ray


def noop(params: dict) -> dict[str, float]:
    return {"accuracy": 0.5, "train_time_s": 0.01, "latency_ms": 0.01}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--tracker", choices=("mlflow", "null"), default="mlflow")
    parser.add_argument("--executor", choices=("ray", "in-process"), default="ray")
    args = parser.parse_args()
    quiet()
    from paretotune import InProcessExecutor, NullTracker, run_study

    if args.executor == "ray":
        start_ray(4)
    folder = tempfile.mkdtemp(prefix="pt-profile-")
    run_study(
        str(DIGITS_SPEC),
        objective=noop,
        storage=f"{folder}/study.journal",
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        tracker=NullTracker() if args.tracker == "null" else None,
        executor=InProcessExecutor(None, noop) if args.executor == "in-process" else None,
        progress=False,
        trials=args.trials,
        workers=1,
        sampler=args.sampler,
        name="profile",
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
