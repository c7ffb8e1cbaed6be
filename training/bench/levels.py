"""What the security-level element costs: today's shipped circuits against the leveled ones, side by side.

    python -m training.bench.levels [--before-ref main] [--runs 15]

Both versions of each point go through the deployment classes (FHEClient keygen / encrypt, FHEServer.run,
decrypt). The runs alternate (before, after, before, ...) in one process, so both see the same load on a
shared machine; concrete's `complexity` (machine-independent) is quoted beside the times. The "before"
artifacts are read from git (`--before-ref`), the "after" ones from artifacts/fhe_head/.
Writes artifacts/metrics/security_levels_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fhe_head.artifacts import ARTIFACTS_ROOT, CLIENT_SPECS_FILE, CLIENT_ZIP_FILE, HEAD_FILE, META_FILE, SERVER_FILE
from fhe_head.client import FHEClient
from fhe_head.server import FHEServer
from training.paths import METRICS

REPO_ROOT = Path(__file__).resolve().parents[2]  # the git checkout "before" is read from
POINT_FILES = (SERVER_FILE, CLIENT_SPECS_FILE, HEAD_FILE, META_FILE)
ENGINE_FILES = (CLIENT_ZIP_FILE,)  # a Concrete-ML point's (FHEModelClient's quantisers); absent from direct points


def extract(ref: str, point: str, out: Path) -> Path:
    """The point's artifact folder as it was at git `ref`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in POINT_FILES + ENGINE_FILES:
        shown = subprocess.run(
            ["git", "show", f"{ref}:artifacts/fhe_head/{point}/{name}"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=name in POINT_FILES,
        )
        if shown.returncode == 0:
            (out / name).write_bytes(shown.stdout)
    return out


def _setup(directory: Path) -> dict:
    client, server = FHEClient(directory), FHEServer(directory)
    start = time.perf_counter()
    client.generate_keys(force=True)
    keygen_s = time.perf_counter() - start
    serialized = client.evaluation_keys()
    rng = np.random.default_rng(0)
    faces = client.head.mean + 0.05 * rng.normal(size=(2,) + client.head.mean.shape)
    level = client.levels[-1] if client.levels else None
    return {
        "client": client,
        "server": server,
        "keys": server.load_evaluation_keys(serialized),
        "template": client.encrypt(faces[0]),
        "probe": client.encrypt(faces[1], level),
        "keygen_s": keygen_s,
        "eval_keys_mb": len(serialized) / 1e6,
        "times": [],
    }


def bench_side_by_side(before: Path, after: Path, runs: int, labels: tuple[str, str] = ("before", "after")) -> dict:
    """Two artifact folders run alternately (same load): medians, complexity, keys, and after's ratios to before."""
    sides = {labels[0]: _setup(before), labels[1]: _setup(after)}
    for _ in range(runs):
        for side in sides.values():
            start = time.perf_counter()
            side["server"].run(side["template"], side["probe"], side["keys"])
            side["times"].append(time.perf_counter() - start)
    report = {}
    for name, side in sides.items():
        meta = side["server"].meta
        report[name] = {
            "levels": meta.get("levels", []),
            "vector_length": meta.get("vector_length", meta["dims"]),
            "programmable_bootstrap_count": meta["programmable_bootstrap_count"],
            "complexity": meta["complexity"],
            "max_bit_width": meta["max_bit_width"],
            "lsbs": meta["lsbs"],
            "server_run_s_median": float(np.median(side["times"])),
            "server_runs": runs,
            "keygen_s": side["keygen_s"],
            "eval_keys_mb": side["eval_keys_mb"],
            "ciphertext_in_kb": len(side["probe"]) / 1e3,
        }
    b, a = report[labels[0]], report[labels[1]]
    report[f"{labels[1]}_vs_{labels[0]}"] = {
        "server_time": a["server_run_s_median"] / b["server_run_s_median"],
        "complexity": a["complexity"] / b["complexity"],
        "eval_keys": a["eval_keys_mb"] / b["eval_keys_mb"],
        "extra_pbs": a["programmable_bootstrap_count"] - b["programmable_bootstrap_count"],
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-ref", default="main", help="git ref holding today's (level-less) artifacts")
    parser.add_argument("--points", nargs="*", default=["fast", "accurate"])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=METRICS / "security_levels_cost.json")
    args = parser.parse_args(argv)
    report = {
        "method": "before/after runs alternate in one process (same load); medians; "
        f"before = git {args.before_ref}, after = artifacts/fhe_head/",
        "machine": {"cores": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
        "points": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for point in args.points:
            before = extract(args.before_ref, point, Path(tmp) / point)
            report["points"][point] = r = bench_side_by_side(before, ARTIFACTS_ROOT / point, args.runs)
            b, a = r["before"], r["after"]
            print(
                f"{point}: server {b['server_run_s_median']:.3f} -> {a['server_run_s_median']:.3f} s, "
                f"complexity x{r['after_vs_before']['complexity']:.3f}, "
                f"keys {b['eval_keys_mb']:.1f} -> {a['eval_keys_mb']:.1f} MB",
                flush=True,
            )
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
