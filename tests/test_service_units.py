"""Unit tests of the service's security pieces, without a server: signatures, exact formats, limits,
fair scheduling. (The same properties are tested end to end in test_service_security.py.)"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import ExitStack

import pytest

from fhe_head.formats import ExactFormat
from fhe_head.service.engine import Batch, FairScheduler, LocalEngine
from fhe_head.service.state import Limits, UploadSlots
from privface_core import auth
from privface_core.errors import CiphertextError, QuotaError

BODY = b'{"probe": "AAAA"}'
SERVER_ID = "5" * 32  # the audience: the server these requests are signed for


def _signed(signer: auth.Signer, key_id: str = "a" * 32) -> dict[str, str]:
    return signer.headers("POST", "/v1/identify", "", hashlib.sha256(BODY).digest(), key_id, audience=SERVER_ID)


def _verify(public_key: bytes, headers: dict, nonces: auth.NonceCache, **changes) -> None:
    request = {"method": "POST", "path": "/v1/identify", "query": "", "identity": "a" * 32, "body": BODY}
    request["audience"] = SERVER_ID
    request.update(changes)
    auth.verify(
        public_key,
        headers,
        request["method"],
        request["path"],
        request["query"],
        request["identity"],
        hashlib.sha256(request["body"]).digest(),
        nonces,
        request["audience"],
    )


def test_signature_covers_every_field_and_is_used_once():
    signer, nonces = auth.Signer.generate(), auth.NonceCache()
    _verify(signer.public_key, _signed(signer), nonces)
    for change in [
        {"method": "DELETE"},
        {"path": "/v1/verify"},
        {"query": "point=fast"},
        {"identity": "b" * 32},
        {"body": BODY + b" "},
    ]:
        with pytest.raises(auth.AuthError, match="bad request signature"):
            _verify(signer.public_key, _signed(signer), nonces, **change)
    headers = _signed(signer)
    _verify(signer.public_key, headers, nonces)
    with pytest.raises(auth.AuthError, match="replayed"):
        _verify(signer.public_key, headers, nonces)
    with pytest.raises(auth.AuthError, match="bad request signature"):
        _verify(auth.Signer.generate().public_key, _signed(signer), nonces)  # someone else's key
    # Sent to another server: refused by what it says, and by the signature if the header is changed too.
    with pytest.raises(auth.AuthError, match="signed for another server"):
        _verify(signer.public_key, _signed(signer), nonces, audience="6" * 32)
    with pytest.raises(auth.AuthError, match="bad request signature"):
        relabelled = dict(_signed(signer), **{auth.HEADER_AUDIENCE: "6" * 32})
        _verify(signer.public_key, relabelled, nonces, audience="6" * 32)
    stale = dict(_signed(signer), **{auth.HEADER_TIME: str(int(time.time()) - 3600)})
    with pytest.raises(auth.AuthError, match="window"):
        _verify(signer.public_key, stale, nonces)
    for broken in ({auth.HEADER_NONCE: "x"}, {auth.HEADER_TIME: "soon"}, {auth.HEADER_SIGNATURE: "!!"}):
        with pytest.raises(auth.AuthError):
            _verify(signer.public_key, dict(_signed(signer), **broken), nonces)


def test_a_request_signed_before_a_restart_is_refused():
    """The nonce cache lives in memory: a request captured before a restart could otherwise be replayed."""
    signer = auth.Signer.generate()
    headers = _signed(signer)
    _verify(signer.public_key, headers, auth.NonceCache())  # used once, before the restart
    restarted = auth.NonceCache()
    restarted.since = int(headers[auth.HEADER_TIME]) + 1  # a server started a second after the signature
    with pytest.raises(auth.AuthError, match=r"before the server \(re\)started"):
        _verify(signer.public_key, headers, restarted)


def test_nonce_cache_refuses_rather_than_forgets():
    nonces = auth.NonceCache(window_s=10, max_items=3, max_per_owner=2)
    assert nonces.add("o", "a", 0) and nonces.add("o", "b", 0) and not nonces.add("o", "a", 1)
    assert nonces.add("p", "a", 0)  # owners' nonces are their own: another's cannot block this one's
    with pytest.raises(auth.ReplayCacheFull, match="per key"):
        nonces.add("o", "c", 1)  # one owner's share is full ...
    with pytest.raises(auth.ReplayCacheFull, match="limit 3"):
        nonces.add("q", "c", 1)  # ... and the whole cache
    assert nonces.add("o", "c", 100)  # once the others are past twice the window


def test_key_id_binds_keys_to_signing_key(tmp_path):
    keys = hashlib.sha256(b"evaluation keys").digest()
    first, second = auth.Signer.generate(), auth.Signer.generate()
    assert auth.key_id_for(first.public_key, keys) != auth.key_id_for(second.public_key, keys)
    saved = auth.Signer.load_or_create(tmp_path / "k" / "x.sign")
    assert oct((tmp_path / "k" / "x.sign").stat().st_mode & 0o777) == "0o600"
    assert auth.Signer.load_or_create(tmp_path / "k" / "x.sign").public_key == saved.public_key


def test_exact_format_learns_structure_and_refuses_the_rest():
    header, trailer = b"H" * 16, b"T" * 8
    samples = [header + bytes([i]) * 4 + bytes(range(i, i + 12)) + trailer for i in (1, 50, 99)]
    shape = ExactFormat.learn(samples)
    assert shape.length == 40 and [offset for offset, _ in shape.fixed] == [0, 32]
    shape.check(header + b"\xaa" * 16 + trailer, CiphertextError, "ciphertext")  # new body: accepted
    for bad in (samples[0] + b"\0", samples[0][:-1], b"X" + samples[0][1:], samples[0][:-1] + b"X"):
        with pytest.raises(CiphertextError):
            shape.check(bad, CiphertextError, "ciphertext")
    assert ExactFormat.from_json(shape.to_json()) == shape


def test_limits_parse_strictly():
    limits = Limits.parse(["max_keys=3", "expose_versions=true", "max_key_idle_s=1.5"])
    assert (limits.max_keys, limits.expose_versions, limits.max_key_idle_s) == (3, True, 1.5)
    for bad in (["nope=1"], ["max_keys=many"], ["expose_versions=yes"]):
        with pytest.raises(ValueError):
            Limits.parse(bad)


def test_round_robin_serves_a_newcomer_before_the_backlog():
    scheduler, order, gate = FairScheduler(workers=1), [], threading.Event()
    try:
        first = scheduler.submit("mallory", lambda: (gate.wait(5), order.append("m0")))
        backlog = [scheduler.submit("mallory", lambda i=i: order.append(f"m{i}")) for i in range(1, 20)]
        alice = scheduler.submit("alice", lambda: order.append("alice"))
        gate.set()
        alice.result(timeout=5)
        for future in [first, *backlog]:
            future.result(timeout=5)
        assert order.index("alice") <= 2  # after the run in progress and at most one more
    finally:
        scheduler.close()


def test_a_batch_runs_only_while_nobody_else_waits_and_leaves_a_worker_for_single_runs():
    """Issue 29, item 3: mallory's 12 comparisons may run 4 at a time, but a batch cannot be stopped once it
    runs: one worker stays free for single runs, so alice, arriving while a batch runs, waits for a single
    run of mallory's at most, not for the batch. With one worker nothing is batched."""
    gate, log = threading.Event(), []

    def run_batch(items: list[int]) -> list[int]:
        log.append(("batch", items))
        gate.wait(5)
        return [i * 10 for i in items]

    def run_one(item: int) -> int:
        log.append(("one", item))
        time.sleep(0.05)
        return item * 10

    scheduler = FairScheduler(workers=2)
    try:
        mallory = scheduler.submit_each("mallory", list(range(12)), run_one, Batch(4, run_batch))
        deadline = time.monotonic() + 5
        while scheduler.batches_running() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        assert scheduler.submit("alice", lambda: "alice").result(timeout=5) == "alice"
        assert time.monotonic() - start < 0.5 and not gate.is_set()  # served beside the batch, not after it
        assert scheduler.batches_running() == 1  # never both workers in batches
        gate.set()
        assert [f.result(timeout=5) for f in mallory] == [i * 10 for i in range(12)]
        assert [what for what, _ in log].count("batch") >= 1 and scheduler.batched_runs >= 1
    finally:
        gate.set()
        scheduler.close()
    alone = FairScheduler(workers=1)
    try:
        assert alone.submit_each("alice", [], run_one) == []  # nothing queued: the worker is not confused
        futures = alone.submit_each("mallory", list(range(8)), run_one, Batch(4, run_batch))
        assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(8)] and alone.batched_runs == 0
    finally:
        alone.close()


