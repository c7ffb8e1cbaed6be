"""Bounded load test of the verification service on loopback.

    python -m training.bench_service [--clients 4] [--verifies 25] [--point fast] [--url URL]

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
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from privface.client import VerificationClient
from privface.local_server import LocalServer
from privface.resources import EXAMPLES_DIR, artifacts_dir

OUT = artifacts_dir() / "metrics" / "service_load.json"
PHOTOS = EXAMPLES_DIR


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--verifies", type=int, default=25, help="per client")
    parser.add_argument("--point", default="fast")
    parser.add_argument("--url", help="an already running server (default: start one on loopback)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from client_encoder.encoder import FaceEncoder

    encoder = FaceEncoder()
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(PHOTOS / "astronaut.jpg")).save(mirrored, format="PNG")
    astronaut, mirror, cameraman = encoder.embed_many(
        [PHOTOS / "astronaut.jpg", mirrored.getvalue(), PHOTOS / "cameraman.jpg"]
    )
    pairs = [((astronaut, mirror), True), ((astronaut, cameraman), False)]

    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.url else LocalServer(Path(tmp) / "server", points=(args.point,)).start()
        url = args.url or server.url
        try:
            clients = [VerificationClient(url, args.point, Path(tmp) / f"keys{i}") for i in range(args.clients)]
            setup_start = time.perf_counter()
            for client in tqdm(clients, desc="keys: generate + upload"):
                client.connect()
            setup_s = time.perf_counter() - setup_start
            latencies, fhe_times, failures = [], [], []
            lock = threading.Lock()
            bar = tqdm(total=args.clients * args.verifies, desc=f"{args.clients} clients x {args.verifies} verifies")

            def work(client: VerificationClient) -> None:
                for i in range(args.verifies):
                    (a, b), expected = pairs[i % 2]
                    try:
                        verdict = client.compare(a, b)
                        ok = verdict.same == expected
                    except Exception as err:  # a load test records every failure and goes on
                        verdict, ok = None, False
                        failures.append(repr(err))
                    with lock:
                        if verdict is not None:
                            latencies.append(verdict.total_s)
                            fhe_times.append(verdict.fhe_s)
                            if not ok:
                                failures.append(f"wrong answer: expected {expected}")
                        bar.update()

            start = time.perf_counter()
            threads = [threading.Thread(target=work, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            bar.close()
            for client in clients:
                client.forget_me()
                client.close()
        finally:
            if server is not None:
                server.stop()

    done = len(latencies)
    report = {
        "command": "python -m training.bench_service " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "server": args.url or "loopback subprocess (python -m fhe_head.service), same machine as the clients",
        "point": args.point,
        "clients": args.clients,
        "verifies_per_client": args.verifies,
        "requests": args.clients * args.verifies,
        "completed": done,
        "failures": len(failures),
        "failure_examples": failures[:5],
        "wall_s": wall,
        "throughput_per_s": done / wall,
        "latency_s_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_s_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "server_fhe_s_median": float(np.median(fhe_times)) if fhe_times else None,
        "key_setup_s_all_clients": setup_s,
        "latency_includes": "encryption of both embeddings, HTTP on loopback, server FHE, decryption",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("throughput_per_s", "latency_s_p50", "latency_s_p95", "failures")}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
