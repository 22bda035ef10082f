"""The test tiers of tests/conftest.py, on a small suite of their own (run in process by
pytester): each test gets the tier of what it uses, a unit test that starts a process
fails even when the error is swallowed, a tier written by hand is refused, and the unit
tier fails over its budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
MARKERS = """\
[tool.pytest.ini_options]
markers = [
    "slow: x", "gpu: x", "browser: x", "cluster: x",
    "unit: x", "integration: x", "system: x", "needs(what): x",
]
"""
SUITE = """
import subprocess

import pytest

from conftest import needs


@pytest.fixture()
def ray_cluster():
    return "a Ray"


@pytest.fixture()
def study(ray_cluster):
    return "a study on Ray"


@pytest.fixture()
def server():
    process = subprocess.Popen(["true"])
    yield process
    process.wait()


def _helper():
    return subprocess.run(["true"])


def _indirect():
    return _helper()


@needs("the MLflow logging process")
def _logs():
    return None


@needs("a tmpfs", tier="system")
def _tmpfs():
    return subprocess.run(["true"])  # a subprocess too: the system tier wins


def test_plain():
    assert sum([1, 2]) == 3


def test_on_a_fixture_of_ray(study):
    pass


def test_on_a_server_fixture(server):
    pass


def test_through_helpers():
    _indirect()


def test_through_a_marked_helper():
    _logs()


def test_on_a_tmpfs():
    _helper()
    _tmpfs()


def test_imports_subprocess_inside():
    import subprocess as sp

    sp.run(["true"])


@pytest.mark.cluster
def test_on_a_cluster():
    pass


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.needs("Ray"))])
def backend(request):
    return request.param


def test_each_backend(backend):
    pass
"""


@pytest.fixture()
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyprojecttoml(MARKERS)
    return pytester


def _tiers(suite: pytest.Pytester, *args: str) -> dict[str, str]:
    listed = suite.runpytest_inprocess("--collect-only", "-q", "--tiers", *args)
    found = re.findall(r"^(unit|integration|system) +\S+::(\S+)  \(", listed.stdout.str(), re.M)
    return {test: tier for tier, test in found}


def test_each_test_gets_the_tier_of_what_it_uses(suite: pytest.Pytester):
    suite.makepyfile(test_suite=SUITE)
    assert _tiers(suite) == {
        "test_plain": "unit",
        "test_on_a_fixture_of_ray": "integration",
        "test_on_a_server_fixture": "integration",
        "test_through_helpers": "integration",
        "test_through_a_marked_helper": "integration",
        "test_imports_subprocess_inside": "integration",
        "test_on_a_cluster": "system",
        "test_on_a_tmpfs": "system",
        "test_each_backend[fake]": "unit",
        "test_each_backend[real]": "integration",
    }
    selected = suite.runpytest_inprocess("--collect-only", "-q", "-m", "unit")
    selected.stdout.fnmatch_lines(["*test_plain*", "*test_each_backend?fake?*"])
    assert "test_on_a_cluster" not in selected.stdout.str()


def test_a_unit_test_that_starts_a_process_fails_even_if_it_swallows_the_error(
    suite: pytest.Pytester,
):
    suite.makepyfile(
        test_sneaky="""
        import concurrent.futures
        import contextlib
        import os


        def _start(what):
            with contextlib.suppress(Exception):
                what()


        def test_shells_out():
            _start(lambda: os.system("true"))


        def test_starts_a_process_pool():
            with concurrent.futures.ProcessPoolExecutor(1) as pool:
                _start(lambda: pool.submit(print).result())
        """
    )
    ran = suite.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    ran.assert_outcomes(failed=2)
    ran.stdout.fnmatch_lines(
        [
            "*_ test_shells_out _*",
            "a unit test started a process: os.system.*",
            "*_ test_starts_a_process_pool _*",
            "a unit test started a process: multiprocessing.*",
        ]
    )


def test_a_tier_written_by_hand_is_refused(suite: pytest.Pytester):
    suite.makepyfile(
        test_by_hand="""
        import pytest

        @pytest.mark.unit
        def test_claims_to_be_unit():
            pass
        """
    )
    ran = suite.runpytest_inprocess("--collect-only", "-q")
    assert ran.ret == pytest.ExitCode.USAGE_ERROR
    ran.stderr.fnmatch_lines(["*@pytest.mark.unit by hand*"])


def test_the_unit_tier_fails_over_its_budget(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    suite.makepyfile(test_quick="def test_quick():\n    pass\n")
    monkeypatch.setenv("PARETOTUNE_UNIT_BUDGET_S", "0")
    over = suite.runpytest_inprocess("-q", "-m", "unit")
    over.assert_outcomes(passed=1)
    assert over.ret == pytest.ExitCode.TESTS_FAILED
    over.stdout.fnmatch_lines(["*unit tier: * s of 0 s (PARETOTUNE_UNIT_BUDGET_S), over budget*"])
    monkeypatch.setenv("PARETOTUNE_UNIT_BUDGET_S", "600")
    assert suite.runpytest_inprocess("-q", "-m", "unit").ret == pytest.ExitCode.OK
    monkeypatch.setenv("PARETOTUNE_UNIT_BUDGET_S", "0")
    assert suite.runpytest_inprocess("-q").ret == pytest.ExitCode.OK, "only the unit tier"
