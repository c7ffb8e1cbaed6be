"""Bounded load test of the verification service on loopback.

    python -m training.bench.service [--clients 4] [--verifies 25] [--point fast] [--url URL]

Starts `python -m fhe_head.service` on a free loopback port with a temporary data directory (or
uses --url), gives each client its own keys, and has every client run its verifications at the
same time through `/v1/verify`, alternating a same-person and a different-person pair; every
decrypted answer is checked. Writes throughput, p50/p95 latency and failures to
artifacts/metrics/service_load.json. Embeddings are computed once up front: this measures the
service (encryption, HTTP, FHE, decryption), not the face encoder.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from privface.client import VerificationClient
from privface.local_server import LocalServer
from privface.resources import EXAMPLES_DIR
from training.machine import cpu_name
from training.paths import METRICS

OUT = METRICS / "service_load.json"
PHOTOS = EXAMPLES_DIR


@dataclass
class LoadResult:
    """What the clients saw: per-verification latency and server FHE time, failures, wall time."""

    latencies: list[float] = field(default_factory=list)
    fhe_times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    setup_s: float = 0.0


def sample_pairs(point: str) -> list[tuple[tuple[np.ndarray, np.ndarray], bool]]:
    """(astronaut, its mirror image) -> same; (astronaut, cameraman) -> different; embedded once with the
    encoder `point`'s head was trained on."""
    from client_encoder.encoder import FaceEncoder
    from fhe_head.artifacts import head_encoder

    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(PHOTOS / "astronaut.jpg")).save(mirrored, format="PNG")
    astronaut, mirror, cameraman = FaceEncoder(encoder=head_encoder(point)).embed_many(
        [PHOTOS / "astronaut.jpg", mirrored.getvalue(), PHOTOS / "cameraman.jpg"]
    )
    return [((astronaut, mirror), True), ((astronaut, cameraman), False)]


def run_clients(clients: list[VerificationClient], verifies: int, pairs: list, out: LoadResult) -> None:
    """Every client runs its `verifies` verifications in its own thread, all at the same time."""
    lock = threading.Lock()
    bar = tqdm(total=len(clients) * verifies, desc=f"{len(clients)} clients x {verifies} verifies")

    def work(client: VerificationClient) -> None:
        for i in range(verifies):
            (a, b), expected = pairs[i % 2]
            try:
                verdict = client.compare(a, b)
                ok = verdict.same == expected
            except Exception as err:  # a load test records every failure and goes on
                verdict, ok = None, False
                out.failures.append(repr(err))
            with lock:
                if verdict is not None:
                    out.latencies.append(verdict.total_s)
                    out.fhe_times.append(verdict.fhe_s)
                    if not ok:
                        out.failures.append(f"wrong answer: expected {expected}")
                bar.update()

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.wall_s = time.perf_counter() - start
    bar.close()


def load_test(url: str, args: argparse.Namespace, keys_dir: Path, pairs: list) -> LoadResult:
    """Clients with their own keys (generated and uploaded first, timed), then the concurrent run."""
    out = LoadResult()
    clients = [VerificationClient(url, args.point, keys_dir / f"keys{i}") for i in range(args.clients)]
    setup_start = time.perf_counter()
    for client in tqdm(clients, desc="keys: generate + upload"):
        client.connect()
    out.setup_s = time.perf_counter() - setup_start
    run_clients(clients, args.verifies, pairs, out)
    for client in clients:
        client.forget_me()
        client.close()
    return out


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(args: argparse.Namespace, argv: list[str] | None, result: LoadResult) -> dict:
    done = len(result.latencies)
    return {
        "command": "python -m training.bench.service " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "server": args.url or "loopback subprocess (python -m fhe_head.service), same machine as the clients",
        "point": args.point,
        "clients": args.clients,
        "verifies_per_client": args.verifies,
        "requests": args.clients * args.verifies,
        "completed": done,
        "failures": len(result.failures),
        "failure_examples": result.failures[:5],
        "wall_s": result.wall_s,
        "throughput_per_s": done / result.wall_s,
        "latency_s_p50": percentile(result.latencies, 50),
        "latency_s_p95": percentile(result.latencies, 95),
        "server_fhe_s_median": float(np.median(result.fhe_times)) if result.fhe_times else None,
        "key_setup_s_all_clients": result.setup_s,
        "latency_includes": "encryption of both embeddings, HTTP on loopback, server FHE, decryption",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--verifies", type=int, default=25, help="per client")
    parser.add_argument("--point", default="fast")
    parser.add_argument("--url", help="an already running server (default: start one on loopback)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pairs = sample_pairs(args.point)
    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.url else LocalServer(Path(tmp) / "server", points=(args.point,)).start()
        try:
            result = load_test(args.url or server.url, args, Path(tmp), pairs)
        finally:
            if server is not None:
                server.stop()
    out = report(args, argv, result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("throughput_per_s", "latency_s_p50", "latency_s_p95", "failures")}))
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
