"""The verification service end to end: the real server on loopback, driven by the real client.

The `fast` point keeps these quick (11 bootstraps, 27 MB keys); the protocol is the same for
every point. Photos: the bundled astronaut (and its mirror image: the same person) and cameraman.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from privface.client import VerificationClient
from privface.local_server import LocalServer
from privface_core.errors import ServiceError
from tests.conftest import ASTRONAUT, CAMERAMAN
from tests.service_helpers import connected_owner, key_dir, running_server, signed

POINT = "fast"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LocalServer:
    yield from running_server(tmp_path_factory)


@pytest.fixture(scope="module")
def client(server, encoder, tmp_path_factory) -> VerificationClient:
    yield from connected_owner(server, POINT, encoder, tmp_path_factory)


@pytest.fixture(scope="module")
def mirrored_astronaut() -> bytes:
    out = io.BytesIO()
    ImageOps.mirror(Image.open(ASTRONAUT)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_health_version_and_docs(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    version = httpx.get(server.url + "/version").json()
    assert set(version["points"]) == {"accurate", "fast"}
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/keys", "/v1/verify", "/v1/identify", "/v1/templates"} <= set(paths)
    assert httpx.get(server.url + "/docs").status_code == 200


def test_secret_key_stays_local(client, server):
    key_files = sorted(Path(client.fhe.key_file).parent.iterdir())
    # .photos (how many photos each template came from) appears once something is enrolled.
    listed = [(f.suffix, oct(f.stat().st_mode & 0o777)) for f in key_files if f.suffix != ".photos"]
    assert listed == [(".keyid", "0o600"), (".keys", "0o600"), (".sign", "0o600")]
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in key_files)
    stored = list((server.data_dir / "keys").iterdir())
    # Files are private to the server's user and named so that listing them reveals no key id.
    assert len(stored) == 1 and client.key_id not in stored[0].name
    assert oct(stored[0].stat().st_mode & 0o777) == "0o600"
    assert oct((server.data_dir / "keys").stat().st_mode & 0o777) == "0o700"
    assert oct(server.data_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((server.data_dir / "privface.sqlite").stat().st_mode & 0o777) == "0o600"
    # What the server holds parses as evaluation keys only: it is what the client chose to send.
    assert stored[0].read_bytes() == client.fhe.evaluation_keys()


def test_compare_photos(client, mirrored_astronaut):
    same = client.compare(ASTRONAUT, mirrored_astronaut)
    different = client.compare(ASTRONAUT, CAMERAMAN)
    assert same.same is True and different.same is False
    assert 0 < same.fhe_s < same.total_s


def test_enrol_verify_identify(client, mirrored_astronaut):
    client.enrol(ASTRONAUT, "eileen", replace=True)
    client.enrol(CAMERAMAN, "camera man", replace=True)
    assert {"eileen", "camera man"} <= {t["name"] for t in client.templates()}
    assert client.verify(mirrored_astronaut, "eileen").same is True
    assert client.verify(mirrored_astronaut, "camera man").same is False
    matches = dict(client.identify(mirrored_astronaut))
    assert matches["eileen"] is True and matches["camera man"] is False
    with pytest.raises(ServiceError, match="409"):
        client.enrol(ASTRONAUT, "eileen")
    client.delete("camera man")
    assert "camera man" not in {t["name"] for t in client.templates()}
    with pytest.raises(ServiceError, match="404"):
        client.verify(ASTRONAUT, "camera man")


@pytest.mark.lfw
def test_lfw_pairs_decrypt_to_the_clear_decision(client, fold0_shipped):
    """Same-person pairs -> 1, different -> 0, on real LFW pairs (fold 0, the shipped heads' encoder)."""
    from training.pairs import PairData

    pairs, emb = fold0_shipped
    a, b, same, _ = PairData(emb).arrays(pairs)
    head = client.fhe.head
    clear = head.decide(head.quantize(a), head.quantize(b, client.level)).astype(bool)  # the level it asks for
    # Pairs the fast head gets right in clear, 3 of each kind: the service must not change any answer.
    picks = [i for i in np.flatnonzero(same & clear)[:3]] + [i for i in np.flatnonzero(~same & ~clear)[:3]]
    for i in picks:
        assert client.compare(a[i], b[i]).same == bool(same[i])


def test_bad_requests_are_4xx_and_server_stays_up(client, server):
    url = server.url
    good = base64.b64encode(client.encrypt(ASTRONAUT).ciphertext).decode()

    def status(body: dict) -> int:
        return signed(client, "POST", "/v1/verify", body).status_code

    unknown = client.signer.headers("POST", "/v1/verify", "", b"", "0" * 32, audience=client.server_id)
    assert httpx.post(url + "/v1/verify", json={}, headers=unknown).status_code == 404  # unknown key id
    assert status({"template": good[:100], "probe": good}) == 400  # truncated
    assert status({"template": "not base64!", "probe": good}) == 400
    assert status({"template": base64.b64encode(b"x" * 3000).decode(), "probe": good}) == 400
    assert status({"template": good}) == 422  # missing field
    assert status({"template": good, "probe": good, "key_id": "x"}) == 422  # unknown field
    assert signed(client, "POST", "/v1/verify", raw=b"{not json").status_code == 422
    assert httpx.post(url + "/v1/verify", content=b"{}", headers={"content-type": "text/plain"}).status_code == 401
    big = client.signer.headers("POST", "/v1/verify", "", b"", client.key_id, audience=client.server_id)
    big["content-type"] = "application/json"
    assert httpx.post(url + "/v1/verify", content=b"x" * (2 << 20), headers=big).status_code == 413
    # A ciphertext of the other point's circuit (foreign format) is refused, not run.
    with VerificationClient(url, "accurate", key_dir=None) as other:
        other.fhe.generate_keys()
        foreign = base64.b64encode(other.fhe.encrypt(np.zeros(other.head.mean.shape, np.float32))).decode()
    assert status({"template": foreign, "probe": good}) == 400
    # ... and so is one re-tagged with this circuit's id: it would poison every identification of the key.
    retagged = base64.b64decode(good)[:12] + base64.b64decode(foreign)[12:]
    body = {"name": "retagged", "ciphertext": base64.b64encode(retagged).decode()}
    assert signed(client, "POST", "/v1/templates", body).status_code == 400
    # Keys: no signature, wrong type, garbage, unknown point; no partial key file left behind.
    keys = url + "/v1/keys"
    octet = {"content-type": "application/octet-stream"}
    assert httpx.post(keys + "?point=fast", content=b"abc", headers=octet).status_code == 401
    pub = {"x-privface-public-key": client.signer.public_key_b64}
    assert httpx.post(keys + "?point=fast", content=b"abc", headers=pub).status_code == 415
    assert httpx.post(keys + "?point=fast", content=os.urandom(5000), headers=octet | pub).status_code == 400
    assert httpx.post(keys + "?point=nope", content=b"abc", headers=octet | pub).status_code == 404
    assert not list((server.data_dir / "keys").glob("*.part"))
    assert server.alive()


def test_client_disconnecting_mid_upload_leaves_nothing(server):
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(
            b"POST /v1/keys?point=fast HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"X-Privface-Public-Key: " + base64.b64encode(os.urandom(32)) + b"\r\n"
            b"Content-Length: 27148652\r\n\r\n" + os.urandom(1 << 20)
        )
    deadline = time.monotonic() + 20
    while list((server.data_dir / "keys").glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list((server.data_dir / "keys").glob("*.part"))
    assert server.alive()


def test_concurrent_clients_with_different_keys(server, encoder, tmp_path_factory, mirrored_astronaut):
    clients = [
        VerificationClient(server.url, POINT, key_dir(tmp_path_factory, f"k{i}"), encoder=encoder) for i in range(2)
    ]
    results: dict[int, list[bool]] = {}

    def work(i: int) -> None:
        c = clients[i]
        c.connect()
        results[i] = [c.compare(ASTRONAUT, mirrored_astronaut).same, c.compare(ASTRONAUT, CAMERAMAN).same]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert clients[0].key_id != clients[1].key_id
    assert results == {0: [True, False], 1: [True, False]}
    for c in clients:
        c.forget_me()
        c.close()


def test_restart_and_kill_mid_work_lose_nothing(tmp_path, tmp_path_factory, encoder, mirrored_astronaut):
    data_dir = tmp_path / "data"
    first = LocalServer(data_dir).start()
    keys = key_dir(tmp_path_factory, "restart")
    c = VerificationClient(first.url, POINT, keys, encoder=encoder)
    c.enrol(ASTRONAUT, "eileen")
    c.enrol(CAMERAMAN, "cameraman")
    probe = base64.b64encode(c.encrypt(mirrored_astronaut).ciphertext).decode()
    # Killed (SIGKILL) while an identification runs.

    def identify_until_killed() -> None:
        with contextlib.suppress(httpx.HTTPError):
            signed(c, "POST", "/v1/identify", {"probe": probe}, timeout=60)

    busy = threading.Thread(target=identify_until_killed, daemon=True)
    busy.start()
    time.sleep(0.3)
    first.stop(signal.SIGKILL)
    with sqlite3.connect(data_dir / "privface.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    second = LocalServer(data_dir, port=first.port).start()
    try:
        with VerificationClient(second.url, POINT, keys, encoder=encoder) as c:
            c.connect()
            assert "key_upload_s" not in c.timings  # the server still had our keys
            assert [t["name"] for t in c.templates()] == ["cameraman", "eileen"]
            assert dict(c.identify(mirrored_astronaut)) == {"cameraman": False, "eileen": True}
    finally:
        second.stop()
        c.close()


def test_server_side_imports_nothing_that_decrypts():
    code = (
        "import sys, fhe_head.service.app, fhe_head.service.routes, fhe_head.service.__main__; "
        "bad = [m for m in ('fhe_head.client', 'privface.client') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
