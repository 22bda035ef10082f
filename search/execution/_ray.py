"""`RayExecutor`: trials on a pool of long-lived Ray actors."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paretotune._timeline import mark
from paretotune.errors import ClusterError, SpecError
from paretotune.execution._base import Executor
from paretotune.execution._placement import PlacementWatch, WorkerAsk
from paretotune.execution._ray_connection import ensure_ray, started_here
from paretotune.execution._worker import (
    EpochGate,
    ServingProbe,
    TrialReport,
    TrialRunner,
    TrialTask,
    UserObjective,
)

PROBE_START_TIMEOUT_S = 120.0


class RayExecutor(Executor):
    """A pool of long-lived Ray actors, one trial at a time each.

    Long-lived actors keep torch imported and the dataset loaded between trials, which is
    what makes per-trial overhead milliseconds rather than seconds (an actor started per
    trial would import torch and load the dataset again each time).
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
        latency_on: Mapping[str, float] | None = None,
        trial_timeout_s: float | None = None,
    ):
        import ray

        self._ray = ray
        ensure_ray(address, min_cpus=workers * cpus_per_worker)
        if objective is not None:
            _pickle_module_by_value(objective)
        self._probe: Any = None
        meter = None
        if latency_on:
            self._probe, node = _start_probe(ray, dict(latency_on))
            meter = RemoteServingMeter(self._probe, node)
        actor_class: Any = ray.remote(RayTrialRunner).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_concurrency=1
        )
        threads = max(1, int(cpus_per_worker))
        self._new_actor = lambda: actor_class.remote(
            context, objective, num_threads=threads, serving_meter=meter
        )
        self._placing = PlacementWatch(
            ray,
            WorkerAsk(workers, cpus_per_worker, gpus_per_worker),
            cluster_may_grow=not started_here(),
        )
        self._actors: list[Any] = [self._new_actor() for _ in range(workers)]
        for actor in self._actors:
            self._placing.add(actor)
        self.remote_workers = True
        self._gate: EpochGate | None = None
        self._idle: list[Any] = []  # placed, no trial
        self._in_flight: dict[Any, tuple[Any, TrialTask]] = {}
        self._trial_timeout_s = trial_timeout_s
        self._deadlines: dict[Any, float] = {}  # ref -> monotonic time its trial must end by

    @property
    def capacity(self) -> int:
        """The placed workers: trials go to no other."""
        self._take_placed()
        return len(self._idle) + len(self._in_flight)

    @property
    def placing(self) -> int:
        """The actors Ray has not placed yet."""
        return len(self._placing)

    def _take_placed(self, timeout: float = 0.0) -> None:
        """Move the actors Ray has placed since into the idle pool (giving them the epoch
        gate), replace those that died first, and say or stop on a shortfall."""
        placed, died = self._placing.collect(timeout)
        if placed and not self._idle and not self._in_flight:
            mark("worker_placed")  # the first (or, after a loss, the first again)
        for actor in placed:
            if self._gate is not None:
                actor.use_epoch_gate.remote(self._gate)
            self._idle.append(actor)
        for actor in died:
            self._placing.add(self._replace(actor))
        self._placing.check(len(self._idle) + len(self._in_flight))

    def remeasure(self, models: dict[int, bytes]) -> dict[int, dict[str, float]]:
        if not models or not self._idle:
            return {}
        return dict(self._ray.get(self._idle[0].remeasure.remote(models)))

    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        """Given to the placed actors now, and to the others when they are placed."""
        self._gate = gate
        placed = [a for a in self._actors if a in self._idle or self._busy(a)]
        self._ray.get([actor.use_epoch_gate.remote(gate) for actor in placed])

    def _busy(self, actor: Any) -> bool:
        return any(busy is actor for busy, _ in self._in_flight.values())

    def submit(self, task: TrialTask) -> None:
        if not self._idle:
            raise RuntimeError("RayExecutor: no idle worker")
        actor = self._idle.pop()
        ref = actor.run.remote(task)
        self._in_flight[ref] = (actor, task)
        if self._trial_timeout_s is not None:
            self._deadlines[ref] = time.monotonic() + self._trial_timeout_s

    def wait(self, timeout: float) -> list[TrialReport]:
        if not self._in_flight:
            self._take_placed(timeout if self._placing else 0.0)
            return []
        if self._deadlines:  # wake up for the first trial to run out of time
            timeout = max(0.0, min(timeout, min(self._deadlines.values()) - time.monotonic()))
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is already done, without waiting
            more, _ = self._ray.wait(
                list(self._in_flight), num_returns=len(self._in_flight), timeout=0
            )
            ready = list(dict.fromkeys(ready + more))
        reports = []
        for ref in ready:
            actor, task = self._in_flight.pop(ref)
            self._deadlines.pop(ref, None)
            try:
                reports.append(self._ray.get(ref))
                self._idle.append(actor)
            except self._ray.exceptions.RayError as err:
                reports.append(
                    TrialReport(
                        number=task.number, error=f"worker died: {err}", transient=transient(err)
                    )
                )
                self._placing.add(self._replace(actor))
        return reports + self._stop_overdue()

    def _stop_overdue(self) -> list[TrialReport]:
        """Stop the workers of trials past ``budget.trial_timeout_s``; fail those trials."""
        now, reports = time.monotonic(), []
        for ref, deadline in list(self._deadlines.items()):
            if deadline > now:
                continue
            del self._deadlines[ref]
            actor, task = self._in_flight.pop(ref)
            self._ray.kill(actor, no_restart=True)
            reports.append(
                TrialReport(
                    number=task.number,
                    error=f"TrialTimeout: the trial ran past budget.trial_timeout_s = "
                    f"{self._trial_timeout_s:g} s; its worker was stopped and replaced",
                    worker_time_s=float(self._trial_timeout_s or 0.0),
                )
            )
            self._placing.add(self._replace(actor))
        return reports

    def _replace(self, dead: Any) -> Any:
        """A fresh actor in place of one that died, so the pool keeps its size (it gets
        trials once placed)."""
        fresh = self._new_actor()
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def shutdown(self) -> None:
        for actor in [*self._actors, *([self._probe] if self._probe is not None else [])]:
            self._ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._idle.clear()
        self._probe = None
        # No Ray object outlives this (a stop of Ray may follow on another thread):
        # pending results, the placement watch, the early-stopping gate, the factory.
        self._in_flight.clear()
        self._deadlines.clear()
        self._placing.forget()
        self._gate = None
        self._new_actor = _shut_down


