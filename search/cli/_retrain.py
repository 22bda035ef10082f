"""Training an exported one-trial spec in this process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paretotune._run import StudyResult


def retrain(
    spec_path: str | Path,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
) -> StudyResult:
    """Train an exported one-trial spec in this process (no Ray needed for one trial).

    It is an ordinary study named after the trial, so it is tracked and resumed like any
    other: running it again when its trial is done trains nothing.

    Raises:
        SpecError: the spec is invalid.
    """
    from paretotune._run import run_study
    from paretotune.execution import InProcessExecutor
    from paretotune.spaces import load_spec
    from paretotune.study._prepare import prepare

    spec = load_spec(spec_path)
    _, context = prepare(spec, custom_objective=False)
    return run_study(
        spec,
        storage=storage,
        tracking_uri=tracking_uri,
        executor=InProcessExecutor(context),
        progress=progress,
    )
