"""Benchmark the shipped FHE head points through the deployment classes.

    python -m training.bench_head [--runs 20] [--out artifacts/metrics/fhe_head_bench.json]

Per point (median of `--runs`): key generation, encryption of one embedding, the server's FHE
run, decryption; sizes of the evaluation keys, one encrypted embedding and the encrypted result.
Inputs are embeddings drawn around the head's mean: timing does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from fhe_head.artifacts import ARTIFACTS_ROOT, POINTS
from fhe_head.client import FHEClient
from fhe_head.server import FHEServer
from privface.resources import artifacts_dir
from training.bench_encoder import _cpu_name


def _median_s(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def bench_point(point: str, runs: int) -> dict:
    client, server = FHEClient(point), FHEServer(point)
    rng = np.random.default_rng(0)
    a = client.head.mean + 0.05 * rng.normal(size=client.head.mean.shape)
    b = client.head.mean + 0.05 * rng.normal(size=client.head.mean.shape)
    keygen_s, _ = _median_s(lambda: client.generate_keys(force=True), max(3, runs // 5))
    serialized_keys = client.evaluation_keys()
    keys = server.load_evaluation_keys(serialized_keys)
    encrypt_s, template = _median_s(lambda: client.encrypt(a), runs)
    probe = client.encrypt(b)
    run_s, result = _median_s(lambda: server.run(template, probe, keys), runs)
    decrypt_s, bit = _median_s(lambda: client.decrypt(result), runs)
    meta = server.meta
    return {
        "dims": meta["dims"],
        "n_bits": meta["n_bits"],
        "runs": runs,
        "keygen_s_median": keygen_s,
        "encrypt_one_embedding_s_median": encrypt_s,
        "server_run_s_median": run_s,
        "decrypt_s_median": decrypt_s,
        "eval_keys_mb": len(serialized_keys) / 1e6,
        "ciphertext_in_kb": len(template) / 1e3,
        "ciphertext_out_kb": len(result) / 1e3,
        "decrypted": bool(bit),
        "programmable_bootstrap_count": meta["programmable_bootstrap_count"],
        "max_bit_width": meta["max_bit_width"],
        "polynomial_sizes": meta["polynomial_sizes"],
        "global_p_error": meta["global_p_error"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=artifacts_dir() / "metrics" / "fhe_head_bench.json")
    args = parser.parse_args(argv)
    points = [p for p in POINTS if (ARTIFACTS_ROOT / p / "meta.json").is_file()]
    if not points:
        print("error: no shipped head points; run python -m training.train_head", file=sys.stderr)
        return 2
    report = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count()},
        "points": {p: bench_point(p, args.runs) for p in points},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in report["points"].items():
        print(
            f"{name}: d={r['dims']} server {r['server_run_s_median']:.3f} s, keygen {r['keygen_s_median']:.2f} s, "
            f"keys {r['eval_keys_mb']:.1f} MB, in {r['ciphertext_in_kb']:.1f} KB, out {r['ciphertext_out_kb']:.1f} KB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
