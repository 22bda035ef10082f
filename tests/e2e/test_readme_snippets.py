"""The README's Python snippets, run as a user pastes them: in order, as one script, in a
folder that is not the repository's (the example spec comes with the package)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("joins_session_ray")]

README = Path(__file__).parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_python_snippets_run_from_another_folder(tmp_path: Path):
    blocks = _python_blocks()
    assert len(blocks) >= 3, "the README's snippets moved: check this test's parsing"
    (tmp_path / "snippets.py").write_text("\n\n".join(blocks))
    done = subprocess.run(
        [sys.executable, "snippets.py"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert (tmp_path / "knee.yaml").is_file(), "the last snippet exported the knee's spec"
    assert (tmp_path / "paretotune.journal").is_file() and (tmp_path / "mlflow.db").is_file()
