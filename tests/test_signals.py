"""Signals reach the process's own handlers after Concrete's library and runtime are loaded (they install
theirs): real processes, signalled at a known stage. Ctrl-C is "interrupted" and status 130, never a
traceback; a server shuts down or stops starting on SIGINT / SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fhe_head.artifacts import ARTIFACTS_ROOT
from privface.local_server import free_port
from privface.resources import EXAMPLES_DIR
from privface_core.exitcodes import INTERRUPTED

pytestmark = pytest.mark.skipif(not (ARTIFACTS_ROOT / "fast" / "meta.json").is_file(), reason="no shipped head")
ROOT = Path(__file__).resolve().parents[1]
OBAMA, OBAMA2 = EXAMPLES_DIR / "obama.jpg", EXAMPLES_DIR / "obama2.jpg"


def start(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def finish(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the process did not end within {timeout:.0f} s of the signal: {err[-1000:]}")
    return process.returncode, out, err


def test_ctrl_c_after_the_runtime_loaded_is_interrupted_130(tmp_path):
    """The CLI is signalled once it has loaded the encoder and the FHE client and waits on the server (a
    socket that accepts and never answers)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    connections = []

    def accept() -> None:
        connections.append(listener.accept()[0])
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    command = ["-m", "privface", "compare", str(OBAMA), str(OBAMA2), "--url", url, "--point", "fast"]
    process = start(*command, "--key-dir", str(tmp_path / "keys"), "--tta", "none")
    try:
        assert accepted.wait(240), "the CLI never reached the server"
        process.send_signal(signal.SIGINT)
        status, out, err = finish(process)
    finally:
        listener.close()
        for connection in connections:
            connection.close()
    assert (status, out) == (INTERRUPTED, "") and err.strip() == "interrupted", err[-2000:]


@pytest.mark.parametrize("module", ["privface", "client_encoder"])
def test_ctrl_c_while_a_cli_loads_is_no_traceback(module, tmp_path):
    key_dir = ("--key-dir", str(tmp_path)) if module == "privface" else ()
    process = start("-m", module, "--tta", "none", "compare", str(OBAMA), str(OBAMA2), *key_dir)
    time.sleep(0.5)  # Python is up; the command is loading its modules or the encoder
    process.send_signal(signal.SIGINT)
    status, _, err = finish(process)
    assert status == INTERRUPTED and "Traceback" not in err and err.strip().endswith("interrupted"), err[-2000:]


def _wait_for_line(process: subprocess.Popen, text: str, lines: list[str], timeout: float = 240) -> None:
    """Read the process's stderr into `lines` (a thread) until a line contains `text`."""
    seen = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if text in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(timeout), f"no {text!r} from the server: {''.join(lines)[-2000:]}"


def test_the_service_stops_on_ctrl_c_once_its_runtime_started_and_shuts_down_on_sigterm(tmp_path):
    import httpx

    command = [
        "-m",
        "fhe_head.service",
        "--points",
        "fast",
        "--data-dir",
        str(tmp_path / "data"),
        "--log-level",
        "info",
    ]
    loading = start(*command, "--port", str(free_port()))
    lines: list[str] = []
    _wait_for_line(loading, "fast head loaded", lines)  # its FHE runtime started; not serving yet
    loading.send_signal(signal.SIGINT)
    try:
        status = loading.wait(timeout=30)
    except subprocess.TimeoutExpired:
        loading.kill()
        pytest.fail(f"the server did not stop on SIGINT: {''.join(lines)[-2000:]}")
    time.sleep(0.2)  # the reader's last lines
    err = "".join(lines)
    assert "Traceback" not in err and status in (INTERRUPTED, 0), err[-2000:]
    assert (status == INTERRUPTED and "privface-server: interrupted" in err) or "Application shutdown complete" in err

    port = free_port()
    serving = start(*command, "--port", str(port))
    deadline = time.monotonic() + 240
    while serving.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    serving.send_signal(signal.SIGTERM)
    status, _, err = finish(serving)
    assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in err, err[-2000:]


def test_a_handler_set_in_the_main_thread_survives_the_runtime_started_in_another():
    """As in the app: a framework's handler (Streamlit's, for Ctrl-C) is set in the main thread, and the FHE
    roles are loaded by another thread (the page's), the runtime started there."""
    code = (
        "import signal, sys, threading, time\n"
        "signal.signal(signal.SIGINT, lambda *_: (print('handled', flush=True), sys.exit(0)))\n"
        "def load():\n"
        "    import fhe_head.client, fhe_head.server\n"
        "    fhe_head.server.start_runtime()\n"
        "thread = threading.Thread(target=load); thread.start(); thread.join()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = start("-c", code)
    assert process.stdout.readline().strip() == "ready", process.stderr.read()[-2000:]
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert (status, out.strip()) == (0, "handled"), err[-2000:]
