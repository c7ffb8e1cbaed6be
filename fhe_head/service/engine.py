"""Where the service's FHE runs happen: the engine interface and the in-process thread-pool engine.

An engine gets evaluation keys through `load_keys(key_id) -> bytes` (the store's file, already
checked at upload) and keeps parsed keys in a bounded cache. `LocalEngine` schedules runs fairly:
one queue per owner (key id), served round robin one comparison at a time, so an owner with forty
runs queued delays another owner's single run by at most one run per busy worker, not by the whole
backlog; an identification's comparisons run as one batched run only while nobody else waits.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from fhe_head.server import FHEServer
from privface_core.errors import ServiceError

LoadKeys = Callable[[str], bytes]
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _malloc_trim() -> None:
    """glibc's malloc_trim(0): free memory of every arena back to the OS (a no-op elsewhere)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


Answers = list[tuple[bytes, float]]  # (encrypted bit, the server's FHE time) per template


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Complete `future` unless it is already (cancelled by its request, or failed by another run)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def gather(outer: Future, runs: list[Future], first: Answers, ended: Callable[[], None] = lambda: None) -> None:
    """Complete `outer` with `first` + the runs' answers, in order, or with the first error (a run cancelled
    cancels it); once `outer` is done or cancelled, the runs not started yet are dropped. `ended()` once every
    run has ended (cancelled, failed or run)."""
    if not runs:
        ended()
        _settle(outer, first)
        return
    left, lock = [len(runs)], threading.Lock()

    def one_ended(run: Future) -> None:
        if run.cancelled():
            outer.cancel()
        elif run.exception() is not None:
            _settle(outer, error=run.exception())
        if outer.done():
            for other in runs:
                other.cancel()  # no-op for runs finished or running; queued ones never start
        with lock:
            left[0] -= 1
            if left[0]:
                return
        ended()
        if not outer.done():
            _settle(outer, first + [r.result() for r in runs])

    outer.add_done_callback(lambda f: f.cancelled() and [r.cancel() for r in runs])
    for run in runs:
        run.add_done_callback(one_ended)


class FHEEngine(Protocol):
    """What the HTTP layer needs from an executor of FHE runs: `submit`, the request's runs started (nothing
    waits in a thread), and a blocking `identify` made of it. `cancel`: an event the caller sets when its
    client has gone away; an engine stops starting new runs of that request once it is set and raises
    `CancelledError` (for `submit`: cancelling the future does the same).
    """

    def submit(
        self, point: str, key_id: str, templates: list[bytes], probe: bytes, group: tuple[str, ...] = ()
    ) -> Future:
        """The request's runs, started: a future of their answers, in order (`Answers`). `group`: the groups of
        owners that share turns with this one, outermost first (`FairScheduler`)."""
        ...

    def verify(
        self, point: str, key_id: str, template: bytes, probe: bytes, cancel: threading.Event | None = None
    ) -> tuple[bytes, float]:
        """A 1:1 verification is an identification over one template (engines inherit this)."""
        return self.identify(point, key_id, [template], probe, cancel)[0]

    def identify(
        self, point: str, key_id: str, templates: list[bytes], probe: bytes, cancel: threading.Event | None = None
    ) -> Answers:
        future = self.submit(point, key_id, templates, probe)
        while True:
            try:
                return future.result(timeout=0.2)
            except FutureTimeout:
                if cancel is not None and cancel.is_set():
                    future.cancel()
                    raise CancelledError("the client went away") from None

    def forget(self, key_id: str) -> None: ...

    def health(self) -> dict: ...

    def close(self) -> None: ...


class KeysBusyError(ServiceError):
    """Every parsed key set this server may hold at once is in use by a request: retry shortly."""

    status = 503
    retry_after_s = 5


