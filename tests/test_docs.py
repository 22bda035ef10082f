"""The documentation holds together: README.md, docs/*.md and benchmarks/README.md.

Every relative link reaches a file (and its ``#anchor`` a heading of it, by GitHub's
rules); every YAML block that looks like a study spec loads with the real loader; every
``paretotune …`` line of a shell block parses with the real CLI parser (nothing is run);
the README stays a front door of at most 200 lines, linking every docs page.

A block marked ``<!-- fragment -->`` just before its fence is part of a spec: it is
loaded with a ``name`` added. ``<!-- no-run -->`` marks a Python block that
``tests/e2e/test_readme_snippets.py`` must not run (it needs a cluster).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]
README_MAX_LINES = 200

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*([a-z][a-z-]*)\s*-->\s*$")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_SHELLS = {"bash", "sh", "shell", "console"}
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it opens, its language, its text, its markers."""

    page: Path
    line: int  # the opening fence's line, from 1
    lang: str
    text: str
    markers: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _parse(page: Path) -> tuple[list[Block], str]:
    """The page's fenced blocks, and its prose: the text with each block's lines blank
    (so line numbers and paragraphs stay where they were)."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    prose = list(lines)
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].split()
        end = i + 1
        while end < len(lines):
            stripped = lines[end].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[i + 1 : end]
        ]
        markers = set()
        before = i - 1
        while before >= 0 and (marker := _MARKER.match(lines[before])):
            markers.add(marker[1])
            before -= 1
        blocks.append(
            Block(page, i + 1, info[0] if info else "", "\n".join(body) + "\n", frozenset(markers))
        )
        for k in range(i, min(end + 1, len(lines))):
            prose[k] = ""
        i = end + 1
    return blocks, "\n".join(prose)


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    return _parse(page)[0]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text as rendered (links by their text, code by
    its content), lowercased, every character but letters, digits, ``_``, ``-`` and
    spaces dropped, spaces made ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor on a page; a repeated one gets ``-1``, ``-2``… as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in _parse(page)[1].splitlines():
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """Every link target in a page's prose (not in code blocks or code spans)."""
    prose = _CODE_SPAN.sub("", _parse(page)[1])
    return _LINK.findall(prose)


def _ids(items: list[Block]) -> list[str]:
    return [block.where for block in items]


# --- links ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_its_anchor_a_heading(page: Path):
    problems = []
    for target in links(page):
        if _SCHEME.match(target):
            continue  # http(s), mailto: not checked offline
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            problems.append(f"{target}: {resolved.relative_to(ROOT.parent)} does not exist")
            continue
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(resolved):
                problems.append(f"{target}: no heading of {resolved.name} has the anchor #{anchor}")
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_slug_follows_github():
    assert slug("Scale (issue 21): `scale.py`") == "scale-issue-21-scalepy"
    assert slug("MLflow's cost per trial (session 5)") == "mlflows-cost-per-trial-session-5"
    assert slug("What happens when…") == "what-happens-when"
    assert slug("The trial → run mapping") == "the-trial--run-mapping"
    assert slug("`latency_ms`: batch-1 latency") == "latency_ms-batch-1-latency"


def test_the_readme_links_every_docs_page_and_the_docs_show_their_pictures():
    from_readme = {
        (ROOT / t.partition("#")[0]).resolve() for t in links(README) if not _SCHEME.match(t)
    }
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in from_readme]
    assert not unlinked, f"README.md's 'Where to go next' does not link {unlinked}"
    shown = {
        (page.parent / t.partition("#")[0]).resolve()
        for page in PAGES
        for t in links(page)
        if not _SCHEME.match(t)
    }
    unshown = [p.name for p in sorted(DOCS.glob("*.png")) if p.resolve() not in shown]
    assert not unshown, f"no page shows {unshown}"


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; move reference to docs/"
    )
    assert "make demo" in README.read_text() and "make test" in README.read_text()


# --- specs ------------------------------------------------------------------------------


def _spec_keys() -> set[str]:
    from paretotune.spaces._spec import StudySpec

    return set(StudySpec.model_fields)


def _yaml_blocks() -> list[Block]:
    return [b for page in PAGES for b in fenced_blocks(page) if b.lang in {"yaml", "yml"}]


def _looks_like_a_spec(block: Block) -> bool:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return True  # broken YAML in a spec's place fails below, with the loader's words
    return isinstance(data, dict) and bool(set(data) & _spec_keys())


SPEC_BLOCKS = [b for b in _yaml_blocks() if _looks_like_a_spec(b)]


def test_the_docs_hold_study_specs():
    assert len(SPEC_BLOCKS) >= 5, "the spec examples moved: check this test's parsing"
    assert any("fragment" not in b.markers for b in SPEC_BLOCKS)


@pytest.mark.parametrize("block", SPEC_BLOCKS, ids=_ids(SPEC_BLOCKS))
def test_every_spec_in_the_docs_loads_with_the_real_loader(block: Block, tmp_path: Path):
    from paretotune import SpecError, load_spec

    text = block.text
    if "fragment" in block.markers:
        text = "name: fragment\n" + text  # a part of a spec: whole with a name
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    try:
        load_spec(spec)
    except SpecError as err:
        hint = (
            "" if "fragment" in block.markers else " (a part of a spec? mark it <!-- fragment -->)"
        )
        pytest.fail(f"{block.where}: the spec does not load{hint}:\n" + "\n".join(err.lines()))


# --- commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    block: Block
    text: str
    argv: list[str]


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _commands() -> list[Command]:
    found = []
    for page in PAGES:
        for block in fenced_blocks(page):
            if block.lang not in _SHELLS:
                continue
            for line in _logical_lines(block.text):
                words = shlex.split(line.removeprefix("$ "), comments=True)
                while words and _ENV_ASSIGNMENT.match(words[0]):
                    words.pop(0)  # VAR=value before the command
                if words and Path(words[0]).name == "paretotune":
                    found.append(Command(block, line, words[1:]))
                elif words[1:3] == ["-m", "paretotune.cli"]:
                    found.append(Command(block, line, words[3:]))
    return found


COMMANDS = _commands()


def test_the_docs_hold_paretotune_commands():
    assert len(COMMANDS) >= 12, "the command examples moved: check this test's parsing"
    assert {c.argv[0] for c in COMMANDS} >= {"run", "pareto", "best", "knee", "export", "submit"}


@pytest.mark.parametrize(
    "command", COMMANDS, ids=[f"{c.block.where}:{' '.join(c.argv[:2])}" for c in COMMANDS]
)
def test_every_documented_command_parses_with_the_real_cli(
    command: Command, capsys: pytest.CaptureFixture
):
    from paretotune.cli._main import _parser

    try:
        _parser().parse_args(command.argv)  # parsed only: nothing is run
    except SystemExit:
        pytest.fail(
            f"{command.block.where}: `{command.text}` does not parse:\n{capsys.readouterr().err}"
        )
