"""Benchmark the shipped FHE head points through the deployment classes.

    python -m training.bench.head [--runs 20] [--out artifacts/metrics/fhe_head_bench.json]

Per point (median of `--runs`, `training.bench.shipped.bench_point`): key generation, encryption of
one embedding, the server's FHE run, decryption; sizes of the evaluation keys, one encrypted embedding
and the encrypted result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fhe_head.artifacts import ARTIFACTS_ROOT, META_FILE, POINTS
from training.bench.shipped import bench_point
from training.machine import machine_info
from training.paths import HEAD_BENCH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HEAD_BENCH)
    args = parser.parse_args(argv)
    points = [p for p in POINTS if (ARTIFACTS_ROOT / p / META_FILE).is_file()]
    if not points:
        print("error: no shipped head points; run python -m training.train_head", file=sys.stderr)
        return 2
    report = {
        "machine": machine_info(),
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
