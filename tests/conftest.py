"""Shared fixtures: one real local Ray per test session, real MLflow/Optuna in tmp dirs."""

from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import dis
import importlib
import inspect
import multiprocessing.process
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings

# No per-example deadline: on a shared 2-core machine a slow example is load, not a bug.
settings.register_profile("paretotune", deadline=None)
settings.load_profile("paretotune")

os.environ.setdefault("RAY_ACCEPT_CLUSTER_RESOURCES_WARNING", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs, shared by every test that needs one."""
    import ray
    from paretotune.execution._ray import ensure_ray

    ensure_ray("local", num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Each test leaves ``os.environ`` as it found it. A leak outlives the test in its
    pytest-xdist worker and reaches every later test's subprocesses: MLflow's own
    ``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI``, and a later CLI run then
    logged to that store instead of its folder's ``mlflow.db`` (a failed CI run)."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


JOIN_RAY_ENV = "PARETOTUNE_TEST_RAY_ADDRESS"


@pytest.fixture()
def joins_session_ray(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `paretotune` commands this test runs (through `cli_env`) join the session's
    Ray instead of each starting and stopping a Ray of its own (seconds per command on 2
    cores). Tests of a command's own Ray (its start, its ports, its end) do not use it."""
    address = str(ray_cluster.get_runtime_context().gcs_address)
    monkeypatch.setenv(JOIN_RAY_ENV, address)
    return address


def cli_env(*also_drop: str) -> dict[str, str]:
    """The environment of a `paretotune` command a test runs: none of the user's
    defaults (Ray address, MLflow URI, storage), Ray's auth off, and the session's Ray to
    join when the test asked for it (`joins_session_ray`)."""
    drop = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PARETOTUNE_STORAGE", JOIN_RAY_ENV, *also_drop)
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"RAY_AUTH_MODE": "disabled"}
    if os.environ.get(JOIN_RAY_ENV):
        env["RAY_ADDRESS"] = os.environ[JOIN_RAY_ENV]
    return env


GATED_RUN = """
import functools, os, sys, time
from pathlib import Path

GATE = Path(sys.argv.pop(1))


def _call_number():
    number = 0
    while True:
        try:
            os.close(os.open(GATE / f"call-{number}", os.O_CREAT | os.O_EXCL))
            return number
        except FileExistsError:
            number += 1


def objective(params):
    number = _call_number()
    free = int((GATE / "free").read_text()) if (GATE / "free").exists() else 0
    while number >= free and not (GATE / "open").exists():
        time.sleep(0.05)
    rate, batch = params.get("learning_rate", 0.01), params.get("batch_size", 32)
    return {"accuracy": rate, "train_time_s": batch * rate, "latency_ms": 1.0 / batch}


from paretotune import _run

_run.run_study = functools.partial(_run.run_study, objective=objective)
from paretotune.cli import entry

entry()
"""


class Gate:
    """Events instead of long training as a timer: the trials of a command run through
    `command` train nothing and return at once, or wait until the test says so.

    ``command("run", "spec.yaml", ...)`` is ``paretotune run spec.yaml ...`` for real
    (its parser, lock, signals, exit codes and ``os._exit``), with one change: its study
    runs an objective (shipped to Ray's workers) that counts its calls in this folder,
    lets the first ``free`` of them return at once, and holds each later one until the
    test calls `open` (or the process is stopped or killed). So a test can stop, refuse
    or kill a driver the moment trials are in flight, and let the study finish the moment
    it has seen what it waited for, on 2 busy cores or 20 idle ones."""

    def __init__(self, folder: Path, *, free: int = 0) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "free").write_text(str(free))

    def open(self) -> None:
        """Every waiting trial returns, and every later one at once."""
        (self.folder / "open").touch()

    def calls(self) -> int:
        """How many trials the objective began so far (retries included)."""
        return len(list(self.folder.glob("call-*")))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", GATED_RUN, str(self.folder), *args]