def test_owners_registered_from_one_network_share_a_turn():
    """Issue 29, items 1 and 3: six owners registered from three addresses of one network (one key set, six
    signing keys) each queue runs; alice, from another network, is served after the run in progress and at
    most one more, not after one run of each address or owner. Within the network, its addresses take turns,
    and within an address its owners."""
    scheduler, order, gate = FairScheduler(workers=1), [], threading.Event()
    address = {f"s{i}": f"address 10.0.0.{i % 3}" for i in range(6)}
    try:
        scheduler.submit("s0", lambda: (gate.wait(5), order.append("s0")), group=("network 10.0.0.0/24", address["s0"]))
        sybils = [
            scheduler.submit(name, lambda name=name: order.append(name), group=("network 10.0.0.0/24", address[name]))
            for name in list(address)[1:]
            for _ in range(4)
        ]
        alice = scheduler.submit("alice", lambda: order.append("alice"), group=("network 10.0.1.0/24", "address"))
        gate.set()
        alice.result(timeout=5)
        for future in sybils:
            future.result(timeout=5)
        assert order.index("alice") <= 2, order
        turns = [name for name in order if name != "alice"][1:6]
        assert {address[name] for name in turns[:3]} == set(address.values()), order  # addresses take turns
        assert sorted(turns) == ["s1", "s2", "s3", "s4", "s5"], order  # and an address's owners
    finally:
        gate.set()
        scheduler.close()


