"""Publishing a study's front in MLflow: the Pareto tags of the trial runs, and on the
parent run the front's size and hypervolume curves and its table, JSON, page and
picture; at the end, the Pareto trials' models as MLflow models."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretotune._clock import Throttle
from paretotune.tracking._base import FrontSnapshot
from paretotune.tracking.mlflow.models import log_trial_model, quiet_model_io
from paretotune.tracking.mlflow.schema import (
    FRONT_DIR,
    HV_BOX_PARAM,
    MODEL_URI_TAG,
    PARETO_RANK_TAG,
    PARETO_TAG,
)

# The front's tables and plots are drawn again at most this often, and no more than
# `COST_SHARE` of the time once the front is large (10,000 points take seconds to draw);
# its tags follow every change, and the final front is always drawn.
ARTIFACTS_EVERY_S = 10.0

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from paretotune.tracking.mlflow.guard import Guard
    from paretotune.tracking.mlflow.runs import StudyRecord


class ParetoTags:
    """Which runs are tagged on the front or off it, and the ranks of the newest front
    snapshot still queued: trials recorded before it is published get their tags with
    their results, instead of in one call each later.

    The tags: ``pareto`` (``true``/``false``) follows the exact front while the study runs,
    and at its end the front with differences within measurement noise as ties (the
    final snapshot's ranks, `results.noise`); ``pareto_rank`` is 0 on the front, and a
    run that leaves the front keeps the rank it had then. Ranking every run
    exactly would cost a call per run whose rank moved (most of them, as a study grows);
    every trial's exact rank is in the front's CSV, ``paretotune pareto`` and the Client.
    """

    def __init__(self) -> None:
        self._on_front: dict[str, bool] = {}  # run id -> tagged on the front (or off it)
        self._known: dict[int, int] = {}  # trial number -> rank in the expected snapshot
        self._expected: FrontSnapshot | None = None

    def expect(self, snapshot: FrontSnapshot | None) -> None:
        if snapshot is not self._expected:
            self._expected = snapshot
            rows = snapshot.rows if snapshot is not None else []
            self._known = {row.number: row.rank for row in rows}

    def known_rank(self, number: int) -> int | None:
        return self._known.get(number)

    def logged(self, run_id: str, rank: int | None) -> None:
        self._on_front[run_id] = rank == 0

    def is_logged(self, run_id: str, rank: int | None) -> bool:
        """Whether the run's tags already say what ``rank`` says of the front."""
        return self._on_front.get(run_id) == (rank == 0)

    @staticmethod
    def tags(rank: int | None) -> list[Any]:
        """The ``pareto`` tag for ``rank`` (None: off the front, rank not known), and the
        ``pareto_rank`` tag where the rank is known."""
        from mlflow.entities import RunTag

        tags = [RunTag(PARETO_TAG, str(rank == 0).lower())]
        return tags + ([RunTag(PARETO_RANK_TAG, str(rank))] if rank is not None else [])


class FrontPublisher:
    """Publishes front snapshots of ``study``; calls raise, the recorder guards them."""

    def __init__(self, client: MlflowClient, study: StudyRecord, pareto: ParetoTags, guard: Guard):
        self._client = client
        self._study = study
        self._pareto = pareto
        self._guard = guard
        self._published_front: list[tuple[int, dict[str, float]]] | None = None
        self._drawing = Throttle(floor_s=ARTIFACTS_EVERY_S)  # the front's artifacts
        self._charted: dict[str, int] = {}  # metric -> the last step charted here
        self._box_stated = False

    def publish(self, snapshot: FrontSnapshot, superseded: bool) -> None:
        """Tag the runs with their Pareto rank and publish the front on the parent run;
        a ``superseded`` snapshot (a newer one is queued), or one whose front has the same
        members as the last published, only adds its metric points."""
        from paretotune.tracking.mlflow.plots import front_pictures, front_table_csv

        retag = snapshot.retag
        rows = [r for r in snapshot.rows if retag is None or r.number in retag]
        for row in [] if superseded else rows:
            run_id = row.run_id
            if run_id and not self._pareto.is_logged(run_id, row.rank):
                self._client.log_batch(run_id, tags=self._pareto.tags(row.rank))
                self._pareto.logged(run_id, row.rank)
        parent = self._study.parent_run_id
        if parent is None:
            return  # the parent run could not be made: already one line in errors
        self._state_box(parent, snapshot.box)
        front = [row for row in snapshot.rows if row.rank == 0]
        metrics = {"pareto_size": float(len(front)), **snapshot.study_metrics}
        if snapshot.hypervolume is not None:
            metrics["hypervolume"] = snapshot.hypervolume
        self.chart(snapshot.step, metrics)
        members = [(row.number, row.values) for row in front]
        unchanged = members == self._published_front
        recent = not self._drawing.due()
        if superseded or (not snapshot.final and (unchanged or recent)):
            return  # the heavy artifacts: when the front changed, at most every few seconds
        self._published_front, started = members, time.perf_counter()
        self._client.log_text(parent, front_table_csv(snapshot), f"{FRONT_DIR}/pareto_front.csv")
        self._client.log_text(
            parent,
            json.dumps([row.as_dict() for row in front], indent=2, default=str),
            f"{FRONT_DIR}/pareto_front.json",
        )
        if snapshot.rows:
            page, png = front_pictures(snapshot)
            self._client.log_text(parent, page, f"{FRONT_DIR}/pareto_front.html")
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "pareto_front.png"
                path.write_bytes(png)
                self._client.log_artifact(parent, str(path), FRONT_DIR)
        self._drawing.spent(started)
        if snapshot.final:
            self._log_front_models(snapshot)

    def _state_box(self, parent: str, box: dict[str, list[float]] | None) -> None:
        """The box the hypervolume is a share of, as the parent run's params
        ``hypervolume_box.<metric>`` = ``ideal..reference`` (once; it never moves)."""
        if box is None or self._box_stated:
            return
        from mlflow.entities import Param

        params = [
            Param(f"{HV_BOX_PARAM}.{name}", f"{ideal:.6g}..{reference:.6g}")
            for name, (ideal, reference) in box.items()
        ]
        self._client.log_batch(parent, params=params)
        self._box_stated = True

    def chart(self, step: int, metrics: dict[str, float]) -> None:
        """Chart ``metrics`` on the parent run at ``step`` (finished trials)."""
        self.chart_points([(step, metrics)])

    def chart_points(self, points: list[tuple[int, dict[str, float]]]) -> None:
        """Chart each ``(step, metrics)`` on the parent run in one call, each metric only
        past the last step it was charted at: one point per step, steps in order."""
        from mlflow.entities import Metric

        parent = self._study.parent_run_id
        if parent is None:
            return
        now = int(time.time() * 1000)
        last = dict(self._charted)
        charted = []
        for step, metrics in points:
            for key, value in metrics.items():
                if step > last.get(key, self._study.charted_until) and math.isfinite(value):
                    charted.append(Metric(key, value, now, step))
                    last[key] = step
        if charted:
            self._client.log_batch(parent, metrics=charted)
            self._charted = last

    def _log_front_models(self, snapshot: FrontSnapshot) -> None:
        """Log every Pareto-optimal trial's raw model as an MLflow PyTorch model (once)."""
        recorded_here = set(self._study.run_ids.values())
        for row in snapshot.rows:
            run_id = row.run_id
            if row.rank != 0 or not run_id:
                continue
            if run_id in recorded_here and run_id not in self._study.raw_models:
                continue  # its trial sent no model (a user objective): nothing to convert
            logged = self._client.get_run(run_id).data.tags.get(MODEL_URI_TAG, "")
            if logged.startswith("runs:/"):  # a raw model, not yet an MLflow model
                with quiet_model_io():
                    self._guard.call(log_trial_model, self._client, run_id)