class Planted:
    """What an attacker plants where paretotune reads a file back (a model, a held trial):
    a pickle whose unpickling would create ``marker``. A test asserts it never exists."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@dataclasses.dataclass(frozen=True)
class Ran:
    """What a command run in process answered, named as ``subprocess.run`` names it."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def paretotune(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """``paretotune(*args, cwd=folder)``: a command run in this process through
    ``cli.main(argv)``, in ``folder``, with the environment `cli_env` gives a command (none
    of the user's defaults). For the commands where no signal, kill or ``os._exit``
    matters: it saves the 1-4 s of imports a ``python -m paretotune.cli`` pays, and
    starts no process."""
    from paretotune.cli import main

    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PARETOTUNE_STORAGE", raising=False)

    def run(*args: str, cwd: Path) -> Ran:
        capsys.readouterr()  # what came before is not this command's
        with contextlib.chdir(cwd):
            code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with its own journal storage and MLflow SQLite store
    (``mlflow.db``, empty and already migrated: see `migrated_mlflow_store`)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PARETOTUNE_STORAGE", raising=False)
    migrated_mlflow_store(tmp_path / "mlflow.db")
    return tmp_path


_mlflow_template: list[Path] = []  # made once per test process (per xdist worker)


def migrated_mlflow_store(path: Path) -> Path:
    """An empty MLflow SQLite store at ``path`` (unless one is there), already migrated:
    a copy of one made once per test process. A new store costs MLflow ~1.7 s of schema
    migrations on the 2-core machine, a copy a few milliseconds. For the tests whose
    subject is not a store's making (`workdir`'s, `mlflow_server`'s): the product still
    makes its own in the tests that run it in a bare folder (the CLI's runs, the Client's
    study, the faults)."""
    if path.exists():
        return path
    if not _mlflow_template:
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="pt-mlflow-template."))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _mlflow_template.append(folder / "mlflow.db")
    shutil.copyfile(_mlflow_template[0], path)
    return path


def storage_url(folder: Path) -> str:
    return str(folder / "study.journal")


def tracking_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def free_port() -> int:
    from paretotune.cli._services import free_port as free

    return free()


@contextlib.contextmanager
def mlflow_server(store: Path, log: Path, port: int | None = None) -> Iterator[Any]:
    """A real ``mlflow server`` on 127.0.0.1 over the SQLite database ``store`` (made
    migrated first when absent, `migrated_mlflow_store`), answering ``/health``; yields
    the process (its URL is ``process.url``) and kills its whole process group at the
    end."""
    port = port or free_port()
    migrated_mlflow_store(store)
    with log.open("a") as output:
        server: Any = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server"),
                *("--backend-store-uri", f"sqlite:///{store}"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # no GenAI job runners (six more processes), as `paretotune up` starts it
            env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        server.url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(server, log)
            yield server
        finally:
            stop_server(server)


def _wait_healthy(server: subprocess.Popen, log: Path, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:  # type: ignore[attr-defined]
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer /health within {within_s:.0f} s")
        time.sleep(0.5)


def kill_group(group: int) -> None:
    """SIGKILL a test's own Ray node, whole process group (``start_ray_node``'s): its
    gcs_server and monitor ignore SIGTERM, so `stop_group` (what `paretotune down` does,
    tested in test_services.py) would wait out its 10 s grace for each node."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def stop_server(server: subprocess.Popen) -> None:
    """Kill a server started in its own session, whole process group, if still running."""
    if server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


# ---------------------------------------------------------------------------------------
# Tiers: `unit`, `integration`, `system`, assigned by what a test uses, never by hand.
# ---------------------------------------------------------------------------------------