def test_upload_slots_are_shared_between_networks():
    """Issue 29, item 4: four slots, two per address and per signing key. Uploads from two addresses of one
    network hold all four; another from that network is refused, one from another network takes the oldest."""
    slots = UploadSlots(per_sender=2, total=4)
    with ExitStack() as held:
        trickles = [held.enter_context(slots.take(f"10.0.0.{i % 2}", f"key{i}")) for i in range(4)]
        for address, identity, refusal in [
            ("10.0.0.1", "key9", "per client address: limit 2"),
            ("10.0.0.9", "key9", "on this server: limit 4"),  # its own network holds the most: nothing to take
        ]:
            with pytest.raises(QuotaError, match=refusal), slots.take(address, identity):
                pass
        with slots.take("192.0.2.1", "alice"):
            assert [t.stopped for t in trickles] == [True, False, False, False]
    refused = pytest.raises(QuotaError, match="per signing key: limit 2")
    with slots.take("10.0.0.1", "key"), slots.take("10.0.0.2", "key"), refused, slots.take("10.0.0.3", "key"):
        pass


class _RecordingServer:
    """An FHEServer stand-in that records what ran, and on which thread."""

    batch_sizes: list[int] = []
    key_set_bytes = 1

    def __init__(self) -> None:
        self.log: list[str] = []
        self.threads: list[str] = []

    def _record(self, what: str) -> None:
        self.log.append(what)
        self.threads.append(threading.current_thread().name)

    def load_evaluation_keys(self, data: bytes) -> str:
        self._record("parse")
        return "parsed keys"

    def run(self, template: bytes, probe: bytes, keys: str) -> bytes:
        self._record("run")
        return b"bit"


def test_a_key_cache_miss_takes_its_turn_in_the_fair_scheduler():
    """Issue 29, item 1: a miss's parse and first run wait for a worker like any run (they ran in the
    request's own thread, beside the workers: 32 misses were 32 parses and runs at once)."""
    server = _RecordingServer()
    engine = LocalEngine({"p": server}, lambda key_id: b"serialized keys", workers=1)
    gate, results = threading.Event(), []
    try:
        engine.scheduler.submit("mallory", lambda: (gate.wait(5), server.log.append("mallory")))
        alice = threading.Thread(target=lambda: results.extend(engine.identify("p", "alice", [b"a", b"b"], b"x")))
        alice.start()
        time.sleep(0.3)
        assert server.log == []  # the only worker is mallory's: alice's keys are not parsed meanwhile
        gate.set()
        alice.join(5)
        assert server.log == ["mallory", "parse", "run", "run"]
        assert all(name.startswith("fhe-") for name in server.threads)
        assert len(results) == 2 and engine.keys.stats()["in_use"] == 0  # the lease ended with the runs
        engine.identify("p", "alice", [b"a"], b"x")
        assert server.log.count("parse") == 1  # a hit: no second parse
    finally:
        gate.set()
        engine.close()


