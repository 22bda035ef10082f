"""MO-ASHA shared by Ray workers: the rung records live in one Ray actor, which the
workers ask at each rung and the driver drains to persist them in the Optuna storage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from paretotune.stopping._moasha import MoAsha, RungRecord


class RemoteDecider:
    """A picklable handle on the actor holding the study's `MoAsha`."""

    def __init__(self, actor: Any):
        self.actor = actor

    def decide(self, number: int, rung: int, values: Mapping[str, float]) -> bool:
        import ray

        return bool(ray.get(self.actor.decide.remote(number, rung, dict(values))))

    def take_unsaved(self) -> list[RungRecord]:
        import ray

        return list(ray.get(self.actor.take_unsaved.remote()))

    def restore(self, records: Iterable[RungRecord]) -> None:
        import ray

        ray.get(self.actor.restore.remote(list(records)))

    def close(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)


def remote_moasha(moasha: MoAsha) -> RemoteDecider:
    """A Ray actor of ``moasha``'s class with its settings (one decision at a time, in
    arrival order); the caller restores its records into it."""
    import ray

    actor_class: Any = ray.remote(type(moasha)).options(num_cpus=0, max_concurrency=1)
    return RemoteDecider(
        actor_class.remote(moasha.directions, moasha.rungs, moasha.reduction_factor)
    )
