"""`paretotune status [STUDY]`: what a study is doing. Its trials by state (those a stop
or a dead driver interrupted apart), its Pareto front's size and hypervolume, the driver
running it now (read from its driver lock, `paretotune.study._lock.lock_holder`) and, with
a job server, the Ray jobs that name it. It only reads: it creates no storage, lock or
MLflow store, so a storage file that does not exist is reported, not made.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paretotune.cli._jobs import Job, address_of, jobs_at
from paretotune.cli._options import Subparsers, add_json, add_storage

if TYPE_CHECKING:
    from paretotune.results.client import Client
    from paretotune.study._lock import Holder

HELP = (
    "a study's trials by state, front, driver and Ray jobs (every study's without "
    "STUDY); reads only"
)

STATES = ("COMPLETE", "FAIL", "INTERRUPTED", "PRUNED", "RUNNING", "WAITING")


@dataclass
class StudyStatus:
    """One study: its trials by state, its front, its driver and its jobs."""

    name: str
    storage: str
    stored: bool  # False: only a job names it; the study is not in the storage (yet)
    trials: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    interrupted: list[int] = field(default_factory=list)
    objectives: dict[str, str] = field(default_factory=dict)
    pareto_size: int = 0
    hypervolume: float = 0.0
    hypervolume_box: str = "-"  # the box the hypervolume is a share of
    stop_reason: str | None = None
    driver: Holder | None = None
    jobs: list[Job] | None = None  # None: no job server asked

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "storage": self.storage,
            "stored": self.stored,
            "trials": self.trials,
            "interrupted_trials": self.interrupted,
            "objectives": self.objectives,
            "pareto_size": self.pareto_size,
            "hypervolume": self.hypervolume if math.isfinite(self.hypervolume) else None,
            "hypervolume_box": self.hypervolume_box,
            "stop_reason": self.stop_reason,
            "running": self.driver is not None,
            "driver": self.driver.as_dict() if self.driver else None,
            "jobs": None if self.jobs is None else [j.as_dict() for j in self.jobs],
        }

    def lines(self) -> list[str]:
        if not self.stored:
            lines = [f"{self.name}: not in {self.storage} (yet)"]
        else:
            counts = self.trials
            failed = f"{counts['FAIL']} failed, {counts['INTERRUPTED']} interrupted"
            if self.interrupted:
                failed += f" ({', '.join(map(str, self.interrupted))})"
            lines = [
                f"{self.name} ({self.storage})",
                f"  trials: {counts['COMPLETE']} complete, {failed}, {counts['PRUNED']} pruned, "
                f"{counts['RUNNING']} running, {counts['WAITING']} waiting",
                f"  Pareto front: {self.pareto_size} trials, hypervolume {self.hypervolume:.3f}",
                f"  (the share of the box {self.hypervolume_box})",
            ]
            if self.driver is not None:
                lines.append(f"  driver: running ({self.driver.text})")
            else:
                last = f"; last run ended: {self.stop_reason}" if self.stop_reason else ""
                lines.append(f"  driver: not running{last}")
                if counts["RUNNING"]:
                    n = counts["RUNNING"]
                    left = "RUNNING trial was" if n == 1 else "RUNNING trials were"
                    lines.append(
                        f"  {n} {left} left by a driver that died: the next run closes "
                        "them as interrupted and runs them again"
                    )
        for job in self.jobs or ():
            lines.append(f"  {job.words()}")
        if self.jobs == [] and self.stored:
            lines.append("  no Ray job names this study")
        return lines


def collect_status(
    study: str | None, storage: str | None, address: str | None
) -> list[StudyStatus]:
    """The status of ``study`` (None: every study in the storage, and those only a job
    at ``address`` names yet).

    Raises:
        StudyNotFoundError: the storage file does not exist, or holds no such study (and
            no job names it).
        ClusterError: the job server at ``address`` cannot be reached.
    """
    from paretotune.study import resolve_storage_url
    from paretotune.study._storage import missing_storage

    url = resolve_storage_url(storage)
    jobs: list[Job] | None = None
    if address:
        jobs = jobs_at(address)[1]
    client = open_reader(url)
    if study is not None:
        names = [study]
        stored = [study] if client is not None and client.has_study(study) else []
    else:
        stored = client.study_names() if client is not None else []
        names = sorted(set(stored) | {j.study for j in jobs or () if j.study})
    statuses = []
    for name in names:
        of_study = None if jobs is None else [j for j in jobs if j.study == name]
        if name in stored:
            assert client is not None
            statuses.append(study_status(client, url, name, of_study))
        elif of_study:
            statuses.append(StudyStatus(name, url, stored=False, jobs=of_study))
        elif client is None:
            raise missing_storage(url)
        else:
            client.load_study(name)  # raises StudyNotFoundError, listing the studies there
    if not statuses and client is None:
        raise missing_storage(url)
    return statuses


def open_reader(url: str) -> Client | None:
    """A `Client` over the storage, or None where it holds no study store yet (its file
    does not exist: opening it would create it; see `study._storage.storage_exists`)."""
    from paretotune.results.client import Client
    from paretotune.study._storage import storage_exists

    return Client(storage=url) if storage_exists(url) else None


def study_status(client: Client, url: str, name: str, jobs: list[Job] | None) -> StudyStatus:
    """The status of the stored study ``name``, with ``jobs`` (None: no job server asked);
    the study is read once."""
    from paretotune.study._lock import lock_holder

    view = client.view(name)
    summary = view.summary
    trials = dict.fromkeys(STATES, 0) | {
        s: n for s, n in summary.trials_by_state.items() if s in STATES
    }
    return StudyStatus(
        name=name,
        storage=url,
        stored=True,
        trials=trials,
        interrupted=view.interrupted_numbers,
        objectives=summary.objectives,
        pareto_size=summary.pareto_size,
        hypervolume=summary.hypervolume,
        hypervolume_box=view.ranking.box_words(),
        stop_reason=summary.stop_reason,
        driver=lock_holder(url, name),
        jobs=jobs,
    )


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("status", help=HELP)
    parser.add_argument("study", nargs="?", help="the study (default: every study)")
    add_storage(parser)
    parser.add_argument(
        "--address",
        help="also show the Ray jobs of the study at this job server, e.g. http://head:8265 "
        "(default $RAY_API_SERVER_ADDRESS)",
    )
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    statuses = collect_status(args.study, args.storage, address_of(args.address))
    if args.json:
        shown = [s.as_dict() for s in statuses]
        print(json.dumps(shown[0] if args.study else shown, indent=2, default=str))
        return 0
    if not statuses:
        from paretotune.study import resolve_storage_url

        print(f"no studies in {resolve_storage_url(args.storage)}")
        return 0
    print("\n\n".join("\n".join(status.lines()) for status in statuses))
    return 0
