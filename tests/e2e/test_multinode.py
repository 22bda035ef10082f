"""Several Ray nodes for real: a `ray start --head` and a second node joined with
`ray start --address`, each with its own CPU count and custom resources, on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from paretotune.cli._services import free_port_block, start_ray_node
from paretotune.execution._loopback import LOOPBACK_ENV

from tests.conftest import free_port, kill_group
from tests.e2e.test_cluster import _submit, _user_study
from tests.e2e.test_loopback import _in_groups, _is_loopback, _listeners

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NODES_SCRIPT = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps({n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}))
"""


@dataclass
class Nodes:
    address: str
    head: str  # node ids
    edge: str
    groups: list[int]  # process groups to kill at the end
    dashboard: str  # the head's job server, http://127.0.0.1:PORT


def _node_ids(address: str, env: dict[str, str]) -> dict[str, dict[str, float]]:
    found = subprocess.run(
        [sys.executable, "-c", NODES_SCRIPT, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Nodes]:
    """A head offering 2 CPUs and ``trainer: 2`` and a job server; a second node
    offering 1 CPU and ``edge: 1``. Both are stopped at the end, whatever happened."""
    folder = Path(tempfile.mkdtemp(prefix="ptn.", dir="/tmp"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[LOOPBACK_ENV] = "0"  # a plain ray.init joins the loopback-only head at 127.0.0.1
    port, agents, dashboard = free_port(), free_port_block(8), free_port()
    address = f"127.0.0.1:{port}"
    groups: list[int] = []
    try:
        head = ["--head", "--port", str(port), "--temp-dir", str(folder / "ray")]
        head += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard)]
        head += ["--num-cpus", "2", "--resources", '{"trainer": 2}']
        groups.append(start_ray_node(head, agents, folder / "head.log"))
        edge = ["--address", address, "--num-cpus", "1", "--resources", '{"edge": 1}']
        groups.append(start_ray_node(edge, agents + 4, folder / "edge.log"))
        ids = _node_ids(address, env)
        head_id = next(i for i, r in ids.items() if "trainer" in r)
        edge_id = next(i for i, r in ids.items() if "edge" in r)
        yield Nodes(address, head_id, edge_id, groups, f"http://127.0.0.1:{dashboard}")
    finally:
        for group in groups:
            kill_group(group)
        shutil.rmtree(folder, ignore_errors=True)


def _run(spec: Path, nodes: Nodes, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", "run", str(spec), "--no-progress", *args],
        cwd=spec.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": nodes.address},
    )


SPEC = """\
name: {name}
dataset: {{source: digits}}
space:
  architecture: [mlp]
  mlp: {{depth: 1, width: [16, 64]}}
  optimizer: [adam]
budget: {{trials: 4, epochs: 2}}
resources: {{workers: 2}}
measure: {{latency_on: {{resources: {resources}}}}}
"""


def test_a_joined_node_listens_on_loopback_only(two_nodes: Nodes):
    """`start_ray_node` joining a head (``ray start --address``) binds its raylet, object
    manager and agents to loopback, like the head (and `up`'s, test_services.py)."""
    edge = _listeners(_in_groups({two_nodes.groups[1]}))
    assert "raylet" in {title for title, _, _ in edge}, edge
    assert "gcs_server" not in {title for title, _, _ in edge}, "the head's, not the edge's"
    listeners = edge | _listeners(_in_groups({two_nodes.groups[0]}))
    exposed = sorted(listener for listener in listeners if not _is_loopback(listener[1]))
    assert not exposed, f"the nodes listen beyond loopback: {exposed}"


def test_latency_is_measured_on_the_node_offering_the_target_resource(
    two_nodes: Nodes, tmp_path: Path
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="edge-latency", resources="{edge: 1}"))
    ran = _run(spec, two_nodes)
    assert ran.returncode == 0, ran.stderr[-3000:]

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "paretotune.journal")))
    study = optuna.load_study(study_name="edge-latency", storage=storage)
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 4
    for trial in complete:  # trained on the head (the edge's CPU is the probe's), timed on edge
        assert trial.user_attrs["placement"] == {
            "node": two_nodes.head,
            "latency_node": two_nodes.edge,
        }
        assert trial.user_attrs["metric.latency_ms"] > 0
    isolated = study.user_attrs["isolated_measurements"]  # the front, again on the edge node
    assert isolated and all(m["latency_ms_isolated"] > 0 for m in isolated.values())

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("edge-latency").experiment_id],
        "tags.`paretotune.trial_number` != ''",
    )
    assert len(runs) == 4
    assert {r.data.tags["paretotune.latency_node"] for r in runs} == {two_nodes.edge}
    assert {r.data.tags["paretotune.node"] for r in runs} == {two_nodes.head}


