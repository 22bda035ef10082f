"""`paretotune show STUDY NUMBER`: one trial whole: its state (and why it ended as it did),
every param and metric, its MLflow run and model. It reads only."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paretotune.cli._options import Subparsers, add_json, add_storage, add_tracking
from paretotune.cli._read import STATE_WORDS, client_of, ranked

if TYPE_CHECKING:
    from paretotune.results.records import TrialRecord
    from paretotune.results.study_view import StudyView

HELP = "one trial whole: its state, every param and metric, its MLflow run and model; reads only"


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("show", help=HELP)
    parser.add_argument("study", help="the study's name")
    parser.add_argument("number", type=int, help="the trial number")
    add_storage(parser)
    add_tracking(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    client = client_of(args)
    view = client.view(args.study)
    record = client.trial(view, args.number)
    detail = _state_detail(view, record)
    if args.json:
        print(json.dumps(record.as_dict() | detail, indent=2, default=str))
        return 0
    _print_whole(record, detail)
    return 0


def _print_whole(record: TrialRecord, detail: Mapping[str, Any]) -> None:
    """The trial in lines: its state, the reason it failed, its run and model, then every
    param and metric, one a line."""
    state = detail["state_words"]
    where = ranked(record) if record.state == "COMPLETE" else None
    print(f"trial {record.number} of {record.study}: {state}" + (f" ({where})" if where else ""))
    if detail.get("fail_reason"):
        width = shutil.get_terminal_size((80, 24)).columns - 2
        print(textwrap.indent(textwrap.fill(f"reason: {detail['fail_reason']}", width), "  "))
    print(f"  MLflow run  {record.mlflow_run_id or '-'}")
    print(f"  model       {record.model_uri or '-'}")
    for title, values in (("params", record.params), ("metrics", record.metrics)):
        print(f"{title}:" if values else f"{title}: none")
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            print(f"  {key.ljust(width)}  {_value(value)}{_noise(record, key)}")


def _noise(record: TrialRecord, key: str) -> str:
    """Beside a measured figure: how much it swung while measured (the CV of its rounds'
    medians), and whether it is the quick measurement (a model off the front)."""
    from paretotune.results.noise import NOISE_OF

    cv = record.metrics.get(NOISE_OF.get(key, ""))
    if not isinstance(cv, int | float):
        return ""
    quick = ", quick measurement" if record.metrics.get("latency_precise") == 0.0 else ""
    return f"  (±{cv:.1%} between rounds{quick})"


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
    if detail["forked_from"] is not None:
        compression = record.params.get("compression")
        words += f", a {compression} variant of trial {detail['forked_from']}'s model"
    return {
        "state_words": words,
        "interrupted": detail["interrupted"],
        "fail_reason": detail["fail_reason"],
        "forked_from": detail["forked_from"],
    }
