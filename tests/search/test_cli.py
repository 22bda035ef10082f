"""The CLI: bad input gets one line per problem and exit 2; the front comes out as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paretotune import run_study
from paretotune._timeline import TIMELINE_ENV
from paretotune._timeline import read as read_timeline

from tests.conftest import cli_env


def _cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env() | {"PT_TEST_RUN": str(cwd)},  # marks what the command starts
    )


BAD_SPEC = """\
name: bad-one
budget: {trials: 0}
space:
  architecture: [mlp, resnet]
  learning_rate: {low: 0.1, high: 0.001}
colour: blue
"""


def test_bad_spec_exits_2_with_one_line_per_problem_and_creates_nothing(tmp_path: Path, paretotune):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SPEC)
    done = paretotune("run", str(spec), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: space.architecture: 'resnet' is not one of: mlp, cnn, rnn, transformer",
        "error: space.learning_rate: `low <= high` must hold, but got (low=0.1, high=0.001)",
        "error: budget.trials: Input should be greater than or equal to 1 (got 0)",
        "error: colour: unknown key",
    ]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing half-written"


CSV_ROWS = "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(60))


@pytest.mark.parametrize(
    ("spec", "files", "said"),
    [
        (
            'constraints: ["acuracy >= 0.9"]',
            {},
            "error: constraints[0]: 'acuracy' in 'acuracy >= 0.9' is no metric or param of "
            "this study (did you mean 'accuracy'?)",
        ),
        (
            "constraints: [\"accuracy >= 'high'\"]",
            {},
            "error: constraints[0]: accuracy is a number, compared with the text 'high'",
        ),
        (
            'budget: {trials: 2, stop_when: "optimizer == 3"}',
            {},
            "error: budget.stop_when: optimizer is text, compared with 3.0",
        ),
        (
            "resources: {cpus_per_trial: 1000000}",
            {},
            "error: resources.cpus_per_trial: 1e+06 is more than this machine's",
        ),
        (
            "resources: {cpus_per_trial: 0.00001}",
            {},
            "error: resources.cpus_per_trial: Input should be greater than or equal to 0.01",
        ),
        (
            "resources: {device: cuda}",
            {},
            "error: resources.device: 'cuda' needs resources.gpus_per_trial > 0",
        ),
        (
            "validation: {test: 0.99, holdout: 0.99}",
            {},
            "error: validation: test 0.99 then holdout 0.99 leave 0 of the 1797 rows of "
            "dataset 'digits' to train on and 17 to validate on (at least 20 and 1 needed)",
        ),
        (
            "dataset: {source: csv, path: d.csv, target: y}",
            {"d.csv": "a,b,y\n" + CSV_ROWS + "1e400,1,0\n-inf,2,1\n"},
            "error: dataset.path: d.csv has 2 infinite values (column 'a'; inf, -inf, or a "
            "number beyond float range such as 1e400)",
        ),
        (
            "dataset: {source: csv, path: d.csv, target: y}",
            {"d.csv": "a,y,y\n" + CSV_ROWS},
            "error: dataset.path: the header of d.csv repeats the column 'y'",
        ),
    ],
)
def test_a_spec_that_could_only_mislead_is_refused_before_anything_starts(
    tmp_path: Path, paretotune, spec: str, files: dict[str, str], said: str
):
    """Each once ran Ray, created MLflow's and Optuna's files and exited 0 (a typo's
    constraint meaning nothing, every trial failing on a missing GPU, a leaked target)."""
    (tmp_path / "spec.yaml").write_text(f"name: misleads\n{spec}\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = paretotune("run", "spec.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(said), line
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["spec.yaml", *files])


def test_a_storage_server_that_refuses_is_one_line(tmp_path: Path, paretotune):
    from tests.conftest import free_port

    url = f"postgresql+psycopg2://u@127.0.0.1:{free_port()}/optuna"  # nothing listens
    done = paretotune("status", "x", "--storage", url, cwd=tmp_path)  # (the path of every command)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: the storage cannot be reached: connection to ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_override_and_missing_file_exit_2(tmp_path: Path, paretotune):
    good = Path(__file__).parents[2] / "spaces" / "examples" / "digits.yaml"
    done = paretotune("run", str(good), "--workers", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: resources.workers: Input should be greater than or equal to 1 (got 0)"
    )
    done = paretotune("run", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.usefixtures("joins_session_ray")
def test_family_that_cannot_apply_is_a_spec_error(tmp_path: Path):
    """Found by the dataset check, before Ray starts."""
    spec = tmp_path / "wine.yaml"
    spec.write_text("name: wine-cnn\ndataset: {source: wine}\nspace: {architecture: [mlp, cnn]}\n")
    done = _cli("run", str(spec), cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: space.architecture: 'cnn' cannot apply to dataset 'wine'")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wine.yaml"]
    _assert_nothing_left(str(tmp_path))


@pytest.mark.slow
def test_pareto_json_lists_the_front(ray_cluster, workdir: Path, paretotune):
    def objective(params):
        return {
            "accuracy": params["learning_rate"],
            "train_time_s": params["batch_size"],
            "latency_ms": 1.0,
        }

    result = run_study({"name": "cli-front", "budget": {"trials": 8}}, objective, progress=False)
    done = paretotune("pareto", "cli-front", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {row["number"] for row in rows} == {r.number for r in result.pareto}
    for row in rows:
        assert set(row) >= {"number", "params", "values", "mlflow_run_id"}
        assert set(row["values"]) == {"accuracy", "train_time_s", "latency_ms"}
        assert row["mlflow_run_id"]
    missing = paretotune("pareto", "no-such-study", cwd=workdir)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: study 'no-such-study' not found in paretotune.journal (studies there: cli-front)"
    )


def _processes_carrying(token: str) -> set[str]:
    """Processes whose environment holds ``PT_TEST_RUN=<token>``: everything a command run
    with it started (Ray's GCS, raylet, agents and workers inherit it), wherever it was
    re-parented, and nothing another test or session started."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if f"PT_TEST_RUN={token}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.add(f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
        except OSError:  # gone meanwhile, or not a process folder
            continue
    return found


def _assert_nothing_left(token: str) -> None:
    deadline = time.monotonic() + 30
    while (left := _processes_carrying(token)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"left running: {left}"


@pytest.mark.slow
def test_run_starts_its_own_ray_and_leaves_nothing_running(tmp_path: Path):
    """`paretotune run` on the built-in objective: a fresh local Ray (started while the
    dataset is checked), trained trials, the summary line, exit 0; it skips the slow
    interpreter teardown, and the Ray it started goes away with it, agents included. The
    first thing it prints is that it starts Ray (seconds of it, not a blank screen)."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\nbudget: {trials: 2, epochs: 1}\n"
        "space: {architecture: mlp, compression: [none]}\nresources: {workers: 1}\n"
        "constraints: ['latency_ms <= 50']\n"
    )

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paretotune.cli", "run", str(spec)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            # Ray's own auth mode (a token), as outside `make demo`
            env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
            | {"RAY_ADDRESS": "", "PT_TEST_RUN": str(tmp_path), TIMELINE_ENV: str(timeline)},
        )

    timeline = tmp_path / "timeline.jsonl"
    done = run()
    assert done.returncode == 0, done.stderr
    phases = [phase for phase, _ in read_timeline(timeline)]
    # its Ray began stopping once the workers had, while the study's records closed
    assert phases.index("workers_stopped") < phases.index("ray_stop_begun")
    assert phases.index("ray_stop_begun") < phases.index("tracker_closed")
    assert phases[-1] == "ray_stopped", phases
    cpus = max(os.cpu_count() or 1, 1)
    first = done.stderr.splitlines()[0]
    assert first == f"tiny: starting a local Ray ({cpus} CPUs) and opening the study …", first
    assert "tiny: 2 trials run in" in done.stdout
    assert "Pareto-optimal trials" in done.stdout

    again = run()  # its budget spent: a rerun says so and starts no Ray
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith("resuming tiny: 2 finished, 0 to go\n"), again.stderr
    assert "Ray" not in again.stderr and "tiny: 0 trials run in" in again.stdout
    assert "Traceback" not in done.stderr
    # only paretotune's own lines: no Ray token notice, no Optuna FutureWarning for the
    # constraints, no MLflow INFO about validating a logged model's input example
    foreign = [line for line in done.stderr.splitlines() if not line.startswith("tiny: ")]
    assert foreign == [], done.stderr
    _assert_nothing_left(str(tmp_path))


_BUGGY_COMMAND = """
import sys
from paretotune.cli import _main, _studies

def studies(args):
    return {}["a bug"]  # a KeyError: a LookupError, but not the user's mistake

_studies.run = studies
_main.entry()
"""


def test_a_bug_exits_1_with_its_traceback_and_a_user_mistake_exits_2(tmp_path: Path, paretotune):
    """Only `ParetotuneError`s are the user's mistakes: a KeyError from a bug is not
    turned into a one-line 'error:' (as every LookupError once was). The bug runs as a
    command (`entry` turns it into exit 1 with `os._exit`), the mistake in process."""
    bug = subprocess.run(
        [sys.executable, "-c", _BUGGY_COMMAND, "studies"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "KeyError: 'a bug'" in bug.stderr
    mistake = paretotune("pareto", "nosuch", "--storage", str(tmp_path / "s.journal"), cwd=tmp_path)
    assert mistake.returncode == 2
    assert mistake.stderr.startswith(f"error: no study storage at {tmp_path / 's.journal'} ")
    assert len(mistake.stderr.strip().splitlines()) == 1 and "Traceback" not in mistake.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("joins_session_ray")
def test_run_takes_early_stopping_constraints_and_a_goal(tmp_path: Path, paretotune):
    """The flags reach the study: a trial budget of 12 on the session's Ray, MO-ASHA stopping
    trials at rung epochs, a constraint counted, and the goal stopping the study."""
    spec = tmp_path / "flags.yaml"
    spec.write_text(
        "name: flags\nbudget: {trials: 12, epochs: 4}\nsampler: {name: random}\n"
        "space: {architecture: mlp, optimizer: [adam], compression: [none]}\n"
        "resources: {workers: 2}\n"
    )
    args = ["--early-stopping", "mo_asha", "--constraint", "latency_ms <= 1000"]
    done = _cli(
        "run",
        str(spec),
        "--no-progress",
        *args,
        "--stop-when",
        "accuracy >= 0.5",
        cwd=tmp_path,
        timeout=300,  # a whole run with its own Ray: ~40 s, more on a loaded machine
    )
    assert done.returncode == 0, done.stderr
    assert "stopped: goal met by trial " in done.stdout
    listing = paretotune("studies", cwd=tmp_path)  # the answer is what matters: in process
    assert "flags: " in listing.stdout and "stopped: goal" in listing.stdout
    assert "feasible " in listing.stdout and " epochs" in listing.stdout
    bad = paretotune("run", str(spec), "--constraint", "latency_ms <<= 2", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith(
        "error: constraints: in 'latency_ms <<= 2'"
    )
    assert len(bad.stderr.strip().splitlines()) == 1
