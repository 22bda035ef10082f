"""The measuring slot, A/B: the same trained models timed beside a training trial, with
and without the slot, interleaved round by round (so drift and the machine's slow
episodes fall on both alike).

One process trains a 3x512 digits MLP in a loop, taking the machine's measuring slot per
batch as a trial of a multi-worker study does (``objectives._slot``). This process times
each of the five ``measurement_trust`` configs' models (trained once, alone) with the
trials' latency method, once without the slot (the trainer keeps training) and once
inside it (the trainer pauses at its next batch), ``--rounds`` times.

    .venv/bin/python benchmarks/measuring_slot.py --rounds 8
"""

from __future__ import annotations

import argparse
import statistics

from _common import machine, quiet, save, start_trainers, table
from measurement_trust import CONFIGS, cv, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    quiet()
    facts = machine()
    import torch
    from paretotune.objectives._measure import latency
    from paretotune.objectives._slot import machine_slot

    torch.set_num_threads(1)
    models = {name: trained(p) for name, p in CONFIGS.items()}
    trainer = start_trainers(1, [None], exclusive=True)[0]
    slot = machine_slot()
    found: dict[str, dict[str, list[float]]] = {n: {"without": [], "with": []} for n in CONFIGS}
    try:
        for _ in range(args.rounds):
            for name, (model, row) in models.items():
                found[name]["without"].append(latency(model, row, 30)["latency_ms"])
                with slot.timing():
                    found[name]["with"].append(latency(model, row, 30)["latency_ms"])
    finally:
        trainer.kill()
        trainer.wait()
    rows = [
        [
            name,
            f"{statistics.median(runs['without']):.4f}",
            f"{cv(runs['without']):.3f}",
            f"{statistics.median(runs['with']):.4f}",
            f"{cv(runs['with']):.3f}",
        ]
        for name, runs in found.items()
    ]
    medians = [
        "median",
        "",
        f"{statistics.median(cv(r['without']) for r in found.values()):.3f}",
        "",
        f"{statistics.median(cv(r['with']) for r in found.values()):.3f}",
    ]
    headers = ["config", "ms, no slot", "CV, no slot", "ms, slot", "CV, slot"]
    print(table(headers, [*rows, medians]))
    path = save("measuring_slot", {"latency_ms": found, "rounds": args.rounds}, facts)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
