"""The Ray executor: shards become tasks on actors, one actor per worker slot.

Each actor builds the check (or stage) once and loads its models once, then takes shard after
shard. A check's actors are started when the check is bound, before the driver opens its own copy,
so their start-up and model loads do not wait for the driver's (bench/scale.py measures both).
The driver hands out shard numbers, collects results in whatever order they finish, and stays
the only process that accepts parts and writes the ledger. A worker that dies mid-shard
(killed, out of memory, node lost) is restarted by Ray and the shard is run again on it
(`max_restarts`, `max_task_retries`); if Ray gives up, the driver starts a fresh actor and
resubmits the shard, up to `attempts` times. An attempt writes under a name of its own and a
part is only accepted by the driver's durable rename, so a retried shard is never counted twice.

With `keep_warm` seconds a check's or stage's actors outlive the run, loaded, for the next run of
the same check or stage in the same home (ray_pool.py): that run skips their start-up and model
loads. A cluster the command started itself stops with it, so this pays only on a cluster that
outlives commands.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.pipeline.executors.base import Executor, ExecutorError
from custody.pipeline.executors.ray_pool import NAMESPACE, make_room, pool_name, slot_name, warm_names
from custody.pipeline.executors.ray_workers import CheckWorker, DatasetHandle, StageWorker
from custody.pipeline.jobs import ScanJob, ScannedShard, StageJob, StagePart
from custody.pipeline.timeline import Timeline

RETRIES = 3
Report = Callable[[Any, float, float], None]


class RayExecutor(Executor):
    kind = "ray"
    distributed = True
    scans_here = False

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_worker: float = 1.0,
        retries: int = RETRIES,
        keep_warm: float = 0.0,
    ) -> None:
        self.address = address  # None: $RAY_ADDRESS, else a one-machine cluster started here
        self.workers = workers  # None: as many as the cluster's CPUs allow
        self.cpus_per_worker = cpus_per_worker
        self.retries = retries
        self.keep_warm = keep_warm  # seconds actors stay loaded after a run (0: they stop with it)
        self._started = False
        self._early: tuple[bytes, _Crew] | None = None  # actors `bind` started, for the check it pickled

    def describe(self) -> str:
        return f"ray ({self.address or 'local cluster'})"

    # -- the cluster --------------------------------------------------------------------------
    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency
            raise ExecutorError("--executor ray needs the ray package (pip install 'ray[default]')") from exc
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, namespace="custody", log_to_driver=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"cannot reach the Ray cluster at {self.address or 'auto'}: {exc}") from exc
            self._started = True
        return ray

    def slots(self, wanted: int) -> int:
        """How many actors to start: the configured count, else what the cluster's CPUs hold."""
        ray = self._ray()
        if self.workers:
            return max(1, min(self.workers, wanted))
        cpus = ray.cluster_resources().get("CPU", 1)
        return max(1, min(int(cpus // self.cpus_per_worker) or 1, wanted))

    def _processes(self) -> int:
        """Scanner processes per actor, for checks that run a pool (the pii check): one per whole CPU."""
        return max(1, int(self.cpus_per_worker))

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    # -- checks ---------------------------------------------------------------------------------
    def bind(self, check: Any, dataset: RegisteredDataset | None = None) -> bytes:
        """The unopened check, pickled (a worker opens its own copy). With the dataset, the actors
        start now and open the check (load their models) while the driver opens its own."""
        from ray import cloudpickle

        blueprint = cloudpickle.dumps(check)
        self.release()
        if dataset is not None:
            self._early = (blueprint, self._check_crew(blueprint, check, dataset, len(dataset.manifest.shards)))
            for actor in self._early[1].actors:
                actor.warm.remote()  # queued first on the actor: its first shard waits for it
        return blueprint

    def release(self) -> None:
        if self._early is not None:
            _, crew = self._early
            self._early = None
            crew.kill()

    def scan(self, job: ScanJob, todo: list[int]) -> Iterator[ScannedShard]:
        early, self._early = self._early, None
        if early is not None and early[0] is not job.blueprint:
            early[1].kill()  # bound for another check
            early = None
        if not todo:
            if early is not None:
                early[1].kill()
            return
        crew = early[1] if early is not None else self._check_crew(job.blueprint, job.check, job.dataset, len(todo))
        call = (job.config_digest, str(job.work.path.resolve()), *self._registration(crew, job.dataset))
        report = None if job.timeline is None else partial(_report, job.timeline)
        yield from self._dispatch(crew, "scan", todo, call, report)

    # -- stages ---------------------------------------------------------------------------------
    def stage_parts(self, job: StageJob) -> Iterator[StagePart]:
        handle = DatasetHandle.of(job.source)
        scratch = str(job.scratch.resolve())
        args = (handle, job.stage, job.options, job.config_digest, scratch, self.keep_warm)
        numbers = list(range(len(job.source.manifest.shards)))
        pool = None
        if self.keep_warm:  # a stage is built from its name, options and home: not from the dataset
            work = f"{job.stage}\n{job.config_digest}".encode()
            pool = pool_name("stage", work, handle.home_path, handle.database_url, None, self.cpus_per_worker)
        crew = self._crew(StageWorker, args, len(numbers), pool)
        call = (scratch, *self._registration(crew, job.source)) if crew.warm else ()
        finished: dict[int, StagePart] = {}
        following = 0
        for part in self._dispatch(crew, "process", numbers, call):
            finished[part.number] = part
            while following in finished:  # hand parts on in shard order, as soon as they can be
                yield finished.pop(following)
                following += 1

    def _registration(self, crew: _Crew, dataset: RegisteredDataset) -> tuple:
        """What a warm actor, which may hold another registration of the home, is told with each
        shard: the run's key, and the handle by reference (in a list: Ray fetches it only when
        the actor asks, on a change). Nothing for actors started for this run."""
        if not crew.warm:
            return ()
        handle = DatasetHandle.of(dataset)
        return handle.key, [self._ray().put(handle)]

    # -- the dispatch loop ----------------------------------------------------------------------
    def _check_crew(self, blueprint: bytes, check: Any, dataset: RegisteredDataset, wanted: int) -> _Crew:
        """A check's actors: fresh ones, or with `keep_warm` its warm pool's (found or started)."""
        handle = DatasetHandle.of(dataset)
        args = (blueprint, handle, self._processes(), self.keep_warm)
        if not self.keep_warm:
            return self._crew(CheckWorker, args, wanted)
        scope = None if check.open_reads == "home" else handle.digest
        pool = pool_name("check", blueprint, handle.home_path, handle.database_url, scope, self.cpus_per_worker)
        return self._crew(CheckWorker, args, wanted, pool)

    def _crew(self, worker: type, args: tuple, wanted: int, pool: str | None = None) -> _Crew:
        """Start the actors for one job: as many as `slots` allows for `wanted` shards. With a
        `pool`, its warm actors where they are alive, started detached where they are not.
        Idle warm actors of other pools are asked to leave while the cluster lacks the CPUs."""
        ray = self._ray()
        options = {"num_cpus": self.cpus_per_worker, "max_restarts": self.retries, "max_task_retries": self.retries}
        remote = ray.remote(worker).options(**options)
        crew = _Crew(lambda: remote.remote(*args))
        slots = self.slots(wanted)
        if pool is None:
            make_room(ray, slots * self.cpus_per_worker)
            for _ in range(slots):
                crew.start()
            return crew
        names = [slot_name(pool, slot) for slot in range(slots)]
        missing = len(set(names) - warm_names(ray))
        make_room(ray, missing * self.cpus_per_worker, keep=pool)
        for name in names:
            warm = ray.remote(worker).options(
                **options, name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
            )
            crew.adopt(warm.remote(*args))
        return crew

    def _dispatch(
        self, crew: _Crew, method: str, numbers: list[int], call: tuple = (), report: Report | None = None
    ) -> Iterator[Any]:
        """Keep every actor busy with one shard; yield results as they finish; retry lost shards.
        Each call is `method(number, *call)`. `report(result, requested, received)` is told when
        each result's actor was asked for and when the result reached this process (wall clock).
        The crew's actors are stopped when the loop ends, however it ends."""
        ray = self._ray()
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, WorkerCrashedError

        lost = (ActorDiedError, ActorUnavailableError, RayActorError, WorkerCrashedError)
        actors, requested, start = crew.actors, crew.requested, crew.start
        crew.kill(actors[len(numbers) :])  # more actors than shards left (a resumed run)
        del actors[len(numbers) :]
        pending = deque(numbers)
        running: dict[Any, tuple[Any, int]] = {}
        attempts: dict[int, int] = {}
        idle = list(actors)
        try:
            while pending or running:
                while idle and pending:
                    actor, number = idle.pop(), pending.popleft()
                    running[getattr(actor, method).remote(number, *call)] = (actor, number)
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    actor, number = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except lost as exc:
                        # Ray restarted and retried as often as allowed: a fresh actor takes the shard.
                        attempts[number] = attempts.get(number, 0) + 1
                        if attempts[number] > self.retries:
                            raise ExecutorError(f"shard {number} failed on {attempts[number]} workers: {exc}") from exc
                        ray.kill(actor, no_restart=True)
                        idle.append(start())
                        pending.appendleft(number)
                        continue
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None  # the check's own error, as it raised it
                    idle.append(actor)
                    if report is not None:
                        report(result, requested[actor], time.time())
                    yield result
        finally:
            crew.kill()


class _Crew:
    """The actors working on one job, and when each was asked for. Warm actors (adopted from a
    pool) are left running when the job ends; the ones started for the job are stopped."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.actors: list[Any] = []
        self.requested: dict[Any, float] = {}
        self.warm: set[Any] = set()

    def start(self) -> Any:
        actor = self.make()
        self.actors.append(actor)
        self.requested[actor] = time.time()
        return actor

    def adopt(self, actor: Any) -> None:
        self.actors.append(actor)
        self.requested[actor] = time.time()
        self.warm.add(actor)

    def kill(self, actors: list[Any] | None = None) -> None:
        """Stop `actors` (default: all of them) except warm ones, and forget them all."""
        import ray

        for actor in list(self.actors if actors is None else actors):
            if actor not in self.warm:
                ray.kill(actor, no_restart=True)
        if actors is None:
            self.actors.clear()


def _report(timeline: Timeline, scanned: ScannedShard, requested: float, received: float) -> None:
    """A worker's stamps into the driver's timeline: its start-up and model load (first shard
    only), the scan, and the hand-back (scan end to the driver holding the result)."""
    timing, worker = scanned.timing or {}, scanned.worker
    if "born" in timing:
        timeline.add("actor start", requested, timing["born"], worker=worker)
    if "load" in timing:
        timeline.add("model load", *timing["load"], worker=worker, cpu=timing.get("load_cpu"))
    if "scan" in timing:
        timeline.add("scan", *timing["scan"], worker=worker, shard=scanned.number, cpu=timing.get("cpu"))
        timeline.add("hand back", timing["scan"][1], received, worker=worker, shard=scanned.number)