def test_a_target_no_node_offers_is_refused_in_one_line_before_anything_is_written(
    two_nodes: Nodes, tmp_path: Path
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="no-target", resources="{tpu_box: 1}"))
    ran = _run(spec, two_nodes)
    assert ran.returncode == 2, ran.stderr[-3000:]
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, ran.stderr
    assert "measure.latency_on.resources" in errors[0] and "tpu_box" in errors[0]
    assert "edge=1" in errors[0] and "trainer=2" in errors[0]  # what the nodes do offer
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "paretotune.journal").exists()
    assert not (tmp_path / "mlflow.db").exists()


SPREAD_SPEC = {
    "name": "spread",
    "dataset": {"source": "digits"},
    "space": {"architecture": ["mlp"], "mlp": {"depth": 1, "width": [16, 32, 64]}},
    "budget": {"trials": 20},
    "resources": {"workers": 4, "retries": 2},
}

# The study's driver: trials train nothing. Each says which node it runs on (a file) and
# waits until the test lets it go: the node that joined gets one `pass-NODE` (its first
# trial finishes while the others wait), and `open` lets every trial go. So the test acts
# the moment a trial runs, or finished, on the node it joined, whatever the load.
SPREAD_DRIVER = """
import json, os, sys, time
from pathlib import Path

import ray
from paretotune import run_study

GATE = Path(sys.argv[1])


def objective(params):
    node = ray.get_runtime_context().get_node_id()
    (GATE / f"running-{node}-{os.getpid()}-{time.monotonic_ns()}").touch()
    while not (GATE / "open").exists():
        try:
            (GATE / f"pass-{node}").unlink()  # one trial only goes
            break
        except FileNotFoundError:
            time.sleep(0.05)
    width = params["mlp.width"]
    return {"accuracy": width / 64, "train_time_s": width / 8, "latency_ms": 64 / width}


run_study(
    json.loads(sys.argv[2]),
    objective,
    storage=sys.argv[3],
    tracking_uri=sys.argv[4],
    progress=False,
)
"""


def _running_on(gate: Path) -> list[str]:
    """The node of each trial begun so far (retries included)."""
    return [path.name.split("-")[1] for path in gate.glob("running-*")]


def _workers_on(gate: Path, node: str) -> set[int]:
    """The worker processes that ran trials on ``node``."""
    return {int(path.name.split("-")[2]) for path in gate.glob(f"running-{node}-*")}


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _until(check, what: str, study: subprocess.Popen, deadline: float) -> None:
    while not check():
        assert study.poll() is None, f"the study ended before {what}: {study.communicate()}"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def _placements(journal: Path) -> dict[int, str]:
    """Trial number -> the node it trained on, for the COMPLETE trials so far."""
    if not journal.exists():
        return {}
    storage = JournalStorage(JournalFileBackend(str(journal)))
    try:
        study = optuna.load_study(study_name="spread", storage=storage)
    except KeyError:
        return {}
    return {
        t.number: t.user_attrs["placement"]["node"]
        for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        if "placement" in t.user_attrs
    }


