"""Bounded fuzzing of the server's ciphertext and key parsers over loopback.

1,000 mutated ciphertexts (bit flips, overwritten words, truncation, junk, insertions) go to
enrolment, where they are checked and parsed; each must be answered 201 or 400 within a second
while /health answers, and a sample of the accepted ones, run against a genuine probe, must
decrypt to a bit. Then mutated evaluation keys (header bytes, lengths, payload) are uploaded.
Seeded: a failure reproduces.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time

import httpx
import pytest

from privface.client import VerificationClient
from privface.local_server import LocalServer
from privface_core import auth
from tests.conftest import ASTRONAUT
from tests.service_helpers import audience, connected_owner, running_server, signed

POINT = "fast"
CIPHERTEXT_MUTATIONS = 1000
KEY_MUTATIONS = 40
SLOWEST_S = 1.0  # any single refused or accepted ciphertext


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LocalServer:
    yield from running_server(tmp_path_factory, "--points", POINT, "--limit", "max_uploads_per_address=100")


@pytest.fixture(scope="module")
def owner(server, encoder, tmp_path_factory) -> VerificationClient:
    yield from connected_owner(server, POINT, encoder, tmp_path_factory)


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(7)
    at = rng.randrange(len(out))
    if kind == 0:
        out[at] ^= 1 << rng.randrange(8)
    elif kind == 1:
        out[at] = rng.choice((0, 0xFF, rng.randrange(256)))
    elif kind == 2:
        at -= at % 4
        out[at : at + 4] = rng.choice((b"\xff\xff\xff\x7f", b"\0\0\0\0", rng.randbytes(4)))
    elif kind == 3:
        del out[at:]
    elif kind == 4:
        out += rng.randbytes(rng.choice((1, 8, 100, 4000)))
    elif kind == 5:
        out[at:at] = rng.randbytes(rng.choice((1, 8)))
    else:
        del out[at : at + rng.choice((1, 8))]
    return bytes(out)


def test_fuzz_ciphertexts(server, owner):
    rng = random.Random(19)
    genuine = owner.encrypt(ASTRONAUT).ciphertext
    accepted, statuses, slowest = [], {}, 0.0
    started, http = time.perf_counter(), httpx.Client()
    for i in range(CIPHERTEXT_MUTATIONS):
        mutant = mutate(genuine, rng)
        body = {"name": "fuzz", "ciphertext": base64.b64encode(mutant).decode(), "replace": True}
        start = time.perf_counter()
        response = signed(owner, "POST", "/v1/templates", body, timeout=10, http=http)
        slowest = max(slowest, time.perf_counter() - start)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code in (201, 400), (i, response.status_code, response.text)
        if response.status_code == 201 and mutant != genuine:
            accepted.append(mutant)
        if i % 100 == 0:
            assert httpx.get(server.url + "/health", timeout=1).status_code == 200
    http.close()
    print(f"fuzz: {CIPHERTEXT_MUTATIONS} ciphertexts in {time.perf_counter() - started:.1f} s: {statuses}")
    assert slowest < SLOWEST_S
    # Accepted mutants differ only in ciphertext bodies: the circuit still answers a bit under this key.
    assert accepted
    for mutant in accepted[:8]:
        answer = owner.send_pair(mutant, genuine)
        assert owner.decrypt(answer) in (True, False)  # NotABitError would fail here


def _upload(server: LocalServer, keys: bytes) -> httpx.Response:
    signer = auth.Signer.generate()
    digest = hashlib.sha256(keys).digest()
    headers = signer.headers("POST", "/v1/keys", f"point={POINT}", digest, None, audience=audience(server.url))
    headers["content-type"] = "application/octet-stream"
    return httpx.post(f"{server.url}/v1/keys?point={POINT}", content=keys, headers=headers, timeout=60)


def test_fuzz_evaluation_keys(server, owner):
    rng = random.Random(20)
    genuine = owner.fhe.evaluation_keys()
    header = 400  # the structural head of the serialization (segment table, pointers, circuit tag)
    statuses: dict[int, int] = {}
    for i in range(KEY_MUTATIONS):
        keys = bytearray(genuine)
        if i < 2:  # key material itself: passes the format check, concrete parses it
            at = rng.randrange(header, len(keys))
            keys[at] ^= 0xFF
        elif i % 4 == 0:
            keys = keys[: rng.randrange(len(keys))] if i % 8 else keys + rng.randbytes(8)
        else:
            at = rng.randrange(header)
            keys[at : at + 4] = rng.choice((b"\xff\xff\xff\x7f", rng.randbytes(4), b"\0\0\0\0"))
        start = time.perf_counter()
        response = _upload(server, bytes(keys))
        assert response.status_code in (201, 400, 413), (i, response.text)
        assert time.perf_counter() - start < 30
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    print(f"fuzz: {KEY_MUTATIONS} evaluation keys: {statuses}")
    assert httpx.get(server.url + "/health", timeout=1).status_code == 200
    assert not list((server.data_dir / "keys").glob("*.part"))
