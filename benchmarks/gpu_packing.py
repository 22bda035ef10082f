"""GPU packing: trials per minute with 1, 2 and 4 trials packed on one GPU.

The digits demo study runs through ``run_study`` with the built-in objective on
``device: cuda``, with ``resources.gpus_per_trial`` = 1, 1/2, 1/4 and as many workers
(Ray actors) as fit on the GPU, so 1, 2 or 4 trials share it. Trials per minute are
complete trials / wall time of the ``run_study`` call (actor start-up included).

Skips with a message (exit status 0) when torch sees no CUDA device.

Usage: .venv/bin/python benchmarks/gpu_packing.py [--trials 24] [--epochs 15] [--packing 1,2,4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import DIGITS_SPEC, machine, quiet, save, start_ray, table


def one_run(pack: int, trials: int, epochs: int, cpus_per_trial: float) -> dict[str, Any]:
    from paretotune import NullTracker, run_study

    spec = yaml.safe_load(DIGITS_SPEC.read_text())
    spec["name"] = f"gpu-pack-{pack}"
    spec["budget"] = {"trials": trials, "epochs": epochs}
    spec["resources"] = {
        "workers": pack,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": 1.0 / pack,
        "device": "cuda",
    }
    folder = Path(tempfile.mkdtemp(prefix="pt-gpu-"))
    t0 = time.perf_counter()
    result = run_study(
        spec, storage=str(folder / "study.journal"), tracker=NullTracker(), progress=False
    )
    wall = time.perf_counter() - t0
    return {
        "trials_per_gpu": pack,
        "gpus_per_trial": 1.0 / pack,
        "trials": trials,
        "n_complete": result.n_complete,
        "n_failed": result.n_failed,
        "wall_s": wall,
        "trials_per_min": result.n_complete / wall * 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--packing", default="1,2,4")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    args = parser.parse_args()
    quiet()
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_packing: SKIPPED: torch.cuda.is_available() is False on this machine "
            "(no CUDA device); nothing measured."
        )
        return
    facts = machine()
    facts["gpu"] = torch.cuda.get_device_name(0)
    packing = [int(p) for p in args.packing.split(",")]
    start_ray(num_cpus=max(8, int(max(packing) * args.cpus_per_trial) + 1))
    rows = []
    for pack in packing:
        row = one_run(pack, args.trials, args.epochs, args.cpus_per_trial)
        rows.append(row)
        print(f"  {pack} per GPU: {row['trials_per_min']:.1f} trials/min", flush=True)
    base = rows[0]["trials_per_min"]
    print()
    print(f"digits, {args.trials} trials × {args.epochs} epochs on {facts['gpu']}")
    print(
        table(
            [
                "trials per GPU",
                "gpus_per_trial",
                "complete",
                "failed",
                "wall s",
                "trials/min (start-up incl.)",
                "speed-up vs 1",
            ],
            [
                [
                    r["trials_per_gpu"],
                    f"{r['gpus_per_trial']:.2f}",
                    r["n_complete"],
                    r["n_failed"],
                    r["wall_s"],
                    r["trials_per_min"],
                    f"{r['trials_per_min'] / base:.2f}×",
                ]
                for r in rows
            ],
        )
    )
    path = save("gpu_packing", {"rows": rows}, facts)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
