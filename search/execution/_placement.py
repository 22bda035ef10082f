"""Which of a pool's Ray actors the cluster has placed.

A trial goes only to an actor that has been placed: one asked of a cluster too small for
it waits in Ray's queue forever, and a trial handed to it would wait with it. Actors
placed later (a node joins, the autoscaler adds one) join the pool when they are. If
some are still waiting after `SHORTFALL_NOTICE_S`, the user is told once what was asked
and what the cluster offers; if none is placed after `NONE_PLACED_S`, or none ever can
be on a cluster this process started itself, the run stops with that one line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paretotune.errors import SpecError

SHORTFALL_NOTICE_S = 30.0
NONE_PLACED_S = 120.0  # a cluster that may grow (an autoscaler) is given this long


@dataclass(frozen=True)
class WorkerAsk:
    """What the study asks of Ray: ``workers`` actors of ``cpus`` and ``gpus`` each."""

    workers: int
    cpus: float
    gpus: float

    def __str__(self) -> str:
        each = f"{self.cpus:g} CPU" + (f" + {self.gpus:g} GPU" if self.gpus else "")
        return f"{self.workers} workers × {each}"

    def fits(self, node: Mapping[str, float]) -> bool:
        return node.get("CPU", 0.0) >= self.cpus and node.get("GPU", 0.0) >= self.gpus


def alive_nodes() -> list[dict[str, float]]:
    """The resources of each alive node of the connected cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def offer_text(nodes: list[dict[str, float]]) -> str:
    """``2 nodes: 6 CPUs, 0 GPUs in all; the largest has 4 CPUs, 0 GPUs``."""
    if not nodes:
        return "no alive node"
    cpus, gpus = sum(n.get("CPU", 0.0) for n in nodes), sum(n.get("GPU", 0.0) for n in nodes)
    big = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)))
    text = f"{len(nodes)} node{'s' * (len(nodes) > 1)}: {cpus:g} CPUs, {gpus:g} GPUs in all"
    if len(nodes) > 1:
        text += f"; the largest has {big.get('CPU', 0.0):g} CPUs, {big.get('GPU', 0.0):g} GPUs"
    return text


def require_placeable(ask: WorkerAsk) -> None:
    """Refuse, before anything is written, a study that no node of a local Ray this
    process started could host one worker of (a GPU asked of a laptop without one). A
    cluster joined by address may grow (an autoscaler), so it is given `NONE_PLACED_S`
    once the study runs instead.

    Raises:
        SpecError: one line with what was asked and what the cluster offers.
    """
    from paretotune.execution._ray_connection import ensure_ray, started_here

    ensure_ray(min_cpus=ask.workers * ask.cpus)
    if not started_here():
        return
    nodes = alive_nodes()
    if not any(ask.fits(node) for node in nodes):
        raise SpecError([_never(ask, nodes)])


def _never(ask: WorkerAsk, nodes: list[dict[str, float]], waited_s: float | None = None) -> str:
    why = (
        "no worker can ever be placed"
        if waited_s is None
        else (f"no worker was placed within {waited_s:.0f} s")
    )
    return f"resources: asked for {ask}; the cluster offers {offer_text(nodes)}, so {why}"


class PlacementWatch:
    """Actors asked of Ray and not yet placed; `collect` hands over those placed since."""

    def __init__(self, ray: Any, ask: WorkerAsk, *, cluster_may_grow: bool):
        self._ray = ray
        self.ask = ask
        self._cluster_may_grow = cluster_may_grow
        self._pending: dict[Any, Any] = {}  # the actor's first call's ref -> the actor
        self._since = time.monotonic()
        self._told = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, actor: Any) -> None:
        self._pending[actor.placement.remote()] = actor

    def forget(self) -> None:
        """Drop the actors still waited on (their executor has killed them)."""
        self._pending.clear()

    def collect(self, timeout: float = 0.0) -> tuple[list[Any], list[Any]]:
        """The actors placed since the last call (waiting up to ``timeout`` for one), and
        those that died before they ran anything."""
        if not self._pending:
            return [], []
        ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if ready:
            more, _ = self._ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
            ready = list(dict.fromkeys(ready + more))
        placed, died = [], []
        for ref in ready:
            actor = self._pending.pop(ref)
            try:
                self._ray.get(ref)
                placed.append(actor)
            except self._ray.exceptions.RayError:
                died.append(actor)
        return placed, died

    def check(self, placed: int) -> None:
        """Say once what is missing once `SHORTFALL_NOTICE_S` has passed; stop the run
        when no actor is placed and none ever will be (or none was in `NONE_PLACED_S`).

        Raises:
            SpecError: no worker could be placed.
        """
        if not self._pending:
            return
        waited = time.monotonic() - self._since
        if placed == 0:
            nodes = alive_nodes()
            if not self._cluster_may_grow and not any(self.ask.fits(n) for n in nodes):
                raise SpecError([_never(self.ask, nodes)])
            if waited >= NONE_PLACED_S:
                raise SpecError([_never(self.ask, nodes, waited)])
        if waited >= SHORTFALL_NOTICE_S and placed and not self._told:
            self._told = True
            print(
                f"note: resources: asked for {self.ask}; the cluster offers "
                f"{offer_text(alive_nodes())}: going on with {placed} "
                f"worker{'s' * (placed > 1)} (the other {len(self._pending)} start if the "
                "cluster grows)",
                file=sys.stderr,
                flush=True,
            )
