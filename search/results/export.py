"""A trial's config as a spec that re-trains it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from paretotune.results.records import TrialRecord
from paretotune.spaces import validate_spec


def export_spec(spec: dict[str, Any], record: TrialRecord, study: str) -> dict[str, Any]:
    """A spec that re-trains exactly ``record``: every dimension fixed to the trial's value,
    same dataset, epochs, validation and seed, a budget of one trial on one worker.

    Raises:
        SpecError: the trial's params do not form a valid space (a custom-objective study).
    """
    space: dict[str, Any] = {}
    for key, value in record.params.items():
        option, dot, knob = key.partition(".")
        if dot:
            space.setdefault(option, {})[knob] = value
        else:
            space[key] = value
    exported = {
        **spec,
        "name": f"{study}-trial-{record.number}",
        "space": space,
        "budget": {**spec.get("budget", {}), "trials": 1, "timeout_s": None},
        "resources": {**spec.get("resources", {}), "workers": 1},
    }
    return validate_spec(exported).model_dump(mode="json", exclude_none=True)


def write_spec(spec: dict[str, Any], path: str | Path, comment: str) -> Path:
    """Write ``spec`` as YAML with a leading comment line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {comment}\n" + yaml.safe_dump(spec, sort_keys=False))
    return path
