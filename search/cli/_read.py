"""What the commands that read a study share (`studies`, `pareto`, `show`, `best`,
`knee`, `export`, and `retrain` once it trained): the read-only `Client` they open, their
words for states and compute, how they check ``--where`` and print a chosen trial. They
create nothing: `Client` opens the storage read-only, so a storage that does not exist is
one line (exit 2), not a new empty journal or database.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from paretotune.errors import ExpressionError, UnknownMetricError

if TYPE_CHECKING:
    from paretotune.results.client import Client
    from paretotune.results.records import Compute, TrialRecord
    from paretotune.spaces import Expression

T = TypeVar("T")

# Trials by state, in this order and these words (Optuna's FAIL split: a trial a stopped
# or dead driver closed is "interrupted", not "failed").
STATE_WORDS = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "INTERRUPTED": "interrupted",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def client_of(args: argparse.Namespace) -> Client:
    """A read-only `Client` over ``--storage`` (and ``--tracking-uri`` where the command
    has one)."""
    from paretotune.results.client import Client

    return Client(storage=args.storage, tracking_uri=getattr(args, "tracking_uri", None))


def states_words(by_state: Mapping[str, int]) -> str:
    """``12 complete, 2 failed, 1 interrupted``: the states with trials, in a fixed order."""
    known = [
        f"{by_state[state]} {word}" for state, word in STATE_WORDS.items() if by_state.get(state)
    ]
    other = [
        f"{n} {state.lower()}" for state, n in by_state.items() if state not in STATE_WORDS and n
    ]
    return ", ".join(known + other) or "no trials"


def compute_words(compute: Compute) -> str:
    words = f"{compute.epochs} epochs, {compute.trial_seconds:.1f} trial-s"
    if compute.epochs_saved:
        words += (
            f" ({compute.epochs_saved} epochs, {compute.seconds_saved:.1f} s saved by stopping)"
        )
    return words


def checked_flags(
    records: Sequence[TrialRecord], study: str, where: str | None, metric: tuple[str, str | None]
) -> Expression | None:
    """``--where`` parsed, and it and the ``metric`` flag (``(flag, name)``) checked
    against the study's metrics and params: each mistake said as its flag's."""
    from paretotune.results.selection import check_names
    from paretotune.spaces import parse_expression

    condition = None
    if where is not None:
        condition = _flagged("--where", lambda: parse_expression(where))
        names = condition.names
        _flagged("--where", lambda: check_names(names, records, study))
    flag, name = metric
    if name is not None:
        _flagged(flag, lambda: check_names([name], records, study, metrics_only=True))
    return condition


def _flagged(flag: str, check: Callable[[], T]) -> T:
    """``check()``, its mistakes (a bad condition, an unknown name) said as ``flag``'s."""
    try:
        return check()
    except (ExpressionError, UnknownMetricError) as err:
        raise type(err)(f"{flag}: {err}") from None


def show(record: TrialRecord, as_json: bool) -> int:
    """A chosen trial (`best`, `knee`, `retrain`): JSON, or its objectives, params, run
    and model in a few lines."""
    if as_json:
        print(json.dumps(record.as_dict(), indent=2, default=str))
        return 0
    print(f"trial {record.number} of {record.study} ({ranked(record)})")
    shown = dict(record.values) or dict(record.metrics)
    print("  " + "  ".join(f"{k} {v:.5g}" for k, v in shown.items()))
    print("  " + ", ".join(f"{k}={v}" for k, v in record.params.items()))
    print(f"  MLflow run {record.mlflow_run_id or '-'}; model {record.model_uri or '-'}")
    return 0


def ranked(record: TrialRecord) -> str:
    """``Pareto rank 2, feasible``: where the trial stands in its study."""
    rank = "-" if record.pareto_rank is None else str(record.pareto_rank)
    if record.within_noise_of is not None:
        rank += (
            f" (off the front: trial {record.within_noise_of} is as good within "
            "latency noise and better elsewhere)"
        )
    feasible = "feasible" if record.feasible else "violates the constraints"
    return f"Pareto rank {rank}, {feasible}"
