"""Run the verification server (`python -m fhe_head.service`) as a child process on loopback: the app's
embedded server, the tests and the load test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from privface_core.private_files import open_private_log, private_dir

REPO_ROOT = Path(__file__).resolve().parents[1]  # where `fhe_head` is importable from


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal a child started with `start_new_session=True` and everything it started; SIGKILL what
    is still there after `timeout` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`python -m fhe_head.service` over `data_dir` on 127.0.0.1; `start()` waits until it answers."""

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        points: tuple[str, ...] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args  # e.g. ("--limit", "max_keys=2")
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.points = points
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self, timeout: float = 180) -> LocalServer:
        command = [sys.executable, "-m", "fhe_head.service", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.points:
            command += ["--points", *self.points]
        private_dir(self.data_dir)
        self.log_path = self.data_dir / "server.log"  # a file, not a pipe: a full pipe would block the server
        with open_private_log(self.log_path) as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "warning", *self.extra_args],
                cwd=REPO_ROOT,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the verification server exited: {log_tail}")
            if self.alive():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the verification server did not answer within {timeout:.0f} s")

    def running(self) -> bool:
        """The process is up and answers /health."""
        return self.process is not None and self.process.poll() is None and self.alive()

    def ensure_running(self, timeout: float = 180) -> bool:
        """Start it again (same port, same folder: the keys it held are still there) if it died or
        stopped answering; True if it had to."""
        if self.running():
            return False
        self.stop()
        self.start(timeout)
        self.restarts += 1
        return True

    def alive(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process:
            stop_process_group(self.process, sig)
