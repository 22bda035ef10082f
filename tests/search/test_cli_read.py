"""The read-only commands (`studies`, `pareto`, `show`, `best`, `knee`) on one real study
played on the simulated clock (a real journal, real sampled params, no Ray or MLflow): the
front table fits the terminal, `pareto` filters, sorts and limits, `show` prints a trial
whole, `studies` tells interrupted trials from failed ones, and nothing is ever created.
Also the parser: help on every positional, a subcommand's own usage on a bad flag, and
`run`'s and `dashboard`'s options."""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from paretotune import Overrides
from paretotune._progress import front_lines
from paretotune.cli import main
from paretotune.cli._main import COMMANDS, _parser
from paretotune.cli._read import states_words
from paretotune.errors import SpecError
from paretotune.execution import TrialTask
from paretotune.results.records import TrialRecord
from paretotune.testing import Outcome, ScriptedExecutor, SimulatedClock, simulate_study

STUDY = "cli-read"
SPEC = {
    "name": STUDY,
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize", "latency_ms": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": {"low": 1, "high": 3}, "width": {"low": 16, "high": 512, "log": True}},
        "optimizer": ["sgd", "adam", "rmsprop"],
        "batch_size": [32, 64, 128],
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "compression": ["none"],
    },
    "budget": {"trials": 24},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
}
FAILING = 3  # this trial's training diverges


