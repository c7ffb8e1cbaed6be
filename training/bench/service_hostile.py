"""A legitimate owner's verification and /health under the availability attacks of issue 29, on loopback.

    python -m training.bench.service_hostile [--seconds 20] [--point fast]

Starts `python -m fhe_head.service` (default limits, two FHE workers) on a free loopback port. Alice, the
legitimate owner, sends signed 1:1 verifications of a stored template one after another (from 127.0.0.1)
while /health is polled twice a second, first with nothing else running, then under each attack in turn
(each from other loopback addresses, stopped and drained before the next):

- `many_owners`: cheap owners (one evaluation key set registered under several signing keys from one
  address) each keep two identifications of 4 templates in flight (thread exhaustion, issue 29 item 1);
- `batch_heavy`: one owner keeps two identifications of 64 templates in flight (item 3);
- `slow_connections_one_address` / `_8_addresses`: 300 connections from one address / 40 from each of 8
  that send nothing or half a request head, reopened as the server closes them (item 7);
- `upload_trickle`: signed key uploads from 4 addresses trickled at 40 KiB/s, reopened as refused (item 4);
  a legitimate key upload (from alice's address) is tried once meanwhile.

Alice's latency is the signed request's wall time as her HTTP client sees it (the server's FHE time and
its queueing included; her own encryption and decryption not: they are done once, up front). Writes
p50/p95 per phase, her failures by status, /health's, and what the attackers were answered to
artifacts/metrics/service_hostile.json.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from privface.client import VerificationClient
from privface.local_server import LocalServer
from privface_core import auth
from training.machine import cpu_name
from training.paths import METRICS

OUT = METRICS / "service_hostile.json"
TRICKLE_BYTES_S = 40 * 1024


@dataclass(frozen=True)
class Owner:
    """A signing key registered with evaluation keys on the server: what a request needs to be signed."""

    signer: auth.Signer
    key_id: str
    audience: str

    def request(self, http: httpx.Client, url: str, path: str, body: dict, timeout: float = 300) -> httpx.Response:
        content = json.dumps(body).encode()
        digest = hashlib.sha256(content).digest()
        headers = self.signer.headers("POST", path, "", digest, self.key_id, audience=self.audience)
        headers["content-type"] = "application/json"
        return http.post(url + path, content=content, headers=headers, timeout=timeout)


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=300)


def register(url: str, keys: bytes, point: str, audience: str, address: str) -> Owner:
    """Alice's evaluation keys registered under a new signing key from `address` (a cheap owner)."""
    signer = auth.Signer.generate()
    digest = hashlib.sha256(keys).digest()
    headers = signer.headers("POST", "/v1/keys", f"point={point}", digest, None, audience=audience)
    headers["content-type"] = "application/octet-stream"
    with from_address(address) as http:
        response = http.post(f"{url}/v1/keys?point={point}", content=keys, headers=headers)
    response.raise_for_status()
    return Owner(signer, response.json()["key_id"], audience)


def enrol(url: str, owner: Owner, ciphertext: str, count: int) -> None:
    with httpx.Client() as http:
        for i in range(count):
            body = {"name": f"t{i}", "ciphertext": ciphertext, "replace": True}
            owner.request(http, url, "/v1/templates", body).raise_for_status()


