"""Benchmark: the FHE head against full-image FHE and against a CKKS peer, with plots.

    python -m training.bench.benchmark --lfw-dir PATH    (minutes)
    python -m training.bench.baseline --lfw-dir PATH     (the full-image FHE baseline, run first; longer)

Why: the head's claim is that running the face network in clear on the client and only a tiny
head in TFHE makes encrypted verification cheap without giving up the "server learns nothing,
the key owner learns one bit" property. This puts figures beside it, all from this machine:

1. FHE head (TFHE, concrete-python): read from artifacts/metrics/fhe_head_bench.json and
   fhe_frontier.json (each figure says its file); a shipped point whose dimension no longer
   matches those files is re-measured here with `training.bench.shipped.bench_point` (labelled).
2. Full-image FHE (Concrete-ML, siamese CNN on encrypted 2 x crops): read from
   artifacts/bench/baseline.json, written by `python -m training.bench.baseline`.
3. CKKS peer (TenSEAL): encrypted squared Euclidean distance of two separately encrypted
   embeddings; the key owner decrypts the *score* and thresholds it. 10-fold LFW accuracy.
4. Scaling: head latency/accuracy against d (frontier file) and against d and input bits
   (artifacts/bench/scaling.json from `python -m training.bench.scaling`), accuracy-latency plot,
   1:N identification (N sequential runs of the fast point through FHEServer).

Writes artifacts/bench/benchmark.json, benchmark.md and small PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fhe_head.artifacts import META_FILE
from training.bench.fullimage import add_estimates
from training.bench.markdown import rel
from training.bench.report import write_outputs
from training.machine import machine_info
from training.paths import BENCH_DIR, FRONTIER, HEAD_BENCH, LFW_FHE

FRONTIER_KEYS = (
    "name",
    "dims",
    "n_bits",
    "accuracy_simulated",
    "server_run_s_median",
    "programmable_bootstrap_count",
    "eval_keys_mb",
)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ---- 1. FHE head ---------------------------------------------------------------------------------
def _head_cost(name: str, meta: dict, bench: dict | None, frontier: dict | None, remeasure_runs: int) -> dict:
    """{cost, cost_source}: from fhe_head_bench.json if it describes this point's d, else the frontier's
    figures plus client costs measured here, else everything measured here."""
    from training.bench.shipped import bench_point, client_costs

    cost = (bench or {}).get("points", {}).get(name)
    in_frontier = [p for p in (frontier or {}).get("points", []) if p["dims"] == meta["dims"]]
    if cost and cost["dims"] == meta["dims"]:
        return {"cost": cost, "cost_source": rel(HEAD_BENCH)}
    if in_frontier:
        fp = in_frontier[0]
        return {
            "cost": {
                "server_run_s_median": fp["server_run_s_median"],
                "keygen_s_median": fp["keygen_s"],
                "eval_keys_mb": fp["eval_keys_mb"],
                "ciphertext_in_kb": fp["ciphertext_kb"],
                "ciphertext_out_kb": fp["result_kb"],
                **client_costs(name, remeasure_runs),
            },
            "cost_source": f"{rel(FRONTIER)} (server run, keygen, sizes: {rel(HEAD_BENCH)} describes another d "
            f"for this point); encrypt/decrypt measured by training.bench.benchmark (median of {remeasure_runs})",
        }
    return {
        "cost": bench_point(name, remeasure_runs),
        "cost_source": f"measured by training.bench.benchmark (median of {remeasure_runs}): "
        f"{rel(HEAD_BENCH)} is missing or describes another d for this point",
    }


def _head_accuracy(meta: dict, frontier: dict | None) -> dict:
    match = [p for p in (frontier or {}).get("points", []) if p["dims"] == meta["dims"]]
    if not match:
        return {"accuracy_simulated": None, "accuracy_source": f"no d={meta['dims']} point in {rel(FRONTIER)}"}
    return {
        "accuracy_simulated": match[0]["accuracy_simulated"],
        "accuracy_std": match[0]["view2"].get("std_clear_quantised"),
        "accuracy_source": f"{rel(FRONTIER)} (10-fold View 2, Concrete simulation = clear integer model)",
    }


def head_section(remeasure_runs: int = 5) -> dict:
    """Per shipped point: costs from fhe_head_bench.json (or re-measured), accuracy from fhe_frontier.json."""
    from fhe_head.artifacts import ARTIFACTS_ROOT, POINTS

    bench, frontier, lfw_fhe = _read(HEAD_BENCH), _read(FRONTIER), _read(LFW_FHE)
    points = {}
    for name in POINTS:
        meta = _read(ARTIFACTS_ROOT / name / META_FILE)
        if meta is None:
            continue
        row: dict = {"dims": meta["dims"], "n_bits": meta["n_bits"], "pbs": meta["programmable_bootstrap_count"]}
        row.update(_head_cost(name, meta, bench, frontier, remeasure_runs))
        row.update(_head_accuracy(meta, frontier))
        if lfw_fhe and lfw_fhe.get("point") == name:
            row["real_fhe_sample"] = {
                "n_pairs": lfw_fhe["n_pairs_fhe"],
                "accuracy": lfw_fhe["fhe_accuracy"],
                "source": rel(LFW_FHE),
            }
        points[name] = row
    return {"points": points, "machine_of_files": (bench or {}).get("machine")}


# ---- 2. full-image FHE baseline ------------------------------------------------------------------
def load_baselines(bench_dir: Path | None = None) -> dict | None:
    """artifacts/bench/baseline*.json (one per `training.bench.baseline` run) merged; latencies of variants
    not run in real FHE estimated from one that was (labelled)."""
    merged: dict | None = None
    for path in sorted((bench_dir or BENCH_DIR).glob("baseline*.json")):
        data = json.loads(path.read_text())
        if merged is None:
            merged = {**data, "variants": {}, "sources": []}
        merged["variants"].update(data["variants"])
        merged["sources"].append(rel(path))
    if merged:
        add_estimates(merged["variants"])
    return merged


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", default=None, help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR)
    parser.add_argument("--skip-ckks", action="store_true")
    parser.add_argument("--skip-one-to-n", action="store_true")
    parser.add_argument(
        "--ckks-pairs", type=int, default=600, help="pairs run through CKKS (others scored in clear); 0 = all 6000"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-read OUT_DIR/benchmark.json (head, CKKS, 1:N) and the current baseline.json; rewrite Markdown/plots",
    )
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Every section of the result: the head, CKKS and 1:N measured here; the rest read from its files."""
    from training.bench.ckks import ckks_section
    from training.bench.one_to_n import one_to_n
    from training.lfw import open_lfw_for_cli

    lfw = open_lfw_for_cli(args.lfw_dir)
    result: dict = {
        "machine": machine_info(),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    print("FHE head ...", flush=True)
    result["head"] = head_section()
    result["frontier"] = [{k: p[k] for k in FRONTIER_KEYS} for p in (_read(FRONTIER) or {}).get("points", [])]
    result["baseline"] = load_baselines()
    result["scaling"] = _read(BENCH_DIR / "scaling.json")
    result["ckks"] = (
        {"available": False, "why": "skipped (--skip-ckks)"}
        if args.skip_ckks
        else ckks_section(lfw, encrypted_pairs=args.ckks_pairs or None)
    )
    if not args.skip_one_to_n:
        print("1:N ...", flush=True)
        result["one_to_n"] = one_to_n()
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        result = json.loads((args.out_dir / "benchmark.json").read_text())
        result["baseline"] = load_baselines()
        result["scaling"] = _read(BENCH_DIR / "scaling.json")
    else:
        result = measure(args)
    for path in write_outputs(result, args.out_dir):
        print(f"wrote {rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
