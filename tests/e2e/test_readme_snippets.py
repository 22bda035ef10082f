"""The README's Python snippets, run as a user pastes them: in order, as one script, in a
folder that is not the repository's (the example spec comes with the package). Then each
docs page's Python snippets, in order, as one script per page, in the folder where the
README's study ran (a block marked ``<!-- no-run -->`` needs a cluster and is skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.test_docs import DOCS, README, fenced_blocks

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("joins_session_ray")]


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


@pytest.fixture(scope="module")
def readme_folder(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's snippets run once, as one script, in a folder of their own: the study
    they leave there (journal, MLflow store, models) is the one the docs pages read."""
    blocks = _python_blocks(README)
    assert len(blocks) >= 3, "the README's snippets moved: check this test's parsing"
    folder = tmp_path_factory.mktemp("readme")
    address = str(ray_cluster.get_runtime_context().gcs_address)
    _run("\n\n".join(blocks), folder, cli_env() | {"RAY_ADDRESS": address}, "snippets.py")
    return folder


def test_the_readme_python_snippets_run_from_another_folder(readme_folder: Path):
    assert (readme_folder / "knee.yaml").is_file(), "the last snippet exported the knee's spec"
    assert (readme_folder / "paretotune.journal").is_file()
    assert (readme_folder / "mlflow.db").is_file()


PAGES_WITH_PYTHON = [page for page in sorted(DOCS.glob("*.md")) if _python_blocks(page)]


def test_the_docs_pages_hold_python_snippets():
    names = {page.name for page in PAGES_WITH_PYTHON}
    assert {"python-api.md", "mlflow.md"} <= names, "the docs' snippets moved: check the parsing"


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON, ids=lambda page: page.name)
def test_each_docs_page_python_snippets_run_as_one_script(page: Path, readme_folder: Path):
    # not named after the page: a script `mlflow.py` would shadow the package it imports
    script = f"docs_page_{page.stem.replace('-', '_')}.py"
    _run("\n\n".join(_python_blocks(page)), readme_folder, cli_env(), script)
