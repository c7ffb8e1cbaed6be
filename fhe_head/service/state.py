"""What the routes share: the server's limits, its state (store, circuits, formats, engine, replay
cache) and the admission counters. The app (`app.py`) builds it; the routes (`routes.py`) read it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fhe_head.artifacts import POINTS
from fhe_head.formats import PointFormats
from fhe_head.server import FHEServer
from fhe_head.service.connections import client_network
from fhe_head.service.engine import FHEEngine, LocalEngine
from fhe_head.service.store import StorageFullError, Store
from privface_core.auth import WINDOW_S, NonceCache
from privface_core.errors import ArtifactError, QuotaError, ServiceError

log = logging.getLogger("fhe_head.service")


@dataclass(frozen=True)
class Limits:
    """Every bound the server enforces (`--limit name=value` on the command line)."""

    max_keys: int = 32  # evaluation key files stored (least recently used evicted beyond)
    max_key_store_bytes: int = 4 << 30
    max_key_idle_s: float = 30 * 86400  # key files unused this long are evicted
    max_owners: int = 10_000  # registered owners (key ids), evicted key files included
    max_templates_per_key: int = 256
    max_templates_total: int = 100_000
    max_identify_templates: int = 64  # templates one identification may run over
    max_inflight_per_owner: int = 2  # FHE requests of one owner at once
    max_inflight_total: int = 64
    max_uploads_at_once: int = 16  # key uploads being received at once (to disk; two are checked at a time)
    max_uploads_at_once_per_address: int = 4  # ... per client address, and per signing key (a quarter each)
    max_uploads_per_address: int = 20  # signed key uploads one client address (or signing key) may start per hour
    max_json_bytes: int = 64 * 1024  # a ciphertext is at most a few KB (base64)
    body_chunk_timeout_s: float = 30  # a client that sends nothing for this long is dropped
    body_min_rate_bytes_s: int = 32 * 1024  # after that much time, a body slower than this on average is dropped
    max_body_s: float = 900  # a whole request body (55 MB of keys: 62 KB/s on average) within this time
    header_timeout_s: float = 10  # a connection's request head must arrive within this time (else 408, closed)
    max_connections_per_address: int = 32  # open at once from one client address (IPv6: a /64); proxies exempt
    signature_window_s: float = WINDOW_S
    max_nonces_per_owner: int = 10_000  # signed requests of one key (or one uploader) remembered at once
    max_nonces: int = 1_000_000  # ... of all owners (each is kept twice the signature window)
    key_cache_bytes: int = 4 << 30  # parsed evaluation keys in memory at once, in use included (their parsed size)
    key_cache_items: int = 16  # ... and their number
    expose_versions: bool = False  # /version names library versions and circuit statistics

    @classmethod
    def parse(cls, pairs: list[str]) -> Limits:
        """`["max_keys=8", ...]` -> Limits (unknown names and bad values refused)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict = {}
        for pair in pairs:
            name, _, text = pair.partition("=")
            if name not in fields:
                raise ValueError(f"unknown limit {name!r}; known: {', '.join(fields)}")
            kind = fields[name].type
            if kind == "bool":
                if text not in ("true", "false"):
                    raise ValueError(f"{name}: expected true or false")
                values[name] = text == "true"
            else:
                values[name] = (int if kind == "int" else float)(text)
        return cls(**values)


class ClientGone(Exception):
    """The HTTP client disconnected while its request was being served."""


class UploadStoppedError(ServiceError):
    """A key upload stopped to give its slot to a client of another network: the slots are shared."""

    status = 503
    retry_after_s = 60


@dataclass(eq=False)
class UploadSlot:
    """A key upload being received: who sends it, and whether it was stopped to make room (`UploadSlots`)."""

    address: str
    network: str
    identity: str
    stopped: bool = False


class UploadSlots:
    """The key uploads received at once: at most `per_sender` per client address and per signing key, `total`
    in all. When all are taken, a newcomer's network takes one from the network that holds the most, if that
    one holds at least two more than the newcomer's (its oldest upload is stopped): uploads trickled from one
    network cannot hold every slot while others wait. Event-loop only (no lock)."""

    def __init__(self, per_sender: int, total: int) -> None:
        self.per_sender, self.total = per_sender, total
        self.held: list[UploadSlot] = []  # oldest first

    @contextmanager
    def take(self, address: str, identity: str) -> Iterator[UploadSlot]:
        slot = UploadSlot(address, client_network(address), identity)
        for what, same in (("client address", "address"), ("signing key", "identity")):
            if sum(getattr(s, same) == getattr(slot, same) for s in self.held) >= self.per_sender:
                raise QuotaError(f"key uploads at once per {what}: limit {self.per_sender}")
        if len(self.held) >= self.total:
            self._make_room(slot.network)
        self.held.append(slot)
        try:
            yield slot
        finally:
            if slot in self.held:
                self.held.remove(slot)

    def _make_room(self, network: str) -> None:
        counts = Counter(s.network for s in self.held)
        busiest, most = max(counts.items(), key=lambda item: item[1])
        if most < counts[network] + 2:
            raise QuotaError(f"key uploads at once on this server: limit {self.total}")
        oldest = next(s for s in self.held if s.network == busiest)
        oldest.stopped = True
        self.held.remove(oldest)