class KeyCache:
    """Parsed evaluation keys by key id, bounded in count and in memory: each parsed set is counted at its size in
    memory (`FHEServer.key_set_bytes`, several times its file), and a request holds its keys until its runs end,
    so those in use count too (a lease per `get`, ended by `release`), and those being parsed. At most
    `max_items` parsed sets and `max_bytes` of them exist at once; a miss beyond either is refused
    (KeysBusyError) unless unused sets can be evicted to make room.

    One parse per key id at a time: concurrent misses wait for the first reader instead of each
    reading and parsing the whole file again.
    """

    def __init__(self, load_keys: LoadKeys, max_bytes: int, max_items: int, parallel: int = 2) -> None:
        self._load = load_keys
        self._parsing = threading.Semaphore(parallel)  # each parse holds a whole key file (and more) in memory
        self._max_bytes, self._max_items = max_bytes, max_items
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # parsed keys and their size in memory
        self._users: dict[str, int] = {}  # leases: requests whose runs use these keys now
        self._loading: dict[str, tuple[threading.Event, int]] = {}
        self._lock = threading.Lock()
        self._freed = False  # a parsed set was dropped since memory was last handed back
        self.loads = 0  # parses done (for tests and health: a cache that thrashes shows here)

    def get(self, key_id: str, server: FHEServer, warm: Callable[[Any], Any] | None = None) -> tuple[Any, Any]:
        """(parsed keys, what `warm(keys)` returned if this call parsed them, else None), leased to the caller
        until it calls `release(key_id)`.

        The runtime prepares keys on their first run (several times a normal run); `warm` (a real
        run of the caller's) happens before the keys are shared, so no other run waits on it.
        """
        size = server.key_set_bytes
        while True:
            with self._lock:
                if key_id in self._items:
                    self._items.move_to_end(key_id)
                    self._users[key_id] = self._users.get(key_id, 0) + 1
                    return self._items[key_id][0], None
                pending = self._loading.get(key_id)
                if pending is None:
                    self._make_room(size)  # before parsing: the memory is freed first
                    self._loading[key_id] = (threading.Event(), size)
                    break
            pending[0].wait()
        self._return_freed()
        parsed = None
        try:
            with self._parsing:
                data = self._load(key_id)
                keys = server.load_evaluation_keys(data)
                del data
            parsed = keys, warm(keys) if warm is not None else None
            return parsed
        finally:
            with self._lock:
                done, _ = self._loading.pop(key_id)
                if parsed is not None:  # from being parsed to held (counted once), leased to this caller
                    self.loads += 1
                    self._items[key_id] = (parsed[0], size)
                    self._users[key_id] = self._users.get(key_id, 0) + 1
                    self._evict()
            done.set()
            self._return_freed()

    def cached(self, key_id: str) -> Any | None:
        """The parsed keys, leased (as `get`), if they are here now; None otherwise (nothing waits)."""
        with self._lock:
            if key_id not in self._items:
                return None
            self._items.move_to_end(key_id)
            self._users[key_id] = self._users.get(key_id, 0) + 1
            return self._items[key_id][0]

    def release(self, key_id: str) -> None:
        """End one lease of `get`: the keys may be evicted once no request uses them."""
        with self._lock:
            left = self._users.get(key_id, 0) - 1
            if left > 0:
                self._users[key_id] = left
            else:
                self._users.pop(key_id, None)
            self._evict()
        self._return_freed()

    def _unused(self) -> list[str]:
        return [k for k in self._items if k not in self._users]  # least recently used first

    def _held(self) -> tuple[int, int]:
        """Parsed sets held or being parsed: (how many, their bytes)."""
        sizes = [s for _, s in self._items.values()] + [s for _, s in self._loading.values()]
        return len(sizes), sum(sizes)

    def _make_room(self, size: int) -> None:
        """Room for one more parsed key set of `size` bytes (under the lock): evict unused ones, or refuse."""
        while True:
            count, held = self._held()
            if count < self._max_items and held + size <= self._max_bytes:
                return
            unused = self._unused()
            if not unused:
                wait = KeysBusyError.retry_after_s
                mb = self._max_bytes >> 20
                raise KeysBusyError(
                    f"parsed key sets in use by requests: limit {self._max_items} sets, {mb} MiB; retry in {wait} s"
                )
            self._discard(unused[0])

    def _evict(self) -> None:
        # Only keys no request uses; those in use stay (they were admitted within the bounds).
        for key_id in self._unused():
            count, held = self._held()
            if count <= self._max_items and held <= self._max_bytes:
                break
            self._discard(key_id)

    def drop(self, key_id: str) -> None:
        with self._lock:
            self._discard(key_id)
        self._return_freed()

    def _discard(self, key_id: str) -> None:
        """Drop a parsed set (under the lock): its memory goes back to the OS once the lock is released."""
        if self._items.pop(key_id, None) is not None:
            self._freed = True

    def _return_freed(self) -> None:
        """Hand the memory of dropped sets back to the OS. glibc keeps freed blocks in its per-thread arenas,
        where a set parsed on another thread may not reuse them: without this, RSS grew by 1.5 sets for one
        eviction and parse (tests/test_service_availability.py, the parsed key sets' bound)."""
        if self._freed:
            self._freed = False
            _malloc_trim()

    def stats(self) -> dict:
        with self._lock:
            count, held = self._held()
            in_use = len(self._users)
            return {
                "keys": len(self._items),
                "in_use": in_use,
                "loading": len(self._loading),
                "bytes": held,
                "max_items": self._max_items,
                "max_bytes": self._max_bytes,
                "loads": self.loads,
            }


