"""Batched identification circuits: K comparisons per run under the 1:1 circuit's key set, real FHE.

The client is the ordinary 1:1 client (one key set per head): its evaluation keys run the batched circuit
and its decryption reads the batched outputs. Fast point, K small to keep this quick.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fhe_head.artifacts import BATCH_META, point_dir
from fhe_head.build import save_batched
from fhe_head.circuit import compile_batched
from fhe_head.client import FHEClient
from fhe_head.head import HeadParams
from fhe_head.server import FHEServer, batch_server_name

POINT = "fast"


@pytest.fixture(scope="module")
def owner():
    client = FHEClient(POINT)
    client.generate_keys()
    head = client.head
    embeddings = head.mean + np.random.default_rng(7).normal(0, 0.3, (5, head.mean.size))
    q = head.quantize(embeddings)
    expected = [bool(head.decide(q[i], q[2])) for i in range(5)]
    assert expected[2] and not all(expected)
    return client, [client.encrypt(e) for e in embeddings], client.encrypt(embeddings[2]), expected


def test_batched_circuit_runs_on_the_1to1_keys_and_decrypts_with_the_1to1_client(owner):
    client, templates, probe, expected = owner
    directory = point_dir(POINT)
    meta = json.loads((directory / "meta.json").read_text())
    params = HeadParams.load(directory / "head.json")
    circuit = compile_batched(params, (directory / "client.specs.json").read_bytes(), meta["p_error"], 4)
    assert circuit.statistics["p_error"] <= meta["p_error"] * (1 + 1e-9)  # per lookup, as the 1:1 circuit
    server = FHEServer(POINT, batched=False)
    server.add_batch(4, circuit.server)
    # 5 templates: one batched run of 4, then one 1:1 run for the one left over.
    results = server.run_many(templates, probe, client.evaluation_keys())
    assert [client.decrypt(r) for r in results] == expected


def test_batched_circuits_of_another_circuit_are_ignored(tmp_path):
    copy = tmp_path / POINT
    shutil.copytree(point_dir(POINT), copy)
    info = save_batched(copy, [2])
    assert info["sizes"] == [2] and (copy / batch_server_name(2)).is_file()
    assert FHEServer(copy).batch_sizes == [2]
    (copy / BATCH_META).write_text(json.dumps({**info, "circuit_id": "0" * 16}))
    assert FHEServer(copy).batch_sizes == []


def test_the_embedded_engine_batches_an_identification_with_the_shipped_circuit(owner):
    """LocalEngine runs K comparisons as one run of the shipped batched circuit while no other owner waits."""
    from fhe_head.service.engine import LocalEngine

    client, templates, probe, expected = owner
    server = FHEServer(POINT)
    if not server.batch_sizes:
        pytest.skip("no batched circuit shipped for this point (python -m fhe_head.build batch --point fast --k 16)")
    k = server.batch_sizes[0]
    many = (templates * (2 * k // len(templates) + 1))[: 2 * k + 1]  # 2 chunks of K + a first, warming run
    keys = client.evaluation_keys()
    engine = LocalEngine({POINT: server}, lambda _: keys, workers=2)
    try:
        results = engine.identify(POINT, "k", many, probe)
    finally:
        engine.close()
    assert [client.decrypt(r) for r, _ in results] == (expected * (2 * k // len(expected) + 1))[: 2 * k + 1]
    assert engine.scheduler.batched_runs >= 1
