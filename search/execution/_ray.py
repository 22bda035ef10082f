"""`RayExecutor`: trials on a pool of long-lived Ray actors."""

from __future__ import annotations

import sys
from typing import Any

from paretotune.execution._base import Executor
from paretotune.execution._ray_connection import ensure_ray
from paretotune.execution._worker import (
    EpochGate,
    TrialReport,
    TrialRunner,
    TrialTask,
    UserObjective,
)


class RayExecutor(Executor):
    """A pool of long-lived Ray actors, one trial at a time each.

    Long-lived actors keep torch imported and the dataset loaded between trials, which is
    what makes per-trial overhead milliseconds rather than seconds (see DESIGN.md).
    """

    def __init__(
        self,
        workers: int,
        context: Any = None,
        objective: UserObjective | None = None,
        *,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        address: str | None = None,
    ):
        import ray

        self._ray = ray
        ensure_ray(address, min_cpus=workers * cpus_per_worker)
        if objective is not None:
            _pickle_module_by_value(objective)
        actor_class: Any = ray.remote(TrialRunner).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_concurrency=1
        )
        threads = max(1, int(cpus_per_worker))
        self._new_actor = lambda: actor_class.remote(context, objective, num_threads=threads)
        self._actors: list[Any] = [self._new_actor() for _ in range(workers)]
        self.capacity = workers
        self.remote_workers = True
        self._gate: EpochGate | None = None
        self._idle = list(self._actors)
        self._in_flight: dict[Any, tuple[Any, TrialTask]] = {}

    def remeasure(self, models: dict[int, bytes]) -> dict[int, dict[str, float]]:
        if not models or not self._idle:
            return {}
        return dict(self._ray.get(self._idle[0].remeasure.remote(models)))

    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        self._gate = gate
        self._ray.get([actor.use_epoch_gate.remote(gate) for actor in self._actors])

    def submit(self, task: TrialTask) -> None:
        if not self._idle:
            raise RuntimeError("RayExecutor: no idle worker")
        actor = self._idle.pop()
        ref = actor.run.remote(task)
        self._in_flight[ref] = (actor, task)

    def wait(self, timeout: float) -> list[TrialReport]:
        if not self._in_flight:
            return []
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is already done, without waiting
            more, _ = self._ray.wait(
                list(self._in_flight), num_returns=len(self._in_flight), timeout=0
            )
            ready = list(dict.fromkeys(ready + more))
        reports = []
        for ref in ready:
            actor, task = self._in_flight.pop(ref)
            try:
                reports.append(self._ray.get(ref))
                self._idle.append(actor)
            except self._ray.exceptions.RayError as err:
                reports.append(TrialReport(number=task.number, error=f"worker died: {err}"))
                self._idle.append(self._replace(actor))
        return reports

    def _replace(self, dead: Any) -> Any:
        """A fresh actor in place of one that died, so the pool keeps its size."""
        fresh = self._new_actor()
        if self._gate is not None:
            fresh.use_epoch_gate.remote(self._gate)
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def shutdown(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._idle.clear()


def _pickle_module_by_value(objective: UserObjective) -> None:
    """Ship a user objective's own module with it, so workers need not import it by name."""
    module_name = getattr(objective, "__module__", None)
    if not module_name or module_name == "__main__":
        return
    root = module_name.split(".")[0]
    if root == "paretotune" or root in sys.stdlib_module_names:
        return
    module = sys.modules.get(module_name)
    if module is None or "site-packages" in (getattr(module, "__file__", "") or ""):
        return
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)
