"""Executors place trials on workers. The driver submits tasks and collects reports.

Invariants of every executor:

- ``capacity`` tasks may be in flight at once; ``submit`` is only called below it.
- ``wait`` returns the reports of finished tasks (possibly none before ``timeout``);
  each submitted task is reported exactly once, a trial that raised as a report with
  ``error`` set. A worker that dies is reported as an error report for its task.
- Workers never touch the Optuna storage or MLflow.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
import sys
import threading
from concurrent.futures import Future
from typing import Any

from search._worker import TrialReport, TrialRunner, TrialTask, UserObjective


class Executor(abc.ABC):
    """Runs trials somewhere. See the module docstring for the invariants."""

    capacity: int

    @abc.abstractmethod
    def submit(self, task: TrialTask) -> None:
        """Start ``task`` on a free worker. Raises RuntimeError when none is free."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[TrialReport]:
        """Reports of finished tasks, waiting at most ``timeout`` seconds for the first."""

    def shutdown(self) -> None:
        """Release the workers (nothing to release by default)."""
        return None


class InProcessExecutor(Executor):
    """Runs each trial synchronously in the driver's process: for debugging and baselines."""

    def __init__(self, context: Any = None, objective: UserObjective | None = None):
        self.capacity = 1
        self._runner = TrialRunner(context, objective)
        self._done: list[TrialReport] = []

    def submit(self, task: TrialTask) -> None:
        if self._done:
            raise RuntimeError("InProcessExecutor: collect the previous report first")
        self._done.append(self._runner.run(task))

    def wait(self, timeout: float) -> list[TrialReport]:
        done, self._done = self._done, []
        return done


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
        self._idle = list(self._actors)
        self._in_flight: dict[Any, tuple[Any, TrialTask]] = {}

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
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def shutdown(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._idle.clear()


_background_start: Future[None] | None = None  # a `start_ray_in_background` not yet joined


def start_ray_in_background(address: str | None = None, *, min_cpus: float = 1.0) -> bool:
    """Begin `ensure_ray` on a helper thread and return at once; the next `ensure_ray`
    waits for it (and raises what it raised). Ray's start-up takes seconds, and so does
    the driver's own (checking the dataset imports torch and scikit-learn): this lets
    them overlap. True when a start was begun (Ray was not already up or starting)."""
    global _background_start
    import ray

    if _background_start is not None or ray.is_initialized():
        return False
    if threading.current_thread() is threading.main_thread():
        # ray.init on the main thread makes SIGTERM exit through ``finally`` blocks (so the
        # study closes in order); on a helper thread it cannot, so do it here.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.getLogger("ray._private.worker").addFilter(_NoSigtermWarning())
    started: Future[None] = Future()

    def start() -> None:
        try:
            _connect(address, min_cpus=min_cpus)
        except BaseException as err:
            started.set_exception(err)
            return
        started.set_result(None)
        # A local Ray's processes are bound to the thread that started them (Linux's
        # parent-death signal fires when that *thread* ends): keep it alive with the
        # process, which is also when those processes should go.
        threading.Event().wait()

    threading.Thread(target=start, name="ray-start", daemon=True).start()
    _background_start = started
    return True


def stop_ray() -> None:
    """Stop the Ray this process started or joined, in order (its agents outlive a
    raylet that is simply killed). A start still under way on the helper thread is
    waited for first, so none of its processes is left behind."""
    with contextlib.suppress(Exception):
        _join_background_start()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


class _NoSigtermWarning(logging.Filter):
    """Drops Ray's warning that a helper thread cannot set its SIGTERM handler (the
    caller of `start_ray_in_background` set one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def ensure_ray(
    address: str | None = None,
    *,
    min_cpus: float = 1.0,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
) -> None:
    """Connect to Ray: the given address, ``$RAY_ADDRESS``, or a local Ray started on demand.

    ``address="local"`` always starts a fresh private Ray, never a ``ray start`` cluster
    found on disk. A local Ray gets ``num_cpus`` logical CPUs, or the core count but at
    least ``min_cpus``, so the requested concurrency is honoured even beyond the core
    count (oversubscription is the user's explicit choice). A start begun by
    `start_ray_in_background` is waited for instead.
    """
    _join_background_start()
    _connect(address, min_cpus=min_cpus, num_cpus=num_cpus, log_to_driver=log_to_driver)


def _join_background_start() -> None:
    """Wait for a start begun by `start_ray_in_background`, once; raise what it raised."""
    global _background_start
    pending, _background_start = _background_start, None
    if pending is not None:
        pending.result()


def _connect(
    address: str | None,
    *,
    min_cpus: float,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        ray.init(address=address, log_to_driver=log_to_driver)
        return
    cpus = num_cpus or max(os.cpu_count() or 1, int(min_cpus + 0.999))
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=log_to_driver,
        configure_logging=False,
    )


def _pickle_module_by_value(objective: UserObjective) -> None:
    """Ship a user objective's own module with it, so workers need not import it by name."""
    module_name = getattr(objective, "__module__", None)
    if not module_name or module_name == "__main__":
        return
    root = module_name.split(".")[0]
    if root in ("search", "objectives", "spaces") or root in sys.stdlib_module_names:
        return
    module = sys.modules.get(module_name)
    if module is None or "site-packages" in (getattr(module, "__file__", "") or ""):
        return
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)