def _trial(task: TrialTask) -> Outcome:
    """Metrics that trade accuracy against time and latency, following the params."""
    if task.number == FAILING:
        return Outcome(seconds=1.0, error="TrainingDiverged: loss nan after epoch 1")
    p = task.params
    width, depth, lr = p["mlp.width"], p["mlp.depth"], p["learning_rate"]
    accuracy = 0.99 - abs(math.log10(lr) + 2.2) / 12 - 8 / width - 0.01 * (p["optimizer"] == "sgd")
    metrics = {
        "accuracy": accuracy,
        "train_time_s": width * depth / 300 + 64 / p["batch_size"],
        "latency_ms": 0.01 * depth + width / 20000,
        "size_bytes": float(width * 64 * 4),
    }
    return Outcome(seconds=1.0 + task.number % 3, metrics=metrics)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished study with complete, failed, interrupted and waiting trials: 20 trials
    reported, then a Ctrl-C closes the two running ones (queued again)."""
    folder = tmp_path_factory.mktemp("read")
    executor = ScriptedExecutor(_trial, SimulatedClock(), capacity=2, interrupt_after=20)
    with pytest.raises(KeyboardInterrupt):
        simulate_study(SPEC, _trial, storage=str(folder / "study.journal"), executor=executor)
    return folder


@pytest.fixture()
def cli(folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``cli(*args)`` runs the command in the study's folder at the study's storage, with
    MLflow pointed at a store that does not exist; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PARETOTUNE_STORAGE", str(folder / "study.journal"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _pareto_json(cli, *args: str) -> list[dict[str, Any]]:
    code, out, err = cli("pareto", STUDY, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def _varying(rows: list[dict[str, Any]]) -> set[str]:
    keys = {k for row in rows for k in row["params"]}
    return {k for k in keys if len({repr(row["params"].get(k)) for row in rows}) > 1}


@pytest.mark.parametrize("columns", [80, 200])
def test_the_front_table_fits_the_width_and_shows_every_varying_param(
    cli, monkeypatch: pytest.MonkeyPatch, columns: int
):
    front = _pareto_json(cli)
    varying = _varying(front)
    assert {"optimizer", "learning_rate", "batch_size", "mlp.width"} <= varying
    assert any(k.startswith(("sgd.", "rmsprop.")) for k in varying), "conditional params too"
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = cli("pareto", STUDY)
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in out and "..." not in out
    assert all(re.search(rf"(^|\s){re.escape(k)}(=|\s|$)", out, re.M) for k in varying), out
    assert "MLflow run" not in out and "run-" not in out, "run ids are `show`'s"
    trials = [i for i, line in enumerate(lines) if re.match(r"\s*\d+\s+\d", line)]
    assert [int(lines[i].split()[0]) for i in trials] == [r["number"] for r in front]
    rows_per_trial = {b - a for a, b in zip(trials, [*trials[1:], len(lines) - 1], strict=True)}
    if columns == 200:
        assert rows_per_trial == {1}, out
    else:
        assert max(rows_per_trial) <= 3 and 2 in rows_per_trial, out  # not 7-8 as before
    assert lines[-1] == f"every param, metric, run id and model of one: paretotune show {STUDY} N"


def test_piped_output_is_80_columns_without_columns(cli):
    code, out, _ = cli("pareto", STUDY)
    assert code == 0
    assert shutil.get_terminal_size((80, 24)).columns == 80  # pytest's stdout is no terminal
    assert max(len(line) for line in out.splitlines()) <= 80
    assert any(line.startswith("       ") and "=" in line for line in out.splitlines()), (
        "at 80 columns the params that do not fit follow under each row"
    )


def test_a_long_value_is_wrapped_never_cut():
    record = TrialRecord(
        number=7,
        state="COMPLETE",
        params=MappingProxyType({"note": "a-very-long-categorical-value-" * 3, "lr": 0.012345}),
        values=MappingProxyType({"accuracy": 0.91234567}),
        metrics=MappingProxyType({}),
        mlflow_run_id=None,
    )
    other = TrialRecord(
        number=8,
        state="COMPLETE",
        params=MappingProxyType({"note": "short", "lr": 1e-5}),
        values=MappingProxyType({"accuracy": 0.5}),
        metrics=MappingProxyType({}),
        mlflow_run_id=None,
    )
    lines = front_lines({"accuracy": "maximize"}, [record, other], 40)
    assert max(len(line) for line in lines) <= 40
    text = "".join(line.strip() for line in lines)
    assert "a-very-long-categorical-value-" * 3 in text and "0.0123" in text and "1e-05" in text
    assert lines[:2] == ["trial  accuracy      lr", "          (max)"]
    assert lines[2] == "    7    0.9123  0.0123"


def test_pareto_filters_sorts_and_limits(cli):
    front = _pareto_json(cli)
    assert [r["values"]["accuracy"] for r in front] == sorted(
        (r["values"]["accuracy"] for r in front), reverse=True
    ), "best first by the first objective"
    fastest = _pareto_json(cli, "--sort", "latency_ms", "--limit", "3")
    by_latency = sorted(front, key=lambda r: (r["values"]["latency_ms"], r["number"]))
    assert [r["number"] for r in fastest] == [r["number"] for r in by_latency[:3]]
    adam = _pareto_json(cli, "--where", "optimizer == 'adam' and latency_ms < 1")
    assert adam and {r["number"] for r in adam} == {
        r["number"] for r in front if r["params"]["optimizer"] == "adam"
    }
    lightest = _pareto_json(cli, "--sort", "size_bytes", "--limit", "1")  # not an objective
    assert lightest[0]["metrics"]["size_bytes"] == min(r["metrics"]["size_bytes"] for r in front)
    code, out, _ = cli("pareto", STUDY, "--where", "accuracy > 2")
    assert code == 0 and f"{len(front)} of " in out and ", 0 shown" in out


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("pareto", ["--sort", "speed"], "error: --sort: unknown metric 'speed' in study 'cli-"),
        ("pareto", ["--sort", "optimizer"], "error: --sort: unknown metric 'optimizer' in study"),
        ("pareto", ["--where", "nope < 1"], "error: --where: unknown metric 'nope' in study 'cl"),
        ("pareto", ["--where", "latency_ms <"], "error: --where: in 'latency_ms <': expected a "),
        ("best", ["--prefer", "speed"], "error: --prefer: unknown metric 'speed' in study 'cli"),
        ("best", ["--where", "nope < 1"], "error: --where: unknown metric 'nope' in study 'cli-"),
    ],
)
def test_query_mistakes_are_one_line_naming_the_flag(
    cli, command: str, args: list[str], message: str
):
    code, out, err = cli(command, STUDY, *args)
    assert code == 2 and not out
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_bad_flag_prints_the_subcommands_own_usage(cli, capsys: pytest.CaptureFixture):
    for args, usage in [
        (["pareto", "x", "--bogus"], "usage: paretotune pareto "),
        (["pareto", "x", "--limit", "0"], "usage: paretotune pareto "),
        (["show", STUDY, "one"], "usage: paretotune show "),
        (["studies", "extra"], "usage: paretotune studies "),
        (["dashboard", "--port", "70000"], "usage: paretotune dashboard "),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(usage), (args, err)
        assert err.strip().splitlines()[-1].startswith(f"paretotune {args[0]}: error: ")


def test_every_positional_and_option_has_help():
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "pareto", "show", "studies", "dashboard", "best", "knee"} <= set(
        commands.choices
    )
    missing = [
        f"{name} {action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert not missing


def test_each_command_comes_from_its_own_module():
    """`COMMANDS` names each command's module: the one parser it adds is the command of
    its name, and ``--help`` lists them in that order."""
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        alone = argparse.ArgumentParser().add_subparsers()
        module.add_parser(alone)
        assert list(alone.choices) == [name]


def test_show_prints_one_trial_whole(cli):
    best = _pareto_json(cli)[0]
    code, out, err = cli("show", STUDY, str(best["number"]))
    assert code == 0, err
    assert out.startswith(f"trial {best['number']} of {STUDY}: complete (Pareto rank 0, feasible)")
    assert f"MLflow run  run-{best['number']}" in out
    for name in [*best["params"], *best["metrics"]]:
        assert re.search(rf"^  {re.escape(name)}\s", out, re.M), name
    code, out, _ = cli("show", STUDY, str(best["number"]), "--json")
    shown = json.loads(out)
    assert shown["params"] == best["params"] and shown["metrics"] == best["metrics"]
    assert shown["mlflow_run_id"] == f"run-{best['number']}" and "model_uri" in shown

    code, out, _ = cli("show", STUDY, str(FAILING))
    assert code == 0 and out.startswith(f"trial {FAILING} of {STUDY}: failed\n")
    assert "  reason: TrainingDiverged: loss nan after epoch 1" in out
    interrupted = _interrupted(cli)
    code, out, _ = cli("show", STUDY, str(interrupted[0]), "--json")
    assert json.loads(out)["interrupted"] is True
    assert json.loads(out)["state"] == "INTERRUPTED"  # not Optuna's FAIL
    assert json.loads(out)["state_words"].startswith("interrupted")
    code, _, err = cli("show", STUDY, "999")
    assert code == 2 and err == f"error: study {STUDY!r} has no trial 999\n"


def _interrupted(cli) -> list[int]:
    code, out, err = cli("status", STUDY, "--json")
    assert code == 0, err
    numbers = json.loads(out)["interrupted_trials"]
    assert len(numbers) == 2
    return numbers


def test_states_are_counted_in_a_fixed_order_of_whole_words():
    counts = {"WAITING": 2, "FAIL": 1, "COMPLETE": 9, "INTERRUPTED": 2, "PRUNED": 3}
    assert states_words(counts) == "9 complete, 3 pruned, 1 failed, 2 interrupted, 2 waiting"
    assert states_words({"RUNNING": 1, "COMPLETE": 0}) == "1 running"
    assert states_words({}) == "no trials"


def test_studies_tells_interrupted_trials_from_failed_ones(cli):
    code, out, err = cli("studies")
    assert code == 0, err
    counts = re.match(rf"{STUDY}: ((?:\d+ \w+(?:, )?)+);", out)
    assert counts is not None, out
    words = [part.split(" ", 1)[1] for part in counts.group(1).split(", ")]
    assert words == ["complete", "failed", "interrupted", "waiting"], out
    assert "1 failed, 2 interrupted, 2 waiting" in out
    assert "fail;" not in out and "fail," not in out


READERS = [
    ["studies"],
    ["pareto", STUDY],
    ["best", STUDY],
    ["knee", STUDY],
    ["show", STUDY, "0"],
]


@pytest.mark.parametrize("args", READERS, ids=lambda args: args[0])
def test_a_read_of_a_missing_storage_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARETOTUNE_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for storage, file in [
        ([], "paretotune.journal"),
        (["--storage", "sqlite:///nosuch.db"], "nosuch.db"),
        (["--storage", "sub/s.journal"], "sub/s.journal"),
    ]:
        assert main([*args, *storage]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: no study storage at {tmp_path / file} (--storage "), err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert os.listdir(tmp_path) == [], f"{args} {storage} created something"
    (tmp_path / "empty.db").touch()  # a SQLite file that holds no study
    assert main([*args, "--storage", "sqlite:///empty.db"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: no study storage at sqlite:///empty.db (it holds no Optuna tables)"
    )
    assert os.listdir(tmp_path) == ["empty.db"] and (tmp_path / "empty.db").stat().st_size == 0


def test_reads_of_a_study_create_nothing_beside_it(cli, folder: Path):
    before = sorted(os.listdir(folder))
    for args in READERS:
        code, _, err = cli(*args)
        assert code == 0, (args, err)
    assert sorted(os.listdir(folder)) == before, "no MLflow store, lock or journal was made"


def test_run_passes_seed_and_device_to_run_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    import paretotune._run

    seen: dict[str, Any] = {}

    def run_study(spec: str, **kwargs: Any) -> None:
        seen.update(kwargs, spec=spec)
        raise SpecError(["stopped here"])

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paretotune._run, "run_study", run_study)
    assert main(["run", "s.yaml", "--seed", "7", "--device", "cuda:0", "--no-progress"]) == 2
    given = seen["overrides"]
    assert (seen["spec"], given.seed, given.device) == ("s.yaml", 7, "cuda:0")
    assert main(["run", "s.yaml"]) == 2
    assert seen["overrides"] == Overrides()  # the spec's own, all of them
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", "s.yaml", "--seed", "x"])
    assert "usage: paretotune run " in capsys.readouterr().err


def test_dashboard_takes_a_study_a_storage_and_a_port_on_loopback():
    args = _parser().parse_args(["dashboard"])
    assert (args.study, args.storage, args.port, args.host) == (None, None, 8080, "127.0.0.1")
    args = _parser().parse_args(["dashboard", "s", "--storage", "x.journal", "--port", "9000"])
    assert (args.study, args.storage, args.port) == ("s", "x.journal", 9000)
    with pytest.raises(SystemExit):
        _parser().parse_args(["dashboard", "--host", "0.0.0.0"])


@pytest.fixture(params=["snapshot", "journal"])
def study_reads(request, folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the whole-study reads: the journal storage's `get_all_trials` and parses of
    the study's snapshot beside it. Each test runs twice: with the snapshot its last run
    left, and without it (the journal read as before)."""
    from paretotune.study import _snapshot
    from paretotune.study._indexed_journal import IndexedJournalStorage

    reads: list[str] = []
    replay = IndexedJournalStorage.get_all_trials

    def replayed(self, *args, **kwargs):
        reads.append("journal")
        return replay(self, *args, **kwargs)

    monkeypatch.setattr(IndexedJournalStorage, "get_all_trials", replayed)
    parse = _snapshot._parsed.__wrapped__

    @functools.lru_cache(maxsize=8)
    def parsed(*args):
        reads.append("snapshot")
        return parse(*args)

    monkeypatch.setattr(_snapshot, "_parsed", parsed)
    snapshot = _snapshot.snapshot_path(str(folder / "study.journal"), STUDY)
    assert snapshot is not None and snapshot.exists(), "the run left its snapshot"
    if request.param == "journal":
        kept = snapshot.with_name("kept.json")
        snapshot.rename(kept)
        request.addfinalizer(lambda: kept.rename(snapshot))
    reads.clear()
    return reads