TIERS = ("unit", "integration", "system")
SYSTEM_MARKERS = ("cluster", "browser")
SYSTEM_FIXTURES = frozenset({"local_cluster", "two_nodes", "small_disk"})
INTEGRATION_FIXTURES = frozenset(
    {
        "ray_cluster",
        "joins_session_ray",
        "postgresql_url",
        "mysql_url",
        "redis_url",
        "mlflow_server",
    }
)
SPAWNING_MODULES = frozenset({"subprocess", "multiprocessing", "ray", "playwright"})
PRODUCT_SPAWNERS = (
    ("paretotune.execution", "ensure_ray"),
    ("paretotune.execution", "RayExecutor"),
    ("paretotune.cli._services", "start_ray_node"),
    ("paretotune.tracking.mlflow", "MlflowTracker"),
)
UNIT_BUDGET_ENV = "PARETOTUNE_UNIT_BUDGET_S"
UNIT_BUDGET_S = 90.0
TESTS_DIR = Path(__file__).resolve().parent
_Helper = TypeVar("_Helper", bound=Callable[..., Any])
_tier_key = pytest.StashKey[tuple[str, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--tiers", action="store_true", help="print each test's tier and why")


Found = tuple[int, str]  # (index of the tier in TIERS, why), as the reader finds it
UNIT: Found = (0, "no process")


def _product_spawners() -> dict[int, str]:
    found = {}
    for module, name in PRODUCT_SPAWNERS:
        with contextlib.suppress(ImportError, AttributeError):
            found[id(getattr(importlib.import_module(module), name))] = f"{module}.{name}"
    return found


def needs(what: str, tier: str = "integration") -> Callable[[_Helper], _Helper]:
    """Marks a test helper that needs more than its code shows (``what``, in words: a
    process that product code starts, a tmpfs), so that every test calling it, directly
    or through other helpers, is of ``tier`` at least (see the tiers)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")

    def mark(helper: _Helper) -> _Helper:
        helper.__tier_needs__ = (TIERS.index(tier), what)  # type: ignore[attr-defined]
        return helper

    return mark


class _Reader:
    """Reads what a function's code reaches (see the tiers' docstring), memoised."""

    def __init__(self) -> None:
        self.spawners = _product_spawners()
        self.seen: dict[int, Found] = {}

    def reaches(self, obj: Any) -> Found:
        """The highest tier that ``obj`` (a module, a function or class of ``tests/``, a
        product call) needs, and why."""
        if isinstance(obj, types.ModuleType):
            spawning = obj.__name__.split(".")[0] in SPAWNING_MODULES
            return (1, f"the {obj.__name__} module") if spawning else UNIT
        with contextlib.suppress(TypeError, ValueError):
            rank, what = getattr(obj, "__tier_needs__", UNIT)
            if rank:
                return rank, what
        if id(obj) in self.spawners:
            return 1, self.spawners[id(obj)]
        if inspect.isclass(obj):
            for base in obj.__mro__[1:]:
                if id(base) in self.spawners:
                    return 1, f"a {self.spawners[id(base)]}"
            if not _in_tests(getattr(sys.modules.get(obj.__module__), "__file__", None)):
                return UNIT
            members = [m for m in vars(obj).values() if inspect.isfunction(m)]
        elif callable(obj):
            members = [inspect.unwrap(obj)]
        else:
            return UNIT
        best = UNIT
        for member in members:
            code = getattr(member, "__code__", None)
            if code is None or not _in_tests(code.co_filename):
                continue
            if id(code) not in self.seen:
                self.seen[id(code)] = UNIT  # recursion stops here
                self.seen[id(code)] = self._read(code, member.__globals__)
            best = max(best, self.seen[id(code)], key=_rank)
        return best

    def _read(self, code: types.CodeType, names: dict[str, Any]) -> Found:
        best = UNIT
        for inner in _codes(code):
            before: Any = None  # what the last instruction loaded, for an attribute of it
            for instruction in dis.get_instructions(inner):
                op, arg = instruction.opname, instruction.argval
                now: Any = None
                if op in ("LOAD_GLOBAL", "LOAD_NAME"):
                    now = names.get(arg, getattr(builtins, str(arg), None))
                elif op in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM") and before is not None:
                    now = getattr(before, str(arg), None)
                elif op == "IMPORT_NAME":
                    with contextlib.suppress(ImportError):
                        now = importlib.import_module(str(arg))
                    if str(arg).split(".")[0] in SPAWNING_MODULES:
                        best = max(best, (1, f"the {arg} module"), key=_rank)
                if now is not None:
                    rank, why = self.reaches(now)
                    direct = isinstance(now, types.ModuleType) or id(now) in self.spawners
                    found = (rank, why if direct else f"{_name_of(now)} -> {why}")
                    best = max(best, found, key=_rank)
                before = now if op != "IMPORT_FROM" else before
        return best


def _rank(found: Found) -> int:
    return found[0]


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _in_tests(filename: str | None) -> bool:
    return bool(filename) and Path(filename).resolve().is_relative_to(TESTS_DIR)


def _name_of(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))


def _tier_of(item: pytest.Item, reader: _Reader) -> Found:
    for marker in SYSTEM_MARKERS:
        if item.get_closest_marker(marker):
            return 2, f"@pytest.mark.{marker}"
    names = set(getattr(item, "fixturenames", ()))
    if used := sorted(names & SYSTEM_FIXTURES):
        return 2, f"fixture {used[0]}"
    found: list[Found] = [UNIT]
    if used := sorted(names & INTEGRATION_FIXTURES):
        found.append((1, f"fixture {used[0]}"))
    for marker in item.iter_markers("needs"):
        tier = marker.kwargs.get("tier", "integration")
        found.append((TIERS.index(tier), f"@pytest.mark.needs({marker.args[0]!r})"))
    found.append(reader.reaches(getattr(item, "function", None)))
    fixtures = getattr(item, "_fixtureinfo", None)
    for name, defs in sorted(getattr(fixtures, "name2fixturedefs", {}).items()):
        for definition in defs:
            rank, why = reader.reaches(definition.func)
            found.append((rank, f"fixture {name}: {why}"))
    return max(found, key=_rank)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """How a test gets its tier (``pytest -m unit``, ``-m integration``, ``-m system``).

    Every collected test gets exactly one tier marker, from what it uses:

    - ``system``: it drives a whole deployment: a marker that says so (``cluster``: a real
      ``ray start --head`` and services; ``browser``: Chromium), or a fixture of
      ``SYSTEM_FIXTURES`` (a tmpfs, a second Ray node, the local cluster scripts), or a
      helper marked ``@needs("what", tier="system")`` (the tmpfs mount).
    - ``integration``: it starts or joins another process:
      - a fixture of ``INTEGRATION_FIXTURES`` (the session's Ray, the database servers, an
        ``mlflow server``), or any fixture depending on one (``item.fixturenames`` is the
        closure);
      - its code, or the code of a fixture it uses, reaches a process (below);
      - ``@pytest.mark.needs("what")``, where product code starts the process and the
        arguments decide whether (a contract test's Ray or MLflow implementation: on the
        fixture's ``pytest.param``);
      - a helper marked ``@needs("what")`` (a helper running ``run_study`` with an
        MLflow URI starts the logging process).
    - ``unit``: everything else.

    What a test's code reaches is read from its bytecode, not from a list of helpers: the
    test function, the fixtures it uses and, transitively, every function or class of
    ``tests/`` they name (``_cli``, ``mlflow_server``, ``_holder``, ...), looking for the
    modules that start processes (``SPAWNING_MODULES``) and the product calls that always
    do (``PRODUCT_SPAWNERS``). A new helper that calls ``subprocess.run`` makes its
    callers integration tests without anyone listing it. A tier marker written by hand
    is refused: it would go stale.

    What the reading misses, the guard catches: a unit test's setup and call run with
    ``subprocess``, ``os.fork``/``posix_spawn``/``system``, ``multiprocessing`` and
    ``ray.init``/``get``/``wait`` patched to fail, in every run (``make test`` too), so a
    test that starts a process without being tiered for it fails, naming the process.
    ``pytest --collect-only -q --tiers`` prints each test's tier and why.
    """
    reader = _Reader()
    for item in items:
        hand = [m.name for m in item.iter_markers() if m.name in TIERS]
        if hand:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{hand[0]} by hand; tests/conftest.py gives the "
                "tiers from what a test uses (a fixture, a helper, @pytest.mark.needs)"
            )
        rank, why = _tier_of(item, reader)
        item.stash[_tier_key] = (TIERS[rank], why)
        item.add_marker(getattr(pytest.mark, TIERS[rank]))


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    if not config.getoption("tiers"):
        return []
    return [
        f"{item.stash[_tier_key][0]:<12} {item.nodeid}  ({item.stash[_tier_key][1]})"
        for item in items
    ]


class ProcessInUnitTest(RuntimeError):
    """A unit test started (or asked Ray for) another process."""


class _Guard:
    """While a unit test runs, starting a process fails and is recorded, so the test fails
    even where product code catches the error."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._undo: list[tuple[Any, str, Any]] = []

    def _refuse(self, what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            shown = what
            if what == "subprocess" and len(args) > 1:  # Popen._execute_child(self, args, ...)
                shown = f"subprocess {args[1]!r}"[:200]
            self.started.append(shown)
            raise ProcessInUnitTest(f"a unit test may not start a process: {shown}")

        return refuse

    def _patch(self, owner: Any, name: str, what: str) -> None:
        if hasattr(owner, name):
            self._undo.append((owner, name, getattr(owner, name)))
            setattr(owner, name, self._refuse(what))

    def __enter__(self) -> _Guard:
        self._patch(subprocess.Popen, "_execute_child", "subprocess")
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            self._patch(os, name, f"os.{name}")
        for name in ("spawnv", "spawnve", "spawnvp", "spawnvpe", "execv", "execve"):
            self._patch(os, name, f"os.{name}")
        self._patch(multiprocessing.process.BaseProcess, "start", "multiprocessing")
        if ray := sys.modules.get("ray"):  # not imported: then starting it spawns
            for name in ("init", "get", "wait"):
                self._patch(ray, name, f"ray.{name}")
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)


@contextlib.contextmanager
def _guarded(item: pytest.Item) -> Iterator[None]:
    """Runs a unit test's setup or call under the guard (not its teardown: the last test
    of a module or session also tears down the servers of the tests before it)."""
    if item.stash.get(_tier_key, ("unit", ""))[0] != "unit":
        yield
        return
    with _Guard() as guard:
        try:
            yield
        finally:
            if guard.started:
                pytest.fail(
                    f"a unit test started a process: {'; '.join(guard.started)}. Start it "
                    "through the fixture or helper that does, or mark the test "
                    "@pytest.mark.needs('what') where product code starts it, so that it is "
                    "an integration test (tests/conftest.py, tiers)",
                    pytrace=False,
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


_started_at = pytest.StashKey[float]()
_unit_took = pytest.StashKey[tuple[float, float]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_started_at] = time.monotonic()
    # Matplotlib builds its font cache on first use by running `fc-list`: on a fresh
    # machine that would be the first unit test drawing a chart, which may not start a
    # process. Build it here, before any test.
    import matplotlib.font_manager  # noqa: F401


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The unit tier (``-m unit``, and only unit tests selected) fails over its budget:
    ``$PARETOTUNE_UNIT_BUDGET_S`` seconds of wall time, 90 unless set."""
    items = getattr(session, "items", [])
    if not items or "unit" not in (session.config.getoption("markexpr") or ""):
        return
    if any(item.stash.get(_tier_key, ("", ""))[0] != "unit" for item in items):
        return
    took = time.monotonic() - session.config.stash[_started_at]
    budget = float(os.environ.get(UNIT_BUDGET_ENV) or UNIT_BUDGET_S)
    session.config.stash[_unit_took] = (took, budget)
    if took > budget and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if (measured := config.stash.get(_unit_took, None)) is None:
        return
    took, budget = measured
    verdict = "over budget: FAILED" if took > budget else "within budget"
    terminalreporter.write_sep(
        "=",
        f"unit tier: {took:.1f} s of {budget:.0f} s ({UNIT_BUDGET_ENV}), {verdict}",
        red=took > budget,
        green=took <= budget,
        bold=True,
    )
