"""`make run` (streamlit run streamlit_app.py from the checkout) listens on loopback only and asks nobody for
this machine's public address."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from privface.local_server import free_port, stop_process_group

ROOT = Path(__file__).resolve().parents[1]


def _other_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, only a route is chosen
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_app_listens_on_loopback_only_and_prints_one_url():
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    app = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        printed = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = app.stdout.readline()
            if not line:
                break
            printed.append(line.strip())
            if "URL:" in line:
                break
        time.sleep(0.5)  # any further URL lines
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        other = _other_address()
        if other:
            with socket.socket() as outside:
                outside.settimeout(2)
                assert outside.connect_ex((other, port)) != 0, f"the app answers on {other}"
    finally:
        stop_process_group(app, timeout=10)
        printed += [line.strip() for line in app.stdout.read().splitlines()]
    urls = [line for line in printed if "URL:" in line]
    assert urls == [f"URL: http://127.0.0.1:{port}"], printed
