"""The live progress line of a running study and the closing table of its front."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from paretotune.results.records import FrontSummary
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class StudyProgress:
    """A rich progress bar: trials done of budget, failed, Pareto size, elapsed."""

    def __init__(self, name: str, total: int, done: int, *, enabled: bool = True):
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn(f"[bold]{name}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("pruned {task.fields[pruned]}"),
            TextColumn("Pareto {task.fields[pareto]}"),
            TextColumn("{task.fields[feasible]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(
            name, total=total, completed=done, failed=0, pruned=0, pareto=0, feasible=""
        )
        self.started = time.perf_counter()

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

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
    ) -> None:
        """``feasible`` shows with constraints; ``epochs`` (trained, saved) with early
        stopping; ``retried`` once a lost worker's trial was run again."""
        shown = "" if feasible is None else f"feasible {feasible}"
        if retried:
            shown += f" retried {retried}"
        if epochs is not None:
            shown += f" epochs {epochs[0]} (saved {epochs[1]})"
        self._progress.update(
            self._task,
            completed=done,
            failed=failed,
            pruned=pruned,
            pareto=pareto,
            feasible=shown,
        )


def print_front(front: FrontSummary, *, tracking_uri: str | None, experiment_id: str | None):
    """The Pareto-optimal trials as a table, then how to open them in the MLflow UI."""
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console.width = 200
    table = Table(title=f"Pareto-optimal trials ({len(front.pareto)} of {len(front.records)})")
    table.add_column("trial", justify="right")
    for metric, direction in front.objectives.items():
        table.add_column(
            f"{metric} ({'max' if direction == 'maximize' else 'min'})", justify="right"
        )
    table.add_column("params")
    table.add_column("MLflow run")
    best_first = next(iter(front.objectives))
    reverse = front.objectives[best_first] == "maximize"
    varying = _varying_keys([dict(r.params) for r in front.records])
    for record in sorted(front.pareto, key=lambda r: r.values[best_first], reverse=reverse):
        table.add_row(
            str(record.number),
            *(f"{record.values[m]:.4g}" for m in front.objectives),
            _short_params({k: v for k, v in record.params.items() if k in varying}),
            record.mlflow_run_id or "-",
        )
    console.print(table)
    if tracking_uri:
        console.print(f"Open the front in MLflow:  {mlflow_ui_command(tracking_uri)}")
        if experiment_id is not None:
            console.print(
                f"then browse http://127.0.0.1:5000/#/experiments/{experiment_id} "
                "(child runs carry the tag pareto=true)"
            )


def mlflow_ui_command(tracking_uri: str) -> str:
    """The exact command that opens this tracking store, with the mlflow of this Python."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    beside = Path(sys.executable).parent / "mlflow"
    mlflow = os.path.relpath(beside) if beside.exists() else "mlflow"
    return f"{mlflow} ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"


def _varying_keys(configs: list[dict]) -> set[str]:
    """The params that differ between trials (fixed ones say nothing about the trade-off)."""
    keys = {key for config in configs for key in config}
    return {key for key in keys if len({repr(c.get(key)) for c in configs}) > 1}


def _short_params(params) -> str:
    shown = []
    for key, value in params.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        shown.append(f"{key}={value}")
    text = " ".join(shown)
    return text if len(text) <= 120 else text[:117] + "..."
