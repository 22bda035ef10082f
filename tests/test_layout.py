"""The package's shape: one installed namespace, and imports that point one way.

Rooms, lowest first; a module imports only from its own room and from lower ones::

    base (errors, _lazy, _clock, _files, _timeline, _interrupts, results.ordering)
        < objectives < spaces < study, execution < tracking < results < stopping
        < driver (_run, _driver, _front, _progress, testing) < cli < paretotune/__init__
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"paretotune": ROOT / "search", "paretotune.spaces": ROOT / "spaces"}
FOLDERS["paretotune.objectives"] = ROOT / "objectives"

LAYERS = {
    "base": 0,
    "objectives": 1,
    "spaces": 2,
    "study": 3,
    "execution": 3,
    "tracking": 4,
    "results": 5,
    "stopping": 6,
    "driver": 7,
    "cli": 8,
    "api": 9,
}
BASE = {"errors", "_lazy", "_clock", "_files", "_timeline", "_interrupts"}
# modules of a higher folder that stand in the base room: they import nothing of the
# package, and every room uses them (the ordering rules: tracking's tables order by them)
BASE_MODULES = {"paretotune.results.ordering"}
DRIVER = {"_run", "_driver", "_front", "_progress", "testing"}
FRAMEWORKS = ("optuna", "ray", "mlflow")


def _modules() -> dict[str, Path]:
    """Every module of the package by its installed name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if package == "paretotune" and parts[0] in ("spaces", "objectives"):
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    if module in BASE_MODULES or parts[1] in BASE:
        return "base"
    if parts[1] in DRIVER:
        return "driver"
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every paretotune import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "paretotune":  # `from paretotune import objectives`
                found += [
                    (node.lineno, f"paretotune.{a.name}")
                    for a in node.names
                    if f"paretotune.{a.name}" in MODULES
                ]
            else:
                found.append((node.lineno, node.module))
    return found


def test_every_room_is_known() -> None:
    assert {_room(m) for m in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    room = _room(module)
    upward = [
        f"line {line}: {target} ({_room(target)})"
        for line, target in _imports(MODULES[module])
        if target.startswith("paretotune")
        and _room(target) != room
        and LAYERS[_room(target)] >= LAYERS[room]
    ]
    assert not upward, f"{module} ({room}) imports upward or sideways: {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) == "objectives"))
def test_objectives_know_nothing_of_the_frameworks(module: str) -> None:
    used = [t for _, t in _imports(MODULES[module]) if t.split(".")[0] in FRAMEWORKS]
    assert not used, f"{module} imports {used}"


def test_the_wheel_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    # a folder of data only (the example specs) is declared with its files, not found
    data_only = set(config.get("package-data", {})) - on_disk
    assert data_only == {"paretotune.spaces.examples"}
    assert listed == on_disk | data_only


def test_the_only_installed_name_is_paretotune(tmp_path: Path) -> None:
    """From a folder holding the README's layout (a `spaces/` folder beside a script), the
    public API imports, and none of the generic names is ours."""
    (tmp_path / "spaces" / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "spaces" / "examples" / "digits.yaml", tmp_path / "spaces" / "examples")
    (tmp_path / "search").mkdir()
    probe = (
        "import importlib.util\n"
        "from paretotune import Client, ParetotuneError, run_study, load_spec\n"
        "load_spec('spaces/examples/digits.yaml')\n"
        "for name in ('objectives', 'search', 'spaces'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    origin = spec and (spec.origin or list(spec.submodule_search_locations or []))\n"
        "    assert spec is None or 'site-packages' not in str(origin), (name, origin)\n"
        "    assert spec is None or str(ROOT) not in str(origin), (name, origin)\n"
    ).replace("ROOT", repr(str(ROOT)))
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