def _shut_down() -> Any:
    raise RuntimeError("the executor is shut down: it starts no worker")


class RayTrialRunner(TrialRunner):
    """A `TrialRunner` that reports the Ray node it trains on (and the one its models are
    timed on, with ``measure.latency_on``)."""

    def placement(self) -> dict[str, str]:
        import ray

        where = {"node": ray.get_runtime_context().get_node_id()}
        if isinstance(self.serving_meter, RemoteServingMeter):
            where["latency_node"] = self.serving_meter.node
        return where


class _RayServingProbe(ServingProbe):
    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


@dataclass(frozen=True)
class RemoteServingMeter:
    """A serving meter (see `paretotune.objectives.evaluate`) that ships the model to the
    probe actor on the deployment target and waits for its figures."""

    probe: Any  # the Ray actor handle of a `ServingProbe`
    node: str  # the Ray node id the probe runs on

    def __call__(self, model: Any, rows: Any, repeats: int) -> dict[str, float]:
        import ray

        on_cpu = copy.deepcopy(model).cpu() if _on_accelerator(model) else model
        job = self.probe.measure.remote(on_cpu, rows.cpu().numpy(), repeats)
        return dict(ray.get(job))


def _on_accelerator(model: Any) -> bool:
    return any(t.device.type != "cpu" for t in model.state_dict().values() if hasattr(t, "device"))


def require_offered(resources: Mapping[str, float], address: str | None = None) -> None:
    """Check that an alive node of the Ray cluster offers ``resources`` and 1 CPU (what the
    ``measure.latency_on`` probe asks), connecting first if needed.

    Raises:
        SpecError: none does, so the probe could never be placed; the line lists what the
            nodes offer.
    """
    import ray

    ensure_ray(address)
    wanted = {"CPU": 1.0, **resources}
    offered = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in offered):
        shown = "; ".join(_custom(node) for node in offered) or "no node"
        raise SpecError(
            [
                f"measure.latency_on.resources: no node of the Ray cluster offers "
                f"{dict(resources)} and 1 CPU (its nodes offer: {shown})"
            ]
        )


def _start_probe(ray: Any, resources: dict[str, float]) -> tuple[Any, str]:
    """The probe actor on a node offering ``resources`` (and 1 CPU), and that node's id.

    Raises:
        SpecError: no alive node of the cluster offers them (see `require_offered`).
        ClusterError: the probe was not running within `PROBE_START_TIMEOUT_S`.
    """
    require_offered(resources)
    probe = (
        ray.remote(_RayServingProbe)
        .options(num_cpus=1, resources=resources, max_concurrency=1)
        .remote()
    )
    try:
        node = ray.get(probe.node.remote(), timeout=PROBE_START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        ray.kill(probe, no_restart=True)
        raise ClusterError(
            f"measure.latency_on: the latency probe asking {resources} was not placed "
            f"within {PROBE_START_TIMEOUT_S:.0f} s (are those resources all in use?)"
        ) from None
    return probe, node


def _custom(resources: Mapping[str, float]) -> str:
    """A node's resources as a user declares them: CPUs, GPUs and custom ones."""
    shown = {
        k: v
        for k, v in resources.items()
        if not k.startswith("node:") and k not in ("memory", "object_store_memory")
    }
    return ", ".join(f"{k}={v:g}" for k, v in sorted(shown.items()))


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


def transient(err: Exception) -> bool:
    """Whether a Ray failure is one a second attempt may not meet: the worker, its node
    or an object was lost (not the trial's own error, which Ray raises as a task error)."""
    import ray.exceptions as failures

    lost = (
        failures.ActorDiedError,
        failures.ActorUnavailableError,
        failures.WorkerCrashedError,
        failures.NodeDiedError,
        failures.ObjectLostError,
        failures.OwnerDiedError,
        failures.LocalRayletDiedError,
    )
    return isinstance(err, lost) and not isinstance(err, failures.RayTaskError)