def test_a_node_that_joins_gets_trials_and_a_killed_node_loses_none(
    two_nodes: Nodes, tmp_path: Path
):
    """The study asks 4 workers of a cluster offering 3 CPUs: 3 are placed and run trials.
    A third node (2 CPUs) joins once the study has started: the 4th worker is placed there
    and gets trials. Once one finished there and the next runs there, the node is killed
    (its whole process group, SIGKILL): its trial in flight is retried with its params
    elsewhere, no finished trial is lost, and the study completes its budget."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[LOOPBACK_ENV] = "0"
    gate = tmp_path / "gate"
    gate.mkdir()
    journal = tmp_path / "paretotune.journal"
    script = tmp_path / "driver.py"
    script.write_text(SPREAD_DRIVER)
    study = subprocess.Popen(
        [sys.executable, str(script), str(gate), json.dumps(SPREAD_SPEC), str(journal)]
        + [f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": two_nodes.address},
    )
    group = None
    try:
        deadline = time.monotonic() + 240
        _until(lambda: len(_running_on(gate)) == 3, "3 trials ran", study, deadline)
        assert set(_running_on(gate)) <= {two_nodes.head, two_nodes.edge}
        before = set(_node_ids(two_nodes.address, env))
        third = ["--address", two_nodes.address, "--num-cpus", "2"]
        group = start_ray_node(third, free_port_block(4), tmp_path / "third.log")
        third_id = next(iter(set(_node_ids(two_nodes.address, env)) - before))
        _until(
            lambda: third_id in _running_on(gate), "a trial ran on the new node", study, deadline
        )
        (gate / f"pass-{third_id}").touch()  # it finishes; the worker takes the next trial
        _until(
            lambda: (
                third_id in _placements(journal).values() and _running_on(gate).count(third_id) == 2
            ),
            "a trial finished on the new node and the next ran there",
            study,
            deadline,
        )
        finished_before_kill = _placements(journal)
        os.killpg(group, signal.SIGKILL)  # the node dies with its trial in flight
        # its worker too, before the held trial could be let go and report
        lost = _workers_on(gate, third_id)
        _until(lambda: all(map(_gone, lost)), "the node's worker died", study, deadline)
        (gate / "open").touch()  # every other trial goes on
        _, err = study.communicate(timeout=300)
    finally:
        if group is not None:
            kill_group(group)
        if study.poll() is None:
            study.kill()
    assert study.returncode == 0, err[-3000:]
    placed = _placements(journal)
    assert set(finished_before_kill.items()) <= set(placed.items()), "a finished trial was lost"
    assert len(set(placed.values())) >= 2, f"trials ran on one node only: {placed}"
    assert third_id in placed.values()
    storage = JournalStorage(JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="spread", storage=storage).trials
    retried = set(
        optuna.load_study(study_name="spread", storage=storage).user_attrs.get("retried_trials", [])
    )
    assert retried, "the trial in flight on the killed node was not retried"
    counted = [t for t in trials if t.number not in retried and t.state.is_finished()]
    assert len(counted) == 20 and all(t.state.name == "COMPLETE" for t in counted)
    for number in retried:  # lost with the node, run again with the same params
        again = next(t for t in trials if t.user_attrs.get("retry_of") == number)
        assert again.params == trials[number].params

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("spread").experiment_id],
        "tags.`paretotune.state` = 'COMPLETE'",
    )
    assert {r.data.tags["paretotune.node"] for r in runs} == set(placed.values())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paretotune.cli", *args],
        capture_output=True,
        text=True,
        timeout=200,
        env=os.environ | {"RAY_AUTH_MODE": "disabled"},
    )


def test_a_csv_study_submitted_from_another_folder_completes_spreads_and_stops_clean(
    two_nodes: Nodes, tmp_path: Path
):
    """The user's own CSV beside the spec, submitted as Ray jobs from another folder with
    more workers than the head has CPUs (the head's 2, the edge's 1). A short study
    completes, and `--wait` and `logs --follow` show its progress and closing front. A
    long one trains on both nodes, each reading the shipped CSV, until `stop` ends it
    with nothing RUNNING."""
    spec = _user_study(tmp_path / "study")
    spec.write_text(spec.read_text().replace("workers: 2", "workers: 3"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    journal = tmp_path / "paretotune.journal"
    on_cluster = ("--address", two_nodes.dashboard, "--storage", str(journal))
    tracking = ("--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = _submit(spec, *on_cluster, *tracking, "--wait", cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout
    assert "cluster-digits: 3/3 trials" in done.stdout, done.stdout[-3000:]
    assert "Pareto-optimal trials:" in done.stdout
    followed = _cli("logs", "cluster-digits", "--follow", "--address", two_nodes.dashboard)
    assert followed.returncode == 0, followed.stderr[-2000:]
    assert "cluster-digits: 3/3 trials" in followed.stdout
    assert "Pareto-optimal trials:" in followed.stdout

    # The edge's worker is ready seconds after the head's (the shipped folder unpacked
    # there): a study long enough that it trains there, stopped once it did.
    longer = ("--name", "cluster-long", "--trials", "200", "--epochs", "30")
    started = _submit(spec, *on_cluster, *tracking, *longer, cwd=elsewhere)
    assert started.returncode == 0, started.stderr[-3000:]
    storage = JournalStorage(JournalFileBackend(str(journal)))

    def trained_on() -> set[str]:
        try:
            study = optuna.load_study(study_name="cluster-long", storage=storage)
        except KeyError:
            return set()
        complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        return {t.user_attrs["placement"]["node"] for t in complete}

    deadline = time.monotonic() + 240
    while trained_on() != {two_nodes.head, two_nodes.edge}:
        assert time.monotonic() < deadline, f"trained on {trained_on()} only"
        time.sleep(1.0)
    stopped = _cli("stop", "cluster-long", *on_cluster)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped cluster-long (job raysubmit_" in stopped.stdout, stopped.stdout
    study = optuna.load_study(study_name="cluster-long", storage=storage)
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.RUNNING not in states, states
    assert len(study.trials) < 200