@contextmanager
def _held(counts: dict[str, int], key: str, what: str, per: str, per_key: int, total: int) -> Iterator[None]:
    """One more of `what` held by `key` while the block runs; 429 beyond `per_key` for it or `total` in all."""
    if counts.get(key, 0) >= per_key:
        raise QuotaError(f"{what} per {per}: limit {per_key}")
    if sum(counts.values()) >= total:
        raise QuotaError(f"{what} on this server: limit {total}")
    counts[key] = counts.get(key, 0) + 1
    try:
        yield
    finally:
        counts[key] -= 1
        if not counts[key]:
            del counts[key]


class SharedNonces:
    """The nonces of signed requests, kept in the data directory's database: every server process on it
    refuses a replay, a restart forgets none, and each owner has its own share. With a `fallback`, the
    nonces that cannot be stored (disk full) are kept in this process's memory instead: for requests
    that change nothing (a replay of one costs a run, and its answer is the owner's to read)."""

    def __init__(self, store: Store, limits: Limits, fallback: NonceCache | None = None) -> None:
        self.store, self.limits, self.fallback = store, limits, fallback
        self.window_s = limits.signature_window_s
        self.since = store.nonces_since  # nothing signed before the ledger existed is accepted

    def add(self, owner: str, nonce: str, now: float) -> bool:
        limits = self.limits
        try:
            return self.store.use_nonce(
                owner, nonce, now, 2 * self.window_s, limits.max_nonces_per_owner, limits.max_nonces
            )
        except StorageFullError:
            if self.fallback is None:
                raise
            return self.fallback.add(owner, nonce, now)


class ServiceState:
    """Everything the routes share: store, circuits and their formats, engine, limits, replay cache."""

    def __init__(
        self,
        data_dir: str | Path,
        points: tuple[str, ...] = POINTS,
        limits: Limits | None = None,
        workers: int | None = None,
        engine: FHEEngine | None = None,
        ray_address: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.store = Store(data_dir)
        self.servers: dict[str, FHEServer] = {}
        self.formats: dict[str, PointFormats] = {}
        for point in points:
            try:
                server = FHEServer(point)
                self.formats[point] = PointFormats.load(server.directory, server.meta)
                self.servers[point] = server
            except ArtifactError as err:
                log.warning("point %s not served: %s", point, err)
        if not self.servers:
            raise ArtifactError("no FHE head point could be loaded")
        if engine is None and ray_address:
            # Ray is an optional extra: imported only when a cluster is asked for.
            from fhe_head.service.ray_engine import RayEngine

            engine = RayEngine(ray_address, self.load_keys, tuple(self.servers))
        self.engine: FHEEngine = engine or LocalEngine(
            self.servers,
            self.load_keys,
            workers=workers or os.cpu_count() or 1,
            key_cache_bytes=self.limits.key_cache_bytes,
            key_cache_items=self.limits.key_cache_items,
        )
        self.nonces = SharedNonces(self.store, self.limits)  # for requests that change something
        window, per_owner = self.limits.signature_window_s, self.limits.max_nonces_per_owner
        self.read_nonces = SharedNonces(self.store, self.limits, NonceCache(window, max_per_owner=per_owner))
        self.inflight: dict[str, int] = {}
        self.uploads = UploadSlots(self.limits.max_uploads_at_once_per_address, self.limits.max_uploads_at_once)
        self.recent_uploads: dict[str, deque[float]] = {}  # signed uploads started, by address and signing key
        self.key_checks = asyncio.Semaphore(2)  # each check parses a whole key set in memory

    def load_keys(self, key_id: str) -> bytes:
        self.store.touch(key_id)
        return self.store.key_bytes(key_id)

    @contextmanager
    def admit(self, key_id: str) -> Iterator[None]:
        """Count an FHE request in flight (event-loop only: no lock needed); 429 beyond the limits."""
        limits = self.limits
        with _held(
            self.inflight,
            key_id,
            "FHE requests in flight",
            "key",
            limits.max_inflight_per_owner,
            limits.max_inflight_total,
        ):
            yield

    @contextmanager
    def receiving_upload(self, address: str, identity: str, now: float) -> Iterator[UploadSlot]:
        """A slot for a signed key upload from `address` under the signing key `identity` while it is received
        (`UploadSlots`); 429 beyond the limits (event-loop only). It counts toward the hourly quota of both from
        its start: one that fails or is abandoned too (a request without a valid signature never gets here)."""
        hourly = self.limits.max_uploads_per_address
        for who, what in ((address, "client address"), (f"key {identity}", "signing key")):
            recent = self.recent_uploads.setdefault(who, deque())
            while recent and recent[0] < now - 3600:
                recent.popleft()
            if len(recent) >= hourly:
                raise QuotaError(f"key uploads per {what} and hour: limit {hourly}")
        with self.uploads.take(address, identity) as slot:
            for who in (address, f"key {identity}"):
                self.recent_uploads[who].append(now)
            yield slot
        if len(self.recent_uploads) > 100_000:  # forget idle addresses and keys, oldest first
            for idle in [a for a, times in self.recent_uploads.items() if not times or times[-1] < now - 3600]:
                del self.recent_uploads[idle]

    def close(self) -> None:
        self.engine.close()
