"""What the Streamlit app keeps for the whole process: its embedded server and every session's keys.

- `EmbeddedServer`: a loopback verification server in a temporary folder, started in the background;
  `ensure_running()` waits for it, and restarts it when it has died (same port, same folder, so the
  keys it held survive); `close()` stops it and removes the folder (also at interpreter exit), so no
  session leaves its keys on disk.
- `KeyRegistry`: one `VerificationClient` per session and point; a sweeper thread deletes, on the
  server, the keys of sessions that ended or sat idle, so a public app does not fill its disk.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privface_core.errors import ServiceError

APP_SCRIPT = Path(__file__).resolve().parents[1] / "streamlit_app.py"


def app_command(port: int, file_watcher: str = "none") -> list[str]:
    """`streamlit run` of the app on 127.0.0.1:`port`, headless, without usage statistics; the file
    watcher off by default (over a checkout with its virtual environment it overflows inotify)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", file_watcher,
    ]  # fmt: skip


class EmbeddedServer:
    """A verification server owned by this process, on 127.0.0.1, over a temporary folder."""

    def __init__(self, points: tuple[str, ...] | None = None, limits: tuple[str, ...] = ()) -> None:
        """`limits`: the server's `--limit NAME=VALUE` overrides (its key-store size, for one)."""
        from privface.local_server import LocalServer

        self.data_dir = Path(tempfile.mkdtemp(prefix="privface-server-"))
        # Every session of the app reaches its server from 127.0.0.1: the per-address limits would count
        # all of them as one client (and refuse the 21st session of an hour). The app is that server's only
        # client; the limits given override these.
        per_app = ("max_uploads_per_address=1000000", "max_uploads_at_once_per_address=16")
        per_app += ("max_connections_per_address=256",)  # the server's own connection limit
        extra = tuple(arg for limit in (*per_app, *limits) for arg in ("--limit", limit))
        self.server = LocalServer(self.data_dir, points=points, extra_args=extra)
        self.lock = threading.Lock()
        atexit.register(self.close)
        # Started in the background (loading the circuits takes a while): the page renders meanwhile,
        # and the first comparison waits for it in ensure_running().
        self._starting = threading.Thread(target=self._start, name="privface-server-start", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        with contextlib.suppress(Exception):  # a failed start is retried, and reported, by ensure_running()
            self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int | None:
        return self.server.process.pid if self.server.process else None

    def running(self) -> bool:
        return self.server.running()

    def ensure_running(self) -> bool:
        """Start it again if it died or stopped answering; True if it had to."""
        with self.lock:
            self._starting.join()
            return self.server.ensure_running()

    @property
    def restarts(self) -> int:
        return self.server.restarts

    def close(self) -> None:
        self._starting.join(timeout=300)  # a start under way would leave a server behind the removed folder
        with self.lock:
            with contextlib.suppress(Exception):
                self.server.stop()
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class SessionKeys:
    clients: dict[str, Any] = field(default_factory=dict)  # name (point@url) -> VerificationClient
    last_used: float = field(default_factory=time.monotonic)


class KeyRegistry:
    """Every session's clients; `sweep()` (run by a thread every `sweep_s`) forgets ended and idle ones.

    `alive(session_id)` says whether a session is still open (the app asks Streamlit's runtime).
    """

    def __init__(self, idle_s: float, sweep_s: float, alive: Callable[[str], bool] = lambda _: True) -> None:
        self.idle_s = idle_s
        self.alive = alive
        self.sessions: dict[str, SessionKeys] = {}
        self.lock = threading.Lock()
        self.deleted = 0  # key sets deleted on the server
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(sweep_s,), name="privface-key-sweeper", daemon=True).start()
        atexit.register(self.close)

    def client(self, session_id: str, name: str, factory: Callable[[], Any]) -> Any:
        """This session's client called `name` (made by `factory` on first use); marks the session as used."""
        with self.lock:
            entry = self.sessions.setdefault(session_id, SessionKeys())
            entry.last_used = time.monotonic()
            if name not in entry.clients:
                entry.clients[name] = factory()
            return entry.clients[name]

    def sweep(self) -> int:
        """Delete the server-side keys of sessions that ended or were idle too long; returns how many sessions."""
        now = time.monotonic()
        with self.lock:
            done = [sid for sid, e in self.sessions.items() if now - e.last_used > self.idle_s or not self.alive(sid)]
            entries = [self.sessions.pop(sid) for sid in done]
        for entry in entries:
            self._forget(entry)
        return len(entries)

    def _forget(self, entry: SessionKeys) -> None:
        for client in entry.clients.values():
            if client.key_id:
                with contextlib.suppress(ServiceError):
                    client.forget_me()  # DELETE /v1/keys/<id>: the keys and any templates go
                    self.deleted += 1
            client.close()

    def _run(self, sweep_s: float) -> None:
        while not self._stop.wait(sweep_s):
            with contextlib.suppress(Exception):  # one failed sweep must not end the thread
                self.sweep()

    def close(self) -> None:
        """Forget every session (at exit: a remote server keeps nothing of this app's users)."""
        self._stop.set()
        with self.lock:
            entries = list(self.sessions.values())
            self.sessions.clear()
        for entry in entries:
            with contextlib.suppress(Exception):
                self._forget(entry)