class Attack:
    """Threads that repeat one hostile action until stopped; what the server answered them, counted."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.answers: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def spawn(self, action: Callable[[], str], count: int, pause_s: float = 0.0) -> None:
        """`count` threads repeating `action` (its outcome counted), `pause_s` between two (a refused attacker
        reconnecting in a tight loop would measure this machine's two cores, not the server)."""

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    outcome = action()
                except (httpx.HTTPError, OSError) as err:
                    outcome = type(err).__name__
                with self._lock:
                    self.answers[outcome] += 1
                self.stop.wait(pause_s)

        self.threads += [threading.Thread(target=loop, daemon=True) for _ in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def end(self) -> dict:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return dict(self.answers.most_common())


def identifications(url: str, owners: list[Owner], probe: str) -> Attack:
    """Each owner keeps two identifications in flight (its share: max_inflight_per_owner)."""
    attack = Attack()
    for owner in owners:
        for _ in range(2):
            http = httpx.Client()

            def identify(owner: Owner = owner, http: httpx.Client = http) -> str:
                return str(owner.request(http, url, "/v1/identify", {"probe": probe}).status_code)

            attack.spawn(identify, 1, pause_s=0.1)
    return attack


def slow_connections(url: str, addresses: int, per_address: int) -> Attack:
    """Connections that send nothing or half a request head, each reopened once the server closes it."""
    host, port = url.removeprefix("http://").split(":")
    attack = Attack()

    def hold(address: str, half: bool) -> str:
        with socket.socket() as sock:
            sock.bind((address, 0))
            sock.settimeout(60)
            sock.connect((host, int(port)))
            if half:
                sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            answer = b""
            while not attack.stop.is_set():
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\r\n")[0].decode(errors="replace") or "closed"

    for a in range(addresses):
        for i in range(per_address):
            attack.spawn(lambda address=f"127.0.1.{a + 1}", half=bool(i % 2): hold(address, half), 1, pause_s=1)
    return attack


def upload_trickle(
    url: str, point: str, keys: bytes, audience: str, addresses: int = 4, per_address: int = 4
) -> Attack:
    """Signed key uploads (a fresh signing key each) trickled at TRICKLE_BYTES_S, reopened once refused."""
    host, port = url.removeprefix("http://").split(":")
    attack, digest = Attack(), hashlib.sha256(keys).digest()

    def trickle(address: str) -> str:
        headers = auth.Signer.generate().headers("POST", "/v1/keys", f"point={point}", digest, None, audience=audience)
        lines = [f"POST /v1/keys?point={point} HTTP/1.1", "host: x", f"content-length: {len(keys)}"]
        lines += ["content-type: application/octet-stream", *[f"{k}: {v}" for k, v in headers.items()]]
        with socket.socket() as sock:
            sock.bind((address, 0))
            sock.connect((host, int(port)))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            sock.settimeout(0.25)
            sent, step = 0, TRICKLE_BYTES_S // 4
            while not attack.stop.is_set() and sent < len(keys):
                try:
                    answer = sock.recv(4096)
                    return answer.split(b"\r\n")[0].decode(errors="replace") or "closed"
                except TimeoutError:
                    pass
                try:
                    sock.sendall(keys[sent : sent + step])
                except OSError:
                    return "closed"
                sent += step
            return "stopped"

    for a in range(addresses):
        attack.spawn(lambda address=f"127.0.2.{a + 1}": trickle(address), per_address, pause_s=1)
    return attack


def measure(
    url: str, alice: Owner, probe: str, seconds: float, attack: Attack | None, upload: Callable[[], str] | None
) -> dict:
    """Alice's verifications one after another and /health twice a second, for `seconds`, under `attack`;
    `upload`: a legitimate key upload tried once meanwhile (its outcome)."""
    latencies, fhe, statuses, health, health_failed = [], [], Counter(), [], Counter()
    stop = threading.Event()

    def poll_health() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    response = http.get(url + "/health", timeout=30)
                    if response.status_code == 200:
                        health.append(time.perf_counter() - start)
                    else:
                        health_failed[str(response.status_code)] += 1
                except httpx.HTTPError as err:
                    health_failed[type(err).__name__] += 1
                stop.wait(0.5)

    if attack is not None:
        attack.start()
        time.sleep(min(5.0, seconds / 4))  # the attack in full swing before measuring
    uploaded = upload() if upload is not None else None
    poller = threading.Thread(target=poll_health)
    poller.start()
    deadline = time.monotonic() + seconds
    with httpx.Client() as http:
        while time.monotonic() < deadline:
            start, outcome = time.perf_counter(), ""
            try:
                response = alice.request(http, url, "/v1/templates/verify", {"name": "t0", "probe": probe}, 120)
                outcome = str(response.status_code)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                    fhe.append(response.json()["fhe_s"])
            except httpx.HTTPError as err:
                outcome = type(err).__name__
            statuses[outcome] += 1
            if outcome != "200":
                time.sleep(0.25)  # refused: she tries again shortly, as a client would
    stop.set()
    poller.join()
    answers = attack.end() if attack is not None else None
    return {
        "verify_s_p50": _pct(latencies, 50),
        "verify_s_p95": _pct(latencies, 95),
        "verify_s_max": max(latencies, default=None),
        "verifies": len(latencies),
        "alice_statuses": dict(statuses),
        "server_fhe_s_median": _pct(fhe, 50),
        "health_s_p50": _pct(health, 50),
        "health_s_p95": _pct(health, 95),
        "health_s_max": max(health, default=None),
        "health_failures": dict(health_failed),
        "legitimate_upload": uploaded,
        "attack_answers": answers,
    }


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def drain(url: str, timeout: float = 120) -> None:
    """Until no FHE run is queued (the attackers' requests have gone, their runs are dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and httpx.get(url + "/health", timeout=30).json()["queued_runs"]:
        time.sleep(0.2)
    time.sleep(1)


def run(url: str, args: argparse.Namespace, keys_dir: Path) -> dict:
    client = VerificationClient(url, args.point, keys_dir / "alice")
    client.connect()
    audience, keys = client.server_id, client.fhe.evaluation_keys()
    alice = Owner(client.signer, client.key_id, audience)
    template = base64.b64encode(client.encrypt(client.head.mean).ciphertext).decode()
    probe = base64.b64encode(client.encrypt(client.head.mean, client.level).ciphertext).decode()
    enrol(url, alice, template, 1)
    owners = [register(url, keys, args.point, audience, "127.0.3.1") for _ in range(args.owners)]
    for owner in owners:
        enrol(url, owner, template, 4)
    mallory = register(url, keys, args.point, audience, "127.0.3.2")
    enrol(url, mallory, template, 64)
    for who in [alice, *owners, mallory]:  # every key set parsed and warm: the phases measure runs, not parses
        with httpx.Client() as http:
            who.request(http, url, "/v1/templates/verify", {"name": "t0", "probe": probe}).raise_for_status()
    attacks: dict[str, Callable[[], Attack | None]] = {
        "baseline": lambda: None,
        "many_owners": lambda: identifications(url, owners, probe),
        "batch_heavy": lambda: identifications(url, [mallory], probe),
        "slow_connections_one_address": lambda: slow_connections(url, 1, 300),
        "slow_connections_8_addresses": lambda: slow_connections(url, 8, 40),
        "upload_trickle": lambda: upload_trickle(url, args.point, keys, audience),
    }

    def legitimate_upload() -> str:
        try:
            register(url, keys, args.point, audience, "127.0.0.1")
            return "201"
        except httpx.HTTPStatusError as err:
            return f"{err.response.status_code} {err.response.json().get('detail')}"

    phases = {}
    for name, make in attacks.items():
        print(f"{name} ...", flush=True)
        upload = legitimate_upload if name == "upload_trickle" else None
        phases[name] = measure(url, alice, probe, args.seconds, make(), upload)
        drain(url)
        print(json.dumps({k: phases[name][k] for k in ("verify_s_p50", "verify_s_p95", "health_s_max")}))
    client.close()
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="measured per phase")
    parser.add_argument("--owners", type=int, default=6, help="cheap owners of the many_owners attack")
    parser.add_argument("--point", default="fast")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "server", points=(args.point,), extra_args=("--workers", "2")).start()
        try:
            phases = run(server.url, args, Path(tmp))
        finally:
            server.stop()
    out = {
        "command": "python -m training.bench.service_hostile " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "server": "loopback subprocess (python -m fhe_head.service --workers 2), default limits, same machine",
        "point": args.point,
        "seconds_per_phase": args.seconds,
        "many_owners": args.owners,
        "alice_latency": "wall time of a signed /v1/templates/verify as her HTTP client sees it (queueing and FHE "
        "included; her encryption and decryption not)",
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "note": args.note,
        "phases": phases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
