"""A d = 64 head refitted for the strict security levels: at today's circuit cost, and with one more bit.

    python -m training.strict_refit --lfw-dir PATH [--runs 9]

Which table shape accepts the most genuine pairs at FMR 1e-3, and what it costs. For each shape (16-level
tables: the 10-bit sum of the shipped accurate circuit; 32-level tables: an 11-bit sum; both keep the same
32-unit step for the comparison):
- selection on View 1 only: fit on pairsDevTrain, threshold at FMR 1e-3 on DevTrain's cross-identity image
  pairs, the configuration (clip x saturation) with the best TAR on DevTest's same pairs;
- the fold-wise protocol of `training.security_levels` on View 2 (a head refitted per fold);
- cost: the chosen configuration fitted on all of View 2 with its level element, compiled as the shipped
  heads are (one parameter set) and, for the wider sum, also with concrete's multi-parameter selection (a key
  set per precision), each run through FHEClient / FHEServer alternately with the shipped accurate head.
The float PCA-64 distance under the same protocol is reported beside them. Nothing here is shipped.
Writes artifacts/metrics/security_levels_refit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from training.ceilings import fold_scores
from training.folds import view2_folds
from training.head_fit import HeadConfig, fit_head
from training.lfw import open_lfw_for_cli, unique_images
from training.pairs import PairData
from training.security_levels import (
    HEADS_ROOT,
    METRICS,
    FoldHeads,
    Gallery,
    Scorer,
    calibrate_model,
    fold_summary,
    threshold_at_fmr,
    with_levels,
)

DIMS = 64
TARGET_FMR = 1e-3
# name -> (levels per table, significant bits kept for the comparison, parameter strategies compiled and timed)
SHAPES = {"10-bit sum (today's cost)": (16, 5, ("mono",)), "11-bit sum": (32, 6, ("mono", "multi"))}
GRID = {"clip_sigma": (3.0, 3.5), "saturation": (0.05, 0.1, 0.15, 0.25, 0.4, 0.6)}


class View1:
    """View 1's pairs as index arrays: fit on DevTrain, measure on DevTest."""

    def __init__(self, lfw, vectors_of) -> None:
        self.sets = {}
        for name, pairs in zip(("train", "test"), lfw.view1(), strict=True):
            paths = unique_images(pairs)
            index = {p: k for k, p in enumerate(paths)}
            person = np.array([p.parent.name for p in paths])
            i, j = np.triu_indices(len(paths), k=1)
            cross = person[i] != person[j]
            self.sets[name] = {
                "pairs": pairs,
                "vectors": vectors_of(paths),
                "impostors": (i[cross], j[cross]),
                "genuine": np.array([(index[p.left], index[p.right]) for p in pairs if p.same]).T,
                "index": index,
            }

    def measure(self, config: HeadConfig) -> dict:
        train, test = self.sets["train"], self.sets["test"]
        pairs, vec, index = train["pairs"], train["vectors"], train["index"]
        a = vec[[index[p.left] for p in pairs]]
        b = vec[[index[p.right] for p in pairs]]
        head = fit_head(config, vec, a, b, np.array([p.same for p in pairs]))
        t = threshold_at_fmr(Scorer(vec, head)(*train["impostors"]), TARGET_FMR)
        scorer = Scorer(test["vectors"], head)
        return {
            **config.to_dict(),
            "max_sum": head.max_sum,
            "view1_test_tar": float(np.mean(scorer(*test["genuine"]) < t)),
            "view1_test_fmr": float(np.mean(scorer(*test["impostors"]) < t)),
            "view1_test_impostor_pairs": int(len(test["impostors"][0])),
        }


def select(view1: View1, levels: int, target_bits: int) -> tuple[HeadConfig, list[dict]]:
    rows = []
    for clip in GRID["clip_sigma"]:
        for sat in GRID["saturation"]:
            config = HeadConfig(DIMS, clip_sigma=clip, levels=levels, saturation=sat, target_bits=target_bits)
            rows.append(view1.measure(config))
            print(f"  {config.label()}: View 1 TAR {rows[-1]['view1_test_tar']:.4f}", flush=True)
    best = max(rows, key=lambda r: r["view1_test_tar"])  # the first of equals: the grid's order
    return HeadConfig(**{f.name: best[f.name] for f in fields(HeadConfig)}), rows


