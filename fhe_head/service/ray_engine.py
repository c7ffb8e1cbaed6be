"""FHE work on a Ray cluster: the service's `FHEEngine` when it is given a cluster address.

The API process joins the cluster as a Ray driver (it runs on the head node, or on a node of the cluster)
and keeps the store; clients talk to it alone. Each cluster node runs `FHEWorker` actors, one per
`cpus_per_worker` CPUs, every one holding the head circuits and a bounded cache of parsed evaluation keys.

- Keys: the engine puts a key set in Ray's object store once per key id and passes a *reference*; a worker
  fetches and parses it only on a cache miss, so keys travel to a node once and are parsed once per worker
  (again after an eviction, transparently).
- Work: runs go through the same fair scheduler as on one machine (`FairScheduler`: round robin per run between
  owners, their networks and addresses; an owner alone gets chunks of up to a batched circuit's K templates,
  never fewer chunks than workers). Its dispatcher threads, two per worker at start, each send one chunk to the
  least-loaded live worker and wait for it; a request waits in no thread of its own.
- Faults: a chunk whose worker died (process killed, node lost) is sent to another worker, up to
  `max_attempts` times; a request returns every bit or raises `ClusterError`, never a partial answer.
  Dead workers are replaced on nodes that are still alive. An unreachable cluster is an error at start,
  and an engine that loses every worker fails its requests: nothing falls back to local execution.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fhe_head.artifacts import POINTS, SERVER_FILE, load_meta, point_dir
from fhe_head.service.engine import Batch, FairScheduler, FHEEngine, gather
from privface_core.errors import ArtifactError, ServiceError

log = logging.getLogger(__name__)

QUEUED_PER_WORKER = 2  # one chunk running, one waiting: a worker never idles between chunks
START_TIMEOUT_S = 300.0  # a worker imports concrete and loads the circuits before it is ready


class ClusterError(ServiceError):
    """The Ray cluster cannot do the work: unreachable, no compatible worker, or a chunk failed everywhere."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


# ---- the worker (runs on cluster nodes) ---------------------------------------------------------------------------
class FHEWorker:
    """A Ray actor: the head circuits of this node's installation and a bounded cache of parsed keys."""

    def __init__(self, points: list[str], key_cache: int) -> None:
        from fhe_head.server import FHEServer

        self.servers = {point: FHEServer(point) for point in points}
        self.keys: OrderedDict = OrderedDict()
        self.key_cache = key_cache
        self.key_loads = 0

    def info(self) -> dict:
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "circuits": {point: server.meta["circuit_id"] for point, server in self.servers.items()},
            "batch_sizes": {point: server.batch_sizes for point, server in self.servers.items()},
        }

    def _keys(self, point: str, key_id: str, box: list):
        if key_id in self.keys:
            self.keys.move_to_end(key_id)
            return self.keys[key_id]
        keys = self.servers[point].load_evaluation_keys(ray.get(box[0]))
        self.key_loads += 1
        self.keys[key_id] = keys
        while len(self.keys) > self.key_cache:
            self.keys.popitem(last=False)
        return keys

    def run_many(
        self, point: str, key_id: str, box: list, templates: list[bytes], probe: bytes
    ) -> list[tuple[bytes, float]]:
        """`box` holds the keys' object reference unresolved, so they are fetched only on a cache miss."""
        server = self.servers[point]
        keys = self._keys(point, key_id, box)
        start = time.perf_counter()
        results = server.run_many(templates, probe, keys)
        share = (time.perf_counter() - start) / len(templates)
        return [(result, share) for result in results]

    def forget(self, key_id: str) -> None:
        self.keys.pop(key_id, None)

    def stats(self) -> dict:
        return {"pid": os.getpid(), "key_loads": self.key_loads, "cached_keys": list(self.keys)}


RemoteWorker = ray.remote(max_restarts=0, max_concurrency=1)(FHEWorker)


# ---- the engine (runs in the API process) ------------------------------------------------------------------------
@dataclass
class _Handle:
    actor: object
    node_id: str
    ready: object  # ObjectRef of info() until the worker answered
    started: float = field(default_factory=time.monotonic)
    info: dict | None = None
    load: int = 0


