"""The `paretotune` command line. User mistakes get one line each and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from spaces import SpecError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretotune",
        description="Multi-objective search of accuracy vs. training time vs. latency.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study from a YAML spec, or resume it")
    run.add_argument("spec", help="path to the study's YAML spec")
    run.add_argument("--trials", type=int, help="total trial budget (finished trials count)")
    run.add_argument("--workers", type=int, help="trials run at once")
    run.add_argument("--epochs", type=int, help="epochs per trial")
    run.add_argument("--timeout", dest="timeout_s", type=float, help="stop asking after S s")
    run.add_argument("--name", help="study name (default: the spec's name)")
    run.add_argument("--sampler", choices=["tpe", "nsga2", "random"])
    _add_storage(run)
    run.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress bar")

    pareto = sub.add_parser("pareto", help="print a study's Pareto front")
    pareto.add_argument("study")
    _add_storage(pareto)
    pareto.add_argument("--json", action="store_true", help="machine-readable output")

    studies = sub.add_parser("studies", help="list the studies in a storage")
    _add_storage(studies)
    studies.add_argument("--json", action="store_true")
    return parser


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="Optuna storage: a journal file path (default paretotune.journal), "
        "sqlite:///…, postgresql://…",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except SpecError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except LookupError as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume the study", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from search._driver import run_study

    result = run_study(
        args.spec,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        progress=not args.no_progress,
        trials=args.trials,
        workers=args.workers,
        epochs=args.epochs,
        timeout_s=args.timeout_s,
        name=args.name,
        sampler=args.sampler,
    )
    print(
        f"{result.name}: {result.trials_run} trials run in {result.wall_time_s:.1f} s "
        f"({result.n_complete} complete, {result.n_failed} failed in total); "
        f"storage {result.storage}"
    )
    for problem in result.tracking_errors[:5]:
        print(f"warning: MLflow: {problem}", file=sys.stderr)
    return 0


def _pareto(args: argparse.Namespace) -> int:
    from search._client import Client

    client = Client(storage=args.storage)
    front = client.front(args.study)
    if args.json:
        print(json.dumps([r.as_dict() for r in front.pareto], indent=2, default=str))
        return 0
    from search._progress import print_front

    print_front(front, tracking_uri=None, experiment_id=None)
    return 0


def _studies(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from search._client import Client

    summaries = Client(storage=args.storage).studies()
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=2, default=str))
        return 0
    for s in summaries:
        states = ", ".join(f"{n} {state.lower()}" for state, n in s.trials_by_state.items())
        print(f"{s.name}: {states}; Pareto {s.pareto_size}; hypervolume {s.hypervolume:.4g}")
    return 0


_COMMANDS = {"run": _run, "pareto": _pareto, "studies": _studies}

if __name__ == "__main__":
    sys.exit(main())
