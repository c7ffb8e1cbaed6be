"""The app's process-wide state: session keys deleted when a session ends or idles; the embedded
server restarted when it dies and its folder removed when the app stops."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT
from fhe_head.service.state import Limits
from privface.app_support import EmbeddedServer, KeyRegistry
from privface_core import auth
from tests.service_helpers import audience, trickle


class FakeClient:
    def __init__(self, key_id: str | None) -> None:
        self.key_id, self.forgotten, self.closed = key_id, False, False

    def forget_me(self) -> None:
        self.forgotten = True

    def close(self) -> None:
        self.closed = True


def test_idle_and_ended_sessions_are_forgotten_and_active_ones_kept() -> None:
    ended: set[str] = set()
    registry = KeyRegistry(idle_s=0.3, sweep_s=3600, alive=lambda sid: sid not in ended)
    idle = registry.client("idle", "fast", lambda: FakeClient("k1"))
    gone = registry.client("gone", "fast", lambda: FakeClient("k2"))
    time.sleep(0.4)
    active = registry.client("active", "fast", lambda: FakeClient("k3"))
    never_connected = registry.client("active", "accurate", lambda: FakeClient(None))
    assert registry.client("active", "fast", lambda: FakeClient("other")) is active  # one client per name
    ended.add("gone")
    gone_entry = registry.sessions["gone"]
    gone_entry.last_used = time.monotonic()  # not idle: forgotten only because the session ended
    assert registry.sweep() == 2
    assert idle.forgotten and idle.closed and gone.forgotten and gone.closed
    assert not active.forgotten and list(registry.sessions) == ["active"] and registry.deleted == 2
    registry.close()  # the app stops: every remaining session goes, a client without keys sends nothing
    assert active.forgotten and never_connected.closed and not never_connected.forgotten
    assert registry.sessions == {}


def test_the_sweeper_thread_runs_by_itself() -> None:
    registry = KeyRegistry(idle_s=0.0, sweep_s=0.1)
    client = registry.client("s", "fast", lambda: FakeClient("k"))
    deadline = time.monotonic() + 10
    while not client.forgotten and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.forgotten
    registry.close()


@pytest.mark.skipif(not (ARTIFACTS_ROOT / "fast" / "meta.json").is_file(), reason="no shipped head")
def test_embedded_server_keys_deleted_restarted_and_folder_removed() -> None:
    from privface.client import VerificationClient

    server = EmbeddedServer(points=("fast",))
    try:
        assert not server.ensure_running() and server.running()  # started in the background: waited for, not restarted
        keys = server.data_dir / "keys"
        registry = KeyRegistry(idle_s=3600, sweep_s=3600)
        client = registry.client("s", "fast", lambda: VerificationClient(server.url, "fast", key_dir=None))
        # Every session reaches the server from 127.0.0.1: uploads of other sessions in progress (held open
        # here, as many as a server allows one address) must not refuse this one's (lifted for the app).
        headers = auth.Signer.generate().headers(
            "POST", "/v1/keys", "point=fast", hashlib.sha256(b"held").digest(), None, audience=audience(server.url)
        )
        headers["content-type"] = "application/octet-stream"
        size = int(json.loads((ARTIFACTS_ROOT / "fast" / "formats.json").read_text())["evaluation_keys"]["length"])
        upload = (server.server, "/v1/keys?point=fast", headers, size)
        held = [threading.Thread(target=trickle, args=upload) for _ in range(Limits().max_uploads_at_once_per_address)]
        for thread in held:
            thread.start()
        time.sleep(0.5)
        client.connect()
        for thread in held:
            thread.join()
        assert len(list(keys.glob("*.bin"))) == 1
        os.kill(server.pid, signal.SIGKILL)
        server.server.process.wait(timeout=30)
        assert not server.running()
        assert server.ensure_running() and server.running() and server.restarts == 1
        assert not server.ensure_running()  # healthy: left alone
        # same port and folder: the keys uploaded before the crash are still there
        assert client._server_has(client.key_id)
        registry.idle_s = 0.0
        assert registry.sweep() == 1 and registry.deleted == 1
        assert list(keys.glob("*.bin")) == []
        registry.close()
    finally:
        server.close()
    assert not server.data_dir.exists() and not server.running()


def test_the_head_label_claims_real_fhe_only_for_the_shipped_head():
    """The head menu's accuracy: the real-FHE figure only when its run is of the shipped head's configuration."""
    import json

    import streamlit_app
    from fhe_head.artifacts import ARTIFACTS_ROOT, META_FILE
    from privface_core.resources import metrics_dir

    for point, name in (("accurate", "lfw_fhe.json"), ("fast", "lfw_fhe_fast.json")):
        shipped = json.loads((ARTIFACTS_ROOT / point / META_FILE).read_text())["config"]
        real = json.loads((metrics_dir() / name).read_text())["config"] == shipped
        label = streamlit_app.point_label(point)
        assert ("real FHE" in label) == real and ("integer model = FHE" in label) == (not real), label