def float_pca_reference(gallery: Gallery, dims: int = DIMS) -> dict:
    """The fold-wise protocol on the float PCA-`dims` distance (PCA fitted per fold, no quantisation)."""
    _, tar, fmr = fold_scores(gallery, dims, None, None)
    return {"dims": dims, "target_fmr": TARGET_FMR, "tar": fold_summary(tar), "fmr": fold_summary(fmr)}


def compile_candidate(gallery: Gallery, config: HeadConfig, out: Path, encoder_sha256: str, strategy: str) -> dict:
    """`config` fitted on all of View 2 with its levels, compiled into `out` as the shipped heads are (one
    parameter set: "mono"), or with concrete's multi-parameter selection ("multi": a key set per precision)."""
    from concrete import fhe

    from fhe_head.build import save_artifacts

    a, b, same, images = gallery.training_pairs(None)
    head = fit_head(config, images, a, b, same, name=f"d{config.dims}-strict")
    leveled, calibration = with_levels(gallery, head, FoldHeads(gallery, config, f"d{config.dims}-strict"))
    chosen = fhe.ParameterSelectionStrategy(strategy)
    meta = save_artifacts(leveled, out, encoder_sha256, extra_meta={"config": config.to_dict()}, strategy=chosen)
    return {"security_levels": calibration, "max_sum": leveled.max_sum, "lsbs": leveled.lsbs, "engine": meta["engine"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: $LFW_DIR)")
    parser.add_argument("--runs", type=int, default=9, help="server runs per head for the cost comparison")
    parser.add_argument("--no-cost", action="store_true", help="accuracy only; compile and time nothing")
    args = parser.parse_args(argv)
    lfw = open_lfw_for_cli(args.lfw_dir)
    if lfw.variant() != "original":
        print("error: the strict refit is measured on the original release (the shipped heads' data)", file=sys.stderr)
        return 2
    from client_encoder.encoder import FaceEncoder
    from training.bench.levels import bench_side_by_side
    from training.embeddings import embed_images

    encoder = FaceEncoder(tta="jitter", encoder="dlib")

    def vectors_of(paths: list) -> np.ndarray:  # the embeddings train_head uses (its cache, the jitter TTA)
        return PairData(embed_images(paths, encoder, progress=False)).vectors

    view1 = View1(lfw, vectors_of)
    view2 = lfw.view2()
    data = PairData(embed_images(unique_images(view2), encoder, progress=False))
    gallery = Gallery(view2, data.vectors)
    report = {
        "protocol": __doc__.split("\n\n", 2)[2].split("Writes")[0].strip(),
        "target_fmr": TARGET_FMR,
        "machine": {"cores": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
        "float_pca_reference": float_pca_reference(gallery),
        "candidates": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (levels, target_bits, strategies) in SHAPES.items():
            print(f"{name}: selecting on View 1", flush=True)
            config, grid = select(view1, levels, target_bits)
            result = calibrate_model(gallery, config, f"strict {name}")
            candidate = {
                "chosen": config.to_dict(),
                "view1_grid": grid,
                "view2": result,
                "view2_balanced_accuracy": fold_summary(
                    view2_folds(data, view2, config, with_simulation=False)["fold_accuracies_clear_quantised"]
                ),
            }
            for strategy in () if args.no_cost else strategies:
                out = Path(tmp) / f"L{levels}-{strategy}"
                compiled = compile_candidate(gallery, config, out, encoder.model_sha256, strategy)
                labels = ("shipped accurate", "candidate")
                compiled["cost"] = bench_side_by_side(HEADS_ROOT / "accurate", out, args.runs, labels=labels)
                candidate.setdefault("compiled", {})[strategy] = compiled
                ratio = compiled["cost"]["candidate_vs_shipped accurate"]
                print(f"  {strategy}: server x{ratio['server_time']:.2f}, keys x{ratio['eval_keys']:.2f}", flush=True)
            report["candidates"][name] = candidate
            strict = result["levels"]["1e-3"]
            print(
                f"{name}: {config.label()} -> View 2 TAR {strict['tar_mean']:.4f} at FMR {strict['fmr']['mean']:.2e}, "
                f"balanced accuracy {candidate['view2_balanced_accuracy']['mean']:.4f}",
                flush=True,
            )
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    (METRICS / "security_levels_refit.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