def test_requests_waiting_for_runs_hold_no_thread():
    """Issue 29, item 1: a request waiting for its runs is a future the workers complete, not a thread
    blocked on it: 50 requests queued behind a busy worker add no thread; each is answered once the
    worker is free, and a cancelled one's runs never start."""
    server = _RecordingServer()
    engine = LocalEngine({"p": server}, lambda key_id: b"serialized keys", workers=1)
    gate = threading.Event()
    try:
        engine.scheduler.submit("mallory", lambda: gate.wait(5))
        before = threading.active_count()
        futures = [engine.submit("p", f"owner{i % 5}", [b"a", b"b"], b"x") for i in range(50)]
        assert threading.active_count() == before
        assert futures[0].cancel()
        gate.set()
        assert all(len(f.result(timeout=10)) == 2 for f in futures[1:])
        assert server.log.count("run") == 49 * 2 and engine.keys.stats()["in_use"] == 0
    finally:
        gate.set()
        engine.close()


def test_shipped_formats_accept_genuine_inputs_of_fresh_keys():
    """formats.json is current for the shipped circuit: a new key set's keys and ciphertexts pass
    (after recompiling a point: python -m fhe_head.build formats <point>)."""
    import numpy as np

    from fhe_head.client import FHEClient
    from fhe_head.formats import PointFormats

    client = FHEClient("fast")
    client.generate_keys()
    formats = PointFormats.load(client.directory, client.meta)
    formats.check_evaluation_keys(client.evaluation_keys())
    rng = np.random.default_rng(0)
    for _ in range(5):
        formats.check_ciphertext(client.encrypt(rng.normal(size=client.head.mean.shape).astype(np.float32)))


def test_formats_of_another_circuit_are_refused(tmp_path):
    import json

    from fhe_head.artifacts import FORMATS_FILE
    from fhe_head.formats import PointFormats
    from privface_core.errors import ArtifactError

    with pytest.raises(ArtifactError, match="missing"):
        PointFormats.load(tmp_path, {"circuit_id": "00"})
    (tmp_path / FORMATS_FILE).write_text(json.dumps({"circuit_id": "11"}))
    with pytest.raises(ArtifactError, match="another circuit"):
        PointFormats.load(tmp_path, {"circuit_id": "00"})


def test_start_up_sweeps_only_abandoned_partial_uploads(tmp_path):
    """Issue 29, item 4: two server processes may share a data directory, and one starting must not delete the
    upload another is receiving: a partial upload is swept only when no process holds its lock and it is a
    minute old (the lock is taken right after the file is made)."""
    import os
    import subprocess
    import sys

    from fhe_head.service.store import Store

    store = Store(tmp_path)
    with store.partial_key() as mine:  # held by this process, as by a live upload
        mine.write_bytes(b"keys arriving")
        held_elsewhere = store.key_dir / "upload-other.part"
        held_elsewhere.write_bytes(b"keys arriving in another process")
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); "
                "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
                str(held_elsewhere),
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout.readline() == b"held\n"
            abandoned, young = store.key_dir / "upload-dead.part", store.key_dir / "upload-young.part"
            for part in (abandoned, young):
                part.write_bytes(b"half an upload")
            old = time.time() - 120
            for part in (mine, held_elsewhere, abandoned):
                os.utime(part, (old, old))
            Store(tmp_path)  # another process starting on the same data directory
            assert sorted(p.name for p in store.key_dir.glob("*.part")) == sorted(
                [mine.name, held_elsewhere.name, young.name]
            )
        finally:
            holder.kill()
            holder.wait()
    assert not mine.exists()  # removed when its upload ended
