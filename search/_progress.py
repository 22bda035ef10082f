"""The live progress line of a running study and the closing table of its front."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from paretotune.results.ordering import direction_word, varying_params
from paretotune.results.records import FrontSummary, TrialRecord
from paretotune.results.selection import best_first
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

# Where stderr is no terminal (a log file, a Ray job's log), the progress is a plain
# line at most this often, and the last one at the end.
LINE_EVERY_S = 10.0


class StudyProgress:
    """The live progress of a running study, on two lines: trials done of the budget and
    the time, then what the study found so far: the front's size, each objective's best
    value on it, the hypervolume as the share of the study's box it dominates (once the
    box is fixed, `paretotune status` states it) and the trials that
    failed, were interrupted, retried or stopped early. Where stderr is no terminal, the
    same as one plain line every `LINE_EVERY_S` and at the end, so a log (a cluster
    job's, `paretotune logs --follow`) shows the study moving."""

    def __init__(
        self,
        name: str,
        total: int,
        done: int,
        objectives: dict[str, str] | None = None,
        *,
        enabled: bool = True,
    ):
        self.console = Console(stderr=True)
        self.objectives = dict(objectives or {})
        self.enabled = enabled
        self._plain = enabled and not self.console.is_terminal
        self._name, self._total, self._done, self._found = name, total, done, ""
        self._shown: tuple[int, str] | None = None  # the last plain line's (done, findings)
        self._shown_at = -float("inf")
        self._progress = _TwoLineProgress(
            TextColumn(f"[bold]{name}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("trials"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled or self._plain,
            transient=False,
        )
        self._task = self._progress.add_task(name, total=total, completed=done)
        self.started = time.perf_counter()

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
        if self._plain:
            self._print_line(final=True)

    def say(self, line: str) -> None:
        """One line above the progress (a resume, a notice)."""
        if self.enabled:
            self.console.print(line, highlight=False)

    def _print_line(self, *, final: bool = False) -> None:
        """The plain form: ``name: 12/30 trials, 0:00:41  Pareto 5 · best … · HV 41.2%``,
        when `LINE_EVERY_S` passed (or at the end) and it says something new."""
        now = time.perf_counter()
        if self._shown == (self._done, self._found):
            return
        if not final and now - self._shown_at < LINE_EVERY_S and self._done < self._total:
            return
        elapsed = time.strftime("%H:%M:%S", time.gmtime(now - self.started)).removeprefix("0")
        line = f"{self._name}: {self._done}/{self._total} trials, {elapsed}{self._found}"
        self.console.print(line, highlight=False, soft_wrap=True)
        self._shown, self._shown_at = (self._done, self._found), now

    def update(
        self,
        *,
        done: int,
        failed: int,
        pruned: int,
        pareto: int,
        feasible: int | None = None,
        epochs: tuple[int, int] | None = None,
        retried: int = 0,
        interrupted: int = 0,
        best: list[float] | None = None,
        hypervolume: float | None = None,
        variants: int = 0,
    ) -> None:
        """``feasible`` shows with constraints; ``epochs`` (trained, saved) with early
        stopping; ``best``: each objective's best value on the front, in objective order."""
        found = [f"Pareto {pareto}"]
        if best is not None:
            found.append(
                "best "
                + ", ".join(
                    f"{name} {value:.3g}"
                    for name, value in zip(self.objectives, best, strict=False)
                )
            )
        if hypervolume is not None:  # the share of the study's box (`HypervolumeBox`)
            found.append(f"HV {hypervolume:.1%}")
        if variants:  # compressed forks of the trained models: trials beside the trainings
            found.append(f"+{variants} variants")
        if feasible is not None:
            found.append(f"{feasible} feasible")
        counted = {"failed": failed, "interrupted": interrupted, "retried": retried}
        found += [f"{n} {what}" for what, n in counted.items() if n]
        if epochs is not None:
            found.append(f"{pruned} stopped early, {epochs[1]} of {sum(epochs)} epochs saved")
        elif pruned:
            found.append(f"{pruned} stopped early")
        self._progress.found = found
        self._progress.update(self._task, completed=done)
        self._done, self._found = done, "  " + " · ".join(found)
        if self._plain:
            self._print_line()


class _TwoLineProgress(Progress):
    """A rich progress bar with the findings under it, broken between findings (never
    inside one) to the terminal's width."""

    found: Sequence[str] = ()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        live = getattr(self, "live", None)  # (rich renders once before it sets it)
        for line in fit_findings(self.found, live.console.width if live else 80):
            yield Text(line)


def fit_findings(parts: Sequence[str], width: int) -> list[str]:
    """``parts`` joined by `` · `` on lines of at most ``width`` columns, each indented
    by two, a part never split (one longer than the width gets a line of its own)."""
    lines: list[str] = []
    line = ""
    for part in parts:
        joined = f"{line} · {part}" if line else f"  {part}"
        if line and len(joined) > width:
            lines.append(line)
            line = f"  {part}"
        else:
            line = joined
    return [*lines, line] if line else lines


def print_front(
    front: FrontSummary,
    *,
    tracking_uri: str | None,
    experiment_id: str | None,
    rows: Sequence[TrialRecord] | None = None,
    study: str | None = None,
) -> None:
    """The Pareto-optimal trials as a table that fits the terminal, then how to open them
    in the MLflow UI.

    ``rows`` are the trials to show, in that order (default: the front, best first by the
    first objective); ``study`` names the study in the closing hint. The layout is
    `front_lines`'s, at the width of the terminal or ``$COLUMNS`` (80 when piped without
    it). MLflow run ids and model URIs are not in the table: ``paretotune show STUDY N``
    prints one trial whole.
    """
    console = Console(file=sys.stdout, soft_wrap=True)  # never wraps a command it prints
    shown = best_first(front.pareto, front.objectives) if rows is None else list(rows)
    width = shutil.get_terminal_size((80, 24)).columns
    title = f"Pareto-optimal trials: {len(front.pareto)} of {len(front.records)} complete"
    if len(shown) != len(front.pareto):
        title += f", {len(shown)} shown"
    lines = [title, *front_lines(front.objectives, shown, width)]
    tied = sum(r.within_noise_of is not None for r in front.records)
    lines += textwrap.wrap(noise_note(front.objectives, shown, tied), width)
    if shown:
        hint = f"every param, metric, run id and model of one: paretotune show {study or 'STUDY'} N"
        lines += textwrap.wrap(hint, width, break_on_hyphens=False)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if tracking_uri:
        from paretotune.tracking.mlflow.view import FRONT_FILTER, front_url

        command = mlflow_ui_command(tracking_uri)
        if command is not None:
            console.print(f"Serve the MLflow UI:  {command}", markup=False, highlight=False)
        if experiment_id is not None:
            url = front_url(tracking_uri, experiment_id)
            console.print(f"The Pareto front in MLflow:  {url}", markup=False, highlight=False)
            console.print(
                f"(its runs, filtered by {FRONT_FILTER}, objectives as columns; its plot: "
                "the study's run, artifacts pareto/pareto_front.html)",
                markup=False,
                highlight=False,
            )


def noise_note(objectives: Mapping[str, str], rows: Sequence[TrialRecord], tied: int = 0) -> str:
    """Under the front: how much its measured objectives swing (the CV of a measurement's
    rounds), which the ranking treats as ties, and how many models of the exact front
    that cost it (``tied``); empty where none is measured."""
    from paretotune.results.noise import NOISE_OF

    notes = []
    for name in (name for name in objectives if name in NOISE_OF):
        cvs = [r.metrics.get(NOISE_OF[name]) for r in rows]
        found = [float(cv) for cv in cvs if isinstance(cv, int | float)]
        if found:
            notes.append(f"{name} ±{min(found):.1%}–{max(found):.1%}")
    if not notes:
        return ""
    note = f"measured noise (between rounds): {', '.join(notes)}; differences within it are ties"
    if tied:
        models = "model" if tied == 1 else "models"
        note += f" ({tied} {models} ahead only within it ranked 1, off the front)"
    return note


def mlflow_ui_command(tracking_uri: str) -> str | None:
    """The command that serves this tracking store's UI, with the mlflow of this Python,
    to paste from any folder; None for a tracking server (it serves its own UI)."""
    from paretotune.tracking.mlflow.view import ui_command

    return ui_command(tracking_uri)


def front_lines(
    objectives: Mapping[str, str], rows: Sequence[TrialRecord], width: int
) -> list[str]:
    """The trials ``rows`` as a plain-text table no wider than ``width`` (where at least
    the trial numbers fit): nothing is cut, nothing dropped.

    Columns: the trial number, each objective (4 significant digits; ``(max)``/``(min)``
    under its name), then each param that varies among ``rows`` (fixed ones say nothing
    about the trade-off; floats to 3 significant digits, ``-`` where a trial lacks it).
    When all of them fit, a trial is one row. When they do not (the usual case at 80
    columns), the compact layout: the trial number and the objectives stay columns, and
    so do the params every trial has, in order, as far as they fit; each trial's other
    params follow on a line under its row as ``name=value``, wrapped only when even that
    line is longer than the width. A trial then takes two rows (more only when its params
    outrun a whole line).
    """
    if not rows:
        return ["(no trial to show)"]
    params = varying_params(r.params for r in rows)
    trial = _Column("trial", "", [str(r.number) for r in rows])
    scores = [
        _Column(m, f"({direction_word(d)})", [_short(r.values.get(m), digits=4) for r in rows])
        for m, d in objectives.items()
    ]
    knobs = [_Column(k, "", [_short(r.params.get(k)) for r in rows]) for k in params]
    if _table_width([trial, *scores, *knobs]) <= width:
        return _table([trial, *scores, *knobs])
    columns = [trial]
    for column in scores:  # objectives in order, as far as they fit
        if _table_width([*columns, column]) > width:
            break
        columns.append(column)
    for column, key in zip(knobs, params, strict=True):
        everywhere = all(key in r.params for r in rows)
        if everywhere and _table_width([*columns, column]) <= width:
            columns.append(column)
    rest = [c for c in [*scores, *knobs] if c not in columns]
    indent = " " * (columns[0].width + 2)
    return _table(columns, under=lambda i: _wrapped(rest, i, indent, width))


class _Column:
    """A column of `front_lines`: a name, a line under it, and one cell per row."""

    def __init__(self, name: str, under: str, cells: list[str]):
        self.name, self.under, self.cells = name, under, cells
        self.numeric = all(_is_number(c) for c in cells)
        self.width = max(len(name), len(under), *(len(c) for c in cells))

    def cell(self, text: str) -> str:
        return text.rjust(self.width) if self.numeric else text.ljust(self.width)


def _table(columns: list[_Column], under: Callable[[int], list[str]] | None = None) -> list[str]:
    """The header (and the line under it, where a column has one), then a row per trial,
    each followed by ``under(row)``."""
    heads = [[c.cell(c.name) for c in columns]]
    if any(c.under for c in columns):
        heads.append([c.cell(c.under) for c in columns])
    lines = ["  ".join(head).rstrip() for head in heads]
    for i in range(len(columns[0].cells)):
        lines.append("  ".join(c.cell(c.cells[i]) for c in columns).rstrip())
        if under is not None:
            lines += under(i)
    return lines


def _table_width(columns: list[_Column]) -> int:
    return sum(c.width for c in columns) + 2 * (len(columns) - 1)


def _wrapped(columns: list[_Column], row: int, indent: str, width: int) -> list[str]:
    """Row ``row``'s cells of ``columns`` as ``name=value`` (those it has), wrapped to
    ``width`` under ``indent``; a value longer than a line is broken, never cut."""
    text = " ".join(f"{c.name}={c.cells[row]}" for c in columns if c.cells[row] != _ABSENT)
    if not text:
        return []
    room = max(width, len(indent) + 20)
    return textwrap.wrap(
        text, room, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )


_ABSENT = "-"


def _short(value: object, digits: int = 3) -> str:
    """A value in a few characters: floats to ``digits`` significant digits, booleans as
    the condition language writes them (``true``/``false``), a missing one as ``-``."""
    if value is None:
        return _ABSENT
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _is_number(text: str) -> bool:
    if text == _ABSENT:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
