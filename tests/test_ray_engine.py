"""Identification on a real Ray cluster on loopback (a head and two worker nodes, started and stopped here),
against the same identification on this machine's cores, and the faults: a worker killed mid-run, no cluster.

Real FHE with the `fast` point; the expected bits come from the clear integer model of the head.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[cluster]'")

from fhe_head.client import FHEClient  # noqa: E402
from fhe_head.server import FHEServer  # noqa: E402
from fhe_head.service.engine import LocalEngine  # noqa: E402
from fhe_head.service.ray_engine import ClusterError, RayEngine  # noqa: E402
from training.bench.ray_local import LoopbackCluster, free_port  # noqa: E402

POINT = "fast"
N_TEMPLATES = 16
MATCH = 5


@pytest.fixture(scope="module")
def cluster():
    running = LoopbackCluster()
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A key owner with 16 encrypted templates; the probe is template MATCH's embedding again."""
    client = FHEClient(POINT)
    client.generate_keys()
    rng = np.random.default_rng(20)
    head = client.head
    embeddings = head.mean + rng.normal(0, 0.3, (N_TEMPLATES, head.mean.size))
    templates = [client.encrypt(e) for e in embeddings]
    probe = client.encrypt(embeddings[MATCH])
    q = head.quantize(embeddings)
    expected = [bool(head.decide(q[i], q[MATCH])) for i in range(N_TEMPLATES)]
    assert expected[MATCH] and sum(expected) < N_TEMPLATES // 2  # the test data must single someone out
    keys = client.evaluation_keys()
    return client, keys, templates, probe, expected


def _bits(client: FHEClient, results: list[tuple[bytes, float]]) -> list[bool]:
    return [client.decrypt(result) for result, _ in results]


def test_identify_on_a_loopback_cluster_through_killed_workers_and_a_lost_node(cluster, keyed):
    client, keys, templates, probe, expected = keyed
    loads: list[str] = []

    def load_keys(key_id: str) -> bytes:
        loads.append(key_id)
        return keys

    engine = RayEngine(cluster.address, load_keys, points=(POINT,), key_cache=1)
    try:
        health = engine.health()
        assert health["engine"] == "ray" and health["workers"] == 2
        assert sorted(n["cpus"] for n in health["nodes"]) == [0, 1, 1]

        assert _bits(client, engine.identify(POINT, "k1", templates, probe)) == expected
        assert _bits(client, [engine.verify(POINT, "k1", templates[MATCH], probe)]) == [True]
        # Keys crossed to the object store once, and each worker parsed them once.
        assert loads == ["k1"]
        assert sorted(s["key_loads"] for s in engine.worker_stats()) == [1, 1]

        # One worker process killed while the identification runs: every bit still comes back, correct.
        # (32 comparisons: the run outlasts the 1 s before the kill even on an idle machine.)
        twice, expected_twice = templates * 2, expected * 2
        victim = next(pid for pids in engine.worker_pids().values() for pid in pids)
        answer: dict = {}
        runner = threading.Thread(target=lambda: answer.update(r=engine.identify(POINT, "k1", twice, probe)))
        runner.start()
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=300)
        assert "r" in answer, "identification did not finish"
        assert len(answer["r"]) == 2 * N_TEMPLATES and _bits(client, answer["r"]) == expected_twice
        assert engine.redispatched >= 1  # the killed worker's chunk really was run elsewhere
        assert victim not in [pid for pids in engine.worker_pids().values() for pid in pids]

        # A cache of one key set: another owner's keys evict k1, which is then fetched again, transparently.
        before = sum(s["key_loads"] for s in engine.worker_stats())
        assert _bits(client, engine.identify(POINT, "k2", templates[:2], probe)) == expected[:2]
        assert _bits(client, engine.identify(POINT, "k1", templates[:2], probe)) == expected[:2]
        assert loads[-2:] == ["k2", "k1"] and sum(s["key_loads"] for s in engine.worker_stats()) > before

        # A whole worker node lost mid-run (its raylet and workers killed at once): the answer is still complete.
        before = engine.redispatched
        answer.clear()
        runner = threading.Thread(target=lambda: answer.update(r=engine.identify(POINT, "k1", twice, probe)))
        runner.start()
        time.sleep(1.0)
        os.killpg(cluster.nodes[-1].pid, signal.SIGKILL)
        runner.join(timeout=300)
        assert "r" in answer and _bits(client, answer["r"]) == expected_twice
        assert engine.redispatched > before

        # No second chance allowed: the request fails as a whole, with a clear error, never a partial answer.
        engine.max_attempts = 1
        victim = next(pid for pids in engine.worker_pids().values() for pid in pids)
        failure: dict = {}

        def doomed() -> None:
            try:
                failure["r"] = engine.identify(POINT, "k1", twice, probe)
            except ClusterError as err:
                failure["err"] = err

        runner = threading.Thread(target=doomed)
        runner.start()
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=300)
        assert "r" not in failure and "no answer given" in str(failure["err"]) and failure["err"].status == 503
    finally:
        engine.close()


def test_same_identification_without_a_cluster(keyed):
    client, keys, templates, probe, expected = keyed
    engine = LocalEngine({POINT: FHEServer(POINT)}, lambda _: keys, workers=2)
    try:
        assert _bits(client, engine.identify(POINT, "k1", templates, probe)) == expected
    finally:
        engine.close()


def test_unreachable_cluster_is_a_clear_error():
    start = time.monotonic()
    with pytest.raises(ClusterError, match="no Ray cluster reachable at 127.0.0.1"):
        RayEngine(f"127.0.0.1:{free_port()}", lambda _: b"", points=(POINT,))
    assert time.monotonic() - start < 30


def test_the_ray_engine_imports_nothing_that_decrypts():
    code = (
        "import sys, fhe_head.service.ray_engine; "
        "bad = [m for m in ('fhe_head.client', 'privface.client') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True)


def test_the_service_runs_identification_on_the_cluster(cluster, tmp_path):
    """`python -m fhe_head.service --ray-address`: the HTTP server sends its FHE work to the cluster."""
    import httpx

    from privface.client import VerificationClient
    from privface.local_server import LocalServer
    from tests.conftest import ASTRONAUT, CAMERAMAN

    server = LocalServer(tmp_path / "server", points=(POINT,), extra_args=("--ray-address", cluster.address))
    server.start()
    try:
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["engine"]["engine"] == "ray" and health["engine"]["workers"] >= 1
        with VerificationClient(server.url, POINT, tmp_path / "keys") as client:
            client.enrol(ASTRONAUT, "eileen")
            client.enrol(CAMERAMAN, "cameraman")
            assert dict(client.identify(ASTRONAUT)) == {"cameraman": False, "eileen": True}
    finally:
        server.stop()


def test_the_service_refuses_to_start_without_its_cluster(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "fhe_head.service", "--data-dir", str(tmp_path), "--ray-address", address]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert lines[-1].startswith("privface-server: no Ray cluster reachable at 127.0.0.1"), result.stderr
    assert "Traceback" not in result.stderr
