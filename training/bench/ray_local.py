"""A Ray cluster on this machine's loopback: a head and worker nodes started with Ray's own CLI (`ray start`),
each in a process group of its own, stopped by killing exactly those groups. For tests and benchmarks; a real
deployment starts the same commands on separate machines (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from privface.local_server import free_port

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
OBJECT_STORE = 100 * 1024 * 1024  # keys are 27-55 MB; Ray's default would reserve 30% of RAM per node


class LoopbackCluster:
    """`ray start --head` and `ray start --address` processes of our own, each in its own process group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="pfray", dir="/tmp")  # Ray's socket paths must stay short
        # Workers import this checkout (the code under test), not whatever is installed.
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        self.nodes: list[subprocess.Popen] = []

    def _start(self, *args: str) -> subprocess.Popen:
        node = subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.nodes.append(node)
        return node

    def start(self, workers: int = 2) -> LoopbackCluster:
        # The head gets no CPU: FHE runs only on the worker nodes, as on a real cluster of machines.
        self._start(
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--num-cpus=0",
            "--include-dashboard=false",
            f"--temp-dir={self.temp}",
            f"--object-store-memory={OBJECT_STORE}",
        )
        self._wait_nodes(1)
        for _ in range(workers):  # one at a time: nodes joining together on a busy 2-core machine time out
            self.add_worker()
        return self

    def add_worker(self, cpus: int = 1) -> None:
        self._start(f"--address={self.address}", f"--num-cpus={cpus}", f"--object-store-memory={OBJECT_STORE}")
        self._wait_nodes(len(self.nodes))

    def _wait_nodes(self, n: int, timeout: float = 180) -> None:
        code = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-c", code, self.address], env=self.env, capture_output=True, text=True, timeout=60
            )
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"the loopback Ray cluster did not reach {n} nodes")

    def stop(self) -> None:
        # A node's processes (ray start, raylet, GCS, agents) share the process group we gave it; its Ray
        # workers die with their raylet. `ray stop` is not used: it would stop every Ray on the machine.
        for node in reversed(self.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