@pytest.mark.parametrize(
    "command",
    [
        ("status", STUDY),
        ("status", STUDY, "--json"),
        ("show", STUDY, "5"),
        ("show", STUDY, "5", "--json"),
        ("pareto", STUDY, "--json"),
        ("pareto", STUDY, "--where", "accuracy > 0.5"),
        ("best", STUDY, "--where", "latency_ms < 1"),
        ("knee", STUDY),
        ("studies",),
    ],
)
def test_each_command_reads_the_study_once(cli, study_reads: list[str], command: tuple):
    code, _, err = cli(*command)
    assert code == 0, err
    if command == ("studies",):  # (listing the studies replays the journal once more)
        assert study_reads.count("snapshot") + study_reads.count("journal") <= 2
    else:
        assert len(study_reads) == 1, (command, study_reads)


@pytest.mark.filterwarnings("ignore:no MLflow store")
def test_the_client_reads_the_study_once_per_question(folder: Path, study_reads: list[str]):
    from paretotune import Client
    from paretotune.study import _snapshot

    client = Client(  # (MLflow at a store that does not exist: skipped, with a warning)
        storage=str(folder / "study.journal"), tracking_uri=f"sqlite:///{folder / 'mlflow.db'}"
    )
    for ask in (
        client.front,
        client.summary,
        client.trials,
        client.pareto_front,
        client.knee_point,
        lambda name: client.trial(name, 5),
    ):
        study_reads.clear()
        _snapshot._parsed.cache_clear()  # (a process parses a snapshot once: forget it)
        ask(STUDY)
        assert len(study_reads) == 1, (ask, study_reads)
    view = client.view(STUDY)  # one reading, many questions
    study_reads.clear()
    client.front(view), client.summary(view), client.best_config(view), client.trial(view, 5)
    assert study_reads == []
