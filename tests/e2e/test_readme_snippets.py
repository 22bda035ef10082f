"""The README's Python snippets, run as a user pastes them: in order, as one script, in a
folder that is not the repository's (the example spec comes with the package). Then each
docs page's Python snippets, in order, as one script per page, in a folder where a small
example study ran (a block marked ``<!-- no-run -->`` needs a cluster and is skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.test_docs import DOCS, README, fenced_blocks

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("joins_session_ray")]

# The study the docs pages read, as small as their first snippet asks for (so that
# snippet finds it finished, with nothing to go).
PREAMBLE = """
from paretotune import run_study
from paretotune.spaces import EXAMPLES_DIR

run_study(EXAMPLES_DIR / "digits.yaml", trials=6, epochs=3, progress=False)
"""


def _python_blocks(page: Path) -> list[str]:
    return [
        block.text
        for block in fenced_blocks(page)
        if block.lang == "python" and "no-run" not in block.markers
    ]


def _run(script: str, folder: Path, env: dict[str, str], name: str) -> None:
    (folder / name).write_text(script)
    done = subprocess.run(
        [sys.executable, name],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, f"{name}:\n" + done.stdout[-2000:] + done.stderr[-4000:]


def test_the_readme_python_snippets_run_from_another_folder(tmp_path: Path):
    blocks = _python_blocks(README)
    assert len(blocks) >= 3, "the README's snippets moved: check this test's parsing"
    _run("\n\n".join(blocks), tmp_path, cli_env(), "snippets.py")
    assert (tmp_path / "knee.yaml").is_file(), "the last snippet exported the knee's spec"
    assert (tmp_path / "paretotune.journal").is_file() and (tmp_path / "mlflow.db").is_file()


PAGES_WITH_PYTHON = [page for page in sorted(DOCS.glob("*.md")) if _python_blocks(page)]


@pytest.fixture(scope="module")
def example_study(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the example study (its journal and MLflow store) the docs read."""
    folder = tmp_path_factory.mktemp("docs")
    address = str(ray_cluster.get_runtime_context().gcs_address)
    _run(PREAMBLE, folder, cli_env() | {"RAY_ADDRESS": address}, "preamble.py")
    return folder


def test_the_docs_pages_hold_python_snippets():
    names = {page.name for page in PAGES_WITH_PYTHON}
    assert {"python-api.md", "mlflow.md"} <= names, "the docs' snippets moved: check the parsing"


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON, ids=lambda page: page.name)
def test_each_docs_page_python_snippets_run_as_one_script(page: Path, example_study: Path):
    # not named after the page: a script `mlflow.py` would shadow the package it imports
    script = f"docs_page_{page.stem.replace('-', '_')}.py"
    _run("\n\n".join(_python_blocks(page)), example_study, cli_env(), script)