@dataclass(eq=False)
class Batch:
    """Jobs of one request that may run together: `size` of them as one batched run, `run(items)` giving
    one result per item (FHEServer.run_many over a batched circuit)."""

    size: int
    run: Callable[[list[Any]], list[Any]]


@dataclass
class _Job:
    owner: str
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)
    batch: Batch | None = None
    item: Any = None


@dataclass(eq=False)
class _Ring:
    """Round robin over those below with jobs queued: rings of a group, or an owner's jobs (a deque)."""

    order: deque[str] = field(default_factory=deque)  # next to serve first
    below: dict[str, _Ring | deque[_Job]] = field(default_factory=dict)

    def jobs(self) -> Iterator[_Job]:
        for child in self.below.values():
            yield from child.jobs() if isinstance(child, _Ring) else child


class FairScheduler:
    """A worker pool with one FIFO per owner, served round robin, one run per turn. Owners are grouped (by the
    network, then the client address, that registered their keys: `group`), and turns go round robin at every
    level: the groups share turns, a group's members share its turn. So owners registered by the dozen from one
    address or network (cheap: one key set, many signing keys) get one turn between them, not one each.

    Jobs submitted together with a `Batch` (`submit_each`) run as one batched run of `Batch.size` only
    while no other owner has work queued and another worker stays free for single runs: a batch cannot
    be stopped once it runs, so an owner who arrives meanwhile waits for at most a single run or two,
    never for a batch. With one worker, nothing is batched.
    """

    def __init__(self, workers: int) -> None:
        self._root = _Ring()
        self._cv = threading.Condition()
        self._closed = False
        self._batches = 0  # batched runs in progress
        self.batched_runs = 0  # batched runs done (health, tests)
        self._threads = [
            threading.Thread(target=self._work, name=f"fhe-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, owner: str, fn: Callable[[], Any], group: tuple[str, ...] = ()) -> Future:
        """`fn()` as one of `owner`'s turns; `group`: the groups it belongs to, outermost first (e.g. network,
        address), whose turns it shares (default: none, a turn of its own)."""
        return self._enqueue((*group, owner), [_Job(owner, fn)])[0]

    def submit_each(
        self,
        owner: str,
        items: list[Any],
        run_one: Callable[[Any], Any],
        batch: Batch | None = None,
        group: tuple[str, ...] = (),
    ) -> list[Future]:
        """One job per item (`run_one(item)`), queued at once; `batch`: how several of them may run as one."""
        jobs = [_Job(owner, lambda item=item: run_one(item), batch=batch, item=item) for item in items]
        return self._enqueue((*group, owner), jobs)

    def _enqueue(self, path: tuple[str, ...], jobs: list[_Job]) -> list[Future]:
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if not jobs:
                return []  # whatever is in the rings has jobs queued
            ring = self._root
            for depth, name in enumerate(path):
                if name not in ring.below:
                    ring.below[name] = _Ring() if depth < len(path) - 1 else deque()
                    ring.order.append(name)
                ring = ring.below[name]  # type: ignore[assignment]
            ring.extend(jobs)  # type: ignore[attr-defined]
            self._cv.notify(len(jobs))
        return [job.future for job in jobs]

    def queued(self) -> int:
        with self._cv:
            return sum(not job.future.cancelled() for job in self._root.jobs())

    def batches_running(self) -> int:
        with self._cv:
            return self._batches

    def _next(self) -> list[_Job] | None:
        """The next turn: one job, or a batch's worth of one request's jobs (see the class)."""
        with self._cv:
            while not self._root.order and not self._closed:
                self._cv.wait()
            if not self._root.order:
                return None
            rings, below = [], self._root
            while isinstance(below, _Ring):  # down the front of every ring to an owner's jobs
                rings.append(below)
                below = below.below[below.order[0]]
            queue = below
            jobs = [queue.popleft()]
            batch = jobs[0].batch
            alone = all(len(ring.order) == 1 for ring in rings)  # nobody else has work queued
            if batch is not None and alone and self._batches < len(self._threads) - 1:
                same = [j for j in itertools.takewhile(lambda j: j.batch is batch, queue) if not j.future.cancelled()]
                if len(same) + 1 >= batch.size:
                    jobs += same[: batch.size - 1]
                    while queue and (queue[0] in jobs or queue[0].future.cancelled()):
                        queue.popleft()
                    self._batches += 1
            empty = not queue
            for ring in reversed(rings):  # the one served goes to the back of its ring: the others go first
                name = ring.order.popleft()
                if empty:
                    del ring.below[name]
                else:
                    ring.order.append(name)
                empty = not ring.order
            return jobs

    def _work(self) -> None:
        while (jobs := self._next()) is not None:
            self._serve(jobs)
            del jobs  # nor their results (a parse's keys among them) kept while this worker waits

    def _serve(self, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            self._run(jobs[0])
            return
        try:
            self._run_batch(jobs)
        finally:
            with self._cv:
                self._batches -= 1
                self.batched_runs += 1

    @staticmethod
    def _run(job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn())
        except BaseException as err:  # handed to the waiting request, which maps it to a response
            job.future.set_exception(err)

    @staticmethod
    def _run_batch(jobs: list[_Job]) -> None:
        running = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if len(running) < len(jobs):  # cancelled meanwhile: its request is given up, the whole batch with it
            for job in running:
                job.future.set_exception(CancelledError())
            return
        try:
            results = jobs[0].batch.run([job.item for job in jobs])
        except BaseException as err:
            for job in jobs:
                job.future.set_exception(err)
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for job in self._root.jobs():
                job.future.cancel()
            self._root = _Ring()
            self._cv.notify_all()
        for thread in self._threads:  # runs in progress finish: the FHE runtime must not be torn down under them
            thread.join(timeout=60)


class LocalEngine(FHEEngine):
    """FHE runs on this machine's cores, fair between owners, parsed keys cached (bounded)."""

    def __init__(
        self,
        servers: dict[str, FHEServer],
        load_keys: LoadKeys,
        workers: int = 1,
        key_cache_bytes: int = 4 << 30,
        key_cache_items: int = 16,
    ) -> None:
        self.servers = servers
        self.keys = KeyCache(load_keys, key_cache_bytes, key_cache_items)
        self.scheduler = FairScheduler(workers)
        self.workers = workers

    def _run(self, server: FHEServer, keys: Any, template: bytes, probe: bytes) -> tuple[bytes, float]:
        start = time.perf_counter()
        result = server.run(template, probe, keys)
        return result, time.perf_counter() - start

    def _run_chunk(self, server: FHEServer, keys: Any, chunk: list[bytes], probe: bytes) -> list[tuple[bytes, float]]:
        """K templates in one batched run (`FHEServer.run_many`); each answer gets its share of the time."""
        start = time.perf_counter()
        results = server.run_many(chunk, probe, keys)
        share = (time.perf_counter() - start) / len(chunk)
        return [(result, share) for result in results]

    def submit(
        self, point: str, key_id: str, templates: list[bytes], probe: bytes, group: tuple[str, ...] = ()
    ) -> Future:
        """The runs queued in the fair scheduler, one per template, as turns of `key_id` within `group`; the
        future completes from the workers' callbacks, so no thread waits for it. Cancelling it drops the runs
        not started yet."""
        server, outer = self.servers[point], Future()
        if not templates:
            outer.set_result([])
            return outer
        keys = self.keys.cached(key_id)
        if keys is not None:
            self._queue(outer, server, key_id, group, keys, [], templates, probe)
            return outer

        # A miss parses the keys and runs the first comparison (the runtime's slow first run) as one of the
        # owner's turns in the fair scheduler, not beside it; the other runs are queued once it is done.
        def parse_and_run_first() -> tuple[Any, Any]:
            return self.keys.get(key_id, server, warm=lambda k: self._run(server, k, templates[0], probe))

        def parsed(job: Future) -> None:
            if job.cancelled():
                outer.cancel()
            elif job.exception() is not None:
                _settle(outer, error=job.exception())
            elif outer.cancelled():  # given up while the parse ran: its lease ends with it
                self.keys.release(key_id)
            else:
                keys, warmed = job.result()  # warmed: None when another request had parsed them meanwhile
                first = [warmed] if warmed is not None else []
                self._queue(outer, server, key_id, group, keys, first, templates[len(first) :], probe)

        job = self.scheduler.submit(key_id, parse_and_run_first, group)
        # Held weakly: the job's result holds the parsed keys, which must go when the cache drops them, not
        # when the garbage collector gets round to a cycle of the two futures.
        weak_job = weakref.ref(job)
        outer.add_done_callback(lambda f: f.cancelled() and (j := weak_job()) is not None and j.cancel())
        job.add_done_callback(parsed)
        return outer

    def _queue(
        self,
        outer: Future,
        server: FHEServer,
        key_id: str,
        group: tuple[str, ...],
        keys: Any,
        first: Answers,
        rest: list[bytes],
        probe: bytes,
    ) -> None:
        """Queue `rest` under the leased `keys`; `outer` gets `first` + their answers, or the first error. The
        lease ends when the last of them ends (cancelled, failed or run)."""
        k = max(server.batch_sizes, default=1)
        batch = Batch(k, lambda chunk: self._run_chunk(server, keys, chunk, probe)) if k > 1 else None
        run_one = partial(self._run, server, keys, probe=probe)
        try:
            runs = self.scheduler.submit_each(key_id, rest, run_one, batch, group)
        except BaseException as err:
            self.keys.release(key_id)
            _settle(outer, error=err)
            return
        gather(outer, runs, first, ended=lambda: self.keys.release(key_id))

    def forget(self, key_id: str) -> None:
        self.keys.drop(key_id)

    def health(self) -> dict:
        stats = self.keys.stats()
        scheduler = self.scheduler
        runs = {"queued": scheduler.queued(), "batches_running": scheduler.batches_running()}
        sizes = {point: server.key_set_bytes for point, server in self.servers.items()}  # what the key bound counts
        return {"engine": "local", "workers": self.workers, **runs, "keys": stats, "key_set_bytes": sizes}

    def close(self) -> None:
        self.scheduler.close()