def _reachable(address: str, timeout: float) -> None:
    """A plain TCP check first: ray.init on a dead address retries for a long time before it says so."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ClusterError(f"Ray address {address!r}: expected HOST:PORT (the head's GCS port, 6379 by default)")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ClusterError(f"no Ray cluster reachable at {address}: {err}") from None


class RayEngine(FHEEngine):
    """`FHEEngine` over a Ray cluster (see the module docstring)."""

    def __init__(
        self,
        address: str,
        load_keys: Callable[[str], bytes],
        points: tuple[str, ...] = POINTS,
        cpus_per_worker: float = 1,
        key_cache: int = 4,
        max_attempts: int = 3,
        timeout_s: float = 3600.0,
        connect_timeout_s: float = 10.0,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.address = address
        self._load_keys = load_keys
        self._cpus = cpus_per_worker
        self._key_cache = key_cache
        self.max_attempts = max_attempts  # runs of one chunk before the request fails
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._circuits: dict[str, str] = {}
        for point in points:
            try:
                self._circuits[point] = load_meta(point_dir(point), (SERVER_FILE,))["circuit_id"]
            except ArtifactError as err:
                log.warning("point %s not served: %s", point, err)
        if not self._circuits:
            raise ArtifactError("no FHE head point could be loaded")
        _reachable(address, connect_timeout_s)
        try:
            ray.init(address=address, namespace="privface", log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ClusterError(f"could not join the Ray cluster at {address}: {err}") from None
        self._lock = threading.Lock()
        self._putting = threading.Lock()
        self._workers: dict[bytes, _Handle] = {}
        self._key_refs: OrderedDict[str, object] = OrderedDict()
        self._incompatible: set[str] = set()
        self.redispatched = 0  # chunks sent to another worker after theirs died (health, tests)
        self.scheduler: FairScheduler | None = None
        try:
            self._spawn()
            self._await_workers(start_timeout_s)
        except BaseException:
            self.close()  # no workers or connection left behind by an engine that never started
            raise
        # Dispatcher threads: each runs one chunk at a time on a worker, QUEUED_PER_WORKER per worker there is now.
        self.scheduler = FairScheduler(QUEUED_PER_WORKER * len(self._ready()))

    # ---- workers ----
    def _alive_nodes(self) -> dict[str, dict]:
        return {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}

    def _spawn(self) -> None:
        """Start workers where alive nodes have room (first start, and after deaths)."""
        nodes = self._alive_nodes()
        with self._lock:
            for node_id, node in nodes.items():
                if node_id in self._incompatible:
                    continue
                room = int(node.get("Resources", {}).get("CPU", 0) // self._cpus)
                have = sum(1 for h in self._workers.values() if h.node_id == node_id)
                for _ in range(room - have):
                    actor = RemoteWorker.options(
                        num_cpus=self._cpus,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                    ).remote(list(self._circuits), self._key_cache)
                    handle = _Handle(actor, node_id, actor.info.remote())
                    self._workers[actor._actor_id.binary()] = handle

    def _promote(self, wait_s: float = 0.0) -> None:
        """Workers whose info() came back become usable (if their circuits match ours)."""
        with self._lock:
            starting = {h.ready: h for h in self._workers.values() if h.info is None}
        if not starting:
            return
        done, _ = ray.wait(list(starting), num_returns=len(starting), timeout=wait_s)
        for ref in done:
            handle = starting[ref]
            try:
                info = ray.get(ref)
            except RayError as err:
                # e.g. the node lacks the artifacts: not retried there, or every request would start it again
                log.error("a Ray worker failed to start on node %s: %s", handle.node_id[:12], err)
                self._incompatible.add(handle.node_id)
                self._drop(handle)
                continue
            mismatch = {p: c for p, c in self._circuits.items() if info["circuits"].get(p) != c}
            if mismatch:
                log.error("node %s has other head circuits (%s): not used", handle.node_id[:12], info["circuits"])
                self._incompatible.add(handle.node_id)
                self._drop(handle)
                continue
            handle.info = info
        now = time.monotonic()
        for handle in starting.values():
            if handle.info is None and now - handle.started > self._start_timeout_s:
                self._drop(handle)  # e.g. pinned to a node that died before the worker came up

    def _await_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._promote(wait_s=min(1.0, max(0.0, deadline - time.monotonic())))
            with self._lock:
                ready = [h for h in self._workers.values() if h.info is not None]
                starting = [h for h in self._workers.values() if h.info is None]
            if (ready and not starting) or time.monotonic() >= deadline:
                break
            if not ready and not starting:
                break
        if not ready:
            why = "no node has a free CPU"
            if self._incompatible:
                why = "its nodes serve other head circuits or failed to start one (see the log)"
            raise ClusterError(f"no FHE worker started on the Ray cluster at {self.address}: {why}")

    def _drop(self, handle: _Handle) -> None:
        with self._lock:
            self._workers.pop(handle.actor._actor_id.binary(), None)
        with contextlib.suppress(RayError, ValueError):
            ray.kill(handle.actor, no_restart=True)

    def _ready(self) -> list[_Handle]:
        with self._lock:
            return [h for h in self._workers.values() if h.info is not None]

    # ---- keys ----
    def _keys_box(self, key_id: str) -> list:
        """A one-element list, so Ray passes the reference itself and the worker fetches only on a miss. One put
        at a time: the chunks of one request, dispatched at once, wait for the first instead of each putting."""
        with self._putting:
            with self._lock:
                ref = self._key_refs.get(key_id)
                if ref is not None:
                    self._key_refs.move_to_end(key_id)
                    return [ref]
            ref = ray.put(self._load_keys(key_id))
            with self._lock:
                self._key_refs[key_id] = ref
                while len(self._key_refs) > self._key_cache:
                    self._key_refs.popitem(last=False)
        return [ref]

    def forget(self, key_id: str) -> None:
        """Keys deleted or replaced: drop the object-store copy and every worker's parsed copy."""
        with self._lock:
            self._key_refs.pop(key_id, None)
            handles = [h for h in self._workers.values() if h.info is not None]
        for handle in handles:
            handle.actor.forget.remote(key_id)

    # ---- FHEEngine ----
    def submit(
        self, point: str, key_id: str, templates: list[bytes], probe: bytes, group: tuple[str, ...] = ()
    ) -> Future:
        """The runs queued in the fair scheduler (`FairScheduler`: per owner, per run, as on one machine), whose
        dispatcher threads each run one chunk at a time on the cluster: no thread waits per request."""
        if point not in self._circuits:
            raise ArtifactError(f"point {point!r} is not served by this cluster")
        workers = self._ready()
        k = max([1, *workers[0].info["batch_sizes"].get(point, [])]) if workers else 1
        size = max(1, min(k, -(-len(templates) // max(1, len(workers)))))  # never fewer chunks than workers
        run = partial(self._run_chunk, point, key_id, probe=probe)
        batch = Batch(size, run) if size > 1 else None
        outer: Future = Future()
        gather(outer, self.scheduler.submit_each(key_id, templates, lambda t: run([t])[0], batch, group), [])
        return outer

    def _least_loaded(self) -> _Handle:
        """A live worker with the fewest chunks on it (waiting for one to start if there is none)."""
        self._promote()
        if not self._ready():
            self._spawn()
            self._await_workers(self._start_timeout_s)
        with self._lock:
            handle = min((h for h in self._workers.values() if h.info is not None), key=lambda h: h.load)
            handle.load += 1
        return handle

    def _run_chunk(self, point: str, key_id: str, chunk: list[bytes], probe: bytes) -> list[tuple[bytes, float]]:
        """One chunk on a worker, again on another if that one dies, up to `max_attempts` workers in all."""
        for attempt in range(1, self.max_attempts + 1):
            handle = self._least_loaded()
            try:
                ref = handle.actor.run_many.remote(point, key_id, self._keys_box(key_id), chunk, probe)
                return ray.get(ref, timeout=self._timeout_s)
            except RayTaskError as err:  # the work itself failed (bad ciphertext, ...): not retried
                cause = err.cause if isinstance(getattr(err, "cause", None), Exception) else None
                if isinstance(cause, ValueError):
                    raise cause from None
                raise ClusterError(f"an FHE worker failed: {err}") from None
            except GetTimeoutError:
                raise ClusterError(f"the Ray cluster did not finish within {self._timeout_s:.0f} s") from None
            except RayError as err:  # the worker died: send the chunk elsewhere
                log.warning("Ray worker lost (%s) on attempt %d of a chunk", type(err).__name__, attempt)
                self._drop(handle)
                self._spawn()
                if attempt < self.max_attempts:
                    self.redispatched += 1
            finally:
                with self._lock:
                    handle.load -= 1
        raise ClusterError(f"a part of the request failed on {self.max_attempts} Ray workers; no answer given")

    def health(self) -> dict:
        self._promote()
        try:
            nodes = self._alive_nodes()
        except RayError as err:
            return {"engine": "ray", "address": self.address, "status": "unreachable", "error": str(err)}
        workers = self._ready()
        return {
            "engine": "ray",
            "address": self.address,
            "status": "ok" if workers else "no workers",
            "workers": len(workers),
            "queued": self.scheduler.queued(),
            "redispatched_chunks": self.redispatched,
            "nodes": [
                {
                    "node_id": node_id[:12],
                    "address": node.get("NodeManagerAddress"),
                    "cpus": node.get("Resources", {}).get("CPU", 0),
                    "workers": sum(1 for h in workers if h.node_id == node_id),
                    "compatible": node_id not in self._incompatible,
                }
                for node_id, node in nodes.items()
            ],
        }

    def worker_pids(self) -> dict[str, list[int]]:
        """Worker process ids by node id (tests and operators: which process to look at)."""
        out: dict[str, list[int]] = {}
        for handle in self._ready():
            out.setdefault(handle.node_id, []).append(handle.info["pid"])
        return out

    def worker_stats(self) -> list[dict]:
        """Each live worker's key cache: how often it fetched and parsed keys (once per key id, unless evicted)."""
        return ray.get([h.actor.stats.remote() for h in self._ready()], timeout=60)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()  # queued runs dropped; a chunk running on a worker finishes first
        with self._lock:
            handles = list(self._workers.values())
            self._workers.clear()
            self._key_refs.clear()
        for handle in handles:
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle.actor, no_restart=True)
        ray.shutdown()
