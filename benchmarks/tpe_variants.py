"""Why TPE's ask is slow at 1,000 trials: the cost of each TPESampler option, and a profile.

A study on the digits space (3 objectives, in-memory) is pre-filled with N trials drawn at
random (seeded random objective values), then each TPE variant times ``--asks`` asks
(+ ``spaces.sample_params``, each followed by a tell) at that size. The variants switch on,
one by one, what ``paretotune.study._samplers.build_sampler`` uses (``multivariate``, ``group``,
``constant_liar``), then try cheaper settings. Finally cProfile runs the default
(paretotune) variant's asks and prints the top functions by own time and by cumulative
time.

Usage: .venv/bin/python benchmarks/tpe_variants.py [--prefill 1000] [--asks 30]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import random
import time
import warnings
from collections.abc import Iterator
from typing import Any

from _common import DIGITS_SPEC, OBJECTIVES, machine, median, percentile, quiet, save, table


def variants() -> dict[str, dict[str, Any]]:
    return {
        "independent (Optuna default)": {},
        "multivariate": {"multivariate": True},
        "multivariate+group": {"multivariate": True, "group": True},
        "multivariate+group+constant_liar (paretotune)": {
            "multivariate": True,
            "group": True,
            "constant_liar": True,
        },
        "paretotune, n_ei_candidates=8": {
            "multivariate": True,
            "group": True,
            "constant_liar": True,
            "n_ei_candidates": 8,
        },
        "paretotune, gamma capped at 10% / 25 trials": {
            "multivariate": True,
            "group": True,
            "constant_liar": True,
            "gamma": lambda n: min(int(0.1 * n) + 1, 25),
        },
        "paretotune, int knobs searched as floats (rounded)": {
            "multivariate": True,
            "group": True,
            "constant_liar": True,
            INTS_AS_FLOATS: True,
        },
    }


INTS_AS_FLOATS = "_ints_as_floats"


@contextlib.contextmanager
def ints_as_floats(enabled: bool) -> Iterator[None]:
    """While enabled, ``Trial.suggest_int`` draws a float and rounds it (step 1 only)."""
    import optuna

    original = optuna.trial.Trial.suggest_int
    if not enabled:
        yield
        return

    def suggest_int(
        self: Any, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if step != 1:
            return original(self, name, low, high, step=step, log=log)
        return int(round(self.suggest_float(name, low, high, log=log)))

    optuna.trial.Trial.suggest_int = suggest_int
    try:
        yield
    finally:
        optuna.trial.Trial.suggest_int = original


def prefilled_study(n: int, seed: int):
    import optuna
    from paretotune.spaces import load_spec, sample_params

    spec = load_spec(str(DIGITS_SPEC)).with_overrides(sampler="random", seed=seed)
    study = optuna.create_study(
        directions=list(OBJECTIVES.values()), sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    rng = random.Random(seed)
    for _ in range(n):
        trial = study.ask()
        sample_params(trial, spec.space)
        study.tell(trial, [rng.random(), rng.random() * 10, rng.random()])
    return study, spec, rng


def time_asks(study: Any, spec: Any, rng: random.Random, asks: int) -> list[float]:
    from paretotune.spaces import sample_params

    times = []
    for _ in range(asks):
        t0 = time.perf_counter()
        trial = study.ask()
        sample_params(trial, spec.space)
        times.append((time.perf_counter() - t0) * 1000)
        study.tell(trial, [rng.random(), rng.random() * 10, rng.random()])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=1000)
    parser.add_argument("--asks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet()
    import optuna

    facts = machine()
    rows = []
    for name, kwargs in variants().items():
        floats = kwargs.pop(INTS_AS_FLOATS, False)
        with ints_as_floats(floats):
            study, spec, rng = prefilled_study(args.prefill, args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                study.sampler = optuna.samplers.TPESampler(seed=args.seed, **kwargs)
            times = time_asks(study, spec, rng, args.asks)
        rows.append({"variant": name, "median_ms": median(times), "p95_ms": percentile(times, 95)})
        print(f"  {name}: {rows[-1]['median_ms']:.1f} ms", flush=True)
    print()
    print(
        f"TPE ask + sample at {args.prefill} trials (digits space, 3 objectives, in-memory), "
        f"{args.asks} asks each"
    )
    print(
        table(
            ["TPESampler options", "ask median ms", "ask p95 ms"],
            [[r["variant"], r["median_ms"], r["p95_ms"]] for r in rows],
        )
    )

    from paretotune.study._samplers import build_sampler as _sampler

    study, spec, rng = prefilled_study(args.prefill, args.seed)
    study.sampler = _sampler(spec.with_overrides(sampler="tpe"))
    profiler = cProfile.Profile()
    profiler.enable()
    time_asks(study, spec, rng, args.asks)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(12)
    stats.sort_stats("cumulative").print_stats(25)
    profile_text = out.getvalue()
    print("\ncProfile of the paretotune TPE asks (top by own time, then cumulative):")
    print("\n".join(line for line in profile_text.splitlines() if line.strip())[:6000])
    path = save(
        "tpe_variants",
        {"rows": rows, "prefill": args.prefill, "asks": args.asks, "profile": profile_text},
        facts,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
