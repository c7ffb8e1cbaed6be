"""Helpers for the service tests: signed raw requests (as an attacker or the owner would send them)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privface.client import VerificationClient
from privface.local_server import LocalServer


def running_server(tmp_path_factory: pytest.TempPathFactory, *extra_args: str) -> Iterator[LocalServer]:
    """A module's real server on loopback (`yield from` it in a fixture); stopped afterwards."""
    running = LocalServer(tmp_path_factory.mktemp("server"), extra_args=extra_args).start()
    yield running
    running.stop()


def connected_owner(
    server: LocalServer, point: str, encoder, tmp_path_factory: pytest.TempPathFactory, name: str = "owner"
) -> Iterator[VerificationClient]:
    """A key owner whose evaluation keys the server holds (`yield from` it in a fixture)."""
    with VerificationClient(server.url, point, key_dir(tmp_path_factory, name), encoder=encoder) as client:
        client.connect()
        yield client


def audience(url: str) -> str:
    """The server id a request to the server at `url` must be signed for (from its /version)."""
    return httpx.get(url + "/version", timeout=30).json()["server_id"]


def key_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A key folder shared by every test module of the session: FHE keys are generated once per name."""
    path = tmp_path_factory.getbasetemp() / f"keys-{name}"
    path.mkdir(exist_ok=True)
    return path


def signed(
    client: VerificationClient,
    method: str,
    path: str,
    body: dict | None = None,
    *,
    raw: bytes | None = None,
    timeout: float = 120,
    http: httpx.Client | None = None,
) -> httpx.Response:
    """A request signed with `client`'s signing key (raw: exact body bytes, for malformed bodies).
    `http`: a connection to reuse (a fresh httpx client per request costs milliseconds)."""
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    key_id = client.connect()
    headers = client.signer.headers(
        method, path, "", hashlib.sha256(content).digest(), key_id, audience=client.server_id
    )
    if body is not None or raw is not None:
        headers["content-type"] = "application/json"
    send = http.request if http is not None else httpx.request
    return send(method, client.url + path, content=content, headers=headers, timeout=timeout)


def forge_uncompressed(client: VerificationClient, values) -> bytes:
    """The attack of issue 19: an *uncompressed* ciphertext with an all-zero mask, its bodies the raw
    encodings of `values`. concrete's runtime accepts it and, under any key, it "decrypts" to `values`.
    Built from genuine uncompressed encryptions (so the layout is concrete's own), then masks zeroed."""
    import numpy as np
    from concrete import fhe

    from fhe_head.artifacts import wrap

    fhe_client = client.fhe
    spec = json.loads((fhe_client.directory / "client.specs.json").read_text())
    dims, lwe_size, shape = len(values), None, None
    for item in spec["circuits"][0]["inputs"]:
        info = item["typeInfo"]["lweCiphertext"]
        lwe_size = info["encryption"]["lweDimension"] + 1
        shape = info["abstractShape"]["dimensions"]  # (V,) direct, (1, V) Concrete-ML: same memory layout
        item["rawInfo"]["shape"]["dimensions"] = [*shape, lwe_size]
        info["concreteShape"]["dimensions"] = [*shape, lwe_size]
        info["compression"] = "none"
        width = info["encoding"]["integer"]["width"]
    raw = fhe.Client(fhe.ClientSpecs.deserialize(json.dumps(spec).encode()))
    raw.keys.load(fhe_client.key_file)
    samples = [raw.encrypt(np.zeros(shape, np.int64), None)[0].serialize() for _ in range(2)]
    varying = np.flatnonzero(np.frombuffer(samples[0], np.uint8) != np.frombuffer(samples[1], np.uint8))
    start = int(varying.min()) // 8 * 8
    words = np.zeros((dims, lwe_size), np.uint64)  # zero mask
    words[:, -1] = np.asarray(values, np.int64).astype(np.uint64) << np.uint64(64 - width - 1)  # body = m * delta
    forged = bytearray(samples[0])
    forged[start : start + words.nbytes] = words.tobytes()
    return wrap(fhe_client.meta, bytes(forged))


def trickle(server: LocalServer, path: str, headers: dict, length: int = 60_000) -> tuple[int, float]:
    """A body of `length` bytes declared, sent a byte every 0.2 s: (the status answered, seconds until then)."""
    host, port = server.url.removeprefix("http://").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        lines = [f"POST {path} HTTP/1.1", "host: x", f"content-length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw.setblocking(False)
        answer = b""
        while b"\r\n" not in answer and time.perf_counter() - start < 30:
            try:
                raw.sendall(b"0")
                answer += raw.recv(4096)
            except BlockingIOError:
                time.sleep(0.2)
            except OSError:  # closed by the server
                break
    return int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/1.1") else 0, time.perf_counter() - start
