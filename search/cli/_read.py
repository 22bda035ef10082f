"""The commands that read a study: `studies`, `pareto`, `show` (and how `best`, `knee`
and `retrain` print the trial they chose). They create nothing: `Client` opens the
storage read-only, so a storage that does not exist is one line (exit 2), not a new
empty journal or database.
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from paretotune.errors import ExpressionError, UnknownMetricError

if TYPE_CHECKING:
    from paretotune.results.client import Client
    from paretotune.results.records import Compute, TrialRecord
    from paretotune.results.study_view import StudyView
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


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON list with one row a line: readable, and encoded by json's C encoder (an
    indented dump of 10,000 rows takes its pure-Python one, ~0.4 s)."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(row, default=str) for row in rows) + "\n]"


def studies_command(args: argparse.Namespace) -> int:
    client = client_of(args)
    summaries = client.studies()
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=2, default=str))
        return 0
    if not summaries:
        print(f"no studies in {client.storage_url}")
    for s in summaries:
        print(
            f"{s.name}: {states_words(s.trials_by_state)}; feasible {s.n_feasible}; "
            f"Pareto {s.pareto_size}; hypervolume {s.hypervolume:.4g}; "
            f"{compute_words(s.compute)}; "
            + (f"retried {s.n_retried}; " if s.n_retried else "")
            + f"stopped: {s.stop_reason or '-'}"
        )
    return 0


def compute_words(compute: Compute) -> str:
    words = f"{compute.epochs} epochs, {compute.trial_seconds:.1f} trial-s"
    if compute.epochs_saved:
        words += (
            f" ({compute.epochs_saved} epochs, {compute.seconds_saved:.1f} s saved by stopping)"
        )
    return words


def pareto_command(args: argparse.Namespace) -> int:
    """The front's trials that satisfy ``--where``, best first by ``--sort`` (default: the
    first objective, in its direction), at most ``--limit``; a table, or JSON."""
    from paretotune.results.selection import best_first, namespace

    front = client_of(args).front(args.study)
    rows = front.pareto
    condition = checked_flags(front.records, args.study, args.where, ("--sort", args.sort))
    if condition is not None:
        rows = [r for r in rows if condition.holds(namespace(r))]
    rows = best_first(rows, front.objectives, args.sort)[: args.limit]
    if args.json:
        print(json_rows([r.as_dict() for r in rows]))
        return 0
    from paretotune._progress import print_front  # (rich: only for the table)

    print_front(front, tracking_uri=None, experiment_id=None, rows=rows, study=args.study)
    return 0


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


def show_command(args: argparse.Namespace) -> int:
    """One trial whole: its state, every param and metric, its MLflow run and model."""
    client = client_of(args)
    view = client.view(args.study)
    record = client.trial(view, args.number)
    detail = _state_detail(view, record)
    if args.json:
        print(json.dumps(record.as_dict() | detail, indent=2, default=str))
        return 0
    return show(record, as_json=False, detail=detail)


def show(record: TrialRecord, as_json: bool, detail: Mapping[str, Any] | None = None) -> int:
    """A chosen trial: JSON, or its objectives, params, run and model in a few lines. With
    ``detail`` (`show_command`), the trial whole: every param and metric, one a line,
    and why it ended as it did."""
    if as_json:
        print(json.dumps(record.as_dict(), indent=2, default=str))
        return 0
    rank = "-" if record.pareto_rank is None else record.pareto_rank
    feasible = "feasible" if record.feasible else "violates the constraints"
    if detail is None:
        print(f"trial {record.number} of {record.study} (Pareto rank {rank}, {feasible})")
        shown = dict(record.values) or dict(record.metrics)
        print("  " + "  ".join(f"{k} {v:.5g}" for k, v in shown.items()))
        print("  " + ", ".join(f"{k}={v}" for k, v in record.params.items()))
        print(f"  MLflow run {record.mlflow_run_id or '-'}; model {record.model_uri or '-'}")
        return 0
    state = detail["state_words"]
    ranked = f"Pareto rank {rank}, {feasible}" if record.state == "COMPLETE" else None
    print(f"trial {record.number} of {record.study}: {state}" + (f" ({ranked})" if ranked else ""))
    if detail.get("fail_reason"):
        width = shutil.get_terminal_size((80, 24)).columns - 2
        print(textwrap.indent(textwrap.fill(f"reason: {detail['fail_reason']}", width), "  "))
    print(f"  MLflow run  {record.mlflow_run_id or '-'}")
    print(f"  model       {record.model_uri or '-'}")
    for title, values in (("params", record.params), ("metrics", record.metrics)):
        print(f"{title}:" if values else f"{title}: none")
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            print(f"  {key.ljust(width)}  {_value(value)}")
    return 0


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _state_detail(view: StudyView, record: TrialRecord) -> dict[str, Any]:
    """What Optuna's state leaves out: a FAIL that is an interruption (closed by a stopped
    or dead driver, queued again) or a lost worker's attempt run again, the reason a trial
    failed, the epoch a pruned trial was stopped after."""
    detail = view.detail(record.number)
    words = STATE_WORDS.get(record.state, record.state.lower())
    if detail["interrupted"]:
        words = "interrupted (closed by a stopped or dead driver and queued again)"
    elif record.state == "FAIL" and detail["retried"]:
        words = "failed, run again (its worker was lost)"
    stopped_at = detail["stopped_at_epoch"]
    if record.state == "PRUNED" and stopped_at is not None:
        words += f" (stopped early after epoch {stopped_at})"
    return {
        "state_words": words,
        "interrupted": detail["interrupted"],
        "fail_reason": detail["fail_reason"],
    }
