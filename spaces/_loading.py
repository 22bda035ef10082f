"""Reading a spec from YAML, with one error line per problem naming the field and value."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from paretotune.errors import SpecError
from paretotune.spaces._spec import StudySpec
from pydantic import ValidationError

# A validator that checks a mapping names the bad sub-field first: "width: low > high".
_SUBFIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", re.DOTALL)


def load_spec(source: str | Path | dict[str, Any] | StudySpec) -> StudySpec:
    """Load and validate a spec from a YAML path, a mapping, or pass a `StudySpec` through.

    Raises:
        SpecError: the file is missing or not YAML, or the spec is invalid.
    """
    if isinstance(source, StudySpec):
        return source
    if isinstance(source, dict):
        return validate_spec(source)
    path = Path(source)
    if path.is_dir():
        raise SpecError([f"spec: {str(path)!r} is a folder; give the spec's YAML file"])
    if not path.is_file():
        raise SpecError([f"spec: file {str(path)!r} does not exist"])
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [f"spec: {path} holds {size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,}"]
        )
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise SpecError([f"spec: {path} is not valid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise SpecError([f"spec: {path} is nested too deeply to be a spec"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"spec: {path} must hold a mapping at the top, got {type(data).__name__}"])
    return validate_spec(_dataset_beside(data, path.parent))


def _dataset_beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with a relative ``dataset.path`` made absolute against the spec's own
    folder, not the current one: a spec and its data move together (and `submit` ships
    them together), whatever folder a command runs in."""
    dataset = data.get("dataset")
    if not isinstance(dataset, dict):
        return data
    relative = dataset.get("path")
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        return data
    located = os.path.abspath(folder / Path(relative).expanduser())
    return data | {"dataset": dataset | {"path": located}}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML's own rule,
    which PyYAML does not enforce: the last one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults`: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice",
                    key_node.start_mark,
                )
            seen.add(key)
        self.flatten_mapping(node)  # (merge keys: SafeLoader's own handling)
        return super().construct_mapping(node, deep=deep)


def validate_spec(data: dict[str, Any]) -> StudySpec:
    """Validate a mapping into a `StudySpec`.

    Raises:
        SpecError: one line per problem.
    """
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None
    except RecursionError:
        raise SpecError(["spec: nested too deeply to be a spec"]) from None


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per pydantic error: ``field.path: message (got value)``."""
    lines = []
    for problem in err.errors(include_url=False):
        loc = ".".join(str(part) for part in problem["loc"] if not _is_union_tag(part))
        message = problem["msg"].removeprefix("Value error, ")
        kind = problem["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind not in ("value_error", "assertion_error"):
            message = f"{message} (got {_shown(problem['input'])})"
        sub = _SUBFIELD.match(message)
        if sub and loc:
            loc, message = f"{loc}.{sub.group(1)}", sub.group(2)
        lines.append(f"{loc}: {message}" if loc else message)
    return list(dict.fromkeys(lines))


MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; more is a mistake (or an attack)
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_SHOWN_CHARS = 120  # of a value echoed in an error line


def _shown(value: Any) -> str:
    """``repr(value)``, cut to `MAX_SHOWN_CHARS` (an error is one readable line)."""
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}… ({len(text):,} characters)"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's type ("list[str]", "str") into the location.
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))
