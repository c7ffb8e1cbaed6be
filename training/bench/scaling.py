"""How the FHE head scales with embedding dimension and input bit width (for the benchmark).

    python -m training.bench.scaling --lfw-dir PATH [--runs 3]

One fixed head configuration (the frontier's d = 32 one: clip 3.5 sigma, 16 saturated levels,
5 kept bits) with only d or the input bit width changed: d in {32, 64, 128} at 4 bits, and
3 / 4 / 5 bits at d = 32. Accuracy: LFW View 2, 10 folds, the clear integer model (what the
circuit computes; simulation equals it on every frontier point). Cost: the compiled circuit's
bootstraps, key size and median server run on this machine. Hyper-parameters are not re-tuned per
cell (the frontier does that for 4 bits): this isolates the effect of d and bits.
Writes artifacts/bench/scaling.json; `python -m training.bench.benchmark` puts it in its report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from training.embeddings import embed_images
from training.folds import view2_folds
from training.head_fit import HeadConfig, fit_head
from training.lfw import open_lfw_for_cli, unique_images
from training.measure import measure_circuit
from training.pairs import PairData
from training.paths import BENCH_DIR

OUT = BENCH_DIR / "scaling.json"
CELLS = [(32, 4), (64, 4), (128, 4), (32, 3), (32, 5)]  # (dims, input bits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR); use the original release")
    parser.add_argument("--runs", type=int, default=3, help="server runs per cell (median)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    from client_encoder.encoder import FaceEncoder

    view2 = lfw.view2()
    data = PairData(
        embed_images(unique_images(view2), FaceEncoder(tta="jitter", encoder="dlib"), desc=f"LFW {lfw.variant()}")
    )
    a, b, same, images = data.arrays(view2)
    rows = []
    for dims, bits in CELLS:
        config = HeadConfig(dims, n_bits=bits, clip_sigma=3.5, levels=16, saturation=0.25, target_bits=5)
        accuracy = view2_folds(data, view2, config, with_simulation=False)
        start = time.perf_counter()
        cost = measure_circuit(fit_head(config, images, a, b, same), args.runs)
        row = {
            "dims": dims,
            "n_bits": bits,
            "accuracy_clear_integer": accuracy["accuracy_clear_quantised"],
            "std": accuracy["std_clear_quantised"],
            "compile_and_measure_s": time.perf_counter() - start,
            **{k: cost[k] for k in ("server_run_s_median", "eval_keys_mb", "ciphertext_kb", "keygen_s")},
            **{k: cost[k] for k in ("programmable_bootstrap_count", "max_bit_width", "polynomial_sizes")},
        }
        rows.append(row)
        print(
            f"d={dims} {bits}-bit: {100 * row['accuracy_clear_integer']:.2f}%, "
            f"server {row['server_run_s_median']:.2f} s, keys {row['eval_keys_mb']:.0f} MB, "
            f"poly {row['polynomial_sizes']}",
            flush=True,
        )
    report = {
        "command": "python -m training.bench.scaling",
        "protocol": "LFW original View 2, 10 folds, clear integer model (= FHE simulation); fixed hyper-parameters",
        "config": {"clip_sigma": 3.5, "levels": 16, "saturation": 0.25, "target_bits": 5},
        "server_runs": args.runs,
        "load_average_1min_at_end": os.getloadavg()[0],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
